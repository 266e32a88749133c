package sphinx

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
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
	h, h2 := probes(tag)
	for range f.k {
		bit, _ := bits.Mul64(h, f.m)
		if f.words[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
		h += h2
	}
	return true
}

// tagOf returns a distinct tag for each (i, salt), uniform like the HKDF
// output real tags are: the filter takes its probe positions from the tag's
// bytes. The words are successive outputs of SplitMix64.
func tagOf(i uint64, salt byte) ReplayTag {
	var tag ReplayTag
	x := i<<8 | uint64(salt)
	for j := 0; j < ReplayTagSize; j += 8 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		binary.LittleEndian.PutUint64(tag[j:], z^z>>31)
	}
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

// savedFilter returns a small filter holding tags 0..n-1 (salt 1), and its
// serialised form.
func savedFilter(t testing.TB, n int) (*ReplayFilter, []byte) {
	t.Helper()
	f := NewReplayFilter(1000, 1e-5)
	for i := range uint64(n) {
		tag := tagOf(i, 1)
		f.Seen(&tag)
	}
	var buf bytes.Buffer
	w, err := f.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if w != int64(buf.Len()) || buf.Len() != replayHeaderSize+f.SizeBytes()+replayCRCSize {
		t.Fatalf("WriteTo reported %d bytes, wrote %d, for %d bytes of bits", w, buf.Len(), f.SizeBytes())
	}
	return f, buf.Bytes()
}

// A saved and loaded filter remembers the tags it had seen and nothing
// else, with the same sizing and count.
func TestReplayFilterRoundTrip(t *testing.T) {
	const n = 500
	f, saved := savedFilter(t, n)
	r := bytes.NewReader(append(bytes.Clone(saved), "after"...))
	g, err := ReadReplayFilter(r)
	if err != nil {
		t.Fatal(err)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "after" {
		t.Fatalf("ReadReplayFilter left %q unread, want what follows the filter", rest)
	}
	if g.Count() != f.Count() || g.Capacity() != f.Capacity() || g.SizeBytes() != f.SizeBytes() ||
		g.FalsePositiveRate(n) != f.FalsePositiveRate(n) || !g.SizedFor(1000, 1e-5) {
		t.Fatalf("loaded filter: count %d capacity %d size %d, saved: count %d capacity %d size %d",
			g.Count(), g.Capacity(), g.SizeBytes(), f.Count(), f.Capacity(), f.SizeBytes())
	}
	for i := range uint64(n) {
		tag := tagOf(i, 1)
		if !g.Seen(&tag) {
			t.Fatalf("tag %d forgotten by the loaded filter", i)
		}
	}
	fresh := 0
	for i := range uint64(n) {
		tag := tagOf(i, 2)
		if !g.Seen(&tag) {
			fresh++
		}
	}
	if fresh < n-1 { // sized for 1e-5 at 1000 tags
		t.Fatalf("only %d of %d fresh tags were fresh to the loaded filter", fresh, n)
	}
	if g.Count() != f.Count()+fresh {
		t.Fatalf("Count = %d after %d fresh tags on %d", g.Count(), fresh, f.Count())
	}
	// The probe positions depend on the tag alone: another process loading
	// the same bytes agrees, and so does writing the loaded filter again.
	var again bytes.Buffer
	h, _ := ReadReplayFilter(bytes.NewReader(saved))
	if _, err := h.WriteTo(&again); err != nil || !bytes.Equal(again.Bytes(), saved) {
		t.Fatalf("writing a loaded filter again changed it (err %v)", err)
	}
}

func TestReplayFilterSizedFor(t *testing.T) {
	f := NewReplayFilter(1000, 1e-5)
	if !f.SizedFor(1000, 1e-5) || f.SizedFor(1001, 1e-5) || f.SizedFor(1000, 1e-4) {
		t.Fatal("SizedFor does not match the filter's own sizing")
	}
	if !NewReplayFilter(0, 0).SizedFor(DefaultReplayCapacity, DefaultReplayFalsePositiveRate) ||
		!NewReplayFilter(DefaultReplayCapacity, 0).SizedFor(0, 2) {
		t.Fatal("SizedFor does not apply the defaults as NewReplayFilter does")
	}
}

// Every malformed input is refused with an error naming the problem.
func TestReadReplayFilterRejects(t *testing.T) {
	_, saved := savedFilter(t, 10)
	// edit returns saved with a header change and, unless keepCRC, a
	// checksum that matches it (so that the header check is what fails).
	edit := func(change func(b []byte), fixCRC bool) []byte {
		b := bytes.Clone(saved)
		change(b)
		if fixCRC {
			body := b[:len(b)-replayCRCSize]
			binary.LittleEndian.PutUint32(b[len(body):], crc32.ChecksumIEEE(body))
		}
		return b
	}
	put64 := func(off int, v uint64) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint64(b[off:], v) }
	}
	put32 := func(off int, v uint32) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint32(b[off:], v) }
	}
	// huge is a header claiming 2 GiB of bits with nothing after it.
	huge := edit(put64(13, 1<<34), false)[:replayHeaderSize]
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", "truncated in its header"},
		{"short header", string(saved[:replayHeaderSize-1]), "truncated in its header"},
		{"bad magic", string(edit(func(b []byte) { b[0] = 'X' }, true)), "bad magic"},
		{"unknown version", string(edit(func(b []byte) { b[4] = 2 }, true)), "version 2 is unknown"},
		{"zero bits", string(edit(put64(13, 0), true)), "not a positive multiple of 64"},
		{"bits not a multiple of 64", string(edit(put64(13, 64*10+1), true)), "not a positive multiple of 64"},
		{"absurd size", string(edit(put64(13, 1<<35), true)), "over the limit"},
		{"zero probes", string(edit(put32(21, 0), true)), "probe count 0"},
		{"absurd probes", string(edit(put32(21, 1<<20), true)), "probe count 1048576"},
		{"zero capacity", string(edit(put64(5, 0), true)), "capacity 0"},
		{"capacity beyond int64", string(edit(put64(5, 1<<63), true)), "capacity 9223372036854775808"},
		{"count beyond the bits", string(edit(put64(25, 1<<40), true)), "count 1099511627776"},
		{"size disagrees with the bits", string(edit(put64(13, 64), true)), "checksum mismatch"},
		{"truncated bits", string(saved[:replayHeaderSize+100]), "truncated in its bits"},
		{"huge header, no bits", string(huge), "truncated in its bits"},
		{"truncated checksum", string(saved[:len(saved)-1]), "truncated in its checksum"},
		{"flipped bit", string(edit(func(b []byte) { b[replayHeaderSize+7] ^= 4 }, false)), "checksum mismatch"},
		{"flipped count", string(edit(func(b []byte) { b[25] ^= 1 }, false)), "checksum mismatch"},
		{"flipped checksum", string(edit(func(b []byte) { b[len(b)-1] ^= 1 }, false)), "checksum mismatch"},
	} {
		f, err := ReadReplayFilter(strings.NewReader(tc.in))
		if err == nil || f != nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "sphinx: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want one containing %q", tc.name, err, tc.want)
		}
		if strings.Contains(tc.want, "truncated") && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: error %q does not wrap io.ErrUnexpectedEOF", tc.name, err)
		}
	}
	// An error of the reader is passed on.
	boom := errors.New("disk on fire")
	_, err := ReadReplayFilter(io.MultiReader(bytes.NewReader(saved[:50]), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "sphinx: ") {
		t.Errorf("reader error: got %v", err)
	}
}

// WriteTo is a consistent snapshot while Seen runs: every tag recorded
// before it began is in it, and what it holds loads.
func TestReplayFilterWriteToConcurrent(t *testing.T) {
	f := NewReplayFilter(100_000, 1e-5)
	for i := range uint64(1000) {
		tag := tagOf(i, 1)
		f.Seen(&tag)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := uint64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tag := tagOf(i, byte(10+w))
				f.Seen(&tag)
			}
		})
	}
	for range 20 {
		var buf bytes.Buffer
		if _, err := f.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		g, err := ReadReplayFilter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		for i := range uint64(1000) {
			tag := tagOf(i, 1)
			if !g.contains(&tag) {
				t.Fatalf("snapshot lost tag %d", i)
			}
		}
	}
	close(stop)
	wg.Wait()
}

// FuzzReadReplayFilter: arbitrary bytes never panic; whatever is accepted
// is written back byte for byte, and an error names the package.
func FuzzReadReplayFilter(f *testing.F) {
	_, saved := savedFilter(f, 10)
	f.Add(saved)
	f.Add(saved[:replayHeaderSize])
	f.Add(saved[:len(saved)-1])
	small := NewReplayFilter(1, 0.5) // 64 bits
	var buf bytes.Buffer
	small.WriteTo(&buf)
	f.Add(buf.Bytes())
	f.Add(append(bytes.Clone(buf.Bytes()), 1, 2, 3))
	f.Add([]byte("PPRF"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		g, err := ReadReplayFilter(r)
		if err != nil {
			if g != nil || !strings.HasPrefix(err.Error(), "sphinx: ") {
				t.Fatalf("failure returned %v, %q", g, err)
			}
			return
		}
		consumed := in[:len(in)-r.Len()]
		var out bytes.Buffer
		if _, err := g.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), consumed) {
			t.Fatalf("accepted %x, wrote back %x", consumed, out.Bytes())
		}
		var tag ReplayTag
		copy(tag[:], in)
		g.Seen(&tag) // a loaded filter is usable
	})
}
