package mixnode

import (
	"net/netip"
	"sync"
	"time"

	"github.com/peapod-mixnet/peapod/internal/fairq"
)

// delayQueue holds packets until their delay has passed. Workers push into
// it; one goroutine (run) sleeps on a single timer until the earliest
// packet is due and sends every due packet on. Packets sit in a binary
// min-heap by due time, so pushing costs O(log n) and no goroutine or timer
// exists per packet, and in their upstream peer's max-heap (peerShare.late)
// too, so that a peer over its share gives up its latest packet in
// O(log n).
//
// The queue is bounded in packets and bytes, and so is each peer's part
// (see shares): a packet that does not fit takes the place of the latest
// packet of the peer holding the most, or of its own peer's latest when
// that is due later than it; otherwise it is refused.
type delayQueue struct {
	epoch time.Time
	wake  chan struct{} // a push made a new earliest packet

	mu     sync.Mutex
	heap   pheap
	shares fairq.Shares[pheap] // a peer's packets, latest due on top
	seq    uint64
}

// peerShare is one upstream peer's part of the delay queue: its packets,
// latest due first, so that the packets asking for the longest delays give
// way first.
type peerShare = fairq.Share[pheap]

func newDelayQueue(q fairq.Quota) *delayQueue {
	return &delayQueue{
		epoch:  time.Now(),
		wake:   make(chan struct{}, 1),
		heap:   pheap{which: queueIndex},
		shares: fairq.NewShares(q, func(h *pheap) { *h = pheap{which: peerIndex, latest: true} }),
	}
}

// now is the queue's clock.
func (q *delayQueue) now() time.Duration { return time.Since(q.epoch) }

// push holds pb for to until at. It returns the packets it evicted to make
// room, for the caller to drop, and false when pb itself was refused (not
// held; the caller drops it too).
func (q *delayQueue) push(at time.Duration, to netip.AddrPort, pb *packetBuf) (evicted []*packetBuf, ok bool) {
	size := len(pb.b)
	q.mu.Lock()
	q.seq++
	pb.at, pb.seq, pb.to = at, q.seq, to
	p := q.shares.Peer(pb.from.ID())
	for !q.shares.Fits(p, size) {
		v := q.shares.Victim(p, size)
		last := v.Held.top()
		if last == nil || (v == p && !pb.before(last)) {
			q.shares.Forget(p)
			q.mu.Unlock()
			return evicted, false
		}
		q.removeLocked(last)
		evicted = append(evicted, last)
	}
	pb.share = p
	q.shares.Add(p, size)
	p.Held.push(pb)
	q.heap.push(pb)
	earliest := q.heap.top() == pb
	q.mu.Unlock()
	if earliest {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return evicted, true
}

// removeLocked takes pb out of the queue. q.mu is held.
func (q *delayQueue) removeLocked(pb *packetBuf) {
	q.heap.remove(pb.idx[queueIndex])
	p := pb.share
	p.Held.remove(pb.idx[peerIndex])
	pb.share = nil
	q.shares.Sub(p, len(pb.b))
}

// popDue appends every packet due at now to out, earliest first, and
// returns when the next one is due (ok false when none is left).
func (q *delayQueue) popDue(now time.Duration, out []*packetBuf) (_ []*packetBuf, next time.Duration, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for top := q.heap.top(); top != nil && top.at <= now; top = q.heap.top() {
		q.removeLocked(top)
		out = append(out, top)
	}
	if top := q.heap.top(); top != nil {
		return out, top.at, true
	}
	return out, 0, false
}

// drain removes and returns every packet, earliest first.
func (q *delayQueue) drain() []*packetBuf {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]*packetBuf, 0, len(q.heap.s))
	for top := q.heap.top(); top != nil; top = q.heap.top() {
		q.removeLocked(top)
		out = append(out, top)
	}
	return out
}

func (q *delayQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.heap.s)
}

// perPeer adds what each peer holds to byPeer.
func (q *delayQueue) perPeer(byPeer map[string]*PeerQueue) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shares.Each(func(p *peerShare) {
		pq := peerQueue(byPeer, p.ID.String())
		pq.Delayed += p.Packets
		pq.DelayedBytes += p.Bytes
	})
}

// run sends every packet on with send when it is due, until stop is
// closed. It is the queue's only consumer.
func (q *delayQueue) run(stop <-chan struct{}, send func(to netip.AddrPort, pb *packetBuf)) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var batch []*packetBuf
	for {
		var next time.Duration
		var pending bool
		batch, next, pending = q.popDue(q.now(), batch[:0])
		for _, pb := range batch {
			send(pb.to, pb)
		}
		clear(batch) // drop the references to the packets
		if pending {
			timer.Reset(next - q.now())
		} else {
			timer.Stop()
		}
		select {
		case <-stop:
			return
		case <-q.wake:
		case <-timer.C:
		}
	}
}
