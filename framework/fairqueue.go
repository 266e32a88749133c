package framework

import (
	"container/heap"
	"container/list"
	"sync"

	"github.com/peapod-mixnet/peapod/address"
)

// fairQueue holds the accepted requests waiting for a worker, shared
// fairly between requesters (sender tags):
//
//   - Each requester has its own first-in, first-out lane; workers take one
//     request from each lane in turn (round robin), so a requester waits
//     for at most one request of each other requester, however many those
//     have queued.
//   - The queue holds at most max requests. When it is full, an arriving
//     request pushes out the newest request of the longest lane if that
//     lane is longer than the arrival's would become; between lanes as long
//     as that, the lane of the requester seen most recently for the first
//     time (the largest cacheSender.seq) is pushed out, if it is newer
//     than the arrival's requester. Otherwise the arrival is refused. So a
//     flooder is refused before a quiet requester is, and fresh tags are
//     refused before requesters seen before them.
//
// Its methods are safe for concurrent use.
type fairQueue struct {
	max int

	mu     sync.Mutex
	ready  *sync.Cond // signalled when a request is queued or the queue closes
	lanes  map[address.SenderTag]*lane
	turn   list.List // of *lane with requests, in serving order
	byLen  laneHeap  // the same lanes, the one to push out of first
	size   int
	closed bool

	pushedOut uint64
}

// lane is one requester's queued requests.
type lane struct {
	tag  address.SenderTag
	seq  uint64 // the requester's seniority (cacheSender.seq)
	jobs []*job // oldest first
	elem *list.Element
	hidx int // in fairQueue.byLen
}

// laneHeap orders lanes by how soon they lose a request to an arrival at a
// full queue: the longest first, and among as long the newest requester's
// (the largest seq). It implements heap.Interface.
type laneHeap []*lane

func (h laneHeap) Len() int { return len(h) }
func (h laneHeap) Less(i, j int) bool {
	if len(h[i].jobs) != len(h[j].jobs) {
		return len(h[i].jobs) > len(h[j].jobs)
	}
	return h[i].seq > h[j].seq
}
func (h laneHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *laneHeap) Push(x any) {
	l := x.(*lane)
	l.hidx = len(*h)
	*h = append(*h, l)
}
func (h *laneHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return l
}

func newFairQueue(max int) *fairQueue {
	q := &fairQueue{max: max, lanes: make(map[address.SenderTag]*lane)}
	q.ready = sync.NewCond(&q.mu)
	return q
}

// push queues j. It reports false when j is refused (the queue is full and
// j's requester is not owed a place, or the queue is closed); when j took
// the place of another request, that one is returned as out, refused.
func (q *fairQueue) push(j *job) (ok bool, out *job) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false, nil
	}
	l := q.lanes[j.tag]
	if q.size >= q.max {
		mine := 0
		if l != nil {
			mine = len(l.jobs)
		}
		victim := q.longestLocked()
		if victim == nil || !(len(victim.jobs) > mine+1 || (len(victim.jobs) == mine+1 && victim.seq > j.seq())) {
			return false, nil
		}
		out = victim.jobs[len(victim.jobs)-1]
		victim.jobs[len(victim.jobs)-1] = nil
		victim.jobs = victim.jobs[:len(victim.jobs)-1]
		q.size--
		q.pushedOut++
		q.shortenedLocked(victim)
	}
	if l == nil {
		l = &lane{tag: j.tag, seq: j.seq()}
		q.lanes[j.tag] = l
		l.elem = q.turn.PushBack(l)
		heap.Push(&q.byLen, l)
	}
	l.jobs = append(l.jobs, j)
	heap.Fix(&q.byLen, l.hidx)
	q.size++
	q.ready.Signal()
	return true, out
}

// longestLocked returns the lane to push out of: the longest, and among
// the longest the newest requester's. q.mu is held.
func (q *fairQueue) longestLocked() *lane {
	if len(q.byLen) == 0 {
		return nil
	}
	return q.byLen[0]
}

// shortenedLocked records that l lost a request: an empty lane goes. q.mu
// is held.
func (q *fairQueue) shortenedLocked(l *lane) {
	if len(l.jobs) > 0 {
		heap.Fix(&q.byLen, l.hidx)
		return
	}
	q.turn.Remove(l.elem)
	heap.Remove(&q.byLen, l.hidx)
	delete(q.lanes, l.tag)
}

// pop waits for a request and takes the oldest of the next lane in turn.
// It returns false once the queue is closed and empty.
func (q *fairQueue) pop() (*job, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.size == 0 {
		if q.closed {
			return nil, false
		}
		q.ready.Wait()
	}
	l := q.turn.Front().Value.(*lane)
	j := l.jobs[0]
	l.jobs[0] = nil
	l.jobs = l.jobs[1:]
	q.size--
	if len(l.jobs) > 0 {
		q.turn.MoveToBack(l.elem)
	}
	q.shortenedLocked(l)
	return j, true
}

// close refuses later pushes; pop drains what is queued, then returns false.
func (q *fairQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.ready.Broadcast()
}

// len is the number of queued requests.
func (q *fairQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.size
}

// queueStats are a fairQueue's load and counters.
type queueStats struct {
	queued, requesters int
	pushedOut          uint64
}

func (q *fairQueue) stats() queueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return queueStats{queued: q.size, requesters: len(q.lanes), pushedOut: q.pushedOut}
}
