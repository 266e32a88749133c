package gateway

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/peapod-mixnet/peapod/internal/gwproto"
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

// handleFrame is the exit role: it peels a packet from a mixnode and hands
// the message to its client, live or through the store. It runs on the
// frame's connection goroutine; packet is the server's buffer, processed in
// place.
func (g *Gateway) handleFrame(from netip.AddrPort, h wire.Header, packet []byte) {
	g.counters.fromMixes.Add(1)
	res, err := g.processor.Process(packet[:0], packet)
	if err != nil {
		switch {
		case errors.Is(err, sphinx.ErrReplay):
			g.dropped(DropReplay, from)
		case errors.Is(err, sphinx.ErrAuthentication):
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
	m := &message{client: client}
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
		if !g.topo.isLayer1(g.ctx, hop, false) {
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
	g.deliver(m)
}

// dropped counts a packet from a mixnode dropped for reason, and logs it at
// debug level (the reason and the peer, never the packet).
func (g *Gateway) dropped(reason DropReason, from netip.AddrPort) {
	g.counters.drop(reason)
	g.log.Debug().Str("reason", string(reason)).Stringer("peer", from).Msg("dropping a packet from a mixnode")
}

// deliver hands m to its client at once if it is connected and has room
// for another pending message, and queues it for the store otherwise.
func (g *Gateway) deliver(m *message) {
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
	g.storeQ <- m
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
		if err := g.store.put(group); err != nil {
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
	if g.send(m.ackTo, m.ack) {
		g.counters.acksSent.Add(1)
	}
}

// send hands packet to the outbound pool for to.
func (g *Gateway) send(to netip.AddrPort, packet []byte) bool {
	h, err := wire.HeaderFor(packet)
	if err == nil && g.pool.Send(to, h, packet) {
		return true
	}
	g.counters.drop(DropSendFailed)
	return false
}
