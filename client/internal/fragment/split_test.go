package fragment

import (
	"bytes"
	"crypto/rand"
	"errors"
	"math"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"
)

// regularCapacity is the fragment capacity of a regular packet once the
// acknowledgement and end-to-end encryption overheads are taken off.
const regularCapacity = 1595

// seeded returns a deterministic PRNG for a test.
func seeded(seed uint64) *mrand.Rand {
	return mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// prngReader adapts a seeded PRNG to io.Reader for Split's set ids.
type prngReader struct{ r *mrand.Rand }

func (p prngReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(p.r.Uint32())
	}
	return len(b), nil
}

func randomMessage(rng *mrand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// checkLayout checks that frags is the fragment layout Nym's
// split_into_sets produces for a message of messageLen bytes: every fragment
// exactly capacity bytes on the wire, sets of 255 but the last, links on
// fragment 1 of every set but the first and on fragment 255 of every set but
// the last, and the payloads the padded message cut in order.
func checkLayout(t *testing.T, frags []Fragment, message []byte, capacity int) {
	t.Helper()
	want, err := FragmentCount(len(message), capacity)
	if err != nil {
		t.Fatal(err)
	}
	if len(frags) != want {
		t.Fatalf("%d fragments, FragmentCount says %d", len(frags), want)
	}
	setCount := (len(frags) + 254) / 255
	var padded []byte
	ids := map[int32]bool{}
	for i, f := range frags {
		if err := f.Validate(); err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if f.WireLen() != capacity {
			t.Fatalf("fragment %d: wire length %d, want %d", i, f.WireLen(), capacity)
		}
		if enc := f.AppendBinary(nil); len(enc) != capacity {
			t.Fatalf("fragment %d: encoding is %d bytes", i, len(enc))
		}
		s, pos := i/255, i%255+1
		total := 255
		if s == setCount-1 {
			total = len(frags) - 255*s
		}
		if int(f.Total) != total || int(f.Index) != pos {
			t.Fatalf("fragment %d: %d of %d, want %d of %d", i, f.Index, f.Total, pos, total)
		}
		if pos == 1 {
			if ids[f.SetID] {
				t.Fatalf("set id %d used twice", f.SetID)
			}
			ids[f.SetID] = true
		} else if f.SetID != frags[i-1].SetID {
			t.Fatalf("fragment %d: set id changes inside a set", i)
		}
		wantPrev, wantNext := int32(0), int32(0)
		if pos == 1 && s > 0 {
			wantPrev = frags[i-1].SetID
		}
		if pos == 255 && s < setCount-1 {
			wantNext = frags[i+1].SetID
		}
		if f.PreviousSetID != wantPrev || f.NextSetID != wantNext {
			t.Fatalf("fragment %d: links %d/%d, want %d/%d", i, f.PreviousSetID, f.NextSetID, wantPrev, wantNext)
		}
		padded = append(padded, f.Payload...)
	}
	if !bytes.Equal(padded[:len(message)], message) || padded[len(message)] != 0x01 ||
		len(bytes.Trim(padded[len(message)+1:], "\x00")) != 0 {
		t.Fatalf("padded message is not message ‖ 0x01 ‖ zeros")
	}
}

func TestSplitReassembleSizes(t *testing.T) {
	const c = regularCapacity
	u := c - UnlinkedHeaderLen
	tests := []struct {
		name      string
		size      int
		fragments int
	}{
		{"empty", 0, 1},
		{"one byte", 1, 1},
		{"exactly one fragment", u - PaddingOverhead, 1},
		{"one byte more", u, 2},
		{"exactly 255 fragments", 255*u - PaddingOverhead, 255},
		{"256 fragments", 255 * u, 256},
		// first set 255u-3, two middle sets 255u-6 each, then a last set.
		{"four linked sets", (255*u - 3) + 2*(255*u-6) + 10*u, 3*255 + 11},
		{"5 MB", 5 << 20, 0},
	}
	rng := seeded(1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := randomMessage(rng, tt.size)
			frags, err := Split(msg, c, prngReader{rng})
			if err != nil {
				t.Fatal(err)
			}
			if tt.fragments != 0 && len(frags) != tt.fragments {
				t.Fatalf("%d fragments, want %d", len(frags), tt.fragments)
			}
			checkLayout(t, frags, msg, c)

			r := NewReassembler(Config{})
			order := rng.Perm(len(frags))
			now := time.Unix(0, 0)
			for k, i := range order {
				got, complete, err := r.Add(now, reparse(t, frags[i]))
				if err != nil {
					t.Fatal(err)
				}
				if complete != (k == len(order)-1) {
					t.Fatalf("complete=%v after %d of %d fragments", complete, k+1, len(order))
				}
				if complete && !bytes.Equal(got, msg) {
					t.Fatalf("reassembled %d bytes, want the %d sent", len(got), len(msg))
				}
			}
			if st := r.Stats(); st.PendingSets != 0 || st.PendingBytes != 0 || st.Delivered != 1 {
				t.Fatalf("stats after delivery: %+v", st)
			}
			checkInvariants(t, r)
		})
	}
}

// reparse sends f through its wire form, as the network does.
func reparse(t testing.TB, f Fragment) Fragment {
	t.Helper()
	p, err := Parse(f.AppendBinary(nil))
	if err != nil {
		t.Fatalf("Parse(AppendBinary(%+v)): %v", f, err)
	}
	return p
}

// nymRequiredFragments is the test's port of the arithmetic of Nym's
// number_of_required_fragments and total_number_of_sets
// (common/nymsphinx/chunking/src/lib.rs and set.rs): the number of fragments
// a padded message of messageLen bytes needs, and the bytes left in the last.
func nymRequiredFragments(messageLen, plaintextPerFragment int) (int, int) {
	maxUnlinked := plaintextPerFragment - UnlinkedHeaderLen
	maxLinked := plaintextPerFragment - LinkedHeaderLen
	maxUnlinkedSet := 255 * maxUnlinked
	oneWay := maxUnlinkedSet - 3
	twoWay := maxUnlinkedSet - 6
	var n int
	switch {
	case messageLen <= maxUnlinkedSet:
		n = 1
	case messageLen <= 2*oneWay:
		n = 2
	default:
		n = (messageLen-2*oneWay+twoWay-1)/twoWay + 2
	}
	if n == 1 {
		if messageLen < maxUnlinked {
			return 1, maxUnlinked - messageLen
		}
		q, r := messageLen/maxUnlinked, messageLen%maxUnlinked
		if r == 0 {
			return q, 0
		}
		return q + 1, maxUnlinked - r
	}
	withoutLast := (n - 1) * 255
	linkedWithoutLast := 2*n - 3
	unlinkedWithoutLast := withoutLast - linkedWithoutLast
	final := messageLen - linkedWithoutLast*maxLinked - unlinkedWithoutLast*maxUnlinked
	switch {
	case final < maxLinked:
		return withoutLast + 1, maxLinked - final
	case final == maxLinked:
		return withoutLast + 1, 0
	}
	rem := final - maxLinked
	q, r := rem/maxUnlinked, rem%maxUnlinked
	if r == 0 {
		return withoutLast + q + 1, 0
	}
	return withoutLast + q + 2, maxUnlinked - r
}

// TestFragmentCountMatchesNym checks the layout arithmetic against the
// expectations in Nym's own test (calculating_number_of_required_fragments)
// and against the port of Nym's formula over many lengths.
func TestFragmentCountMatchesNym(t *testing.T) {
	for _, c := range []int{17, 20, 42, 1595, 1611, 10000} {
		l, err := newLayout(c)
		if err != nil {
			t.Fatal(err)
		}
		u, lk := c-UnlinkedHeaderLen, c-LinkedHeaderLen
		edge, middle := 255*u-3, 255*u-6
		vectors := []struct{ m, frags, left int }{
			{u - 5, 1, 5},
			{u, 1, 0},
			{u + 1, 2, u - 1},
			{2 * u, 2, 0},
			{42*u - 5, 42, 5},
			{42 * u, 42, 0},
			{edge + lk - 1, 256, 1},
			{edge + lk, 256, 0},
			{edge + lk + 41*u - 5, 255 + 42, 5},
			{edge + lk + 41*u, 255 + 42, 0},
			{edge + 8*middle + lk - 1, 9*255 + 1, 1},
			{edge + 8*middle + lk, 9*255 + 1, 0},
			{edge + 8*middle + lk + 41*u - 5, 9*255 + 42, 5},
			{edge + 8*middle + lk + 41*u, 9*255 + 42, 0},
		}
		for _, v := range vectors {
			n := l.fragments(v.m)
			if n != v.frags || l.carries(n)-v.m != v.left {
				t.Errorf("capacity %d, %d bytes: %d fragments with %d left, want %d with %d",
					c, v.m, n, l.carries(n)-v.m, v.frags, v.left)
			}
		}
		rng := seeded(uint64(c))
		for range 2000 {
			m := 1 + rng.IntN(12*255*u)
			n, left := nymRequiredFragments(m, c)
			if got := l.fragments(m); got != n || l.carries(got)-m != left {
				t.Fatalf("capacity %d, %d bytes: %d fragments with %d left, Nym's formula says %d with %d",
					c, m, got, l.carries(got)-m, n, left)
			}
		}
	}
}

func TestSplitErrors(t *testing.T) {
	for _, c := range []int{-1, 0, MinCapacity - 1, MaxCapacity + 1} {
		if _, err := Split([]byte("x"), c, rand.Reader); err == nil || !strings.Contains(err.Error(), "capacity") {
			t.Errorf("Split with capacity %d: %v", c, err)
		}
		if _, err := FragmentCount(1, c); err == nil {
			t.Errorf("FragmentCount with capacity %d accepted", c)
		}
	}
	for _, n := range []int{-1, math.MaxInt} {
		if _, err := FragmentCount(n, regularCapacity); err == nil {
			t.Errorf("FragmentCount(%d) accepted", n)
		}
	}
	if n, err := FragmentCount(maxMessageLen, MinCapacity); err != nil || n <= 0 {
		t.Errorf("FragmentCount(maxMessageLen) = %d, %v", n, err)
	}
	boom := errors.New("boom")
	if _, err := Split([]byte("x"), regularCapacity, errReader{boom}); !errors.Is(err, boom) {
		t.Errorf("Split with a failing reader: %v", err)
	}
	if _, err := Split([]byte("x"), regularCapacity, bytes.NewReader(make([]byte, 1024))); err == nil {
		t.Error("Split accepted a reader of zeros (set id 0 only)")
	}
	if _, err := Split([]byte("x"), regularCapacity, nil); err == nil {
		t.Error("Split accepted a nil reader")
	}
	// Flag bits are cleared and repeats are skipped: two sets whose ids
	// differ only in the top bit must get distinct ids.
	same := []byte{0x80, 0, 0, 7, 0, 0, 0, 7, 0, 0, 0, 8}
	frags, err := Split(make([]byte, 255*(MinCapacity-UnlinkedHeaderLen)), MinCapacity, bytes.NewReader(same))
	if err != nil {
		t.Fatal(err)
	}
	if frags[0].SetID != 7 || frags[len(frags)-1].SetID != 8 {
		t.Fatalf("set ids %d, %d; want 7, 8", frags[0].SetID, frags[len(frags)-1].SetID)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestSplitMinCapacity(t *testing.T) {
	// At the smallest capacity every set boundary still adds payload; check
	// the round trip over lengths that cross several set boundaries.
	rng := seeded(2)
	for _, size := range []int{0, 6, 7, 1784, 1785, 1786, 3563, 3564, 3565, 9000} {
		msg := randomMessage(rng, size)
		frags, err := Split(msg, MinCapacity, prngReader{rng})
		if err != nil {
			t.Fatal(err)
		}
		checkLayout(t, frags, msg, MinCapacity)
		got := reassembleAll(t, frags, rng)
		if !bytes.Equal(got, msg) {
			t.Fatalf("size %d: round trip differs", size)
		}
	}
}

func reassembleAll(t *testing.T, frags []Fragment, rng *mrand.Rand) []byte {
	t.Helper()
	r := NewReassembler(Config{})
	var out []byte
	for k, i := range rng.Perm(len(frags)) {
		msg, complete, err := r.Add(time.Unix(0, 0), reparse(t, frags[i]))
		if err != nil {
			t.Fatal(err)
		}
		if complete != (k == len(frags)-1) {
			t.Fatalf("complete=%v after %d of %d", complete, k+1, len(frags))
		}
		out = msg
	}
	return out
}
