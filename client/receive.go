package client

import (
	"context"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client/internal/fragment"
	"github.com/peapod-mixnet/peapod/internal/gwproto"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// Message is a message received from the mixnet.
type Message struct {
	// Data is the message.
	Data []byte
	// SenderTag is set when the sender attached reply SURBs: pass it to
	// Reply to answer. It names the sender to this client only.
	SenderTag *address.SenderTag

	// key is the message's place in the data folder, for Forget; 0 when
	// it is not kept there.
	key uint64
}

// Receive returns the next message, in the order each sender sent them (a
// message that comes after the client stopped waiting for it, see
// Config.MaxGapWait, comes late, out of order).
//
// A message stays in the client's data folder from the moment it is complete
// until Receive returns it, so one that arrived but was not yet taken
// survives a restart of the client. A consumer that passes messages on (to
// an application over a socket, say) uses ReceiveKept and Forget instead,
// so that a crash before the hand-off does not lose the message either.
func (c *Client) Receive(ctx context.Context) (Message, error) {
	m, err := c.ReceiveKept(ctx)
	if err != nil {
		return Message{}, err
	}
	c.Forget(m)
	m.key = 0
	return m, nil
}

// ReceiveKept is Receive that leaves the message in the data folder until
// Forget is called with it: if the client stops before that, the message
// is delivered again after the restart, ahead of the messages that came
// after it. Within one run each message is returned once either way.
func (c *Client) ReceiveKept(ctx context.Context) (Message, error) {
	var it *inboxItem
	select {
	case it = <-c.inbox:
	case <-ctx.Done():
		return Message{}, ctx.Err()
	case <-c.closed():
		select {
		case it = <-c.inbox:
		default:
			return Message{}, ErrClosed
		}
	}
	c.recvMu.Lock()
	c.inboxBytes -= len(it.msg.Data)
	if c.inboxBytes < c.cfg.InboxBytes {
		// Cleared here, not by the reader it wakes, so that Stats says
		// so as soon as this returns.
		c.inboxFull.Store(false)
	}
	c.orderClockLocked(time.Now())
	close(c.inboxRoom)
	c.inboxRoom = make(chan struct{})
	c.recvMu.Unlock()
	m := it.msg
	m.key = it.key
	return m, nil
}

// waitInboxRoom waits while the messages received and not yet taken hold
// Config.InboxBytes or more. It reports false when the client closes first.
func (c *Client) waitInboxRoom() bool {
	for {
		c.recvMu.Lock()
		if c.inboxBytes < c.cfg.InboxBytes {
			c.recvMu.Unlock()
			return true
		}
		room := c.inboxRoom
		c.inboxFull.Store(true)
		c.orderClockLocked(time.Now())
		c.recvMu.Unlock()
		select {
		case <-room:
		case <-c.closed():
			return false
		}
	}
}

// Forget removes a message returned by ReceiveKept from the data folder,
// once it is safely where it was going. Forgetting a message twice, or one
// from Receive, does nothing.
func (c *Client) Forget(m Message) {
	if m.key == 0 {
		return
	}
	if err := c.state.deleteInbox(m.key); err != nil {
		c.log.Error().Err(err).Msg("removing a delivered message from the inbox")
	}
}

func (c *Client) closed() <-chan struct{} {
	if c.ctx == nil {
		return nil
	}
	return c.ctx.Done()
}

// deliver handles what the gateway delivered: an ack or a data packet. It
// runs on the link's read goroutine, one delivery at a time; when the app
// does not keep up (Config.InboxSize, Config.InboxBytes), it blocks, and
// the gateway holds the rest.
func (c *Client) deliver(id uint64, kind gwproto.DeliverKind, payload []byte) {
	if kind != gwproto.KindAck && !c.waitInboxRoom() {
		return // closing; unconfirmed, so the gateway delivers it again
	}
	defer c.link.confirm(id)
	if kind == gwproto.KindAck {
		fid, err := parseAck(c.keys.ackKey, payload)
		if err != nil {
			c.log.Debug().Err(err).Msg("dropping an ack")
			return
		}
		c.onAck(fid)
		return
	}
	c.stats.received.Add(1)
	frag, viaReply, err := c.decryptFragment(payload)
	if err != nil {
		c.stats.undecryptable.Add(1)
		c.log.Debug().Err(err).Msg("dropping a packet that does not decrypt")
		return
	}
	if isCover(frag) {
		return
	}
	c.receiveFragment(frag, viaReply)
}

// receiveFragment takes a decrypted fragment: it adds it to its message,
// and hands the message on once complete.
func (c *Client) receiveFragment(frag []byte, viaReply bool) {
	f, err := fragment.Parse(frag)
	if err != nil {
		c.stats.badMessages.Add(1)
		c.log.Debug().Err(err).Msg("dropping a malformed fragment")
		return
	}
	c.recvMu.Lock()
	msg, complete, err := c.reasm.Add(time.Now(), f)
	switch {
	case complete && (f.Total > 1 || f.PreviousSetID != 0 || f.NextSetID != 0):
		c.partialDone = append(c.partialDone, f.SetID)
	case err == nil && !complete && c.reasm.Holds(f.SetID):
		// Confirmed to the gateway soon, so kept on disk until its
		// message is complete (persistPartials).
		c.partialAdd = append(c.partialAdd, f)
	}
	c.recvMu.Unlock()
	if err != nil {
		c.stats.badMessages.Add(1)
		c.log.Debug().Err(err).Msg("dropping a fragment")
		return
	}
	if complete {
		c.handleMessage(msg, viaReply)
	}
}

// decryptFragment opens a data packet's end-to-end layer: with a reply key
// when its key field is the digest of one, with the encryption key otherwise.
func (c *Client) decryptFragment(payload []byte) ([]byte, bool, error) {
	if digest, ok := sphinx.ReplyDigest(payload); ok {
		c.mu.Lock()
		rk := c.replyKeys.get(digest)
		c.mu.Unlock()
		if rk != nil {
			frag, err := sphinx.OpenReply(nil, &rk.key, payload)
			if err == nil {
				c.useReplyKey(digest)
				return frag, true, nil
			}
		}
	}
	frag, err := openFragment(&c.keys.encPriv, &c.keys.encPub, payload)
	return frag, false, err
}

// handleMessage acts on a reassembled message.
func (c *Client) handleMessage(raw []byte, viaReply bool) {
	m, err := parseMessage(raw)
	if err != nil {
		c.stats.badMessages.Add(1)
		c.log.Debug().Err(err).Msg("dropping a malformed message")
		return
	}
	if len(m.data) > c.cfg.MaxMessageSize {
		c.stats.badMessages.Add(1)
		c.log.Debug().Int("bytes", len(m.data)).Int("max", c.cfg.MaxMessageSize).Msg("dropping a message larger than MaxMessageSize")
		return
	}
	switch {
	case m.kind == kindPlain:
		c.ordered(m.pos, Message{Data: m.data})
	case m.kind == kindRepliable:
		if len(m.surbs.surbs) > 0 {
			c.addSURBs(m.tag, m.surbs)
		}
		if m.content == contentData {
			tag := m.tag
			c.ordered(m.pos, Message{Data: m.data, SenderTag: &tag})
		}
	case m.kind == kindReply && m.content == contentData:
		c.ordered(m.pos, Message{Data: m.data})
	case m.kind == kindReply && m.content == contentSURBRequest:
		if !viaReply {
			c.log.Debug().Msg("ignoring a SURB request that did not come on a SURB")
			return
		}
		c.answerSURBRequest(m.requester, m.amount)
	}
}

// ordered passes a message through the sender's ordering buffer to the
// app. It is kept in state.db before the gateway is told the client has it
// (confirmations go out after this returns).
func (c *Client) ordered(pos streamPos, m Message) {
	c.recvMu.Lock()
	c.inboxKey++
	it := &inboxItem{key: c.inboxKey, pos: pos, msg: m}
	before := c.order.Stats().Duplicates
	ready := c.order.Push(c.orderNowLocked(time.Now()), pos.stream, pos.seq, it)
	duplicate := c.order.Stats().Duplicates != before
	if !duplicate {
		c.inboxBytes += len(m.Data)
	}
	c.orderDirty = true
	c.recvMu.Unlock()
	if duplicate {
		c.stats.duplicates.Add(1)
		it = nil
	}
	c.toApp(it, ready)
}

// toApp records add (a new message, or nil) and the released items, then
// hands the released ones to the app's inbox.
func (c *Client) toApp(add *inboxItem, ready []*inboxItem) {
	if add == nil && len(ready) == 0 {
		return
	}
	c.recvMu.Lock()
	for _, r := range ready {
		c.releaseSeq++
		r.released = c.releaseSeq
	}
	c.recvMu.Unlock()
	if err := c.state.saveInbox(add, ready); err != nil {
		c.log.Error().Err(err).Msg("keeping received messages")
	}
	for _, r := range ready {
		select {
		case c.inbox <- r:
			c.stats.delivered.Add(1)
		case <-c.ctx.Done():
			return
		}
	}
}

// persistPartials records the fragments of incomplete messages received
// since the last call, and forgets those of messages completed since. A
// message whose first fragments the client confirmed to its gateway is
// then rebuilt after a restart from the fragments on disk and the rest,
// which the gateway still holds: without them it would never complete.
// The sets of messages the reassembler dropped (expired, or for memory)
// are pruned by expire.
func (c *Client) persistPartials() error {
	c.recvMu.Lock()
	add, done := c.partialAdd, c.partialDone
	c.partialAdd, c.partialDone = nil, nil
	c.recvMu.Unlock()
	if len(add) == 0 && len(done) == 0 {
		return nil
	}
	if err := c.state.savePartials(add, done); err != nil {
		c.log.Error().Err(err).Msg("saving the fragments of incomplete messages")
		c.recvMu.Lock()
		c.partialAdd, c.partialDone = append(add, c.partialAdd...), append(done, c.partialDone...)
		c.recvMu.Unlock()
		return err
	}
	return nil
}

// persistOrder saves the ordering positions if they changed.
func (c *Client) persistOrder() {
	c.recvMu.Lock()
	if !c.orderDirty {
		c.recvMu.Unlock()
		return
	}
	snap := c.order.Snapshot()
	c.orderDirty = false
	prev := c.orderSaved
	c.recvMu.Unlock()
	if err := c.state.saveOrder(prev, snap); err != nil {
		c.log.Error().Err(err).Msg("saving the delivery order")
		return
	}
	c.recvMu.Lock()
	c.orderSaved = snap
	c.recvMu.Unlock()
}

// partialPruneInterval is how often expire prunes the recorded fragments of
// messages the reassembler no longer holds (dropped for memory).
const partialPruneInterval = time.Minute

// holdsSet reports whether the reassembler holds fragments of set id.
func (c *Client) holdsSet(id int32) bool {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	return c.reasm.Holds(id)
}

// expire runs the periodic clean-ups.
func (c *Client) expire(now time.Time) {
	c.recvMu.Lock()
	dropped := c.reasm.Expire(now)
	c.orderClockLocked(now)
	ready := c.order.Expire(c.orderNowLocked(now))
	if len(ready) > 0 {
		c.orderDirty = true
	}
	c.recvMu.Unlock()
	if dropped > 0 || now.Sub(c.partialPruned) > partialPruneInterval {
		c.partialPruned = now
		if _, err := c.state.prunePartials(c.holdsSet); err != nil {
			c.log.Error().Err(err).Msg("pruning the fragments of incomplete messages")
		}
	}
	c.toApp(nil, ready)
	c.expireReplyKeys(now)
}

// orderNowLocked is the ordering buffer's clock at now: the time, less the
// time the clock was stopped (see orderClockLocked); it stands still while
// stopped. The caller holds recvMu.
func (c *Client) orderNowLocked(now time.Time) time.Time {
	if !c.orderPaused.IsZero() {
		now = c.orderPaused
	}
	return now.Add(-c.orderLag)
}

// orderClockLocked stops or starts the ordering clock at now. It stands
// still while the inbox is full and holds messages the app has not taken:
// the app is away, the client reads nothing from its gateway, and a
// missing message may be waiting there. It runs while the inbox is full
// only of messages that wait for a gap, since only the gap wait running
// out frees that room. The caller holds recvMu.
func (c *Client) orderClockLocked(now time.Time) {
	stop := c.inboxFull.Load() && len(c.inbox) > 0
	switch {
	case stop && c.orderPaused.IsZero():
		c.orderPaused = now
	case !stop && !c.orderPaused.IsZero():
		if d := now.Sub(c.orderPaused); d > 0 {
			c.orderLag += d
		}
		c.orderPaused = time.Time{}
	}
}
