// Package fairq shares bounded queues fairly between the upstream peers
// that fill them: every peer has a quota in packets and bytes inside the
// queue's own, and a packet that does not fit makes room from the peer
// holding the most, so that a peer sending faster than a node empties its
// queues loses its own packets, not another peer's. [Queue] is a FIFO per
// peer served in turn; [Shares] is the accounting alone, for queues of
// other shapes (a mixnode's delay queue).
//
// Peers are named by [wire.PeerID]: a Noise key, or on a plain link a
// connection.
package fairq

import "github.com/peapod-mixnet/peapod/internal/wire"

// Quota bounds a queue and each peer's part of it, in packets and in bytes.
type Quota struct {
	Packets, Bytes         int // the whole queue
	PeerPackets, PeerBytes int // one peer's part
}

// Share is one peer's part of a queue: what it holds there, and Held, how
// the queue keeps the peer's packets. It exists while the peer holds a
// packet.
type Share[E any] struct {
	ID             wire.PeerID
	Packets, Bytes int
	Held           E
}

// Shares is the per-peer accounting of one queue. It is not safe for
// concurrent use: the queue's lock guards it. A packet goes in when it
// fits both the queue's bounds and its peer's (Fits); when it does not,
// the caller makes room, one packet at a time, from the Victim.
type Shares[E any] struct {
	quota          Quota
	packets, bytes int
	peers          map[wire.PeerID]*Share[E]
	init           func(*E)
}

// NewShares returns the accounting of a queue bounded by q. init, when not
// nil, prepares the Held part of each new share.
func NewShares[E any](q Quota, init func(*E)) Shares[E] {
	return Shares[E]{quota: q, peers: make(map[wire.PeerID]*Share[E]), init: init}
}

// Peer returns id's share, made empty when id holds nothing yet. An empty
// share must be given a packet (Add) or let go (Forget).
func (s *Shares[E]) Peer(id wire.PeerID) *Share[E] {
	p := s.peers[id]
	if p == nil {
		p = &Share[E]{ID: id}
		if s.init != nil {
			s.init(&p.Held)
		}
		s.peers[id] = p
	}
	return p
}

// Get returns id's share, or nil when id holds nothing.
func (s *Shares[E]) Get(id wire.PeerID) *Share[E] { return s.peers[id] }

// Forget drops p's share if it holds nothing.
func (s *Shares[E]) Forget(p *Share[E]) {
	if p.Packets == 0 {
		delete(s.peers, p.ID)
	}
}

// Fits reports whether a packet of size bytes from p fits as things are.
func (s *Shares[E]) Fits(p *Share[E], size int) bool {
	return s.packets < s.quota.Packets && s.bytes+size <= s.quota.Bytes &&
		p.Packets < s.quota.PeerPackets && p.Bytes+size <= s.quota.PeerBytes
}

// Victim returns the peer that gives up a packet so that one of size bytes
// from p may fit: p itself when the packet would take p past its own
// quota, or when no other peer holds more than p; otherwise the peer that
// holds the most bytes.
func (s *Shares[E]) Victim(p *Share[E], size int) *Share[E] {
	if p.Packets >= s.quota.PeerPackets || p.Bytes+size > s.quota.PeerBytes {
		return p
	}
	v := p
	for _, o := range s.peers {
		if o.Bytes > v.Bytes {
			v = o
		}
	}
	return v
}

// Add counts a packet of size bytes as p's.
func (s *Shares[E]) Add(p *Share[E], size int) {
	p.Packets++
	p.Bytes += size
	s.packets++
	s.bytes += size
}

// Sub stops counting a packet of size bytes as p's, and forgets p when it
// holds nothing more.
func (s *Shares[E]) Sub(p *Share[E], size int) {
	p.Packets--
	p.Bytes -= size
	s.packets--
	s.bytes -= size
	s.Forget(p)
}

// Len is what the queue holds, in packets and bytes.
func (s *Shares[E]) Len() (packets, bytes int) { return s.packets, s.bytes }

// Peers is how many peers hold packets.
func (s *Shares[E]) Peers() int { return len(s.peers) }

// Each calls f with every peer's share.
func (s *Shares[E]) Each(f func(*Share[E])) {
	for _, p := range s.peers {
		f(p)
	}
}
