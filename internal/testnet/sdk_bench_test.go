package testnet

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/framework/requester"
)

// sdkBenchConcurrency is how many requests each benchmark keeps in flight.
const sdkBenchConcurrency = 8

// sdkBenchResult is one run: requests, the seconds they took and their
// latencies in seconds.
type sdkBenchResult struct {
	Requests  int       `json:"requests"`
	Seconds   float64   `json:"seconds"`
	Latencies []float64 `json:"latencies"`
}

// join is the result of r and o run one after the other.
func (r sdkBenchResult) join(o sdkBenchResult) sdkBenchResult {
	return sdkBenchResult{Requests: r.Requests + o.Requests, Seconds: r.Seconds + o.Seconds,
		Latencies: append(slices.Clone(r.Latencies), o.Latencies...)}
}

func (r sdkBenchResult) rate() float64 { return float64(r.Requests) / r.Seconds }

func (r sdkBenchResult) p50() float64 {
	l := slices.Clone(r.Latencies)
	slices.Sort(l)
	return l[len(l)/2]
}

// BenchmarkSDKs measures echo requests (64 bytes, 8 in flight) from each
// SDK through `client run`, against the Go requester (framework/requester
// with its embedded client) on the same network in the same run: a
// directory, six mixnodes and two gateways as processes, no mixing delays
// and no cover traffic, so that the figures show the requesters' own cost.
// Sub-benchmarks report requests/s and p50; go-ws, node and python also
// report their ratio to the Go requester measured just before and just
// after them (x-go-rate: higher is better, x-go-p50: lower is better). Run it with a fixed count, such as
//
//	go test -run '^$' -bench BenchmarkSDKs -benchtime 400x ./internal/testnet
func BenchmarkSDKs(b *testing.B) {
	e := needSDKs(b)
	n := startNet(b, Config{LogLevel: "info"})
	ctx := ctxFor(b, 20*time.Minute)
	p := startProvider(b, ctx, n, ProviderOptions{})
	c, err := n.StartClient(ctx, "sdk-client", ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := requester.Connect(ctx, requester.Config{
		ProviderURL: p.HTTP,
		Client:      client.Config{NoDelay: true, Cover: client.CoverConfig{Disabled: true}},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	goDo := func(data []byte) error {
		_, err := s.Do(ctx, "echo", data)
		return err
	}
	report := func(b *testing.B, r, base sdkBenchResult) {
		b.ReportMetric(0, "ns/op") // a whole run's time says nothing per request
		b.ReportMetric(r.rate(), "req/s")
		b.ReportMetric(r.p50()*1000, "p50-ms")
		if base.Requests > 0 {
			b.ReportMetric(r.rate()/base.rate(), "x-go-rate")
			b.ReportMetric(r.p50()/base.p50(), "x-go-p50")
		}
	}
	// bracketed measures the Go requester for half of b.N requests, then
	// measure for b.N, then Go again for the other half, and reports
	// measure's figures against the Go requester's around it, so that
	// load from elsewhere on the machine hits both sides of the ratio.
	bracketed := func(b *testing.B, measure func(b *testing.B) sdkBenchResult) {
		before := echoLoad(b, b.N/2+1, goDo)
		r := measure(b)
		after := echoLoad(b, b.N/2+1, goDo)
		report(b, r, before.join(after))
	}
	b.Run("go", func(b *testing.B) { report(b, echoLoad(b, b.N, goDo), sdkBenchResult{}) })
	// The same load from Go through the WebSocket API of the same `client
	// run` the SDKs use: what that path costs without any SDK.
	b.Run("go-ws", func(b *testing.B) {
		ep := &WSEndpoint{}
		if ep.Conn, err = c.Dial(ctx); err != nil {
			b.Fatal(err)
		}
		r := NewRequester(ep, p.Address(), NewTracker(), RequesterOptions{})
		defer r.Close()
		var id atomic.Int64
		bracketed(b, func(b *testing.B) sdkBenchResult {
			return echoLoad(b, b.N, func(data []byte) error {
				rep, err := r.Call(ctx, fmt.Sprint("bench-", id.Add(1)), "echo", data)
				if err == nil && rep.Err != nil {
					err = rep.Err
				}
				return err
			})
		})
	})
	sdk := func(name, dir, prog string, args ...string) {
		b.Run(name, func(b *testing.B) {
			bracketed(b, func(b *testing.B) sdkBenchResult {
				env := []string{"PEAPOD_PROVIDER_URL=" + p.HTTP, "PEAPOD_WS_URL=" + c.WS,
					fmt.Sprintf("PEAPOD_BENCH_N=%d", b.N), fmt.Sprintf("PEAPOD_BENCH_CONCURRENCY=%d", sdkBenchConcurrency)}
				out := e.run(b, ctx, dir, env, prog, args...)
				var r sdkBenchResult
				if err := json.Unmarshal([]byte(out), &r); err != nil || r.Requests != b.N || len(r.Latencies) != b.N {
					b.Fatalf("%s printed %q (%v)", name, out, err)
				}
				return r
			})
		})
	}
	sdk("node", e.typescript(), e.node, "--experimental-websocket", "--no-warnings", "bench/echo.mjs")
	sdk("python", e.pythonDir(), e.python, "bench.py")
}

// echoLoad sends n echo requests of 64 bytes with do, after one warm-up,
// sdkBenchConcurrency at a time, and returns how long they took.
func echoLoad(b *testing.B, n int, do func(data []byte) error) sdkBenchResult {
	data := make([]byte, 64)
	if err := do(data); err != nil {
		b.Fatal(err)
	}
	r := sdkBenchResult{Requests: n, Latencies: make([]float64, 0, n)}
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
	)
	errs := make(chan error, sdkBenchConcurrency)
	start := time.Now()
	for range sdkBenchConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				t := time.Now()
				if err := do(data); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				r.Latencies = append(r.Latencies, time.Since(t).Seconds())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.Seconds = time.Since(start).Seconds()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return r
}
