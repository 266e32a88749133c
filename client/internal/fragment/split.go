package fragment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// paddingMarker ends the message proper; only zero bytes follow it.
const paddingMarker = 0x01

// maxMessageLen keeps the layout arithmetic far from overflow; no slice
// comes near it.
const maxMessageLen = math.MaxInt / 4

// maxSetIDAttempts bounds how many 4-byte draws Split makes for one set id
// before it gives up on the random source.
const maxSetIDAttempts = 64

// layout is the arrangement of a padded message into fragments of one
// capacity, as Nym's nym-sphinx-chunking crate arranges it: sets of 255
// fragments, the last set possibly shorter; fragment 1 of every set but the
// first, and fragment 255 of every set but the last, carry the linked header.
type layout struct {
	capacity int
	unlinked int // payload bytes of a fragment with the 7-byte header
	linked   int // payload bytes of a fragment with the 10-byte header
}

func newLayout(capacity int) (layout, error) {
	if capacity < MinCapacity || capacity > MaxCapacity {
		return layout{}, fmt.Errorf("fragment: capacity %d outside %d..%d", capacity, MinCapacity, MaxCapacity)
	}
	return layout{
		capacity: capacity,
		unlinked: capacity - UnlinkedHeaderLen,
		linked:   capacity - LinkedHeaderLen,
	}, nil
}

// sets returns the number of sets n fragments make.
func sets(n int) int {
	return (n + MaxSetFragments - 1) / MaxSetFragments
}

// carries returns the number of padded-message bytes n fragments carry.
// Every set boundary turns two fragments into linked ones.
func (l layout) carries(n int) int {
	return n*l.unlinked - 2*linkExtraLen*(sets(n)-1)
}

// fragments returns the smallest number of fragments that carry m bytes
// (m >= 1). carries is increasing in n because the capacity is at least
// MinCapacity, so a binary search finds it; this is the count Nym's
// number_of_required_fragments computes.
func (l layout) fragments(m int) int {
	if m <= MaxSetFragments*l.unlinked {
		return (m + l.unlinked - 1) / l.unlinked
	}
	// carries(n) >= n*(unlinked-1) for every n >= 1, so hi carries m.
	lo, hi := MaxSetFragments+1, m/(l.unlinked-1)+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if l.carries(mid) >= m {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// FragmentCount returns how many fragments (and so packets) Split makes of a
// message of messageLen bytes at the given capacity.
func FragmentCount(messageLen, capacity int) (int, error) {
	l, err := newLayout(capacity)
	if err != nil {
		return 0, err
	}
	if messageLen < 0 || messageLen > maxMessageLen {
		return 0, fmt.Errorf("fragment: message length %d outside 0..%d", messageLen, maxMessageLen)
	}
	return l.fragments(messageLen + PaddingOverhead), nil
}

// Split pads message to `message ‖ 0x01 ‖ zero bytes` and cuts it into
// fragments whose wire form (Fragment.AppendBinary) is exactly capacity bytes
// each, in sending order. It draws a random set id in 1..MaxSetID from rand
// for every set (distinct within the message) and chains the sets when the
// message needs more than 255 fragments.
//
// The payloads of the returned fragments share one buffer that Split does
// not keep; message is not retained. Split fails if capacity is outside
// MinCapacity..MaxCapacity or rand fails.
func Split(message []byte, capacity int, rand io.Reader) ([]Fragment, error) {
	l, err := newLayout(capacity)
	if err != nil {
		return nil, err
	}
	if len(message) > maxMessageLen {
		return nil, fmt.Errorf("fragment: message length %d above %d", len(message), maxMessageLen)
	}
	n := l.fragments(len(message) + PaddingOverhead)
	setCount := sets(n)
	ids, err := newSetIDs(rand, setCount)
	if err != nil {
		return nil, err
	}

	padded := make([]byte, l.carries(n))
	copy(padded, message)
	padded[len(message)] = paddingMarker

	frags := make([]Fragment, n)
	off := 0
	for i := range frags {
		s, pos := i/MaxSetFragments, i%MaxSetFragments+1
		total := MaxSetFragments
		if s == setCount-1 {
			total = n - s*MaxSetFragments
		}
		f := Fragment{SetID: ids[s], Total: uint8(total), Index: uint8(pos)}
		if pos == 1 && s > 0 {
			f.PreviousSetID = ids[s-1]
		}
		if pos == MaxSetFragments && s < setCount-1 {
			f.NextSetID = ids[s+1]
		}
		size := l.unlinked
		if f.Linked() {
			size = l.linked
		}
		f.Payload = padded[off : off+size : off+size]
		off += size
		frags[i] = f
	}
	return frags, nil
}

// newSetIDs draws count distinct set ids in 1..MaxSetID from rand.
func newSetIDs(rand io.Reader, count int) ([]int32, error) {
	if rand == nil {
		return nil, errors.New("fragment: no random source")
	}
	ids := make([]int32, count)
	var buf [4]byte
	for i := range ids {
		for attempt := 0; ; attempt++ {
			if attempt == maxSetIDAttempts {
				return nil, fmt.Errorf("fragment: random source gave no usable set id in %d draws", maxSetIDAttempts)
			}
			if _, err := io.ReadFull(rand, buf[:]); err != nil {
				return nil, fmt.Errorf("fragment: reading a set id: %w", err)
			}
			id := int32(binary.BigEndian.Uint32(buf[:]) &^ flagBit)
			if id != 0 && !containsID(ids[:i], id) {
				ids[i] = id
				break
			}
		}
	}
	return ids, nil
}

// containsID is a linear scan: a message of several megabytes has a dozen sets.
func containsID(ids []int32, id int32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// unpad removes the padding from a reassembled padded message of n
// fragments at capacity wireLen, in place. It refuses padding Split would
// not have produced: a last non-zero byte other than the marker, or more
// padding than needed, so that n-1 fragments would have done.
func unpad(padded []byte, n, wireLen int) ([]byte, error) {
	end := len(padded) - 1
	for end >= 0 && padded[end] == 0 {
		end--
	}
	if end < 0 {
		return nil, errors.New("fragment: message padding: no 0x01 marker")
	}
	if padded[end] != paddingMarker {
		return nil, fmt.Errorf("fragment: message padding: last non-zero byte is 0x%02x, want 0x01", padded[end])
	}
	l, err := newLayout(wireLen)
	if err != nil {
		return nil, err
	}
	if want := l.fragments(end + PaddingOverhead); want != n {
		return nil, fmt.Errorf("fragment: message padding: %d-byte message sent in %d fragments, want %d", end, n, want)
	}
	return padded[:end], nil
}
