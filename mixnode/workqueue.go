package mixnode

import (
	"slices"
	"sync"
)

// workQueue holds the packets waiting for a worker to peel them: one FIFO
// per upstream peer, served in turn (round robin), so that a peer that
// floods the node waits behind its own packets only. It is bounded in
// packets and bytes, and so is each peer's part (see shares): a packet
// that does not fit takes the place of the newest packet of the peer
// holding the most, unless that is its own peer; then it is refused.
type workQueue struct {
	mu      sync.Mutex
	cond    sync.Cond // signalled by push and close
	shares  shares
	active  []*peerShare // peers with packets, in serving order
	next    int          // index in active of the peer served next
	stopped bool
}

func newWorkQueue(q quota) *workQueue {
	w := &workQueue{shares: newShares(q)}
	w.cond.L = &w.mu
	return w
}

// push queues pb. It returns the packets it evicted to make room, for the
// caller to drop, and false when pb itself was refused (the caller drops
// it too).
func (w *workQueue) push(pb *packetBuf) (evicted []*packetBuf, ok bool) {
	size := len(pb.b)
	w.mu.Lock()
	p := w.shares.peer(pb.from.ID())
	for !w.shares.fits(p, size) {
		v := w.shares.victim(p, size)
		if v == p || v.packets == 0 {
			w.shares.forget(p)
			w.mu.Unlock()
			return evicted, false
		}
		evicted = append(evicted, w.takeLocked(v, len(v.fifo)-1))
	}
	if p.packets == 0 {
		// Last in the round: served after every peer already waiting.
		w.active = slices.Insert(w.active, w.next, p)
		w.next++
		if w.next == len(w.active) {
			w.next = 0
		}
	}
	w.shares.add(p, size)
	p.fifo = append(p.fifo, pb)
	w.mu.Unlock()
	w.cond.Signal()
	return evicted, true
}

// takeLocked removes p's packet at index i of p.fifo (its oldest at
// p.head, its newest at the end). w.mu is held.
func (w *workQueue) takeLocked(p *peerShare, i int) *packetBuf {
	pb := p.fifo[i]
	p.fifo[i] = nil
	if i == p.head {
		p.head++
	} else {
		p.fifo = p.fifo[:i] // only the newest is taken from the end
	}
	if p.head == len(p.fifo) {
		p.fifo, p.head = p.fifo[:0], 0
	}
	w.shares.sub(p, len(pb.b))
	if p.packets == 0 {
		j := slices.Index(w.active, p)
		w.active = slices.Delete(w.active, j, j+1)
		if j < w.next {
			w.next--
		}
		if w.next >= len(w.active) {
			w.next = 0
		}
	}
	return pb
}

// pop waits for a packet and returns it, the oldest of the peer whose turn
// it is; nil once the queue is closed.
func (w *workQueue) pop() *packetBuf {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.active) == 0 && !w.stopped {
		w.cond.Wait()
	}
	if w.stopped {
		return nil
	}
	p := w.active[w.next]
	pb := w.takeLocked(p, p.head)
	if p.packets > 0 { // still in the round: the next peer's turn
		w.next = (w.next + 1) % len(w.active)
	}
	return pb
}

// close wakes every pop, which then returns nil.
func (w *workQueue) close() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.cond.Broadcast()
}

// drain removes and returns every packet.
func (w *workQueue) drain() []*packetBuf {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*packetBuf
	for len(w.active) > 0 {
		p := w.active[0]
		out = append(out, w.takeLocked(p, p.head))
	}
	return out
}

func (w *workQueue) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.shares.packets
}

// perPeer adds what each peer holds to byPeer.
func (w *workQueue) perPeer(byPeer map[string]*PeerQueue) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, p := range w.shares.peers {
		peerQueue(byPeer, id.String()).Work += p.packets
	}
}

// peerQueue returns byPeer's entry for peer, made if needed.
func peerQueue(byPeer map[string]*PeerQueue, peer string) *PeerQueue {
	pq := byPeer[peer]
	if pq == nil {
		pq = &PeerQueue{Peer: peer}
		byPeer[peer] = pq
	}
	return pq
}
