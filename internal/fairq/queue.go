package fairq

import (
	"slices"
	"sync"

	"github.com/peapod-mixnet/peapod/internal/wire"
)

// Queue holds packets waiting for a worker: one FIFO per upstream peer,
// served in turn (round robin), so that a peer that floods waits behind
// its own packets only. It is bounded in packets and bytes, and so is each
// peer's part (see Shares): a packet that does not fit takes the place of
// the newest packet of the peer holding the most, unless that is its own
// peer; then it is refused. Its methods are safe for concurrent use.
//
// A queue made with NewOrdered hands out one packet of a peer at a time:
// the peer is out of the round until the worker calls Done, so that
// several workers peel each peer's packets in the order they came.
type Queue[T any] struct {
	mu      sync.Mutex
	cond    sync.Cond // signalled by Push, Done and Close
	shares  Shares[fifo[T]]
	active  []*Share[fifo[T]] // peers with packets and not busy, in serving order
	next    int               // index in active of the peer served next
	stopped bool
	ordered bool
	busy    map[wire.PeerID]bool // ordered: peers with a packet out
}

// fifo is one peer's packets, oldest first from head on.
type fifo[T any] struct {
	items []entry[T]
	head  int
}

type entry[T any] struct {
	v    T
	size int
}

// New returns an empty queue bounded by q.
func New[T any](q Quota) *Queue[T] {
	w := &Queue[T]{shares: NewShares[fifo[T]](q, nil)}
	w.cond.L = &w.mu
	return w
}

// NewOrdered returns an empty queue bounded by q that hands out one packet
// of a peer at a time: after Pop, the peer's next packet waits for Done.
func NewOrdered[T any](q Quota) *Queue[T] {
	w := New[T](q)
	w.ordered = true
	w.busy = make(map[wire.PeerID]bool)
	return w
}

// Push queues v, of size bytes, as peer's. It returns the packets it
// evicted to make room, for the caller to drop, and false when v itself
// was refused (the caller drops it too).
func (w *Queue[T]) Push(peer wire.PeerID, v T, size int) (evicted []T, ok bool) {
	w.mu.Lock()
	p := w.shares.Peer(peer)
	for !w.shares.Fits(p, size) {
		victim := w.shares.Victim(p, size)
		if victim == p || victim.Packets == 0 {
			w.shares.Forget(p)
			w.mu.Unlock()
			return evicted, false
		}
		evicted = append(evicted, w.takeLocked(victim, len(victim.Held.items)-1))
	}
	if p.Packets == 0 && !w.busy[peer] {
		w.joinRound(p)
	}
	w.shares.Add(p, size)
	p.Held.items = append(p.Held.items, entry[T]{v, size})
	w.mu.Unlock()
	w.cond.Signal()
	return evicted, true
}

// takeLocked removes p's packet at index i of its FIFO (its oldest at
// head, its newest at the end). w.mu is held.
func (w *Queue[T]) takeLocked(p *Share[fifo[T]], i int) T {
	f := &p.Held
	e := f.items[i]
	f.items[i] = entry[T]{}
	if i == f.head {
		f.head++
	} else {
		f.items = f.items[:i] // only the newest is taken from the end
	}
	if f.head == len(f.items) {
		f.items, f.head = f.items[:0], 0
	}
	w.shares.Sub(p, e.size)
	if p.Packets == 0 {
		w.leaveRound(p)
	}
	return e.v
}

// joinRound puts p last in the round: served after every peer already
// waiting. w.mu is held.
func (w *Queue[T]) joinRound(p *Share[fifo[T]]) {
	w.active = slices.Insert(w.active, w.next, p)
	w.next++
	if w.next == len(w.active) {
		w.next = 0
	}
}

// leaveRound takes p out of the round, if it is in it. w.mu is held.
func (w *Queue[T]) leaveRound(p *Share[fifo[T]]) {
	j := slices.Index(w.active, p)
	if j < 0 {
		return
	}
	w.active = slices.Delete(w.active, j, j+1)
	if j < w.next {
		w.next--
	}
	if w.next >= len(w.active) {
		w.next = 0
	}
}

// Pop waits for a packet and returns it, the oldest of the peer whose turn
// it is, and the peer; ok is false once the queue is closed. On an ordered
// queue the caller calls Done(peer) once it has handled v.
func (w *Queue[T]) Pop() (v T, peer wire.PeerID, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.active) == 0 && !w.stopped {
		w.cond.Wait()
	}
	if w.stopped {
		return v, peer, false
	}
	p := w.active[w.next]
	v = w.takeLocked(p, p.Held.head)
	switch {
	case w.ordered:
		w.busy[p.ID] = true
		w.leaveRound(p) // until Done
	case p.Packets > 0: // still in the round: the next peer's turn
		w.next = (w.next + 1) % len(w.active)
	}
	return v, p.ID, true
}

// Done tells an ordered queue that the packet Pop last returned for peer
// has been handled: the peer's next packet may go out. It puts the peer
// last in the round.
func (w *Queue[T]) Done(peer wire.PeerID) {
	w.mu.Lock()
	delete(w.busy, peer)
	p := w.shares.Get(peer)
	wake := p != nil && p.Packets > 0
	if wake {
		w.joinRound(p)
	}
	w.mu.Unlock()
	if wake {
		w.cond.Signal()
	}
}

// Close wakes every Pop, which then returns false.
func (w *Queue[T]) Close() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.cond.Broadcast()
}

// Drain removes and returns every packet, each peer's oldest first.
func (w *Queue[T]) Drain() []T {
	w.mu.Lock()
	defer w.mu.Unlock()
	var peers []*Share[fifo[T]]
	w.shares.Each(func(p *Share[fifo[T]]) { peers = append(peers, p) })
	var out []T
	for _, p := range peers {
		for p.Packets > 0 {
			out = append(out, w.takeLocked(p, p.Held.head))
		}
	}
	return out
}

// Len is the number of packets queued.
func (w *Queue[T]) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, _ := w.shares.Len()
	return n
}

// PerPeer calls f with what each peer holds now, with the queue locked.
func (w *Queue[T]) PerPeer(f func(peer wire.PeerID, packets, bytes int)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.shares.Each(func(p *Share[fifo[T]]) { f(p.ID, p.Packets, p.Bytes) })
}
