package capture

import "sort"

// Framer splits the byte stream of one kind of link into packets, knowing
// the packet sizes of that kind: the lengths an observer sees again and
// again. A segment carries whole packets, several when the sender wrote
// them together, or part of a burst that TCP cut anywhere; the framer keeps
// the bytes that do not yet add up to whole packets until they do.
type Framer struct {
	// Sizes are the packet sizes, ascending, each as it shows alone on
	// the link (Overhead included); the largest is the data packet.
	Sizes []int
	// Overhead is what every write adds once, whatever the packets in it:
	// on a Noise link the frame header and the AEAD tag of the message
	// that carries them (so two packets written together are shorter than
	// two alone). 0 on a plain link.
	Overhead int

	// best[v] is the fewest packets of the sizes but the largest that add
	// up to v (-1: none), for v up to len(best)-1, and from[v] the size
	// index used last; built on first use.
	best, from []int
	// alone is the framer of packets written one to a write (each size as
	// it shows alone, no overhead to take off); built on first use.
	alone *Framer
}

// MaxPacketSize bounds the packet sizes LearnSizes takes: a longer segment
// is several packets or part of a burst. peapod's data packets (Nym's
// regular size) are about 2.4 KB on every link.
const MaxPacketSize = 8 << 10

// maxCoalesced is the most packets LearnSizes expects in one write: a
// frequent length that is a sum of at most this many smaller sizes is
// taken for packets written together, not for a size of its own.
const maxCoalesced = 8

// LearnSizes returns the packet sizes of a kind of link from the lengths
// of its segments: each length up to MaxPacketSize seen at least minCount
// times and in at least minShare of the segments, unless it is a sum of at
// most maxCoalesced smaller such lengths (packets written together).
func LearnSizes(lengths []int, minShare float64) []int {
	sizes, _ := learnSizes(lengths, minShare, 0)
	return sizes
}

// LearnFramer returns the framer of a kind of link from the lengths of its
// segments, trying each of the per-write overheads the protocol may add
// (0, a plain link, is always tried): the one that explains the lengths
// with the fewest packet sizes wins, 0 on a tie. The overheads are public
// protocol facts (the Noise framing of docs/protocol.md §2), which an
// observer knows as it knows the topology.
func LearnFramer(lengths []int, minShare float64, overheads ...int) *Framer {
	f := &Framer{Sizes: LearnSizes(lengths, minShare)}
	for _, o := range overheads {
		if sizes, ok := learnSizes(lengths, minShare, o); ok && o > 0 && len(sizes) < len(f.Sizes) {
			f.Sizes, f.Overhead = sizes, o
		}
	}
	return f
}

// learnSizes is LearnSizes on a link whose writes each add overhead bytes
// (a length l is then overhead plus packets of sizes s-overhead); false
// when some frequent length is too short to be a write of that link.
func learnSizes(lengths []int, minShare float64, overhead int) ([]int, bool) {
	count := make(map[int]int)
	for _, l := range lengths {
		count[l]++
	}
	var cands []int
	for l, c := range count {
		if l <= MaxPacketSize && c >= minCount && float64(c) >= minShare*float64(len(lengths)) {
			cands = append(cands, l)
		}
	}
	sort.Ints(cands)
	var sizes, payloads []int
	for _, l := range cands {
		if l <= overhead {
			return nil, false
		}
		if !sumOf(l-overhead, payloads, maxCoalesced) {
			sizes, payloads = append(sizes, l), append(payloads, l-overhead)
		}
	}
	return sizes, true
}

// sumOf reports whether n is a sum of at most k of sizes (repeats
// allowed): whether the fewest such packets adding up to n are at most k.
func sumOf(n int, sizes []int, k int) bool {
	fewest := make([]int, n+1) // -1: no sum
	for v := 1; v <= n; v++ {
		fewest[v] = -1
		for _, s := range sizes {
			if s <= v && fewest[v-s] >= 0 && (fewest[v] < 0 || fewest[v-s]+1 < fewest[v]) {
				fewest[v] = fewest[v-s] + 1
			}
		}
	}
	return fewest[n] >= 0 && fewest[n] <= k
}

// maxWrites bounds the writes split looks for in one run of bytes on a
// link with a per-write overhead, when writes may carry several packets;
// past it, a run is taken only for packets written one to a write.
const maxWrites = 16

// split returns how many packets of each size (indexed like Sizes) add up
// to n, with as many data packets as can be (but at most maxCoalesced small
// ones to a data packet), or nil when none do. With an overhead, n is
// taken for the fewest writes, up to maxWrites, that can carry such
// packets, one overhead each; failing that, for packets written one to a
// write, however many (an idle sender's burst: on loopback one 64 KiB
// segment holds 26 data packets written alone). A run of many writes that
// each carry several packets is not looked for: lengths alone fit it too
// easily to a part of a burst that TCP cut.
func (f *Framer) split(n int) []int {
	if f.Overhead == 0 {
		return f.splitPackets(n)
	}
	for w := 1; w <= maxWrites && n-w*f.Overhead > 0; w++ {
		if c := f.splitPackets(n - w*f.Overhead); c != nil {
			total := 0
			for _, k := range c {
				total += k
			}
			if total >= w {
				return c
			}
		}
	}
	if f.alone == nil {
		f.alone = &Framer{Sizes: f.Sizes}
	}
	return f.alone.splitPackets(n)
}

// splitPackets is split of n bytes of packets, without the overheads.
func (f *Framer) splitPackets(n int) []int {
	if len(f.Sizes) == 0 || n <= 0 {
		return nil
	}
	data := f.Sizes[len(f.Sizes)-1] - f.Overhead
	small := make([]int, len(f.Sizes)-1)
	for i, s := range f.Sizes[:len(f.Sizes)-1] {
		small[i] = s - f.Overhead
	}
	if f.best == nil {
		// Small packets between data packets: up to about 16 data packets'
		// worth.
		limit := 16 * data
		f.best, f.from = make([]int, limit+1), make([]int, limit+1)
		for v := 1; v <= limit; v++ {
			f.best[v] = -1
			for i, s := range small {
				if s <= v && f.best[v-s] >= 0 && (f.best[v] < 0 || f.best[v-s]+1 < f.best[v]) {
					f.best[v], f.from[v] = f.best[v-s]+1, i
				}
			}
		}
	}
	for k := n / data; k >= 0; k-- {
		r := n - k*data
		if r >= len(f.best) {
			break
		}
		// Small frames come a few to a data packet (its ack, a
		// confirmation); a run of many small ones is not taken for a data
		// packet, whatever their sum.
		if f.best[r] < 0 || (k > 0 && f.best[r] > maxCoalesced*k) {
			continue
		}
		counts := make([]int, len(f.Sizes))
		counts[len(counts)-1] = k
		for v := r; v > 0; v -= small[f.from[v]] {
			counts[f.from[v]]++
		}
		return counts
	}
	return nil
}

// minCount is the fewest segments of one length that make it a packet
// size.
const minCount = 3

// stream is the framer's state for one direction of one connection.
type stream struct{ pending int }

// maxPending bounds the bytes a stream keeps while waiting for a packet's
// end (a loopback segment carries up to 64 KiB); beyond it they are
// dropped as unframed.
const maxPending = 256 << 10

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
	if len(f.Sizes) == 0 || s.pending > maxPending {
		unframed, s.pending = s.pending, 0
	}
	return nil, unframed
}
