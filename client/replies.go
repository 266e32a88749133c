package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client/internal/fragment"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// ErrNoSURBs means a reply cannot go out: the anonymous sender's SURBs are
// used up and it did not send more when asked.
var ErrNoSURBs = errors.New("client: no reply SURBs left")

// How a pool asks its sender for more SURBs. A request is sent on SURBs and
// not retransmitted (each attempt would cost another SURB): under loss it is
// sent on several at once and asked again sooner while replies wait, and
// retransmissions leave a few SURBs in the pool to ask with.
const (
	// surbReserve is how many SURBs a retransmission, or any attempt while
	// a request for more is under way, leaves in its pool (at most half of
	// SURBs.Max, so that a full pool always has some to spend); otherwise a
	// first attempt leaves one.
	surbReserve = 6
	// requestCopies is how many SURBs carry each request for more.
	requestCopies = 2
	// urgentRetryDivisor: while replies wait, an unanswered request is
	// asked again after RequestWait divided by this.
	urgentRetryDivisor = 4
	// requestCopyWindow: a sender answers one request for SURBs from a
	// recipient in this long, so that the copies of a request cost it one
	// batch. (A real second request comes RequestWait/urgentRetryDivisor
	// later at the soonest, or after the answer to the first.)
	requestCopyWindow = time.Second
)

// surbPool holds the SURBs one anonymous sender gave this client, and the
// reply fragments waiting for more.
type surbPool struct {
	tag         address.SenderTag
	surbs       []storedSURB // oldest first
	requesting  bool
	requestedAt time.Time
	waiting     []*pendingFragment
	// used counts the SURBs taken since the last request for more: a pool
	// asks ahead of need only when it is being drawn down steadily, so a
	// one-off reply does not cost its sender a batch of SURBs.
	used int

	// seen remembers the SURBs the pool has taken in, held or used, so that a
	// message delivered twice (say, again after a restart) does not add its
	// SURBs twice: a SURB used twice is refused at its first hop.
	seen      map[sphinx.ReplyKey]bool
	seenOrder []sphinx.ReplyKey
}

// remember records s and reports whether the pool had not seen it before.
// It keeps the last seenLimit SURBs.
func (p *surbPool) remember(s *sphinx.SURB, seenLimit int) bool {
	if p.seen == nil {
		p.seen = map[sphinx.ReplyKey]bool{}
	}
	if p.seen[s.Key] {
		return false
	}
	p.seen[s.Key] = true
	p.seenOrder = append(p.seenOrder, s.Key)
	if len(p.seenOrder) > seenLimit {
		delete(p.seen, p.seenOrder[0])
		p.seenOrder = p.seenOrder[1:]
	}
	return true
}

// pool returns the pool of tag, creating it. c.mu must be held (or the
// client not yet started).
func (c *Client) pool(tag address.SenderTag) *surbPool {
	p := c.pools[tag]
	if p == nil {
		p = &surbPool{tag: tag}
		c.pools[tag] = p
	}
	return p
}

// SURBCount is how many reply SURBs this client holds from the sender with
// this tag.
func (c *Client) SURBCount(tag address.SenderTag) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.pools[tag]; p != nil {
		return len(p.surbs)
	}
	return 0
}

// senderTag returns this client's sender tag for a recipient, making and
// saving one the first time.
func (c *Client) senderTag(to address.Address) (address.SenderTag, error) {
	c.mu.Lock()
	tag, ok := c.tags[to]
	c.mu.Unlock()
	if ok {
		return tag, nil
	}
	tag, err := address.NewSenderTag(c.cfg.Rand)
	if err != nil {
		return tag, fmt.Errorf("client: %w", err)
	}
	if err := c.state.saveTag(to, tag); err != nil {
		return tag, fmt.Errorf("client: saving a sender tag: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.tags[to]; ok {
		return old, nil // another goroutine got there first
	}
	c.tags[to] = tag
	c.tagTargets[tag] = to
	return tag, nil
}

// makeSURBs makes n SURBs back to this client and records their reply keys.
func (c *Client) makeSURBs(ctx context.Context, tag address.SenderTag, n int) ([]*sphinx.SURB, error) {
	if n == 0 {
		return nil, nil
	}
	view, err := c.topology(ctx)
	if err != nil {
		return nil, err
	}
	self, ok := view.gateway(c.addr.Gateway[:])
	if !ok {
		return nil, errors.New("client: own gateway is not in the topology")
	}
	mix, _ := c.meanDelays(view)
	now := time.Now()
	surbs := make([]*sphinx.SURB, n)
	keys := make(map[[sphinx.ReplyDigestSize]byte]*replyKey, n)
	for i := range surbs {
		route, _, _, err := view.route(&c.health, &self.netNode, mix, now)
		if err != nil {
			return nil, err
		}
		if surbs[i], err = sphinx.NewSURB(c.cfg.Rand, route, sphinx.Destination(c.addr.Identity), sphinx.SURBID{}); err != nil {
			return nil, fmt.Errorf("client: making a SURB: %w", err)
		}
		keys[surbs[i].Key.Digest()] = &replyKey{key: surbs[i].Key, tag: tag, created: now}
	}
	if err := c.state.saveReplyKeys(keys); err != nil {
		return nil, fmt.Errorf("client: saving reply keys: %w", err)
	}
	c.mu.Lock()
	for d, k := range keys {
		c.replyKeys[d] = k
	}
	c.mu.Unlock()
	return surbs, nil
}

// useReplyKey forgets a reply key once it has opened its reply.
func (c *Client) useReplyKey(d [sphinx.ReplyDigestSize]byte) {
	c.mu.Lock()
	delete(c.replyKeys, d)
	c.mu.Unlock()
	if err := c.state.deleteReplyKeys([][sphinx.ReplyDigestSize]byte{d}); err != nil {
		c.log.Error().Err(err).Msg("forgetting a reply key")
	}
}

func (c *Client) expireReplyKeys(now time.Time) {
	var old [][sphinx.ReplyDigestSize]byte
	c.mu.Lock()
	for d, k := range c.replyKeys {
		if now.Sub(k.created) > c.cfg.SURBs.KeyTTL {
			old = append(old, d)
			delete(c.replyKeys, d)
		}
	}
	c.mu.Unlock()
	if len(old) > 0 {
		if err := c.state.deleteReplyKeys(old); err != nil {
			c.log.Error().Err(err).Msg("expiring reply keys")
		}
	}
}

// addSURBs stores SURBs an anonymous sender sent and resumes the replies that
// waited for them.
func (c *Client) addSURBs(tag address.SenderTag, surbs []*sphinx.SURB) {
	c.mu.Lock()
	p := c.pool(tag)
	fresh := surbs[:0:0]
	for _, s := range surbs {
		if p.remember(s, 4*c.cfg.SURBs.Max) {
			fresh = append(fresh, s)
		}
	}
	c.mu.Unlock()
	stored, err := c.state.addSURBs(tag, fresh, time.Now())
	if err != nil {
		c.log.Error().Err(err).Msg("keeping reply SURBs")
		return
	}
	c.mu.Lock()
	p.surbs = append(p.surbs, stored...)
	var dropped [][address.SenderTagSize + 8]byte
	for len(p.surbs) > c.cfg.SURBs.Max {
		dropped = append(dropped, p.surbs[0].dbKey)
		p.surbs = p.surbs[1:]
	}
	p.requesting = false
	waiting := p.waiting
	p.waiting = nil
	c.mu.Unlock()
	if len(dropped) > 0 {
		c.state.deleteSURBs(dropped)
	}
	for _, pf := range waiting {
		select {
		case c.jobs <- pf:
		case <-c.ctx.Done():
			return
		}
	}
}

// takeSURB hands out a SURB for one reply fragment. SURBs are kept in
// reserve to ask for more: one for a first attempt, surbReserve for a
// retransmission or while a request is under way; when only the reserve is
// left, pf waits in the pool and a request goes out. Replies fail with
// ErrNoSURBs only when the pool is empty and no request is under way.
func (c *Client) takeSURB(tag address.SenderTag, pf *pendingFragment) (*sphinx.SURB, bool) {
	c.mu.Lock()
	p := c.pool(tag)
	reserve := c.surbReserve()
	keep := 1
	if pf.attempts > 0 || p.requesting {
		keep = reserve
	}
	if len(p.surbs) > keep {
		s := p.surbs[0]
		p.surbs = p.surbs[1:]
		p.used++
		// Ask ahead while the pool is drawn down steadily, or when a burst
		// of replies is about to leave only the reserve.
		steady := len(p.surbs) < c.cfg.SURBs.Min && p.used >= c.cfg.SURBs.Min
		burst := len(p.surbs) <= reserve && p.used >= reserve
		if (steady || burst) && !p.requesting {
			c.requestSURBsLocked(p)
		}
		c.mu.Unlock()
		c.state.deleteSURBs([][address.SenderTagSize + 8]byte{s.dbKey})
		return s.surb, true
	}
	p.waiting = append(p.waiting, pf)
	if !p.requesting {
		if len(p.surbs) == 0 {
			p.pruneWaitingLocked()
			waiting := p.waiting
			p.waiting = nil
			c.mu.Unlock()
			for _, w := range waiting {
				c.fail(w, fmt.Errorf("%w for sender %s: none could be requested", ErrNoSURBs, tag))
			}
			return nil, false
		}
		c.requestSURBsLocked(p)
	}
	c.mu.Unlock()
	return nil, false
}

// surbReserve is the reserve of SURBs a pool keeps to ask with.
func (c *Client) surbReserve() int { return min(surbReserve, max(1, c.cfg.SURBs.Max/2)) }

// pruneWaitingLocked drops the fragments that no longer wait: a
// retransmission parked here whose ack came meanwhile. c.mu must be held.
func (p *surbPool) pruneWaitingLocked() {
	p.waiting = slices.DeleteFunc(p.waiting, func(pf *pendingFragment) bool { return pf.done })
}

// requestSURBsLocked spends up to requestCopies of the pool's SURBs on a
// request for more, one copy on each. c.mu must be held.
func (c *Client) requestSURBsLocked(p *surbPool) {
	p.pruneWaitingLocked()
	n := min(requestCopies, len(p.surbs))
	if n == 0 {
		return
	}
	spent := slices.Clone(p.surbs[len(p.surbs)-n:])
	p.surbs = p.surbs[:len(p.surbs)-n]
	p.requesting = true
	p.requestedAt = time.Now()
	p.used = 0
	amount := uint32(min(c.cfg.SURBs.Request+len(p.waiting), c.cfg.SURBs.MaxRequest))
	tag := p.tag
	c.spawn(func() {
		keys := make([][address.SenderTagSize + 8]byte, len(spent))
		for i, s := range spent {
			keys[i] = s.dbKey
		}
		c.state.deleteSURBs(keys)
		msg := surbRequestMessage(c.addr, amount)
		for _, s := range spent {
			if err := c.sendUntracked(s.surb, msg); err != nil {
				c.log.Warn().Err(err).Str("sender", tag.String()).Msg("asking for reply SURBs")
			}
		}
	})
}

// checkSURBRequests asks again when a request went unanswered (after
// RequestWait, or a quarter of it while replies wait), and fails the waiting
// replies when RequestWait has passed with nothing left to ask with.
func (c *Client) checkSURBRequests(now time.Time) {
	type failure struct {
		pfs []*pendingFragment
		tag address.SenderTag
	}
	var failures []failure
	c.mu.Lock()
	for _, p := range c.pools {
		if !p.requesting {
			continue
		}
		p.pruneWaitingLocked()
		waited := now.Sub(p.requestedAt)
		retry := c.cfg.SURBs.RequestWait
		if len(p.waiting) > 0 {
			retry /= urgentRetryDivisor
		}
		switch {
		case len(p.surbs) > 0 && waited >= retry:
			p.requesting = false
			c.requestSURBsLocked(p)
		case len(p.surbs) == 0 && waited >= c.cfg.SURBs.RequestWait:
			p.requesting = false
			if len(p.waiting) > 0 {
				failures = append(failures, failure{p.waiting, p.tag})
				p.waiting = nil
			}
		}
	}
	c.mu.Unlock()
	for _, f := range failures {
		for _, pf := range f.pfs {
			c.fail(pf, fmt.Errorf("%w for sender %s: the sender sent none when asked", ErrNoSURBs, f.tag))
		}
	}
}

// answerSURBRequest sends more SURBs to a recipient that asked for them.
func (c *Client) answerSURBRequest(requester address.Address, amount uint32) {
	now := time.Now()
	c.mu.Lock()
	tag, ok := c.tags[requester]
	copyOf := ok && now.Sub(c.answered[tag]) < requestCopyWindow
	if ok && !copyOf {
		if c.answered == nil {
			c.answered = make(map[address.SenderTag]time.Time)
		}
		c.answered[tag] = now
	}
	c.mu.Unlock()
	if !ok {
		c.log.Debug().Msg("ignoring a SURB request from an address this client never wrote to")
		return
	}
	if copyOf {
		return // another copy of a request answered a moment ago
	}
	n := min(int(amount), c.cfg.SURBs.MaxRequest)
	c.spawn(func() {
		surbs, err := c.makeSURBs(c.ctx, tag, n)
		if err != nil {
			if c.ctx.Err() == nil {
				c.log.Warn().Err(err).Msg("making SURBs a recipient asked for")
			}
			return
		}
		msg, err := surbsMessage(tag, surbs)
		if err != nil {
			c.log.Warn().Err(err).Msg("making SURBs a recipient asked for")
			return
		}
		if _, err := c.submit(c.ctx, target{to: requester}, msg, 0); err != nil && c.ctx.Err() == nil {
			c.log.Warn().Err(err).Msg("sending SURBs a recipient asked for")
		}
	})
}

// sendUntracked sends a one-fragment control message on a SURB, without
// retransmission (a lost SURB request is asked again after a while).
func (c *Client) sendUntracked(surb *sphinx.SURB, msg []byte) error {
	frags, err := fragment.Split(msg, FragmentCapacity, c.cfg.Rand)
	if err != nil || len(frags) != 1 {
		return fmt.Errorf("client: control message of %d fragments: %v", len(frags), err)
	}
	view, err := c.topology(c.ctx)
	if err != nil {
		return err
	}
	self, ok := view.gateway(c.addr.Gateway[:])
	if !ok {
		return errors.New("client: own gateway is not in the topology")
	}
	_, ackMean := c.meanDelays(view)
	ackRoute, _, _, err := view.route(&c.health, &self.netNode, ackMean, time.Now())
	if err != nil {
		return err
	}
	plan := &packetPlan{
		surb: surb, ackPath: ackRoute, self: sphinx.Destination(c.addr.Identity), ackKey: c.keys.ackKey,
		id: frags[0].ID(), frag: frags[0].AppendBinary(make([]byte, 0, FragmentCapacity)),
	}
	firstHop, pkt, err := buildPacket(c.cfg.Rand, plan)
	if err != nil {
		return err
	}
	select {
	case c.link.out <- &outPacket{firstHop: firstHop, packet: pkt}:
		return nil
	case <-c.ctx.Done():
		return ErrClosed
	}
}
