package capture

import (
	"slices"
	"sort"
)

// Framer splits the byte stream of one kind of link into packets, knowing
// the packet sizes of that kind: the lengths an observer sees again and
// again. A segment carries whole packets, several when the sender wrote
// them together, or, rarely, part of one; the framer keeps the bytes that
// do not yet add up to whole packets until they do.
type Framer struct {
	// Sizes are the packet sizes, ascending; the largest is the data
	// packet.
	Sizes []int
	memo  map[int][]int
}

// LearnSizes returns the packet sizes of a kind of link from the lengths
// of its segments: each length seen at least minCount times whose segments
// carry at least minShare of the bytes, unless it is a sum of smaller such
// lengths (packets written together). Shares of bytes, not of segments:
// a link may carry many more small control frames than data packets.
func LearnSizes(lengths []int, minShare float64) []int {
	count := make(map[int]int)
	total := 0
	for _, l := range lengths {
		count[l]++
		total += l
	}
	var cands []int
	for l, c := range count {
		if c >= minCount && float64(c*l) >= minShare*float64(total) {
			cands = append(cands, l)
		}
	}
	sort.Ints(cands)
	f := &Framer{}
	for _, l := range cands {
		if f.split(l) == nil {
			f.Sizes = append(f.Sizes, l)
			f.memo = nil
		}
	}
	return f.Sizes
}

// split returns how many packets of each size (indexed like Sizes) add up
// to n, with the fewest packets, or nil when none do.
func (f *Framer) split(n int) []int {
	if len(f.Sizes) == 0 || n <= 0 {
		return nil
	}
	if f.memo == nil {
		f.memo = make(map[int][]int)
	}
	if r, ok := f.memo[n]; ok {
		return r
	}
	// best[v] = fewest packets summing to v, from[v] = the size index used.
	best := make([]int, n+1)
	from := make([]int, n+1)
	for v := 1; v <= n; v++ {
		best[v] = -1
		for i, s := range f.Sizes {
			if s <= v && best[v-s] >= 0 && (best[v] < 0 || best[v-s]+1 < best[v]) {
				best[v], from[v] = best[v-s]+1, i
			}
		}
	}
	var r []int
	if best[n] >= 0 {
		r = make([]int, len(f.Sizes))
		for v := n; v > 0; v -= f.Sizes[from[v]] {
			r[from[v]]++
		}
	}
	f.memo[n] = r
	return r
}

// minCount is the fewest segments of one length that make it a packet
// size.
const minCount = 3

// stream is the framer's state for one direction of one connection.
type stream struct{ pending int }

// maxPendingPackets bounds the bytes a stream keeps while waiting for a
// packet's end, in data packets; beyond it they are dropped as unframed.
const maxPendingPackets = 4

// feed takes a segment of n bytes and returns the packets it completes
// (counts per size) and the bytes given up as unframed.
func (f *Framer) feed(s *stream, n int) (counts []int, unframed int) {
	if c := f.split(s.pending + n); c != nil {
		s.pending = 0
		return c, 0
	}
	if c := f.split(n); c != nil {
		unframed, s.pending = s.pending, 0
		return c, unframed
	}
	s.pending += n
	if len(f.Sizes) == 0 || s.pending > maxPendingPackets*slices.Max(f.Sizes) {
		unframed, s.pending = s.pending, 0
	}
	return nil, unframed
}
