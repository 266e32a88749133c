package mixnode

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestDelayQueueMatchesReference drives the heap with random pushes and
// pops and checks every pop against a sorted slice, the obvious reference.
func TestDelayQueueMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		q := newDelayQueue(64)
		var ref []delayed // sorted by (at, seq)
		var seq uint64
		now := time.Duration(0)
		for range 300 {
			if r.IntN(3) > 0 {
				at := now + time.Duration(r.IntN(50)) // many ties
				pb := &packetBuf{}
				ok := q.push(at, netip.AddrPort{}, pb)
				if ok != (len(ref) < 64) {
					t.Fatalf("round %d: push = %v with %d queued", round, ok, len(ref))
				}
				if ok {
					seq++
					ref = append(ref, delayed{at: at, seq: seq, pb: pb})
					slices.SortFunc(ref, func(a, b delayed) int {
						if a.before(&b) {
							return -1
						}
						return 1
					})
				}
			} else {
				now += time.Duration(r.IntN(30))
				got, next, pending := q.popDue(now, nil)
				i := 0
				for i < len(ref) && ref[i].at <= now {
					i++
				}
				want := ref[:i]
				ref = ref[i:]
				if len(got) != len(want) {
					t.Fatalf("round %d: popped %d, want %d", round, len(got), len(want))
				}
				for j := range got {
					if got[j].pb != want[j].pb {
						t.Fatalf("round %d: pop %d out of order", round, j)
					}
				}
				if pending != (len(ref) > 0) || (pending && next != ref[0].at) {
					t.Fatalf("round %d: next %v %v, want %v", round, next, pending, ref)
				}
			}
			if q.len() != len(ref) {
				t.Fatalf("round %d: len %d, want %d", round, q.len(), len(ref))
			}
		}
		if rest := q.drain(); len(rest) != len(ref) {
			t.Fatalf("drain returned %d, want %d", len(rest), len(ref))
		}
	}
}

// TestDelayQueueRun checks the goroutine sends packets when due, in order,
// including one pushed while it sleeps on a later one.
func TestDelayQueueRun(t *testing.T) {
	q := newDelayQueue(10)
	type sent struct {
		pb *packetBuf
		at time.Duration
	}
	out := make(chan sent, 10)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.run(stop, func(_ netip.AddrPort, pb *packetBuf) { out <- sent{pb, q.now()} })
	}()
	a, b, c := &packetBuf{}, &packetBuf{}, &packetBuf{}
	now := q.now()
	q.push(now+150*time.Millisecond, netip.AddrPort{}, c)
	q.push(now+100*time.Millisecond, netip.AddrPort{}, b)
	q.push(now+20*time.Millisecond, netip.AddrPort{}, a) // wakes the sleeping goroutine
	for i, want := range []struct {
		pb *packetBuf
		at time.Duration
	}{{a, 20 * time.Millisecond}, {b, 100 * time.Millisecond}, {c, 150 * time.Millisecond}} {
		select {
		case s := <-out:
			if s.pb != want.pb {
				t.Fatalf("packet %d out of order", i)
			}
			if s.at < now+want.at {
				t.Fatalf("packet %d sent %v early", i, now+want.at-s.at)
			}
		case <-time.After(waitTimeout):
			t.Fatal("nothing sent")
		}
	}
	close(stop)
	<-done
}
