package sphinx

import (
	"crypto/rand"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"sync"
	"sync/atomic"
	"testing"
)

func TestReplayFilterSizing(t *testing.T) {
	f := NewReplayFilter(DefaultReplayCapacity, DefaultReplayFalsePositiveRate)
	if rate := f.FalsePositiveRate(DefaultReplayCapacity); rate > 1e-5 {
		t.Fatalf("expected false positive rate at 10 million tags is %g, want <= 1e-5", rate)
	}
	if mb := f.SizeBytes() >> 20; mb > 32 {
		t.Fatalf("filter takes %d MiB", mb)
	}
}

// contains reports whether every bit of tag is set, without recording it.
func (f *ReplayFilter) contains(tag *ReplayTag) bool {
	h := maphash.Bytes(f.seeds[0], tag[:])
	h2 := maphash.Bytes(f.seeds[1], tag[:]) | 1
	for range f.k {
		bit, _ := bits.Mul64(h, f.m)
		if f.words[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
		h += h2
	}
	return true
}

func tagOf(i uint64, salt byte) ReplayTag {
	var tag ReplayTag
	binary.LittleEndian.PutUint64(tag[:], i)
	tag[31] = salt
	return tag
}

// The filter never misses a replay, and its false positives stay near the
// rate it was sized for. (The full 10-million-tag run is
// TestReplayFilterAtFullSize; this one is scaled down to run under -race.)
func TestReplayFilterRates(t *testing.T) {
	const n = 200_000
	f := NewReplayFilter(n, 1e-3)
	for i := range uint64(n) {
		tag := tagOf(i, 1)
		if f.Seen(&tag) {
			// A false positive on insertion is possible but must be rare.
			continue
		}
	}
	for i := range uint64(n) {
		tag := tagOf(i, 1)
		if !f.Seen(&tag) {
			t.Fatalf("tag %d was forgotten", i)
		}
	}
	fp := 0
	for i := range uint64(n) {
		tag := tagOf(i, 2)
		if f.contains(&tag) {
			fp++
		}
	}
	// Expected about 200 (1e-3 of 200,000); allow generous noise.
	if fp > 400 {
		t.Fatalf("%d false positives in %d fresh tags, sized for 1e-3", fp, n)
	}
	if f.Count() < n*99/100 {
		t.Fatalf("Count = %d after %d fresh tags", f.Count(), n)
	}
}

func TestReplayFilterAtFullSize(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("10 million insertions: skipped under -short and -race")
	}
	f := NewReplayFilter(DefaultReplayCapacity, DefaultReplayFalsePositiveRate)
	for i := range uint64(DefaultReplayCapacity) {
		tag := tagOf(i, 1)
		f.Seen(&tag)
	}
	if f.Count() < DefaultReplayCapacity-100 {
		t.Fatalf("only %d of %d fresh tags counted", f.Count(), DefaultReplayCapacity)
	}
	const probes = 1_000_000
	fp := 0
	for i := range uint64(probes) {
		tag := tagOf(i, 2)
		if f.contains(&tag) {
			fp++
		}
	}
	// Expected about 10 at 1e-5; more than 40 means the sizing is wrong.
	if fp > 40 {
		t.Fatalf("%d false positives in %d fresh tags at 10 million", fp, probes)
	}
	t.Logf("%d false positives in %d probes at full capacity", fp, probes)
}

// Concurrent Seen calls for the same tag: exactly one reports it fresh.
func TestReplayFilterConcurrent(t *testing.T) {
	f := NewReplayFilter(10_000, 1e-5)
	for range 50 {
		var tag ReplayTag
		rand.Read(tag[:])
		var fresh atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if !f.Seen(&tag) {
					fresh.Add(1)
				}
			})
		}
		wg.Wait()
		if fresh.Load() != 1 {
			t.Fatalf("%d goroutines saw the same tag as fresh", fresh.Load())
		}
	}
}

func TestReplayFilterReset(t *testing.T) {
	f := NewReplayFilter(100, 1e-5)
	tag := tagOf(1, 1)
	f.Seen(&tag)
	if !f.Seen(&tag) {
		t.Fatal("tag not remembered")
	}
	f.Reset()
	if f.Seen(&tag) || f.Count() != 1 {
		t.Fatal("Reset did not forget")
	}
}
