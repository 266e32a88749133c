package gateway

import (
	"sync"

	"github.com/peapod-mixnet/peapod/internal/fairq"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// The exit path's intake. A frame from a mixnode is copied into a pooled
// buffer and queued in a fair queue (internal/fairq): one FIFO per
// upstream peer (a layer-3 node's Noise key; on a plain link, a
// connection), bounded in all and per peer, in packets and bytes. Exit
// workers take the peers' packets in turn and peel them, one packet of a
// peer at a time, so that each peer's packets are peeled in the order they
// came, as when each connection peeled its own. So a layer-3 node
// that sends faster than the gateway peels loses its own packets, counted
// by peer, and another node's packets wait behind their own only.

// Defaults of the exit queue's bounds (Config.MaxExitQueue and
// MaxExitQueueBytes); each peer's part is half of each by default.
const (
	DefaultMaxExitQueue      = 4096
	DefaultMaxExitQueueBytes = 16 << 20
)

// exitPacket is a packet from a mixnode waiting for an exit worker.
type exitPacket struct {
	b    []byte // exactly the packet; peeled in place
	h    wire.Header
	from *wire.Peer
}

// exitPools holds packet buffers by size tag, so that the exit path
// allocates nothing per packet in steady state.
var exitPools [sphinx.Extended16Packet + 1]sync.Pool

func getExitPacket(h wire.Header) *exitPacket {
	if p, ok := exitPools[h.Size].Get().(*exitPacket); ok {
		p.h = h
		return p
	}
	return &exitPacket{b: make([]byte, h.Size.Len()), h: h}
}

func putExitPacket(p *exitPacket) {
	p.b = p.b[:cap(p.b)]
	p.from = nil
	exitPools[p.h.Size].Put(p)
}

// exitQuota is the exit queue's quota.
func (c *Config) exitQuota() fairq.Quota {
	return fairq.Quota{Packets: c.MaxExitQueue, Bytes: c.MaxExitQueueBytes,
		PeerPackets: c.MaxExitQueuePerPeer, PeerBytes: c.MaxExitQueueBytesPerPeer}
}

// handleFrame is the mix listener's handler: it queues the packet for an
// exit worker, or drops it when it does not fit its peer's share. It runs
// on the frame's connection goroutine and never blocks.
func (g *Gateway) handleFrame(from *wire.Peer, h wire.Header, packet []byte) {
	g.counters.fromMixes.Add(1)
	p := getExitPacket(h)
	copy(p.b, packet)
	p.from = from
	evicted, ok := g.exitQ.Push(from.ID(), p, len(p.b))
	for _, e := range evicted {
		g.dropped(DropExitQueueEvicted, e.from)
		putExitPacket(e)
	}
	if !ok {
		g.dropped(DropExitQueueFull, from)
		putExitPacket(p)
	}
}

// exitWorker peels the packets of the exit queue until it closes.
func (g *Gateway) exitWorker() {
	defer g.exitWG.Done()
	for {
		p, peer, ok := g.exitQ.Pop()
		if !ok {
			return
		}
		g.exit(p.from, p.h, p.b)
		putExitPacket(p)
		g.exitQ.Done(peer)
	}
}

// stopExit closes the exit queue once the mix server has closed, waits for
// the workers, and peels what they left: nothing taken from a mixnode is
// dropped for the shutdown.
func (g *Gateway) stopExit() {
	g.exitQ.Close()
	g.exitWG.Wait()
	for _, p := range g.exitQ.Drain() {
		g.exit(p.from, p.h, p.b)
		putExitPacket(p)
	}
}

// peerExitQueues returns what each upstream peer holds in the exit queue
// now, in packets, by peer name (wire.PeerID.String).
func (g *Gateway) peerExitQueues() map[string]int {
	out := make(map[string]int)
	g.exitQ.PerPeer(func(id wire.PeerID, packets, _ int) { out[id.String()] += packets })
	return out
}
