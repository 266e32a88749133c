package mixnode

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peapod-mixnet/peapod/internal/hops"
	"github.com/peapod-mixnet/peapod/internal/node"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// DropReason says why the node dropped a packet. It is the reason label of
// the peapod_mixnode_packets_dropped_total metric.
type DropReason string

// The reasons a node drops packets.
const (
	// DropInjected: Config.DropRate picked the packet (tests only).
	DropInjected DropReason = "injected"
	// DropQueueFull: the work queue had no room for the packet, and its
	// peer held at least as much of the queue as any other (the node is
	// overloaded, or the peer sends more than its share).
	DropQueueFull DropReason = "queue_full"
	// DropQueueEvicted: the packet waited to be peeled, the newest of the
	// peer holding the most of the full work queue, and made room for a
	// packet of a peer holding less.
	DropQueueEvicted DropReason = "queue_evicted"
	// DropDelayQueueFull: the delay queue had no room for the packet, and
	// its peer held at least as much of the queue as any other, all of it
	// due sooner.
	DropDelayQueueFull DropReason = "delay_queue_full"
	// DropDelayEvicted: the packet was delayed, the latest due of the peer
	// holding the most of the full delay queue, and made room for a packet
	// of a peer holding less, or for an earlier one of its own peer.
	DropDelayEvicted DropReason = "delay_evicted"
	// DropReplay: the node had already processed the packet.
	DropReplay DropReason = "replay"
	// DropExpiredKey: the frame names a key rotation the node holds no key
	// for: the packet was made for a key whose life has ended (or for a
	// rotation not announced yet).
	DropExpiredKey DropReason = "expired_key"
	// DropAuthentication: the header failed authentication (not made for
	// this node's key, or tampered with).
	DropAuthentication DropReason = "authentication"
	// DropUnknownVersion: the header named an unknown version or slot kind.
	DropUnknownVersion DropReason = "unknown_version"
	// DropPacketSize: the packet had none of the packet sizes.
	DropPacketSize DropReason = "packet_size"
	// DropPayload: a final-hop packet's payload was tampered with.
	DropPayload DropReason = "payload"
	// DropFinalHop: the packet's route ended at this node, which delivers
	// nothing.
	DropFinalHop DropReason = "final_hop"
	// DropBadNextHop: the next hop's address did not decode.
	DropBadNextHop DropReason = "bad_next_hop"
	// DropUnknownHop: the next hop is not a node of the directory's
	// topology that may follow this node's layer (only with
	// Config.DirectoryURL). A packet for a hop the node does not know is
	// held until the topology is fetched again, so that a node that joined
	// since the last fetch costs nothing; it is dropped if the hop is
	// still unknown then, or if maxHeld packets are already held.
	DropUnknownHop DropReason = "unknown_hop"
	// DropShutdown: the node closed while the packet waited.
	DropShutdown DropReason = "shutdown"
	// DropOutboundQueueFull: the next hop's send queue was full.
	DropOutboundQueueFull DropReason = "outbound_queue_full"
	// DropOutboundWriteError: the connection to the next hop broke while
	// the packet was buffered (it may have arrived all the same).
	DropOutboundWriteError DropReason = "outbound_write_error"
	// DropOutboundClosed: the node closed before the packet could be sent.
	DropOutboundClosed DropReason = "outbound_closed"
	// DropOutboundTooManyDestinations: too many next hops had queues.
	DropOutboundTooManyDestinations DropReason = "outbound_too_many_destinations"
	// DropOther: processing failed in a way no other reason covers.
	DropOther DropReason = "other"
)

// localReasons are the reasons counted by the node itself, in the order of
// the counters; the outbound ones come from the outbound pool.
var localReasons = [...]DropReason{
	DropInjected, DropQueueFull, DropQueueEvicted, DropDelayQueueFull, DropDelayEvicted,
	DropReplay, DropExpiredKey, DropAuthentication, DropUnknownVersion, DropPacketSize,
	DropPayload, DropFinalHop, DropBadNextHop, DropUnknownHop, DropShutdown,
	DropOther,
}

// DropReasons lists every reason, in a fixed order. Treat it as read-only.
var DropReasons = append(localReasons[:len(localReasons):len(localReasons)],
	DropOutboundQueueFull, DropOutboundWriteError, DropOutboundClosed, DropOutboundTooManyDestinations)

// counters are the node's own packet counters.
type counters struct {
	received atomic.Uint64
	clamped  atomic.Uint64 // delays cut to the node's bound
	dropped  [len(localReasons)]atomic.Uint64
}

func (c *counters) drop(r DropReason) {
	for i, lr := range localReasons {
		if lr == r {
			c.dropped[i].Add(1)
			return
		}
	}
}

// processErrorReason maps an error of sphinx.Processor.Process to a reason.
func processErrorReason(err error) DropReason {
	switch {
	case errors.Is(err, sphinx.ErrReplay):
		return DropReplay
	case errors.Is(err, node.ErrNoKey):
		return DropExpiredKey
	case errors.Is(err, sphinx.ErrAuthentication):
		return DropAuthentication
	case errors.Is(err, sphinx.ErrUnknownVersion):
		return DropUnknownVersion
	case errors.Is(err, sphinx.ErrPacketSize):
		return DropPacketSize
	case errors.Is(err, sphinx.ErrPayload):
		return DropPayload
	}
	return DropOther
}

// packetBuf holds one packet between the stages of the pipeline.
type packetBuf struct {
	b    []byte // exactly the packet; processed in place
	size sphinx.PacketSize
	// rot is the frame's key-rotation byte: as received until the packet
	// is peeled, then the one it is sent on with.
	rot  wire.KeyRotation
	from *wire.Peer // for faults, logs and its peer's share of the queues

	// In the delay queue, guarded by its lock: when the packet is due, in
	// which order it arrived, where it goes, its peer's share, and its
	// indexes in the queue's heaps.
	at    time.Duration
	seq   uint64
	to    netip.AddrPort
	share *peerShare
	idx   [2]int
}

// packetPools holds packet buffers by size tag, so that the pipeline
// allocates nothing per packet in steady state.
var packetPools [sphinx.Extended16Packet + 1]sync.Pool

func getPacket(size sphinx.PacketSize) *packetBuf {
	if pb, ok := packetPools[size].Get().(*packetBuf); ok {
		return pb
	}
	return &packetBuf{b: make([]byte, size.Len()), size: size}
}

func putPacket(pb *packetBuf) {
	pb.b = pb.b[:cap(pb.b)]
	pb.from, pb.share = nil, nil
	packetPools[pb.size].Put(pb)
}

// handleFrame is the inbound server's handler: it copies the packet into a
// pooled buffer and queues it for a worker, dropping it when the queue is
// full. It runs on the connection's goroutine and never blocks.
func (n *Node) handleFrame(from *wire.Peer, h wire.Header, packet []byte) {
	n.counters.received.Add(1)
	if n.cfg.DropRate > 0 && rand.Float64() < n.cfg.DropRate {
		n.dropped(DropInjected, from)
		return
	}
	pb := getPacket(h.Size)
	copy(pb.b, packet)
	pb.from, pb.rot = from, h.KeyRotation
	evicted, ok := n.work.push(pb)
	n.releaseAll(evicted, DropQueueEvicted)
	if !ok {
		n.release(pb, DropQueueFull)
	}
}

// worker peels packets from the work queue until the node stops.
func (n *Node) worker() {
	defer n.wg.Done()
	for pb := n.work.pop(); pb != nil; pb = n.work.pop() {
		n.process(pb)
	}
}

// process peels one layer of pb in place and sends the result on, now or
// through the delay queue.
func (n *Node) process(pb *packetBuf) {
	res, rot, err := n.sphinx.Process(pb.rot, pb.b[:0], pb.b)
	if err != nil {
		r := processErrorReason(err)
		if r == DropAuthentication {
			pb.from.Fault()
		}
		n.release(pb, r)
		return
	}
	// Every hop of a route has its key of the same rotation.
	pb.rot = node.RotationByte(rot)
	if res.Final {
		n.release(pb, DropFinalHop)
		return
	}
	to, err := res.NextHop.AddrPort()
	if err != nil {
		n.release(pb, DropBadNextHop)
		return
	}
	delay := res.Delay
	if bound := n.maxDelay(); delay > bound {
		delay = bound
		n.counters.clamped.Add(1)
	}
	at := n.delay.now() + delay
	if n.hops != nil && !n.hops.Known(to) {
		if moved, ok := n.hops.MovedTo(to); ok {
			to = moved // the sender's topology is older than the move
		} else if n.hold(to, at, pb) {
			return
		}
	}
	n.schedule(to, at, pb)
}

// schedule forwards pb at at: now if that time has come, or through the
// delay queue.
func (n *Node) schedule(to netip.AddrPort, at time.Duration, pb *packetBuf) {
	if at <= n.delay.now() {
		n.forward(to, pb)
		return
	}
	evicted, ok := n.delay.push(at, to, pb)
	n.releaseAll(evicted, DropDelayEvicted)
	if !ok {
		n.release(pb, DropDelayQueueFull)
	}
}

// maxHeld bounds the packets held for a fetch of the topology. With
// extended32 packets they take about 9 MB.
const maxHeld = 256

// heldPacket is a packet whose next hop was unknown when it was peeled.
type heldPacket struct {
	to netip.AddrPort
	at time.Duration // when it is due, on the delay queue's clock
	pb *packetBuf
}

// hold keeps pb, for a next hop the topology held now does not list, until
// the next fetch of the topology (see resolveHeld), and asks for that fetch
// (at most one a second) without waiting for it. It returns false, having
// kept nothing, when a fetch has listed to since the caller's check; it
// drops pb when maxHeld packets are already held.
func (n *Node) hold(to netip.AddrPort, at time.Duration, pb *packetBuf) bool {
	n.heldMu.Lock()
	// resolveHeld runs after the set is replaced and takes heldMu: checked
	// again here, to is either known now or resolved by that call.
	if n.hops.Known(to) {
		n.heldMu.Unlock()
		return false
	}
	full := len(n.held) >= maxHeld
	if !full {
		n.held = append(n.held, heldPacket{to: to, at: at, pb: pb})
	}
	n.heldMu.Unlock()
	if full {
		n.release(pb, DropUnknownHop)
	}
	n.hops.Allowed(n.ctx, to, hops.NoFetch) // asks Run for a fetch; never waits
	return true
}

// resolveHeld forwards the held packets whose next hop the topology now
// lists, and drops the others. It is called after every fetch.
func (n *Node) resolveHeld() {
	n.heldMu.Lock()
	held := n.held
	n.held = nil
	n.heldMu.Unlock()
	for _, h := range held {
		if n.hops.Known(h.to) {
			n.schedule(h.to, h.at, h.pb)
		} else if moved, ok := n.hops.MovedTo(h.to); ok {
			n.schedule(moved, h.at, h.pb)
		} else {
			n.release(h.pb, DropUnknownHop)
		}
	}
}

// forward hands pb to the outbound pool, which copies it and counts what
// becomes of it, and recycles pb.
func (n *Node) forward(to netip.AddrPort, pb *packetBuf) {
	n.pool.Send(to, wire.Header{Size: pb.size, Type: wire.PacketTypeMix, KeyRotation: pb.rot}, pb.b)
	putPacket(pb)
}

// release drops pb for reason r.
func (n *Node) release(pb *packetBuf, r DropReason) {
	n.dropped(r, pb.from)
	putPacket(pb)
}

// releaseAll drops every packet of pbs for reason r.
func (n *Node) releaseAll(pbs []*packetBuf, r DropReason) {
	for _, pb := range pbs {
		n.release(pb, r)
	}
}

// dropped counts and logs a dropped packet. The log line names the reason
// and the peer that sent the packet, never its bytes.
func (n *Node) dropped(r DropReason, from *wire.Peer) {
	n.counters.drop(r)
	n.peerDrops.Add(from)
	if e := n.log.Debug(); e.Enabled() {
		e.Str("reason", string(r)).Stringer("peer", from.Addr).Msg("dropped a packet")
	}
}
