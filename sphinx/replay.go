package sphinx

import (
	"hash/maphash"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
)

// Replay filter defaults: at 10 million tags a node wrongly refuses at most
// one fresh packet in 100,000. The filter then takes about 30 MB.
const (
	DefaultReplayCapacity          = 10_000_000
	DefaultReplayFalsePositiveRate = 1e-5
)

// ReplayFilter remembers the replay tags a node has processed: a Bloom filter
// with a fixed size, so its memory is bounded whatever the traffic. It never
// misses a replay; it refuses a fresh packet with a probability that stays
// under the configured rate until Capacity tags have been added, and grows
// beyond it after. A node therefore rotates its Sphinx key before the filter
// fills and calls Reset (or makes a new filter for the new key): packets made
// for the old key no longer decrypt, so forgetting their tags is safe.
//
// It is safe for concurrent use. Two concurrent Seen calls for the same tag
// are serialised, so exactly one of them reports a fresh tag. A Seen that
// overlaps a Reset may leave its tag recorded or not.
type ReplayFilter struct {
	capacity uint64
	m        uint64 // bits
	k        int    // probes per tag
	words    []uint64
	seeds    [2]maphash.Seed
	stripe   [replayStripes]sync.Mutex
	count    atomic.Uint64
}

const replayStripes = 64

// NewReplayFilter sizes a filter for capacity tags at the given false
// positive rate (0 < rate < 1). Zero values choose the defaults.
func NewReplayFilter(capacity int, falsePositiveRate float64) *ReplayFilter {
	if capacity <= 0 {
		capacity = DefaultReplayCapacity
	}
	if !(falsePositiveRate > 0 && falsePositiveRate < 1) {
		falsePositiveRate = DefaultReplayFalsePositiveRate
	}
	n := float64(capacity)
	m := math.Ceil(-n * math.Log(falsePositiveRate) / (math.Ln2 * math.Ln2))
	f := &ReplayFilter{capacity: uint64(capacity), m: (uint64(m) + 63) &^ 63}
	f.k = max(int(math.Round(m/n*math.Ln2)), 1)
	// Rounding k to an integer costs a little; add bits until the rate holds.
	for f.FalsePositiveRate(capacity) > falsePositiveRate {
		f.m += 64 * (f.m/64/1000 + 1)
	}
	f.words = make([]uint64, f.m/64)
	f.seeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
	return f
}

// Seen records tag and reports whether it (probably) had been recorded before.
func (f *ReplayFilter) Seen(tag *ReplayTag) bool {
	h1 := maphash.Bytes(f.seeds[0], tag[:])
	h2 := maphash.Bytes(f.seeds[1], tag[:]) | 1
	mu := &f.stripe[h1%replayStripes]
	mu.Lock()
	fresh := false
	h := h1
	for range f.k {
		bit, _ := bits.Mul64(h, f.m) // uniform in [0, m)
		w, mask := &f.words[bit/64], uint64(1)<<(bit%64)
		if atomic.OrUint64(w, mask)&mask == 0 {
			fresh = true
		}
		h += h2
	}
	mu.Unlock()
	if fresh {
		f.count.Add(1)
	}
	return !fresh
}

// Reset forgets every tag. Call it when the key the filter guards is
// replaced. It clears the bits in place (a word at a time, so concurrent
// Seen calls stay safe), keeping the filter's memory mapped.
func (f *ReplayFilter) Reset() {
	for i := range f.words {
		atomic.StoreUint64(&f.words[i], 0)
	}
	f.count.Store(0)
}

// Count is how many fresh tags have been recorded since the last Reset.
func (f *ReplayFilter) Count() int { return int(f.count.Load()) }

// Capacity is the number of tags the filter was sized for.
func (f *ReplayFilter) Capacity() int { return int(f.capacity) }

// Full reports whether Count has reached Capacity, past which the false
// positive rate exceeds the one the filter was made for.
func (f *ReplayFilter) Full() bool { return f.count.Load() >= f.capacity }

// FalsePositiveRate is the expected probability that a fresh tag is refused
// once n tags have been recorded.
func (f *ReplayFilter) FalsePositiveRate(n int) float64 {
	return math.Pow(1-math.Exp(-float64(f.k)*float64(n)/float64(f.m)), float64(f.k))
}

// SizeBytes is the memory the filter's bits take.
func (f *ReplayFilter) SizeBytes() int { return int(f.m / 8) }
