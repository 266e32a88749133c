package sphinx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
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
// The probe positions come from the tag itself, with no secret seed, so that
// a filter can be saved ([ReplayFilter.WriteTo]) and loaded again
// ([ReadReplayFilter]) by a node that restarts. This is safe because a tag
// is 32 bytes of HKDF output: uniform. Whoever made a packet knows the tag
// it has at each hop and could grind packets for tags with chosen probe
// positions, but it cannot learn the tags of anyone else's packets, so it
// cannot aim at them: the most grinding achieves is filling the filter,
// which sending packets does anyway. (A little faster per packet: at a
// share p of bits set, an honest tag sets about k(1-p) new bits and a
// ground one at most k, for about (1-p)^-k packets built per packet sent.)
//
// It is safe for concurrent use. Two concurrent Seen calls for the same tag
// are serialised, so exactly one of them reports a fresh tag. A Seen that
// overlaps a Reset may leave its tag recorded or not.
type ReplayFilter struct {
	capacity uint64
	m        uint64 // bits
	k        int    // probes per tag
	words    []uint64
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
	f := replaySizing(capacity, falsePositiveRate)
	f.words = make([]uint64, f.m/64)
	return f
}

// replaySizing returns a filter with the capacity, size and probe count
// NewReplayFilter chooses for valid arguments, without its bits.
func replaySizing(capacity int, falsePositiveRate float64) *ReplayFilter {
	n := float64(capacity)
	m := math.Ceil(-n * math.Log(falsePositiveRate) / (math.Ln2 * math.Ln2))
	f := &ReplayFilter{capacity: uint64(capacity), m: (uint64(m) + 63) &^ 63}
	f.k = max(int(math.Round(m/n*math.Ln2)), 1)
	// Rounding k to an integer costs a little; add bits until the rate holds.
	for f.FalsePositiveRate(capacity) > falsePositiveRate {
		f.m += 64 * (f.m/64/1000 + 1)
	}
	return f
}

// SizedFor reports whether f has the capacity, size and number of probes
// that NewReplayFilter(capacity, falsePositiveRate) would give it, zero
// values choosing the defaults as there. A node uses it to tell whether a
// filter it saved still fits its configuration.
func (f *ReplayFilter) SizedFor(capacity int, falsePositiveRate float64) bool {
	if capacity <= 0 {
		capacity = DefaultReplayCapacity
	}
	if !(falsePositiveRate > 0 && falsePositiveRate < 1) {
		falsePositiveRate = DefaultReplayFalsePositiveRate
	}
	g := replaySizing(capacity, falsePositiveRate)
	return f.capacity == g.capacity && f.m == g.m && f.k == g.k
}

// probes returns the start and step of tag's probe sequence: two
// little-endian words of the tag (see ReplayFilter on why that is safe).
// The step is odd.
func probes(tag *ReplayTag) (h1, h2 uint64) {
	return binary.LittleEndian.Uint64(tag[0:8]), binary.LittleEndian.Uint64(tag[8:16]) | 1
}

// Seen records tag and reports whether it (probably) had been recorded before.
func (f *ReplayFilter) Seen(tag *ReplayTag) bool {
	h1, h2 := probes(tag)
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

// The serialised form of a ReplayFilter; see WriteTo.
const (
	replayMagic   = "PPRF"
	replayVersion = 1
	// replayHeaderSize is magic 4 ‖ version 1 ‖ capacity 8 ‖ m 8 ‖ k 4 ‖
	// count 8.
	replayHeaderSize = len(replayMagic) + 1 + 8 + 8 + 4 + 8
	replayCRCSize    = 4
	// maxReplayBytes bounds the bits of a filter ReadReplayFilter accepts
	// (2 GiB, 70 times the default filter).
	maxReplayBytes = 1 << 31
	// maxReplayProbes bounds its probes per tag. NewReplayFilter chooses
	// about log2(1/rate), at most 1075 for the smallest float64 rate.
	maxReplayProbes = 2048
	// replayReadChunk is how many bytes of bits ReadReplayFilter reads at a
	// time.
	replayReadChunk = 1 << 16
)

var _ io.WriterTo = (*ReplayFilter)(nil)

// WriteTo writes a snapshot of the filter to w, for [ReadReplayFilter] to
// load, and returns the number of bytes written. The snapshot is
// consistent: it holds every tag whose Seen returned before WriteTo was
// called, and no half-recorded tag. Seen calls wait while the bits are
// copied (a few milliseconds for the default filter), not while w is
// written. Count may lag the bits by the tags being recorded at that moment.
// A WriteTo that overlaps a Reset may catch part of the bits before it.
//
// The format, integers little-endian:
//
//	magic "PPRF" ‖ version u8 (1) ‖ capacity u64 ‖ m u64 (bits, a multiple
//	of 64) ‖ k u32 (probes per tag) ‖ count u64 ‖ m/64 words u64 ‖
//	CRC-32 (IEEE) u32 of everything before it
//
// Bit b of the filter is bit b%64 of word b/64. The probes of a tag are
// bits ⌊h·m/2⁶⁴⌋ for h = h1, h1+h2, …, h1+(k-1)·h2 (mod 2⁶⁴), where h1 is
// the little-endian u64 of tag[0:8] and h2 that of tag[8:16] with its low
// bit set.
func (f *ReplayFilter) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, replayHeaderSize, replayHeaderSize+len(f.words)*8+replayCRCSize)
	copy(buf, replayMagic)
	buf[4] = replayVersion
	binary.LittleEndian.PutUint64(buf[5:], f.capacity)
	binary.LittleEndian.PutUint64(buf[13:], f.m)
	binary.LittleEndian.PutUint32(buf[21:], uint32(f.k))
	for i := range f.stripe {
		f.stripe[i].Lock()
	}
	binary.LittleEndian.PutUint64(buf[25:], f.count.Load())
	for i := range f.words {
		buf = binary.LittleEndian.AppendUint64(buf, atomic.LoadUint64(&f.words[i]))
	}
	for i := range f.stripe {
		f.stripe[i].Unlock()
	}
	buf = binary.LittleEndian.AppendUint32(buf, crc32.ChecksumIEEE(buf))
	n, err := w.Write(buf)
	return int64(n), err
}

// ReadReplayFilter reads a filter written by [ReplayFilter.WriteTo]. It
// reads exactly the filter's bytes from r, nothing after them. It refuses
// a wrong magic, an unknown version, inconsistent or absurd sizes (m zero,
// not a multiple of 64 or over 2 GiB; k zero or over 2048; capacity zero;
// a count beyond m), a truncated filter (an error wrapping
// io.ErrUnexpectedEOF) and a checksum mismatch. An error from r is
// returned wrapped. It allocates the bits as they arrive, so a header
// claiming a huge filter costs memory only if the bits follow.
func ReadReplayFilter(r io.Reader) (*ReplayFilter, error) {
	var hdr [replayHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, replayReadError("header", err)
	}
	if string(hdr[:4]) != replayMagic {
		return nil, errors.New("sphinx: not a replay filter (bad magic)")
	}
	if hdr[4] != replayVersion {
		return nil, fmt.Errorf("sphinx: replay filter version %d is unknown", hdr[4])
	}
	capacity := binary.LittleEndian.Uint64(hdr[5:])
	m := binary.LittleEndian.Uint64(hdr[13:])
	k := binary.LittleEndian.Uint32(hdr[21:])
	count := binary.LittleEndian.Uint64(hdr[25:])
	switch {
	case m == 0 || m%64 != 0:
		return nil, fmt.Errorf("sphinx: replay filter size %d bits is not a positive multiple of 64", m)
	case m/8 > maxReplayBytes:
		return nil, fmt.Errorf("sphinx: replay filter size %d bits is over the limit of %d bytes", m, maxReplayBytes)
	case k == 0 || k > maxReplayProbes:
		return nil, fmt.Errorf("sphinx: replay filter probe count %d is not between 1 and %d", k, maxReplayProbes)
	case capacity == 0 || capacity > math.MaxInt64:
		return nil, fmt.Errorf("sphinx: replay filter capacity %d is out of range", capacity)
	case count > m:
		return nil, fmt.Errorf("sphinx: replay filter count %d is more than its %d bits", count, m)
	}

	crc := crc32.Update(0, crc32.IEEETable, hdr[:])
	nwords := int(m / 64)
	words := make([]uint64, 0, min(nwords, replayReadChunk/8))
	chunk := make([]byte, min(nwords*8, replayReadChunk))
	for len(words) < nwords {
		b := chunk[:min(len(chunk), (nwords-len(words))*8)]
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, replayReadError("bits", err)
		}
		crc = crc32.Update(crc, crc32.IEEETable, b)
		if len(words)+len(b)/8 > cap(words) {
			// Double, but never beyond the filter: the last growth leaves
			// no spare capacity.
			grown := make([]uint64, len(words), min(2*cap(words), nwords))
			copy(grown, words)
			words = grown
		}
		for i := 0; i < len(b); i += 8 {
			words = append(words, binary.LittleEndian.Uint64(b[i:]))
		}
	}
	var sum [replayCRCSize]byte
	if _, err := io.ReadFull(r, sum[:]); err != nil {
		return nil, replayReadError("checksum", err)
	}
	if binary.LittleEndian.Uint32(sum[:]) != crc {
		return nil, errors.New("sphinx: replay filter checksum mismatch")
	}
	f := &ReplayFilter{capacity: capacity, m: m, k: int(k), words: words}
	f.count.Store(count)
	return f, nil
}

// replayReadError describes a failure to read part of a filter; a stream
// that ends early wraps io.ErrUnexpectedEOF.
func replayReadError(part string, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("sphinx: replay filter truncated in its %s: %w", part, err)
	}
	return fmt.Errorf("sphinx: reading replay filter %s: %w", part, err)
}
