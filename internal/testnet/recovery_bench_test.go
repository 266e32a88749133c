package testnet

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// echoTimed sends one echo through r and waits for every reply, and
// returns when the reply came.
func echoTimed(b *testing.B, ctx context.Context, w *workload, r *Requester, id string) time.Time {
	b.Helper()
	w.echo(b, ctx, r, id)
	if err := w.tr.WaitAll(ctx); err != nil {
		b.Fatal(err)
	}
	at, _ := w.tr.Arrived(id)
	return at
}

// baselineEcho measures n echoes one at a time and returns their median
// latency in seconds.
func baselineEcho(b *testing.B, ctx context.Context, w *workload, r *Requester, n int) float64 {
	b.Helper()
	var lat []float64
	for i := range n {
		start := time.Now()
		echoTimed(b, ctx, w, r, fmt.Sprintf("baseline-%02d", i))
		lat = append(lat, time.Since(start).Seconds())
	}
	return median(lat)
}

// BenchmarkProviderRestart restarts a provider that runs its embedded
// network (no network flags) under a connected `client run` once per
// iteration (SIGTERM, then a start on the same data), and measures, from
// the moment the provider serves again, the first reply to a request sent
// then (first-reply-p50-s), and the whole restart from the stop to that
// reply (restart-p50-s). The baseline is the median echo before any
// restart, on the same processes (baseline-p50-s); x-baseline is
// first-reply-p50-s over it. Run it with a fixed count:
//
//	go test -run '^$' -bench BenchmarkProviderRestart -benchtime 5x ./internal/testnet
func BenchmarkProviderRestart(b *testing.B) {
	n := startNet(b, Config{OneProcess: true})
	ctx := ctxFor(b, 30*time.Minute)
	p := startProvider(b, ctx, n, ProviderOptions{Embedded: true})
	w := newWorkload()
	r := newRequester(b, ctx, n, "client-1", p, w.tr, ClientOptions{})
	baseline := baselineEcho(b, ctx, w, r, 20)
	var first, whole []float64
	b.ResetTimer()
	for i := range b.N {
		stopped := time.Now()
		if err := p.Stop(); err != nil {
			b.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			b.Fatal(err)
		}
		back := time.Now()
		at := echoTimed(b, ctx, w, r, fmt.Sprintf("restart-%03d", i))
		first = append(first, at.Sub(back).Seconds())
		whole = append(whole, at.Sub(stopped).Seconds())
	}
	b.StopTimer()
	w.check(b, ctx, r)
	b.ReportMetric(baseline, "baseline-p50-s")
	b.ReportMetric(median(first), "first-reply-p50-s")
	b.ReportMetric(median(whole), "restart-p50-s")
	b.ReportMetric(median(first)/baseline, "x-baseline")
}

// BenchmarkLocalRestart restarts `mixnet local` under a running provider
// (joined with --directory) and a requester once per iteration (SIGTERM,
// then a start on the same data, which returns once every node is listed
// again), and measures from the moment the network is back until the
// provider's /healthz is healthy again (healthy-p50-s), and until the
// reply to a request sent then (first-reply-p50-s). The baseline is the
// median echo before any restart (baseline-p50-s); x-baseline is
// first-reply-p50-s over it. Run it with a fixed count:
//
//	go test -run '^$' -bench BenchmarkLocalRestart -benchtime 5x ./internal/testnet
func BenchmarkLocalRestart(b *testing.B) {
	n := startNet(b, Config{OneProcess: true})
	ctx := ctxFor(b, 30*time.Minute)
	local, err := n.StartLocal(ctx, "local", LocalOptions{})
	if err != nil {
		b.Fatal(err)
	}
	p := startProvider(b, ctx, n, ProviderOptions{})
	w := newWorkload()
	r := newRequester(b, ctx, n, "client-1", p, w.tr, ClientOptions{})
	baseline := baselineEcho(b, ctx, w, r, 20)
	var healthy, first []float64
	b.ResetTimer()
	for i := range b.N {
		if err := local.Stop(); err != nil {
			b.Fatal(err)
		}
		if err := n.StartLocalAgain(ctx, local); err != nil {
			b.Fatal(err)
		}
		back := time.Now()
		id := fmt.Sprintf("restart-%03d", i)
		w.echo(b, ctx, r, id)
		if err := pollUntil(ctx, 20*time.Millisecond, func() (bool, error) { return providerHealthy(ctx, p) }); err != nil {
			b.Fatal(err)
		}
		healthy = append(healthy, time.Since(back).Seconds())
		if err := w.tr.WaitAll(ctx); err != nil {
			b.Fatal(err)
		}
		at, _ := w.tr.Arrived(id)
		first = append(first, at.Sub(back).Seconds())
	}
	b.StopTimer()
	w.check(b, ctx, r)
	b.ReportMetric(baseline, "baseline-p50-s")
	b.ReportMetric(median(healthy), "healthy-p50-s")
	b.ReportMetric(median(first), "first-reply-p50-s")
	b.ReportMetric(median(first)/baseline, "x-baseline")
}
