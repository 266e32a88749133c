package framework

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/framework/envelope"
)

// testJob is a job of requester tag with seniority seq.
func testJob(tag address.SenderTag, seq uint64, id string) *job {
	return &job{tag: tag, req: &envelope.Request{ID: id}, entry: &cacheEntry{sender: &cacheSender{tag: tag, seq: seq}}}
}

func popIDs(t *testing.T, q *fairQueue, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		j, ok := q.pop()
		if !ok {
			t.Fatal("pop: queue closed")
		}
		ids = append(ids, j.req.ID)
	}
	return ids
}

// Lanes are served in turn, each in its own order.
func TestFairQueueRoundRobin(t *testing.T) {
	q := newFairQueue(100)
	a, b, c := newTag(t), newTag(t), newTag(t)
	for i := range 4 {
		q.push(testJob(a, 1, fmt.Sprint("a", i)))
	}
	q.push(testJob(b, 2, "b0"))
	q.push(testJob(c, 3, "c0"))
	q.push(testJob(b, 2, "b1"))
	got := fmt.Sprint(popIDs(t, q, 7))
	if want := "[a0 b0 c0 a1 b1 a2 a3]"; got != want {
		t.Fatalf("served %s, want %s", got, want)
	}
	if s := q.stats(); s.queued != 0 || s.requesters != 0 {
		t.Fatalf("after draining: %+v", s)
	}
}

// A full queue refuses the requester with the most queued, and among as
// many the newest requester.
func TestFairQueuePushOut(t *testing.T) {
	q := newFairQueue(4)
	flooder, quiet, fresh := newTag(t), newTag(t), newTag(t)
	for i := range 4 {
		if ok, out := q.push(testJob(flooder, 2, fmt.Sprint("f", i))); !ok || out != nil {
			t.Fatalf("filling: %v %v", ok, out)
		}
	}
	// The flooder itself is refused.
	if ok, _ := q.push(testJob(flooder, 2, "f4")); ok {
		t.Fatal("the flooder's fifth was queued")
	}
	// A quiet requester pushes out the flooder's newest.
	ok, out := q.push(testJob(quiet, 1, "q0"))
	if !ok || out == nil || out.req.ID != "f3" {
		t.Fatalf("quiet arrival: %v, pushed out %v", ok, out)
	}
	ok, out = q.push(testJob(quiet, 1, "q1"))
	if !ok || out == nil || out.req.ID != "f2" {
		t.Fatalf("quiet's second: %v, pushed out %v", ok, out)
	}
	// Lanes of 2 and 2: a fresh requester (newest) pushes out the newer of
	// the two longest, the flooder (seq 2 > 1).
	ok, out = q.push(testJob(fresh, 3, "n0"))
	if !ok || out == nil || out.req.ID != "f1" {
		t.Fatalf("fresh arrival: %v, pushed out %v", ok, out)
	}
	// Lanes quiet 2, flooder 1, fresh 1: a second fresh one pushes out the
	// quiet's newest only if the quiet lane is longer by more than one
	// after; it is not (2 == 1+1) and quiet is older: refused.
	if ok, _ := q.push(testJob(fresh, 3, "n1")); ok {
		t.Fatal("a newer requester pushed out an older one with as many queued")
	}
	got := fmt.Sprint(popIDs(t, q, 4))
	if want := "[f0 q0 n0 q1]"; got != want {
		t.Fatalf("served %s, want %s", got, want)
	}
	if s := q.stats(); s.pushedOut != 3 {
		t.Fatalf("pushed out %d, want 3", s.pushedOut)
	}
}

// A closed queue refuses pushes and drains before pop says it is done.
func TestFairQueueClose(t *testing.T) {
	q := newFairQueue(4)
	a := newTag(t)
	q.push(testJob(a, 1, "a0"))
	q.close()
	if ok, _ := q.push(testJob(a, 1, "a1")); ok {
		t.Fatal("pushed into a closed queue")
	}
	if j, ok := q.pop(); !ok || j.req.ID != "a0" {
		t.Fatalf("draining: %v %v", j, ok)
	}
	if _, ok := q.pop(); ok {
		t.Fatal("pop of a closed, empty queue succeeded")
	}
}

// BenchmarkFairQueue measures the fair queue against its baseline, the
// buffered channel of 256 it replaced (first come, first served): a
// request queued and taken, from one requester and from 256 in turn; and
// the flood's path, a request refused by a full queue, which for the fair
// queue means looking at every lane (here 256, the most a queue of 256
// holds: a flooder spread over as many tags).
func BenchmarkFairQueue(b *testing.B) {
	const size = 256
	tags := make([]address.SenderTag, size)
	jobs := make([]*job, size)
	for i := range tags {
		tags[i] = newTag(b)
		jobs[i] = testJob(tags[i], uint64(i+1), fmt.Sprint(i))
	}
	b.Run("baseline-channel/queue-take", func(b *testing.B) {
		ch := make(chan *job, size)
		for i := 0; b.Loop(); i++ {
			ch <- jobs[i%size]
			<-ch
		}
	})
	b.Run("baseline-channel/refused", func(b *testing.B) {
		ch := make(chan *job, size)
		for _, j := range jobs {
			ch <- j
		}
		late := testJob(newTag(b), size+1, "late")
		for b.Loop() {
			select {
			case ch <- late:
				b.Fatal("queued in a full channel")
			default:
			}
		}
	})
	b.Run("fair/one-requester/queue-take", func(b *testing.B) {
		q := newFairQueue(size)
		for b.Loop() {
			q.push(jobs[0])
			q.pop()
		}
	})
	b.Run("fair/256-requesters/queue-take", func(b *testing.B) {
		q := newFairQueue(size)
		for _, j := range jobs[:size/2] {
			q.push(j)
		}
		for i := 0; b.Loop(); i++ {
			q.push(jobs[(size/2+i)%size])
			q.pop()
		}
	})
	b.Run("fair/256-requesters/refused", func(b *testing.B) {
		q := newFairQueue(size)
		for _, j := range jobs {
			q.push(j)
		}
		late := testJob(newTag(b), size+1, "late")
		for b.Loop() {
			if ok, _ := q.push(late); ok {
				b.Fatal("a new requester pushed out one seen before it")
			}
		}
	})
}

// The lane a full queue pushes out of, kept in a heap, is the one a scan
// of every lane finds (the longest, among as long the newest requester's),
// through random pushes, push-outs and pops.
func TestFairQueueLongestMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tags := make([]address.SenderTag, 12)
	for i := range tags {
		tags[i] = newTag(t)
	}
	q := newFairQueue(20)
	for step := range 5000 {
		if rng.IntN(3) == 0 && q.len() > 0 {
			q.pop()
		} else {
			i := rng.IntN(len(tags))
			q.push(testJob(tags[i], uint64(i+1), fmt.Sprint(step)))
		}
		q.mu.Lock()
		var want *lane
		for _, l := range q.lanes {
			if want == nil || len(l.jobs) > len(want.jobs) || (len(l.jobs) == len(want.jobs) && l.seq > want.seq) {
				want = l
			}
		}
		got := q.longestLocked()
		n := len(q.byLen)
		q.mu.Unlock()
		if got != want || n != len(q.lanes) {
			t.Fatalf("step %d: heap gives %v, the scan %v (%d lanes in the heap, %d in all)", step, got, want, n, len(q.lanes))
		}
	}
}
