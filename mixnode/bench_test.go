package mixnode

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"runtime"
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
// pool to a sink that counts arrivals. The clock runs from the first frame
// written to the last one counted. Packets are built before the timed loop.
//
// The sender keeps at most benchWindow packets in flight (sent and not yet
// counted), well under the node's queue bounds, so that the figure is the
// node's rate, not its overload behaviour; "dropped" reports any drop.
//
// The baseline, measured in the same process just before the timed loop,
// is the bare Sphinx rate: the same kind of packets peeled single-threaded
// by a sphinx.Processor with a replay filter of the same size, best of
// three batches. Reported:
//
//   - packets/s: the node's wall-clock rate;
//   - bare-packets/s: the baseline's wall-clock rate;
//   - ratio-to-bare: packets/s over bare-packets/s;
//   - per-core: ratio-to-bare divided by min(workers, GOMAXPROCS), the cores
//     the node's workers can use;
//   - cpu-ratio (Linux): the baseline's CPU time per packet (its thread's)
//     over the whole process's CPU time per packet during the timed loop,
//     that is the node's rate per fully used core as a share of the bare
//     rate. It counts the benchmark's own sender and sink against the node,
//     so it is pessimistic, but unlike the wall-clock figures it does not
//     move when other processes compete for the cores.
//
// Sender, node and sink share the machine's cores, so with
// workers=GOMAXPROCS the wall-clock per-core figure also pays for the
// sender's and sink's work.
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
	benchBatch          = 64
)

func benchmarkThroughput(b *testing.B, workers int) {
	bare, bareCPU := bareRate(b)

	n := newNode(b, 1, func(c *Config) {
		c.Workers = workers
		c.ReplayCapacity = benchReplayCapacity
	})
	var arrived atomic.Int64
	target := int64(b.N)
	tokens := make(chan struct{}, benchWindow)
	for range benchWindow {
		tokens <- struct{}{}
	}
	done := make(chan struct{})
	srv, err := wire.NewServer(wire.ServerConfig{Handler: wire.HandlerFunc(func(netip.AddrPort, wire.Header, []byte) {
		if arrived.Add(1) == target {
			close(done)
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
	frameLen := wire.HeaderSize + sphinx.RegularPacket.Len()
	c := dial(b, n)

	_, cpuStart, cpuOK := cpuTimes()
	b.ResetTimer()
	sendErr := make(chan error, 1)
	go func() {
		for i := 0; i < b.N; {
			// Wait for one slot in the window, then take what else is free.
			<-tokens
			j := i + 1
		fill:
			for j < b.N && j-i < benchBatch {
				select {
				case <-tokens:
					j++
				default:
					break fill
				}
			}
			if _, err := c.Write(stream[i*frameLen : j*frameLen]); err != nil {
				sendErr <- err
				return
			}
			i = j
		}
	}()
	select {
	case <-done:
	case err := <-sendErr:
		b.Fatal(err)
	case <-time.After(time.Duration(b.N)*time.Millisecond + 30*time.Second):
		b.Fatalf("only %d of %d packets arrived; node stats %+v", arrived.Load(), b.N, n.Stats())
	}
	b.StopTimer()
	_, cpuEnd, _ := cpuTimes()

	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "packets/s")
	b.ReportMetric(bare, "bare-packets/s")
	b.ReportMetric(rate/bare, "ratio-to-bare")
	b.ReportMetric(rate/bare/float64(min(workers, runtime.GOMAXPROCS(0))), "per-core")
	b.ReportMetric(float64(n.Stats().DroppedTotal()), "dropped")
	if cpuOK && bareCPU > 0 {
		nodeCPU := (cpuEnd - cpuStart).Seconds() / float64(b.N)
		b.ReportMetric(bareCPU/nodeCPU, "cpu-ratio")
	}
}

// bareRate measures sphinx.Processor.Process on regular packets,
// single-threaded, with a replay filter: the best of three batches, as a
// wall-clock rate and as CPU seconds per packet (0 where cpuTimes is not
// available).
func bareRate(b *testing.B) (rate, cpuPerPacket float64) {
	b.Helper()
	const batch = 100
	key, err := sphinx.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	next, _ := sphinx.NewNodeAddress(netip.MustParseAddrPort("127.0.0.1:1"))
	route := []sphinx.Hop{{PublicKey: key.PublicKey()}, {Address: next, PublicKey: key.PublicKey()}}
	ps := packets(b, 3*batch, sphinx.RegularPacket, route...)
	proc := sphinx.NewProcessor(key, sphinx.NewReplayFilter(benchReplayCapacity, 0))
	runtime.LockOSThread() // so that the thread's CPU time is the batch's
	defer runtime.UnlockOSThread()
	best, bestCPU := time.Duration(1<<63-1), time.Duration(1<<63-1)
	for round := range 3 {
		cpu0, _, ok := cpuTimes()
		start := time.Now()
		for _, p := range ps[round*batch : (round+1)*batch] {
			if _, err := proc.Process(p[:0], p); err != nil {
				b.Fatal(err)
			}
		}
		best = min(best, time.Since(start))
		if cpu1, _, _ := cpuTimes(); ok {
			bestCPU = min(bestCPU, cpu1-cpu0)
		}
	}
	if bestCPU == 1<<63-1 {
		bestCPU = 0
	}
	return batch / best.Seconds(), bestCPU.Seconds() / batch
}
