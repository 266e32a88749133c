package mixnode

import (
	"sync"

	"github.com/peapod-mixnet/peapod/internal/wire"
)

// quota bounds one of the node's queues and each upstream peer's part of
// it, in packets and in bytes.
type quota struct {
	packets, bytes         int // the whole queue
	peerPackets, peerBytes int // one peer's part
}

// peerShare is one upstream peer's part of a queue: what it holds there.
// It exists while the peer holds a packet in the queue.
type peerShare struct {
	id             wire.PeerID
	packets, bytes int
	// late holds the peer's packets in the delay queue, latest due first,
	// so that the packets asking for the longest delays give way first.
	late pheap
	// fifo holds the peer's packets in the work queue, oldest first, from
	// head on.
	fifo []*packetBuf
	head int
}

// shares is the per-peer accounting of one queue, guarded by that queue's
// lock. A packet goes in when it fits both the queue's bounds and its
// peer's; when it does not, room is made, one packet at a time, from the
// peer that holds the most (see victim), so that a peer sending faster
// than the node empties its queues loses its own packets, not another
// peer's.
type shares struct {
	quota
	packets, bytes int
	peers          map[wire.PeerID]*peerShare
}

func newShares(q quota) shares {
	return shares{quota: q, peers: make(map[wire.PeerID]*peerShare)}
}

// peer returns id's share, made empty when id holds nothing yet. An empty
// share must be given a packet or let go with forget.
func (s *shares) peer(id wire.PeerID) *peerShare {
	p := s.peers[id]
	if p == nil {
		p = &peerShare{id: id, late: pheap{which: peerIndex, latest: true}}
		s.peers[id] = p
	}
	return p
}

// forget drops p's share if it holds nothing.
func (s *shares) forget(p *peerShare) {
	if p.packets == 0 {
		delete(s.peers, p.id)
	}
}

// fits reports whether a packet of size bytes from p fits as things are.
func (s *shares) fits(p *peerShare, size int) bool {
	return s.packets < s.quota.packets && s.bytes+size <= s.quota.bytes &&
		p.packets < s.peerPackets && p.bytes+size <= s.peerBytes
}

// victim returns the peer that gives up a packet so that one of size bytes
// from p may fit: p itself when the packet would take p past its own
// quota, or when no other peer holds more than p; otherwise the peer that
// holds the most bytes.
func (s *shares) victim(p *peerShare, size int) *peerShare {
	if p.packets >= s.peerPackets || p.bytes+size > s.peerBytes {
		return p
	}
	v := p
	for _, o := range s.peers {
		if o.bytes > v.bytes {
			v = o
		}
	}
	return v
}

// add counts a packet of size bytes as p's.
func (s *shares) add(p *peerShare, size int) {
	p.packets++
	p.bytes += size
	s.packets++
	s.bytes += size
}

// sub stops counting a packet of size bytes as p's, and forgets p when it
// holds nothing more.
func (s *shares) sub(p *peerShare, size int) {
	p.packets--
	p.bytes -= size
	s.packets--
	s.bytes -= size
	s.forget(p)
}

// PeerQueue is what one upstream peer holds in a node's queues now.
type PeerQueue struct {
	// Peer is the peer's Noise key (base58) on a Noise link, its address
	// on a plain one.
	Peer string
	// Work and Delayed are its packets waiting to be peeled and waiting
	// for their delay to pass; DelayedBytes the bytes of the latter.
	Work, Delayed, DelayedBytes int
}

// maxPeerDrops bounds the peers whose drops are counted apart; the drops
// of any further peer count under otherPeers.
const maxPeerDrops = 256

// OtherPeers names, in Stats.PeerDrops, the drops of the peers beyond the
// first 256 that had any.
const OtherPeers = "other"

// peerDrops counts dropped packets by the upstream peer that sent them.
type peerDrops struct {
	mu    sync.Mutex
	n     map[wire.PeerID]uint64
	other uint64
}

func (d *peerDrops) add(from *wire.Peer) {
	if from == nil {
		return
	}
	id := from.ID()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == nil {
		d.n = make(map[wire.PeerID]uint64)
	}
	if _, ok := d.n[id]; ok || len(d.n) < maxPeerDrops {
		d.n[id]++
	} else {
		d.other++
	}
}

// snapshot returns the counts by peer name (PeerID.String).
func (d *peerDrops) snapshot() map[string]uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]uint64, len(d.n)+1)
	for id, v := range d.n {
		out[id.String()] += v
	}
	if d.other > 0 {
		out[OtherPeers] += d.other
	}
	return out
}
