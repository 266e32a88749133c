package mixnode

import (
	"net/netip"
	"sync"
	"time"
)

// delayed is a packet held until its time comes.
type delayed struct {
	at  time.Duration // since the queue's epoch, on the monotonic clock
	seq uint64        // arrival order, so equal times leave in order
	to  netip.AddrPort
	pb  *packetBuf
}

func (a *delayed) before(b *delayed) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

// delayQueue holds packets until their delay has passed. Workers push into
// it; one goroutine (run) sleeps on a single timer until the earliest
// packet is due and sends every due packet on. It is a binary min-heap
// bounded at max packets, so pushing costs O(log n) and no goroutine or
// timer exists per packet.
type delayQueue struct {
	epoch time.Time
	max   int
	wake  chan struct{} // a push made a new earliest packet

	mu   sync.Mutex
	heap []delayed
	seq  uint64
}

func newDelayQueue(max int) *delayQueue {
	return &delayQueue{epoch: time.Now(), max: max, wake: make(chan struct{}, 1)}
}

// now is the queue's clock.
func (q *delayQueue) now() time.Duration { return time.Since(q.epoch) }

// push holds pb for to until at, or reports false when the queue is full.
func (q *delayQueue) push(at time.Duration, to netip.AddrPort, pb *packetBuf) bool {
	q.mu.Lock()
	if len(q.heap) >= q.max {
		q.mu.Unlock()
		return false
	}
	q.seq++
	q.heap = append(q.heap, delayed{at: at, seq: q.seq, to: to, pb: pb})
	earliest := q.up(len(q.heap)-1) == 0
	q.mu.Unlock()
	if earliest {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// popDue appends every packet due at now to out, earliest first, and
// returns when the next one is due (ok false when none is left).
func (q *delayQueue) popDue(now time.Duration, out []delayed) (_ []delayed, next time.Duration, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.heap) > 0 && q.heap[0].at <= now {
		out = append(out, q.popLocked())
	}
	if len(q.heap) == 0 {
		return out, 0, false
	}
	return out, q.heap[0].at, true
}

// drain removes and returns every packet, earliest first.
func (q *delayQueue) drain() []delayed {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]delayed, 0, len(q.heap))
	for len(q.heap) > 0 {
		out = append(out, q.popLocked())
	}
	return out
}

func (q *delayQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.heap)
}

// run sends every packet on with send when it is due, until stop is
// closed. It is the queue's only consumer.
func (q *delayQueue) run(stop <-chan struct{}, send func(to netip.AddrPort, pb *packetBuf)) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var batch []delayed
	for {
		var next time.Duration
		var pending bool
		batch, next, pending = q.popDue(q.now(), batch[:0])
		for i := range batch {
			send(batch[i].to, batch[i].pb)
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

// popLocked removes the earliest packet. q.mu is held and the heap is not
// empty.
func (q *delayQueue) popLocked() delayed {
	h := q.heap
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = delayed{}
	q.heap = h[:last]
	if last > 0 {
		q.down(0)
	}
	return top
}

// up moves the element at i towards the root until the heap is ordered and
// returns its final index.
func (q *delayQueue) up(i int) int {
	h := q.heap
	for i > 0 {
		parent := (i - 1) / 2
		if !h[i].before(&h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
	return i
}

// down moves the element at i towards the leaves until the heap is ordered.
func (q *delayQueue) down(i int) {
	h := q.heap
	for {
		least := i
		if l := 2*i + 1; l < len(h) && h[l].before(&h[least]) {
			least = l
		}
		if r := 2*i + 2; r < len(h) && h[r].before(&h[least]) {
			least = r
		}
		if least == i {
			return
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}
