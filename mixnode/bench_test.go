package mixnode

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// BenchmarkMixnodeThroughput measures how many regular packets a second one
// mixnode peels and forwards over loopback TCP with zero delay: a sender
// writes frames into the node's listener over one connection, the node
// peels them (replay filter included) and forwards them over its outbound
// pool to a sink that counts arrivals. Packets are built before the timed
// loop. The sender keeps at most benchWindow packets in flight (sent and not
// yet counted), well under the node's queue bounds, so that the figure is
// the node's rate, not its overload behaviour; "dropped" reports any drop.
//
// The baseline is the bare Sphinx rate: the same kind of packets peeled
// single-threaded by a sphinx.Processor with a replay filter of the same
// size. To survive a machine shared with other work, the run alternates:
// a batch of benchBareBatch bare packets (timer stopped), then a chunk of
// benchChunk packets through the node (timer running, from the chunk's
// first frame written to its last packet counted), and so on; each chunk's
// rate is compared with the bare batch just before it. Reported:
//
//   - packets/s: the node's rate over all chunks;
//   - bare-packets/s: the bare rate over all batches;
//   - ratio-to-bare: the median over chunks of chunk rate / bare rate;
//   - per-core: ratio-to-bare divided by min(workers, GOMAXPROCS), the cores
//     the node's workers can use;
//   - cpu-ratio (Linux only): the process's CPU time per packet during the
//     bare batches over its CPU time per packet during the chunks: the
//     node's rate per fully used core as a share of the bare rate. It
//     charges the benchmark's own sender and sink to the node. (The
//     calling thread's CPU time would suit the bare batches better, but in
//     a virtual machine it under-reports.)
//
// Sender, node and sink share the machine's cores, so with
// workers=GOMAXPROCS the wall-clock figures also pay for the sender's and
// sink's work.
func BenchmarkMixnodeThroughput(b *testing.B) {
	counts := []int{1}
	if p := runtime.GOMAXPROCS(0); p > 1 {
		counts = append(counts, p)
	}
	for _, workers := range counts {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) { benchmarkThroughput(b, workers) })
	}
}

const (
	benchReplayCapacity = 1 << 20
	benchWindow         = 512
	benchBatch          = 64  // frames per write
	benchChunk          = 500 // packets through the node per measurement
	benchBareBatch      = 100 // packets peeled bare per measurement
)

func benchmarkThroughput(b *testing.B, workers int) {
	n := newNode(b, 1, func(c *Config) {
		c.Workers = workers
		c.ReplayCapacity = benchReplayCapacity
	})
	var arrived, target atomic.Int64
	chunkDone := make(chan struct{}, 1)
	tokens := make(chan struct{}, benchWindow)
	for range benchWindow {
		tokens <- struct{}{}
	}
	srv, err := wire.NewServer(wire.ServerConfig{Handler: wire.HandlerFunc(func(netip.AddrPort, wire.Header, []byte) {
		if arrived.Add(1) == target.Load() {
			chunkDone <- struct{}{}
		}
		tokens <- struct{}{}
	})})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	sinkAddr, _ := sphinx.NewNodeAddress(boundAddr(ln))
	sinkKey, _ := sphinx.GenerateKey(rand.Reader)

	ps := packets(b, b.N, sphinx.RegularPacket, hop(b, n, 0), sphinx.Hop{Address: sinkAddr, PublicKey: sinkKey.PublicKey()})
	stream := frames(b, ps...)
	ps = nil
	frameLen := wire.HeaderSize + sphinx.RegularPacket.Len()
	c := dial(b, n)
	chunks := (b.N + benchChunk - 1) / benchChunk
	bare := newBareBench(b, chunks*benchBareBatch)

	// send writes packets [i, j) with at most benchWindow in flight, in
	// writes of benchBatch frames, so that the sender costs the process
	// little next to the node.
	send := func(i, j int) error {
		for i < j {
			k := min(i+benchBatch, j)
			for range k - i {
				<-tokens
			}
			if _, err := c.Write(stream[i*frameLen : k*frameLen]); err != nil {
				return err
			}
			i = k
		}
		return nil
	}

	var ratios []float64
	var bareTime, nodeCPU time.Duration
	var bareCPU time.Duration
	cpuOK := true
	b.ResetTimer()
	for i := 0; i < b.N; i += benchChunk {
		j := min(i+benchChunk, b.N)
		b.StopTimer()
		wall, cpu, ok := bare.run(b, benchBareBatch)
		bareTime, bareCPU, cpuOK = bareTime+wall, bareCPU+cpu, cpuOK && ok
		target.Store(int64(j))
		cpu0, _ := processCPU()
		b.StartTimer()

		start := time.Now()
		if err := send(i, j); err != nil {
			b.Fatal(err)
		}
		select {
		case <-chunkDone:
		case <-time.After(30 * time.Second):
			b.Fatalf("only %d of %d packets arrived; node stats %+v", arrived.Load(), j, n.Stats())
		}
		chunk := time.Since(start)

		b.StopTimer()
		cpu1, _ := processCPU()
		nodeCPU += cpu1 - cpu0
		ratios = append(ratios, (float64(j-i)/chunk.Seconds())/(benchBareBatch/wall.Seconds()))
		b.StartTimer()
	}
	b.StopTimer()

	slices.Sort(ratios)
	ratio := ratios[len(ratios)/2]
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
	b.ReportMetric(float64(chunks*benchBareBatch)/bareTime.Seconds(), "bare-packets/s")
	b.ReportMetric(ratio, "ratio-to-bare")
	b.ReportMetric(ratio/float64(min(workers, runtime.GOMAXPROCS(0))), "per-core")
	b.ReportMetric(float64(n.Stats().DroppedTotal()), "dropped")
	if cpuOK && nodeCPU > 0 {
		perBare := bareCPU.Seconds() / float64(chunks*benchBareBatch)
		perNode := nodeCPU.Seconds() / float64(b.N)
		b.ReportMetric(perBare/perNode, "cpu-ratio")
	}
}

// bareBench peels packets with a bare sphinx.Processor: the benchmark's
// baseline.
type bareBench struct {
	proc *sphinx.Processor
	ps   [][]byte
}

func newBareBench(b *testing.B, count int) *bareBench {
	b.Helper()
	key, err := sphinx.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	next, _ := sphinx.NewNodeAddress(netip.MustParseAddrPort("127.0.0.1:1"))
	route := []sphinx.Hop{{PublicKey: key.PublicKey()}, {Address: next, PublicKey: key.PublicKey()}}
	return &bareBench{
		proc: sphinx.NewProcessor(key, sphinx.NewReplayFilter(benchReplayCapacity, 0)),
		ps:   packets(b, count, sphinx.RegularPacket, route...),
	}
}

// run peels the next count packets and returns the wall time and the
// process's CPU time (ok false where that is not measured).
func (bb *bareBench) run(b *testing.B, count int) (wall, cpu time.Duration, ok bool) {
	cpu0, ok := processCPU()
	start := time.Now()
	for _, p := range bb.ps[:count] {
		if _, err := bb.proc.Process(p[:0], p); err != nil {
			b.Fatal(err)
		}
	}
	wall = time.Since(start)
	cpu1, _ := processCPU()
	bb.ps = bb.ps[count:]
	return wall, cpu1 - cpu0, ok
}
