package ordering

import (
	"math"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// item is the message type of the tests: it says where it came from.
type item struct {
	stream byte
	seq    uint64
}

func sid(b byte) StreamID { return StreamID{b} }

type harness struct {
	t *testing.T
	b *Buffer[item]
}

func newHarness(t *testing.T, cfg Config) *harness {
	return &harness{t: t, b: New[item](cfg)}
}

// push pushes seq on stream s and checks what comes out.
func (h *harness) push(now time.Time, s byte, seq uint64, want ...item) {
	h.t.Helper()
	got := h.b.Push(now, sid(s), seq, item{s, seq})
	if !slices.Equal(got, want) {
		h.t.Fatalf("Push(%d, %d) = %v, want %v", s, seq, got, want)
	}
}

func (h *harness) expire(now time.Time, want ...item) {
	h.t.Helper()
	got := h.b.Expire(now)
	if !slices.Equal(got, want) {
		h.t.Fatalf("Expire(%v) = %v, want %v", now.Sub(t0), got, want)
	}
}

func (h *harness) deadline(want time.Time, ok bool) {
	h.t.Helper()
	got, gotOK := h.b.NextDeadline()
	if gotOK != ok || !got.Equal(want) {
		h.t.Fatalf("NextDeadline = %v, %v; want %v, %v", got.Sub(t0), gotOK, want.Sub(t0), ok)
	}
}

func items(s byte, seqs ...uint64) []item {
	out := make([]item, len(seqs))
	for i, q := range seqs {
		out[i] = item{s, q}
	}
	return out
}

func TestInOrder(t *testing.T) {
	h := newHarness(t, Config{})
	for seq := range uint64(10) {
		h.push(t0, 1, seq, item{1, seq})
		h.push(t0, 2, seq, item{2, seq})
	}
	h.deadline(time.Time{}, false)
	if st := h.b.Stats(); st.Delivered != 20 || st.Held != 0 || st.Streams != 2 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestReordered(t *testing.T) {
	h := newHarness(t, Config{})
	h.push(t0, 1, 2)
	h.push(t0, 1, 1)
	h.push(t0, 1, 4)
	h.push(t0, 1, 0, items(1, 0, 1, 2)...)
	h.push(t0, 1, 3, items(1, 3, 4)...)
	h.deadline(time.Time{}, false)
}

func TestDuplicates(t *testing.T) {
	h := newHarness(t, Config{})
	h.push(t0, 1, 0, item{1, 0})
	h.push(t0, 1, 0) // delivered before
	h.push(t0, 1, 2) // held
	h.push(t0, 1, 2) // held already
	h.push(t0, 1, 1, items(1, 1, 2)...)
	h.push(t0, 1, 1) // delivered before
	if st := h.b.Stats(); st.Duplicates != 3 || st.Delivered != 3 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestGapSkippedAfterWait(t *testing.T) {
	const wait = time.Minute
	h := newHarness(t, Config{MaxGapWait: wait})
	h.push(t0, 1, 0, item{1, 0})
	h.push(t0, 1, 3)
	h.push(t0.Add(30*time.Second), 1, 5)
	h.deadline(t0.Add(wait), true)
	h.expire(t0.Add(wait - 1))
	// 3 has waited a minute: 1 and 2 are given up; 5 arrived later and
	// keeps waiting for 4.
	h.expire(t0.Add(wait), item{1, 3})
	h.deadline(t0.Add(30*time.Second+wait), true)
	h.push(t0.Add(wait), 1, 2, item{1, 2}) // late: delivered out of order
	h.push(t0.Add(wait), 1, 2)             // but once
	h.push(t0.Add(wait), 1, 4, items(1, 4, 5)...)
	h.deadline(time.Time{}, false)
	h.expire(t0.Add(time.Hour))
	if st := h.b.Stats(); st.Skipped != 2 || st.Late != 1 || st.Duplicates != 1 || st.Held != 0 || st.Delivered != 5 {
		t.Fatalf("stats: %+v", st)
	}
}

// A stream remembers only the highest MaxBufferedPerStream numbers it
// skipped: a jump far ahead skips many, and only the last ones can still
// come late.
func TestLateMessagesRemembered(t *testing.T) {
	h := newHarness(t, Config{MaxBufferedPerStream: 4})
	h.push(t0, 1, 0, item{1, 0})
	h.push(t0, 1, 2)
	// 20 is beyond the window: 1 and 3..15 are skipped, 2 is released.
	h.push(t0, 1, 20, item{1, 2})
	h.push(t0, 1, 14, item{1, 14})
	h.push(t0, 1, 15, item{1, 15})
	h.push(t0, 1, 11) // forgotten: counted as a duplicate
	h.push(t0, 1, 1)  // forgotten
	h.push(t0, 1, 12, item{1, 12})
	h.push(t0, 1, 13, item{1, 13})
	h.push(t0, 1, 13) // once
	h.push(t0, 1, 16, items(1, 16)...)
	if st := h.b.Stats(); st.Late != 4 || st.Duplicates != 3 || st.Skipped != 14 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestExpireAcrossStreams(t *testing.T) {
	const wait = time.Minute
	h := newHarness(t, Config{MaxGapWait: wait})
	h.push(t0, 1, 2)
	h.push(t0.Add(time.Second), 2, 1)
	h.push(t0.Add(2*time.Second), 1, 4)
	h.push(t0.Add(3*time.Second), 1, 3)
	h.expire(t0.Add(wait+time.Second), append(items(1, 2, 3, 4), item{2, 1})...)
	if st := h.b.Stats(); st.Skipped != 3 || st.Held != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestBufferBound(t *testing.T) {
	h := newHarness(t, Config{MaxBufferedPerStream: 3})
	h.push(t0, 1, 2)
	h.push(t0, 1, 3)
	// 5 is more than 3 beyond 0: 0 and 1 are skipped so that it fits.
	h.push(t0, 1, 5, items(1, 2, 3)...)
	h.push(t0, 1, 4, items(1, 4, 5)...)
	h.push(t0, 1, 7)
	h.push(t0, 1, 8)
	h.push(t0, 1, 9)
	if st := h.b.Stats(); st.Held != 3 {
		t.Fatalf("held %d, want 3", st.Held)
	}
	// Far ahead: everything held is released, the gap skipped.
	h.push(t0, 1, 1000, items(1, 7, 8, 9)...)
	h.push(t0, 1, 997, items(1, 997)...)
	if st := h.b.Stats(); st.Held != 1 || st.Skipped != 2+1+(997-10) {
		t.Fatalf("stats: %+v", st)
	}
}

func TestLRUEviction(t *testing.T) {
	h := newHarness(t, Config{MaxStreams: 2})
	h.push(t0, 1, 0, item{1, 0})
	h.push(t0, 2, 1) // held
	h.push(t0, 1, 1, item{1, 1})
	// Stream 2 is the least recently used: a third stream evicts it and
	// its held message comes out first.
	h.push(t0, 3, 0, item{2, 1}, item{3, 0})
	snap := h.b.Snapshot()
	if len(snap) != 2 || snap[sid(1)] != 2 || snap[sid(3)] != 1 {
		t.Fatalf("snapshot: %v", snap)
	}
	if st := h.b.Stats(); st.Evicted != 1 || st.Skipped != 1 || st.Held != 0 {
		t.Fatalf("stats: %+v", st)
	}
	// Stream 2 starts over; stream 1 (least recently used) is evicted.
	h.push(t0, 2, 2)
	if _, ok := h.b.Snapshot()[sid(1)]; ok {
		t.Fatal("stream 1 not evicted")
	}
	h.deadline(t0.Add(DefaultMaxGapWait), true)
}

func TestSnapshotRestore(t *testing.T) {
	h := newHarness(t, Config{MaxStreams: 3})
	h.push(t0, 1, 0, item{1, 0})
	h.push(t0, 1, 1, item{1, 1})
	h.push(t0, 2, 0, item{2, 0})
	h.push(t0, 1, 3) // held; lost in the restart
	snap := h.b.Snapshot()
	if len(snap) != 2 || snap[sid(1)] != 2 || snap[sid(2)] != 1 {
		t.Fatalf("snapshot: %v", snap)
	}

	r := &harness{t: t, b: New[item](Config{MaxStreams: 3})}
	r.b.Restore(snap)
	r.deadline(time.Time{}, false)
	r.push(t0, 1, 1)             // delivered before the restart
	r.push(t0, 1, 2, item{1, 2}) // next: no stall
	r.push(t0, 2, 1, item{2, 1})
	r.push(t0, 1, 4) // waits for 3, which was lost
	r.expire(t0.Add(DefaultMaxGapWait), item{1, 4})

	// Restoring into a used Buffer discards its state; beyond MaxStreams
	// the smallest ids are kept.
	r.b.Restore(map[StreamID]uint64{sid(9): 1, sid(4): 7, sid(5): 0, sid(6): 2})
	if got := r.b.Snapshot(); len(got) != 3 || got[sid(4)] != 7 || got[sid(5)] != 0 || got[sid(6)] != 2 {
		t.Fatalf("snapshot after restore: %v", got)
	}
	if st := r.b.Stats(); st.Held != 0 || st.Streams != 3 {
		t.Fatalf("stats: %+v", st)
	}
	// Restored streams count as used in id order: 4 is evicted first.
	r.push(t0, 7, 0, item{7, 0})
	if _, ok := r.b.Snapshot()[sid(4)]; ok {
		t.Fatal("stream 4 not evicted")
	}
}

func TestSequenceLimits(t *testing.T) {
	h := newHarness(t, Config{})
	h.push(t0, 1, math.MaxUint64)
	if st := h.b.Stats(); st.Invalid != 1 || st.Streams != 0 {
		t.Fatalf("stats: %+v", st)
	}
	h.b.Restore(map[StreamID]uint64{sid(1): MaxSeq})
	h.push(t0, 1, MaxSeq, item{1, MaxSeq})
	h.push(t0, 1, MaxSeq) // used up
	h.push(t0, 1, 0)
	if got := h.b.Snapshot()[sid(1)]; got != math.MaxUint64 {
		t.Fatalf("next = %d, want MaxUint64", got)
	}
	// A far jump from 0 to MaxSeq: the skipped count saturates, nothing wraps.
	h.push(t0, 2, MaxSeq)
	h.push(t0, 3, MaxSeq)
	if st := h.b.Stats(); st.Skipped != math.MaxUint64 || st.Held != 2 {
		t.Fatalf("stats: %+v", st)
	}
	h.expire(t0.Add(DefaultMaxGapWait), item{2, MaxSeq}, item{3, MaxSeq})
}

func TestDefaults(t *testing.T) {
	b := New[int](Config{MaxGapWait: -1, MaxBufferedPerStream: -1, MaxStreams: -1})
	if b.cfg.MaxGapWait != DefaultMaxGapWait || b.cfg.MaxBufferedPerStream != DefaultMaxBufferedPerStream ||
		b.cfg.MaxStreams != DefaultMaxStreams {
		t.Fatalf("defaults not applied: %+v", b.cfg)
	}
}

// TestWaitsStayBounded pushes held messages that are released by later
// pushes without ever calling Expire: the wait list must not grow with the
// number of messages.
func TestWaitsStayBounded(t *testing.T) {
	b := New[int](Config{})
	for i := range uint64(100000) {
		b.Push(t0, sid(1), 2*i+1, 0) // held
		b.Push(t0, sid(1), 2*i, 0)   // releases it
	}
	if len(b.waits) > 200 {
		t.Fatalf("%d wait entries with nothing held", len(b.waits))
	}
	if _, ok := b.NextDeadline(); ok {
		t.Fatal("a deadline with nothing held")
	}
}

func TestSeqHeap(t *testing.T) {
	rng := seeded(1)
	var h seqHeap
	var ref []uint64
	for range 2000 {
		if rng.IntN(3) > 0 || len(ref) == 0 {
			x := rng.Uint64N(50)
			h.push(x)
			ref = append(ref, x)
			continue
		}
		slices.Sort(ref)
		if got := h.pop(); got != ref[0] {
			t.Fatalf("pop = %d, want %d", got, ref[0])
		}
		ref = ref[1:]
	}
}

func TestWindowEdge(t *testing.T) {
	h := newHarness(t, Config{MaxBufferedPerStream: 3})
	h.push(t0, 1, 3) // exactly 3 beyond 0: held, nothing skipped
	if st := h.b.Stats(); st.Skipped != 0 || st.Held != 1 {
		t.Fatalf("stats: %+v", st)
	}
	h.push(t0, 1, 4) // 4 beyond 0: 0 is skipped
	if st := h.b.Stats(); st.Skipped != 1 || st.Held != 2 {
		t.Fatalf("stats: %+v", st)
	}
	h.push(t0, 1, 1, items(1, 1)...)
	h.push(t0, 1, 2, items(1, 2, 3, 4)...)
}
