package sphinx

import (
	"crypto/ecdh"
	"crypto/rand"
	"slices"
	"testing"
	"time"
)

// The benchmarks' baseline is BenchmarkX25519Floor: the two Montgomery
// ladders (one shared secret, one blinding) that any Sphinx hop on this curve
// must compute, done with crypto/ecdh on keys made outside the loop.
//
// Each benchmark also reports its cost as a multiple of that floor
// ("x-floor"), measured so that the ratio survives a shared, noisy machine:
// the timed loop runs in chunks, a small batch of the floor is timed (with
// the benchmark's timer stopped) right before each chunk, and the reported
// ratio is the median over chunks of chunk cost / floor cost.

// floorOp is one iteration of the floor.
type floorOp struct {
	k1, k2 *ecdh.PrivateKey
	pub    *ecdh.PublicKey
}

func newFloorOp() *floorOp {
	k1, _ := ecdh.X25519().GenerateKey(rand.Reader)
	k2, _ := ecdh.X25519().GenerateKey(rand.Reader)
	peer, _ := ecdh.X25519().GenerateKey(rand.Reader)
	return &floorOp{k1: k1, k2: k2, pub: peer.PublicKey()}
}

func (f *floorOp) run() error {
	if _, err := f.k1.ECDH(f.pub); err != nil {
		return err
	}
	_, err := f.k2.ECDH(f.pub)
	return err
}

func BenchmarkX25519Floor(b *testing.B) {
	f := newFloorOp()
	b.ReportAllocs()
	for b.Loop() {
		if err := f.run(); err != nil {
			b.Fatal(err)
		}
	}
}

const (
	benchChunk = 64 // iterations of the benchmarked operation per chunk
	floorBatch = 16 // iterations of the floor before each chunk
)

// paired runs op b.N times in chunks, timing a floor batch before each, and
// reports the median per-chunk ratio as "x-floor". op gets the iteration
// number.
func paired(b *testing.B, op func(i int)) {
	f := newFloorOp()
	var ratios []float64
	b.ResetTimer()
	for i := 0; i < b.N; {
		b.StopTimer()
		start := time.Now()
		for range floorBatch {
			f.run()
		}
		floorNs := float64(time.Since(start).Nanoseconds()) / floorBatch
		b.StartTimer()

		n := min(benchChunk, b.N-i)
		start = time.Now()
		for j := range n {
			op(i + j)
		}
		opNs := float64(time.Since(start).Nanoseconds()) / float64(n)
		ratios = append(ratios, opNs/floorNs)
		i += n
	}
	b.StopTimer()
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "x-floor")
}

// BenchmarkProcessRegular is one hop of a regular packet at a node with the
// default 10-million-tag replay filter, into a buffer the caller provides.
func BenchmarkProcessRegular(b *testing.B) { benchmarkProcess(b, RegularPacket) }

// BenchmarkProcessAck is the same for an ack packet.
func BenchmarkProcessAck(b *testing.B) { benchmarkProcess(b, AckPacket) }

func benchmarkProcess(b *testing.B, size PacketSize) {
	nodes := newTestRoute(b, 4)
	filter := NewReplayFilter(DefaultReplayCapacity, DefaultReplayFalsePositiveRate)
	proc := NewProcessor(nodes[0].key, filter)
	// Distinct packets, since the filter refuses repeats; the filter is
	// reset (outside the timer) each time the pool wraps around.
	const pool = 512
	pkts := make([][]byte, pool)
	for i := range pkts {
		var err error
		pkts[i], err = NewPacket(rand.Reader, size, hopsOf(nodes), Destination{}, SURBID{}, make([]byte, size.PlaintextLen()))
		if err != nil {
			b.Fatal(err)
		}
	}
	dst := make([]byte, 0, size.Len())
	b.SetBytes(int64(size.Len()))
	b.ReportAllocs()
	paired(b, func(i int) {
		if i > 0 && i%pool == 0 {
			b.StopTimer()
			filter.Reset()
			b.StartTimer()
		}
		if _, err := proc.Process(dst, pkts[i%pool]); err != nil {
			b.Fatal(err)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}

// BenchmarkCreateRegular4Hops builds a whole regular packet for four hops.
func BenchmarkCreateRegular4Hops(b *testing.B) {
	nodes := newTestRoute(b, 4)
	route := hopsOf(nodes)
	msg := make([]byte, RegularPacket.PlaintextLen())
	dst := make([]byte, 0, RegularPacket.Len())
	b.ReportAllocs()
	paired(b, func(int) {
		if _, err := AppendPacket(dst, rand.Reader, RegularPacket, route, Destination{}, SURBID{}, msg); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkSURBCreate makes a four-hop SURB.
func BenchmarkSURBCreate(b *testing.B) {
	nodes := newTestRoute(b, 4)
	route := hopsOf(nodes)
	b.ReportAllocs()
	paired(b, func(int) {
		if _, err := NewSURB(rand.Reader, route, Destination{}, SURBID{}); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkSURBUse wraps a regular reply on a four-hop SURB.
func BenchmarkSURBUse(b *testing.B) {
	nodes := newTestRoute(b, 4)
	surb, err := NewSURB(rand.Reader, hopsOf(nodes), Destination{}, SURBID{})
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, RegularPacket.PlaintextLen())
	dst := make([]byte, 0, RegularPacket.Len())
	b.ReportAllocs()
	paired(b, func(int) {
		if _, err := surb.AppendPacket(dst, RegularPacket, msg); err != nil {
			b.Fatal(err)
		}
	})
}
