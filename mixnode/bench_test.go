package mixnode

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/node"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/internal/wire/wiretest"
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
// Two nodes run side by side: one with plain links (no directory), and one
// with Noise links (a directory lists the sender as a gateway and the sink
// as a layer-2 node, with their Noise keys, so both of the node's links are
// Noise links, handshakes made before the timed loop).
//
// Baselines, measured in the same run so that the ratios survive a machine
// shared with other work: the bare Sphinx rate (the same kind of packets
// peeled single-threaded by a sphinx.Processor with a replay filter of the
// same size), and, for Noise, the plain node. The run alternates: a batch
// of benchBareBatch bare packets (timer stopped), then a chunk of benchChunk
// packets through the plain node and a chunk through the Noise node, in
// turns going first (timer running, each from its first frame written to
// its last packet counted), and so on. Reported:
//
//   - packets/s: the plain node's rate over all chunks;
//   - noise-packets/s: the Noise node's;
//   - bare-packets/s: the bare rate over all batches;
//   - ratio-to-bare: the median over rounds of plain chunk rate / bare rate;
//   - noise-to-plain: the median over rounds of Noise chunk rate / plain
//     chunk rate (the cost of Noise links: 1 means none);
//   - per-core: ratio-to-bare divided by min(workers, GOMAXPROCS), the cores
//     the node's workers can use;
//   - cpu-ratio (Linux only): the process's CPU time per packet during the
//     bare batches over its CPU time per packet during the plain chunks:
//     the node's rate per fully used core as a share of the bare rate. It
//     charges the benchmark's own sender and sink to the node. (The
//     calling thread's CPU time would suit the bare batches better, but in
//     a virtual machine it under-reports.)
//
// Sender, nodes and sinks share the machine's cores, so with
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
	benchChunk          = 500 // packets through a node per measurement
	benchBareBatch      = 100 // packets peeled bare per measurement
)

// benchLink is a node under benchmark with its sender and sink.
type benchLink struct {
	n         *Node
	w         io.Writer // the sender's connection
	stream    []byte    // the frames to send, b.N of them
	arrived   atomic.Int64
	target    atomic.Int64
	chunkDone chan struct{}
	tokens    chan struct{}
}

// newBenchLink starts a node with the given workers, its sink and its
// sender, and builds count packets for it; with secure, every link is a
// Noise link.
func newBenchLink(b *testing.B, workers, count int, secure bool) *benchLink {
	l := &benchLink{chunkDone: make(chan struct{}, 1), tokens: make(chan struct{}, benchWindow)}
	for range benchWindow {
		l.tokens <- struct{}{}
	}
	cfg := wire.ServerConfig{Handler: wire.HandlerFunc(func(*wire.Peer, wire.Header, []byte) {
		if l.arrived.Add(1) == l.target.Load() {
			l.chunkDone <- struct{}{}
		}
		l.tokens <- struct{}{}
	})}
	var sinkNoise, sender *node.NoiseKey
	var dir *directory.Client
	if secure {
		sinkNoise, sender = benchNoiseKey(b), benchNoiseKey(b)
		cfg.Noise = &wire.NoiseConfig{Key: sinkNoise, Peers: wiretest.AnyPeers{}}
		dir = newDirectory(b)
	}
	srv, err := wire.NewServer(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	sinkKey, _ := sphinx.GenerateKey(rand.Reader)
	if secure {
		benchRegister(b, dir, 2, boundAddr(ln), sinkNoise)
		benchRegister(b, dir, 0, netip.MustParseAddrPort("127.0.0.1:1"), sender)
	}

	l.n = newNode(b, 1, func(c *Config) {
		c.Workers = workers
		c.ReplayCapacity = benchReplayCapacity
		if secure {
			c.DirectoryURL = dir.BaseURL
		}
	})
	sinkAddr, _ := sphinx.NewNodeAddress(boundAddr(ln))
	ps := packets(b, count, sphinx.RegularPacket, hop(b, l.n, 0), sphinx.Hop{Address: sinkAddr, PublicKey: sinkKey.PublicKey()})
	l.stream = frames(b, ps...)
	if secure {
		eventually(b, "the node fetches the topology", func() bool { return l.n.hops.Known(boundAddr(ln)) })
	}
	c := dial(b, l.n)
	l.w = c
	if secure {
		nc, err := wire.Initiate(c, sender, l.n.NoiseKey().Public(), time.Now().Add(waitTimeout))
		if err != nil {
			b.Fatal(err)
		}
		l.w = nc
	}
	return l
}

// chunk sends packets [i, j) with at most benchWindow in flight, in writes
// of benchBatch frames (so that the sender costs the process little next
// to the node), and returns when the last has arrived.
func (l *benchLink) chunk(b *testing.B, i, j int) time.Duration {
	frameLen := wire.HeaderSize + sphinx.RegularPacket.Len()
	l.target.Store(int64(j))
	start := time.Now()
	for i < j {
		k := min(i+benchBatch, j)
		for range k - i {
			<-l.tokens
		}
		if _, err := l.w.Write(l.stream[i*frameLen : k*frameLen]); err != nil {
			b.Fatal(err)
		}
		i = k
	}
	select {
	case <-l.chunkDone:
	case <-time.After(30 * time.Second):
		b.Fatalf("only %d of %d packets arrived; node stats %+v", l.arrived.Load(), j, l.n.Stats())
	}
	return time.Since(start)
}

func benchmarkThroughput(b *testing.B, workers int) {
	plain := newBenchLink(b, workers, b.N, false)
	secure := newBenchLink(b, workers, b.N, true)
	chunks := (b.N + benchChunk - 1) / benchChunk
	bare := newBareBench(b, chunks*benchBareBatch)

	var ratios, noiseRatios []float64
	var bareTime, plainTime, noiseTime, nodeCPU, bareCPU time.Duration
	cpuOK := true
	b.ResetTimer()
	for i := 0; i < b.N; i += benchChunk {
		j := min(i+benchChunk, b.N)
		b.StopTimer()
		wall, cpu, ok := bare.run(b, benchBareBatch)
		bareTime, bareCPU, cpuOK = bareTime+wall, bareCPU+cpu, cpuOK && ok
		// The two nodes take turns going first, so that neither gains
		// from what the other left warm.
		var s time.Duration
		noiseFirst := (i/benchChunk)%2 == 1
		if noiseFirst {
			b.StartTimer()
			s = secure.chunk(b, i, j)
			b.StopTimer()
		}
		cpu0, _ := processCPU()
		b.StartTimer()
		p := plain.chunk(b, i, j)
		b.StopTimer()
		cpu1, _ := processCPU()
		nodeCPU += cpu1 - cpu0
		if !noiseFirst {
			b.StartTimer()
			s = secure.chunk(b, i, j)
			b.StopTimer()
		}
		plainTime, noiseTime = plainTime+p, noiseTime+s
		ratios = append(ratios, (float64(j-i)/p.Seconds())/(benchBareBatch/wall.Seconds()))
		noiseRatios = append(noiseRatios, p.Seconds()/s.Seconds())
		b.StartTimer()
	}
	b.StopTimer()

	slices.Sort(ratios)
	slices.Sort(noiseRatios)
	ratio := ratios[len(ratios)/2]
	b.ReportMetric(float64(b.N)/plainTime.Seconds(), "packets/s")
	b.ReportMetric(float64(b.N)/noiseTime.Seconds(), "noise-packets/s")
	b.ReportMetric(float64(chunks*benchBareBatch)/bareTime.Seconds(), "bare-packets/s")
	b.ReportMetric(ratio, "ratio-to-bare")
	b.ReportMetric(noiseRatios[len(noiseRatios)/2], "noise-to-plain")
	b.ReportMetric(ratio/float64(min(workers, runtime.GOMAXPROCS(0))), "per-core")
	b.ReportMetric(float64(plain.n.Stats().DroppedTotal()+secure.n.Stats().DroppedTotal()), "dropped")
	if cpuOK && nodeCPU > 0 {
		perBare := bareCPU.Seconds() / float64(chunks*benchBareBatch)
		perNode := nodeCPU.Seconds() / float64(b.N)
		b.ReportMetric(perBare/perNode, "cpu-ratio")
	}
}

func benchNoiseKey(b *testing.B) *node.NoiseKey {
	k, err := node.GenerateNoiseKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// benchRegister lists a node at addr with the Noise key noise in dir: a
// mixnode of the given layer, or a gateway for layer 0.
func benchRegister(b *testing.B, dir *directory.Client, layer int, addr netip.AddrPort, noise *node.NoiseKey) {
	s := &sink{addr: addr, key: must(sphinx.GenerateKey(rand.Reader)), noise: noise}
	s.register(b, dir, layer)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
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
