package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/peapod-mixnet/peapod/internal/gwproto"
	"github.com/peapod-mixnet/peapod/internal/node"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// The layout of a data packet's final payload: ack first hop ‖ SURB-ack ‖
// message.
const (
	// AckHopSize is the size of the SURB-ack's first hop: a node address in
	// compact form.
	AckHopSize = sphinx.CompactNodeAddressSize
	// AckPlaintextLen is what an ack packet carries (sphinx.AckPacket).
	AckPlaintextLen = 21
	// SURBAckSize is the size of a SURB-ack: an ack-size Sphinx packet.
	SURBAckSize = sphinx.HeaderSize + sphinx.PayloadOverhead + AckPlaintextLen
	// AckPrefixSize is what the gateway strips from a data packet's payload
	// before delivering the rest.
	AckPrefixSize = AckHopSize + SURBAckSize
)

// message is a message for a client on its way through the gateway.
type message struct {
	client clientID
	storedMessage
	// ackTo and ack are the SURB-ack's first hop and packet; ack is nil
	// for a KindAck message, which has none.
	ackTo netip.AddrPort
	ack   []byte
	// peer is the mixnode that delivered m, whose share of the store queue
	// m counts against while admitted.
	peer wire.PeerID
	// admitted is set while m counts against the store's quotas on its way
	// to the store (see admit).
	admitted bool
}

// errPayload is the one error of splitPayload.
var errPayload = errors.New("gateway: data payload does not start with a SURB-ack")

// splitPayload splits a data packet's final payload into the SURB-ack's
// first hop, the SURB-ack and the message. ack and rest alias p.
func splitPayload(p []byte) (hop netip.AddrPort, ack, rest []byte, err error) {
	if len(p) < AckPrefixSize {
		return netip.AddrPort{}, nil, nil, fmt.Errorf("%w: %d bytes, shorter than %d", errPayload, len(p), AckPrefixSize)
	}
	var a sphinx.NodeAddress
	copy(a[:], p[:AckHopSize])
	hop, err = a.AddrPort()
	if err != nil {
		return netip.AddrPort{}, nil, nil, fmt.Errorf("%w: ack first hop: %v", errPayload, err)
	}
	return hop, p[AckHopSize:AckPrefixSize:AckPrefixSize], p[AckPrefixSize:], nil
}

// appendPayload is splitPayload's inverse, for tests and tools.
func appendPayload(dst []byte, hop netip.AddrPort, ack, rest []byte) ([]byte, error) {
	a, err := sphinx.NewNodeAddress(hop)
	if err != nil {
		return dst, err
	}
	if len(ack) != SURBAckSize {
		return dst, fmt.Errorf("gateway: SURB-ack is %d bytes, want %d", len(ack), SURBAckSize)
	}
	dst = append(dst, a[:AckHopSize]...)
	dst = append(dst, ack...)
	return append(dst, rest...), nil
}

// exit is the exit role: it peels a packet from a mixnode and hands the
// message to its client, live or through the store. It runs on an exit
// worker; packet is processed in place.
func (g *Gateway) exit(from *wire.Peer, h wire.Header, packet []byte) {
	res, _, err := g.sphinx.Process(h.KeyRotation, packet[:0], packet)
	if err != nil {
		switch {
		case errors.Is(err, sphinx.ErrReplay):
			g.dropped(DropReplay, from)
		case errors.Is(err, node.ErrNoKey):
			g.dropped(DropExpiredKey, from)
		case errors.Is(err, sphinx.ErrAuthentication):
			from.Fault()
			g.dropped(DropAuthentication, from)
		default:
			g.dropped(DropBadPacket, from)
		}
		return
	}
	if !res.Final {
		g.dropped(DropNotFinal, from)
		return
	}
	client := clientID(res.Destination)
	if !g.store.isRegistered(client) {
		g.dropped(DropUnknownClient, from)
		return
	}
	m := &message{client: client, peer: from.ID()}
	m.received = g.cfg.Now()
	if h.Size == sphinx.AckPacket {
		m.kind = gwproto.KindAck
		m.payload = append([]byte(nil), res.Payload...)
	} else {
		hop, ack, rest, err := splitPayload(res.Payload)
		if err != nil {
			g.dropped(DropMalformedPayload, from)
			return
		}
		hop, ok := g.topo.layer1(g.ctx, hop, false)
		if !ok {
			g.dropped(DropAckHop, from)
			return
		}
		// One allocation holds both parts.
		buf := make([]byte, len(ack)+len(rest))
		m.kind = gwproto.KindMessage
		m.ackTo = hop
		m.ack = buf[:copy(buf, ack):len(ack)]
		m.payload = buf[len(ack):]
		copy(m.payload, rest)
	}
	clear(res.Payload) // the plaintext stays in no reused buffer
	g.deliver(m, from)
}

// dropped counts a packet from a mixnode dropped for reason, by reason and
// by peer, and logs it at debug level (the reason and the peer, never the
// packet).
func (g *Gateway) dropped(reason DropReason, from *wire.Peer) {
	g.counters.drop(reason)
	g.peerDrops.Add(from)
	g.log.Debug().Str("reason", string(reason)).Stringer("peer", from.Addr).Msg("dropping a packet from a mixnode")
}

// deliver hands m, from the mixnode from, to its client at once if it is
// connected and has room for another pending message, and queues it for
// the store otherwise, unless the store is full (MaxStored,
// MaxStoredPerClient) or from has its share of the store queue on its way
// already: then m is dropped unacknowledged, for its sender to retransmit.
func (g *Gateway) deliver(m *message, from *wire.Peer) {
	id, err := g.store.newID()
	if err != nil {
		g.log.Error().Err(err).Msg("dropping a message")
		g.counters.drop(DropStoreFailed)
		return
	}
	m.id = id
	g.mu.Lock()
	c := g.conns[m.client]
	live := c != nil && c.offerLocked(m, &g.counters.deliveredLive)
	g.mu.Unlock()
	if live {
		return
	}
	if reason := g.admit(m); reason != "" {
		g.dropped(reason, from)
		return
	}
	g.storeQ <- m
}

// storeQueuePerPeer bounds the messages of one mixnode on their way to the
// store: a quarter of the store queue, so that a mixnode that delivers
// faster than the store commits cannot fill the queue the others' messages
// wait in.
const storeQueuePerPeer = storeQueueLen / 4

// storeQuota counts the messages on their way to the store, so that the
// quotas hold before they are committed.
type storeQuota struct {
	mu     sync.Mutex
	total  int
	client map[clientID]int
	peer   map[wire.PeerID]int
}

// admit reports why m does not fit (MaxStored, MaxStoredPerClient, its
// mixnode's share of the store queue), counting the messages stored and
// those on their way, or "" when it fits; then it counts m on its way
// until settle.
func (g *Gateway) admit(m *message) DropReason {
	q := &g.quota
	q.mu.Lock()
	defer q.mu.Unlock()
	if g.store.stored()+q.total >= g.cfg.MaxStored ||
		g.store.storedFor(m.client)+q.client[m.client] >= g.cfg.MaxStoredPerClient {
		return DropStoreFull
	}
	if q.peer[m.peer] >= storeQueuePerPeer {
		return DropStoreShare
	}
	q.total++
	q.client[m.client]++
	q.peer[m.peer]++
	m.admitted = true
	return ""
}

// settle stops counting msgs as on their way to the store: they are
// committed (and counted by the store) or dropped.
func (g *Gateway) settle(msgs []*message) {
	q := &g.quota
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, m := range msgs {
		if !m.admitted {
			continue
		}
		m.admitted = false
		q.total--
		if q.client[m.client]--; q.client[m.client] <= 0 {
			delete(q.client, m.client)
		}
		if q.peer[m.peer]--; q.peer[m.peer] <= 0 {
			delete(q.peer, m.peer)
		}
	}
}

// storeWorker commits queued messages in groups, then sends their acks and
// wakes the pagers of their clients, until the queue closes.
func (g *Gateway) storeWorker() {
	defer g.storeWG.Done()
	group := make([]*message, 0, storeGroup)
	for m := range g.storeQ {
		group = append(group[:0], m)
	fill:
		for len(group) < storeGroup {
			select {
			case m, ok := <-g.storeQ:
				if !ok {
					break fill
				}
				group = append(group, m)
			default:
				break fill
			}
		}
		err := g.store.put(group)
		g.settle(group)
		if err != nil {
			// The acks are not sent: the senders retransmit.
			g.log.Error().Err(err).Int("messages", len(group)).Msg("storing messages failed; dropping them")
			g.counters.dropped[DropStoreFailed].Add(uint64(len(group)))
			continue
		}
		g.counters.stored.Add(uint64(len(group)))
		for _, m := range group {
			g.sendAck(m)
		}
		g.wakePagers(group)
		clear(group)
	}
}

// sendAck sends m's SURB-ack to its first hop, if m has one.
func (g *Gateway) sendAck(m *message) {
	if m.ack == nil {
		return
	}
	// The ack's rotation is not the packet's: a reply on a SURB made with
	// the next keys carries an ack its replier made with the current ones.
	// The frame names none, and the layer-1 mixnode tries both of its keys.
	if g.send(m.ackTo, m.ack, wire.KeyRotationUnknown) {
		g.counters.acksSent.Add(1)
	}
}

// send hands packet to the outbound pool for to, in a frame naming the key
// rotation rot.
func (g *Gateway) send(to netip.AddrPort, packet []byte, rot wire.KeyRotation) bool {
	h, err := wire.HeaderFor(packet)
	h.KeyRotation = rot
	if err == nil && g.pool.Send(to, h, packet) {
		return true
	}
	g.counters.drop(DropSendFailed)
	return false
}
