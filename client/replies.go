package client

import (
	"container/list"
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
	// seenSURBsPerHeld: the SURBs remembered against double adding are
	// this many times SURBs.MaxHeld.
	seenSURBsPerHeld = 4
	// requestCopyWindow: a sender answers one request for SURBs from a
	// recipient in this long, so that the copies of a request cost it one
	// batch. (A real second request comes RequestWait/urgentRetryDivisor
	// later at the soonest, or after the answer to the first.)
	requestCopyWindow = time.Second
	// surbAnswerChunk is how many SURBs a sender puts in each message of
	// an answer: as many as fill three fragments. An answer goes out as
	// several messages, each reassembled on its own, so that under loss
	// the replier gets SURBs as each message completes instead of when
	// the last fragment of one large message does (200 SURBs are 58
	// fragments).
	surbAnswerChunk = (3*FragmentCapacity - repliableHeaderSize) / surbSize
	// requestRetryMin: a replier asks again no sooner than this after its
	// last request, so that the retry reaches the sender outside the copy
	// window of any answer it sent before that request.
	requestRetryMin = requestCopyWindow + requestCopyWindow/4
)

// surbPool holds the SURBs one anonymous sender gave this client, and the
// reply fragments waiting for more.
type surbPool struct {
	tag         address.SenderTag
	surbs       []storedSURB // oldest first
	requesting  bool
	requestedAt time.Time
	// outstanding is how many of the SURBs last asked for have not come
	// yet. While an answer arrives (in chunks, surbAnswerChunk) the
	// request stays under way and its wait starts again with each chunk.
	outstanding int
	waiting     []*pendingFragment
	// used counts the SURBs taken since the last request for more: a pool
	// asks ahead of need only when it is being drawn down steadily, so a
	// one-off reply does not cost its sender a batch of SURBs.
	used int
	// queued counts the reply fragments on their way to their first SURB
	// (queued, not yet sent or waiting): a request asks for enough for
	// them too, so that one long reply costs one request, not one per
	// batch.
	queued int
	// elem is the pool's place in Client.poolLRU.
	elem *list.Element
	// lastUsed is when a reply last took a SURB (or tried to);
	// refreshedAt when the pool last asked for SURBs to replace expiring
	// ones (see refreshExpiringLocked).
	lastUsed, refreshedAt time.Time
}

// unqueueForSURBLocked takes pf out of its pool's queued count once it
// reaches the pool or is dropped before. c.mu must be held.
func (c *Client) unqueueForSURBLocked(pf *pendingFragment) {
	if !pf.queuedForSURB {
		return
	}
	pf.queuedForSURB = false
	if p := c.pools[*pf.target.reply]; p != nil && p.queued > 0 {
		p.queued--
	}
}

// idle reports whether the pool holds nothing and waits for nothing.
func (p *surbPool) idle() bool { return len(p.surbs) == 0 && len(p.waiting) == 0 && !p.requesting }

// pool returns the pool of tag, creating it, and counts it as used now.
// c.mu must be held (or the client not yet started).
func (c *Client) pool(tag address.SenderTag) *surbPool {
	p := c.pools[tag]
	if p == nil {
		p = &surbPool{tag: tag}
		c.pools[tag] = p
		p.elem = c.poolLRU.PushBack(p)
		return p
	}
	c.poolLRU.MoveToBack(p.elem)
	return p
}

// poolCleanup is what removing pools left to do outside c.mu: SURBs to
// delete from the data folder and waiting replies to fail.
type poolCleanup struct {
	dbKeys  [][address.SenderTagSize + 8]byte
	waiting []*pendingFragment
	reason  string
}

// dropSURBsLocked removes the first n SURBs of p. c.mu must be held.
func (c *Client) dropSURBsLocked(p *surbPool, n int, pc *poolCleanup) {
	for _, s := range p.surbs[:n] {
		pc.dbKeys = append(pc.dbKeys, s.dbKey)
	}
	clear(p.surbs[:n])
	p.surbs = p.surbs[n:]
	c.surbsHeld -= n
}

// removePoolLocked forgets p: its SURBs, its waiting replies, and the
// stream its replies were numbered on. c.mu must be held.
func (c *Client) removePoolLocked(p *surbPool, pc *poolCleanup) {
	c.dropSURBsLocked(p, len(p.surbs), pc)
	pc.waiting = append(pc.waiting, p.waiting...)
	p.waiting = nil
	c.poolLRU.Remove(p.elem)
	delete(c.pools, p.tag)
	delete(c.streams, replyStreamKey(p.tag))
}

// boundPoolsLocked removes the least recently used pools, but keep, until
// the pools and the SURBs they hold are within SURBs.MaxSenders and
// SURBs.MaxHeld. c.mu must be held.
func (c *Client) boundPoolsLocked(keep *surbPool, pc *poolCleanup) {
	for e := c.poolLRU.Front(); e != nil && (len(c.pools) > c.cfg.SURBs.MaxSenders || c.surbsHeld > c.cfg.SURBs.MaxHeld); {
		p := e.Value.(*surbPool)
		e = e.Next()
		if p == keep {
			continue
		}
		c.removePoolLocked(p, pc)
		c.stats.poolsEvicted.Add(1)
	}
}

// finish deletes the SURBs of pc from the data folder and fails its
// waiting replies.
func (c *Client) finishCleanup(pc *poolCleanup) {
	if len(pc.dbKeys) > 0 {
		if err := c.state.deleteSURBs(pc.dbKeys); err != nil {
			c.log.Error().Err(err).Msg("deleting reply SURBs")
		}
	}
	for _, pf := range pc.waiting {
		c.fail(pf, fmt.Errorf("%w: %s", ErrNoSURBs, pc.reason))
	}
}

// expireSURBs drops the SURBs that may no longer be used (see
// dropExpiredLocked), and the pools left with nothing to do.
func (c *Client) expireSURBs(now time.Time) {
	pc := &poolCleanup{reason: "the sender's SURBs expired"}
	c.mu.Lock()
	for e := c.poolLRU.Front(); e != nil; {
		p := e.Value.(*surbPool)
		e = e.Next()
		c.dropExpiredLocked(p, now, pc)
		if p.idle() {
			c.removePoolLocked(p, pc)
		}
	}
	c.mu.Unlock()
	c.finishCleanup(pc)
}

// seenSURBs remembers the last SURBs taken in, held or used, so that a
// message delivered twice (say, again after a restart) does not add its
// SURBs twice: a SURB used twice is refused at its first hop. It is bounded
// for all senders together.
type seenSURBs struct {
	capacity int
	keys     map[sphinx.ReplyKey]struct{}
	ring     []sphinx.ReplyKey
	next     int // where the next key goes once the ring is full
}

// add records k and reports whether it was not seen before.
func (s *seenSURBs) add(k sphinx.ReplyKey) bool {
	if s.keys == nil {
		s.keys = make(map[sphinx.ReplyKey]struct{})
	}
	if _, ok := s.keys[k]; ok {
		return false
	}
	if len(s.ring) < s.capacity {
		s.ring = append(s.ring, k)
	} else {
		delete(s.keys, s.ring[s.next])
		s.ring[s.next] = k
		s.next = (s.next + 1) % s.capacity
	}
	s.keys[k] = struct{}{}
	return true
}

// replyStreamKey names the stream of the replies to tag (see nextPos).
func replyStreamKey(tag address.SenderTag) string { return "reply:" + string(tag[:]) }

// loadSURBs loads the stored SURBs younger than SURBs.Lifetime into pools,
// the pool with the newest SURB counting as the most recently used, within
// the bounds; what it does not keep is deleted from the data folder.
func (c *Client) loadSURBs() error {
	stored, err := c.state.loadSURBs(time.Now().Add(-c.cfg.SURBs.Lifetime))
	if err != nil {
		return fmt.Errorf("client: loading SURBs: %w", err)
	}
	type loaded struct {
		tag    address.SenderTag
		surbs  []storedSURB
		newest time.Time
	}
	order := make([]loaded, 0, len(stored))
	for tag, list := range stored {
		order = append(order, loaded{tag, list, list[len(list)-1].received})
	}
	slices.SortFunc(order, func(a, b loaded) int { return a.newest.Compare(b.newest) })
	pc := &poolCleanup{}
	for _, l := range order {
		p := c.pool(l.tag)
		p.surbs = l.surbs
		c.surbsHeld += len(l.surbs)
		for _, st := range l.surbs {
			c.seen.add(st.surb.Key)
		}
		if extra := len(p.surbs) - c.cfg.SURBs.Max; extra > 0 {
			c.dropSURBsLocked(p, extra, pc)
		}
		c.boundPoolsLocked(p, pc)
	}
	if len(pc.dbKeys) > 0 {
		if err := c.state.deleteSURBs(pc.dbKeys); err != nil {
			return fmt.Errorf("client: deleting SURBs beyond the bounds: %w", err)
		}
	}
	return nil
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
// They are made with the keys of the newest rotation the route's nodes have
// announced (see netView.surbRotation), so that they stay usable as long
// as they can.
// unroutableWait bounds how long making SURBs waits for a topology that can
// route, when the one held cannot (a node or network restarting).
const unroutableWait = 10 * time.Second

func (c *Client) makeSURBs(ctx context.Context, tag address.SenderTag, n int) (surbBatch, error) {
	if n == 0 {
		return surbBatch{}, nil
	}
	view, err := c.topology(ctx)
	if err != nil {
		return surbBatch{}, err
	}
	self, ok := view.gateway(c.addr.Gateway[:])
	if !ok || view.lacksAnnounced(&self.netNode, time.Now()) || !view.routable(c.addr.Gateway[:], time.Now()) {
		// SURBs made without the keys announced since the view was fetched
		// would expire a rotation early; a view that cannot route (a node
		// restarting, or the own gateway) may be older than the node's
		// return. (refreshTopology fetches at most once every topologyGap.)
		if err := c.refreshTopology(ctx); err != nil && !errors.Is(err, errUnroutable) {
			c.log.Warn().Err(err).Msg("refreshing the topology before making SURBs")
		}
		view = c.view.Load()
		// A network restarting (a node, or the whole of it): wait for a
		// topology that can route, a fetch every topologyGap, for at most
		// unroutableWait, rather than fail the send.
		for deadline := time.Now().Add(unroutableWait); !view.routable(c.addr.Gateway[:], time.Now()) && time.Now().Before(deadline); {
			select {
			case <-ctx.Done():
				return surbBatch{}, ctx.Err()
			case <-c.ctx.Done():
				return surbBatch{}, ErrClosed
			case <-time.After(topologyGap):
			}
			if err := c.refreshTopology(ctx); err != nil && !errors.Is(err, errUnroutable) {
				c.log.Debug().Err(err).Msg("refreshing the topology before making SURBs")
			}
			view = c.view.Load()
		}
		self, ok = view.gateway(c.addr.Gateway[:])
	}
	if !ok {
		return surbBatch{}, errors.New("client: own gateway is not in the topology")
	}
	mix, _ := c.meanDelays(view)
	now := time.Now()
	batch := surbBatch{rotation: view.surbRotation(&self.netNode, now), surbs: make([]*sphinx.SURB, n)}
	keys := make(map[[sphinx.ReplyDigestSize]byte]*replyKey, n)
	for i := range batch.surbs {
		route, _, _, err := view.routeFor(batch.rotation, &c.health, &self.netNode, mix, now)
		if err != nil {
			return surbBatch{}, err
		}
		s, err := sphinx.NewSURB(c.cfg.Rand, route, sphinx.Destination(c.addr.Identity), sphinx.SURBID{})
		if err != nil {
			return surbBatch{}, fmt.Errorf("client: making a SURB: %w", err)
		}
		batch.surbs[i] = s
		keys[s.Key.Digest()] = &replyKey{key: s.Key, tag: tag, created: now}
	}
	if err := c.state.saveReplyKeys(keys); err != nil {
		return surbBatch{}, fmt.Errorf("client: saving reply keys: %w", err)
	}
	var forgotten []replyDigest
	c.mu.Lock()
	for d, k := range keys {
		forgotten = append(forgotten, c.replyKeys.add(d, k)...)
	}
	c.mu.Unlock()
	if len(forgotten) > 0 {
		if err := c.state.deleteReplyKeys(forgotten); err != nil {
			c.log.Error().Err(err).Msg("forgetting the oldest reply keys of a recipient")
		}
	}
	return batch, nil
}

// useReplyKey forgets a reply key once it has opened its reply.
func (c *Client) useReplyKey(d [sphinx.ReplyDigestSize]byte) {
	c.mu.Lock()
	c.replyKeys.remove(d)
	c.mu.Unlock()
	if err := c.state.deleteReplyKeys([][sphinx.ReplyDigestSize]byte{d}); err != nil {
		c.log.Error().Err(err).Msg("forgetting a reply key")
	}
}

func (c *Client) expireReplyKeys(now time.Time) {
	c.mu.Lock()
	old := c.replyKeys.expire(now.Add(-c.cfg.SURBs.KeyTTL))
	c.mu.Unlock()
	if len(old) > 0 {
		if err := c.state.deleteReplyKeys(old); err != nil {
			c.log.Error().Err(err).Msg("expiring reply keys")
		}
	}
}

// addSURBs stores SURBs an anonymous sender sent and resumes the replies that
// waited for them. SURBs whose keys have expired are dropped. The pool
// keeps its newest SURBs.Max; past SURBs.MaxSenders pools or SURBs.MaxHeld
// SURBs, the least recently used pools go.
func (c *Client) addSURBs(tag address.SenderTag, batch surbBatch) {
	now := time.Now()
	if !c.surbUsable(batch.rotation, now) {
		c.log.Debug().Uint32("rotation", batch.rotation).Int("surbs", len(batch.surbs)).Msg("dropping reply SURBs whose keys have expired")
		return
	}
	c.mu.Lock()
	fresh := batch.surbs[:0:0]
	for _, s := range batch.surbs {
		if c.seen.add(s.Key) {
			fresh = append(fresh, s)
		}
	}
	c.mu.Unlock()
	fresh = fresh[max(0, len(fresh)-c.cfg.SURBs.Max):]
	c.log.Debug().Str("sender", tag.String()).Uint32("rotation", batch.rotation).Int("surbs", len(fresh)).Msg("reply SURBs received")
	stored, err := c.state.addSURBs(tag, surbBatch{rotation: batch.rotation, surbs: fresh}, now)
	if err != nil {
		c.log.Error().Err(err).Msg("keeping reply SURBs")
		return
	}
	pc := &poolCleanup{reason: "dropped to make room for other senders' SURBs"}
	c.mu.Lock()
	p := c.pool(tag) // again: it may have gone meanwhile
	p.surbs = append(p.surbs, stored...)
	c.surbsHeld += len(stored)
	if extra := len(p.surbs) - c.cfg.SURBs.Max; extra > 0 {
		c.dropSURBsLocked(p, extra, pc)
	}
	c.boundPoolsLocked(p, pc)
	p.outstanding = max(0, p.outstanding-len(stored))
	if p.requesting && p.outstanding > 0 {
		p.requestedAt = now // more of the answer to come: wait for it
	} else {
		p.requesting = false
	}
	waiting := p.waiting
	p.waiting = nil
	c.mu.Unlock()
	c.finishCleanup(pc)
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
	c.unqueueForSURBLocked(pf)
	p := c.pool(tag)
	now := time.Now()
	expired := &poolCleanup{}
	c.dropExpiredLocked(p, now, expired)
	if len(expired.dbKeys) > 0 {
		c.spawn(func() { c.finishCleanup(expired) })
	}
	p.lastUsed = now
	reserve := c.surbReserve()
	keep := 1
	if pf.attempts > 0 || p.requesting {
		keep = reserve
	}
	if len(p.surbs) > keep {
		s := p.surbs[0]
		p.surbs[0] = storedSURB{}
		p.surbs = p.surbs[1:]
		c.surbsHeld--
		p.used++
		// Ask ahead while the pool is drawn down steadily, or when a burst
		// of replies is about to leave only the reserve. A burst asks while
		// the request's copies still leave the whole reserve, so that under
		// loss the request can be repeated reserve/requestCopies times
		// before the pool is empty (with 40% loss per path, four copies all
		// lost is a burst failing one time in 40; eight, one in 1500).
		steady := len(p.surbs) < c.cfg.SURBs.Min && p.used >= c.cfg.SURBs.Min
		burst := len(p.surbs) <= reserve+requestCopies && p.used >= requestCopies
		if (steady || burst) && !p.requesting {
			c.requestSURBsLocked(p, 0)
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
		c.requestSURBsLocked(p, 0)
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

// requestSURBsLocked spends a few of the pool's SURBs on a request for
// more, one copy on each (replyCost.copies): for amount, or when amount is
// 0 for SURBs.Request and what the reply fragments waiting or queued are
// expected to spend (replyCost.need), at most SURBs.Max. c.mu must be held.
func (c *Client) requestSURBsLocked(p *surbPool, amount int) {
	p.pruneWaitingLocked()
	n := min(c.replyCost.copies(), len(p.surbs))
	if n == 0 {
		return
	}
	spent := slices.Clone(p.surbs[len(p.surbs)-n:])
	clear(p.surbs[len(p.surbs)-n:])
	p.surbs = p.surbs[:len(p.surbs)-n]
	c.surbsHeld -= n
	p.requesting = true
	p.requestedAt = time.Now()
	p.used = 0
	if amount == 0 {
		amount = min(c.cfg.SURBs.Request+c.replyCost.need(len(p.waiting)+p.queued), c.cfg.SURBs.Max)
	}
	ask := uint32(min(amount, c.cfg.SURBs.MaxRequest))
	p.outstanding = int(ask)
	tag := p.tag
	c.stats.surbRequests.Add(1)
	c.log.Debug().Str("sender", tag.String()).Uint32("amount", ask).Int("copies", n).Int("left", len(p.surbs)).Int("waiting", len(p.waiting)).Int("queued", p.queued).Msg("asking for reply SURBs")
	c.spawn(func() {
		keys := make([][address.SenderTagSize + 8]byte, len(spent))
		for i, s := range spent {
			keys[i] = s.dbKey
		}
		c.state.deleteSURBs(keys)
		msg := surbRequestMessage(c.addr, ask)
		for _, s := range spent {
			if err := c.sendUntracked(s.surb, msg); err != nil {
				c.log.Warn().Err(err).Str("sender", tag.String()).Msg("asking for reply SURBs")
			}
		}
	})
}

// checkSURBRequests asks again when a request went unanswered (after
// requestRetry), and fails the waiting
// replies when RequestWait has passed with nothing left to ask with.
func (c *Client) checkSURBRequests(now time.Time) {
	type failure struct {
		pfs []*pendingFragment
		tag address.SenderTag
	}
	var failures []failure
	c.mu.Lock()
	for _, p := range c.pools {
		c.refreshExpiringLocked(p, now)
		if !p.requesting {
			continue
		}
		p.pruneWaitingLocked()
		waited := now.Sub(p.requestedAt)
		retry := c.requestRetry(len(p.waiting) > 0)
		switch {
		case len(p.surbs) > 0 && waited >= retry:
			p.requesting = false
			c.requestSURBsLocked(p, 0)
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
		c.log.Debug().Uint32("amount", amount).Msg("ignoring a SURB request: taken for a copy of one answered less than requestCopyWindow ago")
		return
	}
	c.log.Debug().Uint32("amount", amount).Msg("answering a SURB request")
	n := min(int(amount), c.cfg.SURBs.MaxRequest)
	c.spawn(func() {
		surbs, err := c.makeSURBs(c.ctx, tag, n)
		if err != nil {
			if c.ctx.Err() == nil {
				c.log.Warn().Err(err).Msg("making SURBs a recipient asked for")
			}
			return
		}
		for chunk := range slices.Chunk(surbs.surbs, surbAnswerChunk) {
			msg, err := surbsMessage(tag, surbBatch{rotation: surbs.rotation, surbs: chunk})
			if err != nil {
				c.log.Warn().Err(err).Msg("making SURBs a recipient asked for")
				return
			}
			if _, err := c.submit(c.ctx, target{to: requester}, msg, 0); err != nil {
				if c.ctx.Err() == nil {
					c.log.Warn().Err(err).Msg("sending SURBs a recipient asked for")
				}
				return
			}
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
