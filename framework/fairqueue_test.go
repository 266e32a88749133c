package framework

import (
	"fmt"
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
