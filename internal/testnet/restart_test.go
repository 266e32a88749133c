package testnet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// providerHealthy reads the provider's /healthz: whether it answers 200
// with its transport connected.
func providerHealthy(ctx context.Context, p *Provider) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.HTTP+"/healthz", nil)
	if err != nil {
		return false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var h struct {
		OK        bool   `json:"ok"`
		Transport string `json:"transport"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return false, err
	}
	if resp.StatusCode != http.StatusOK || !h.OK {
		return false, fmt.Errorf("healthz %d, transport %s", resp.StatusCode, h.Transport)
	}
	return true, nil
}

// requesterOnTheOtherGateway starts a provider on n and a requester on the
// gateway the provider is not on, and returns them with the provider's
// gateway and the requester's workload.
func requesterOnTheOtherGateway(t testing.TB, ctx context.Context, n *Network) (*Provider, *Node, *workload, *Requester) {
	t.Helper()
	p := startProvider(t, ctx, n, ProviderOptions{})
	gw := n.GatewayByIdentity(p.Gateway())
	other := n.Gateway(0)
	if other == gw {
		other = n.Gateway(1)
	}
	w := newWorkload()
	return p, gw, w, newRequester(t, ctx, n, "client-1", p, w.tr, ClientOptions{Gateway: other.Identity()})
}

// TestGatewayMoved moves the provider's gateway to other ports (same data
// folder, so the same identity and keys) while a requester on the other
// gateway sends to the provider. The provider's client looks its gateway up
// again by identity and reconnects at the new address with no timer to wait
// for: the gateway counts it connected again, the provider's /healthz turns
// healthy by itself, and every request, those sent while the gateway was
// away included, gets exactly one right reply.
func TestGatewayMoved(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	ctx := ctxFor(t, waitTimeout+time.Minute)
	p, gw, w, r := requesterOnTheOtherGateway(t, ctx, n)
	w.echo(t, ctx, r, "before")
	w.check(t, ctx, r)

	oldClient := gw.ClientListen
	moved := time.Now()
	if err := n.MoveGateway(ctx, gw.Index); err != nil {
		t.Fatal(err)
	}
	if gw.ClientListen == oldClient {
		t.Fatalf("%s still listens for clients at %v", gw.Name(), oldClient)
	}
	t.Logf("%s moved: clients at %v (was %v), packets at %v", gw.Name(), gw.ClientListen, oldClient, gw.Listen)
	for i := range 10 {
		w.echo(t, ctx, r, fmt.Sprintf("after-%02d", i))
	}
	if err := pollUntil(ctx, 100*time.Millisecond, func() (bool, error) {
		v, err := gw.Metric(ctx, "peapod_gateway_connected_clients")
		return v >= 1, err
	}); err != nil {
		t.Fatalf("the provider never connected to the moved gateway: %v", err)
	}
	if err := pollUntil(ctx, 100*time.Millisecond, func() (bool, error) { return providerHealthy(ctx, p) }); err != nil {
		t.Fatalf("the provider did not turn healthy: %v", err)
	}
	t.Logf("provider healthy %v after the move began", time.Since(moved).Round(time.Millisecond))
	w.check(t, ctx, r)
	t.Logf("last reply %v after the move began", time.Since(moved).Round(time.Millisecond))
}

// BenchmarkGatewayMove moves the provider's gateway to other ports once per
// iteration, with a requester on the other gateway, and measures from the
// move (the gateway stopped) until the provider's /healthz is healthy
// again, and until the first request sent after the move is answered. It
// reports their medians (healthy-p50-s, first-reply-p50-s) and the median
// echo latency before any move on the same network (baseline-p50-s), with
// first-reply-p50-s over it (x-baseline). Run it with a fixed count:
//
//	go test -run '^$' -bench BenchmarkGatewayMove -benchtime 10x ./internal/testnet
func BenchmarkGatewayMove(b *testing.B) {
	n := startNet(b, Config{})
	ctx := ctxFor(b, 30*time.Minute)
	p, gw, w, r := requesterOnTheOtherGateway(b, ctx, n)
	echo := func(id string) time.Duration {
		start := time.Now()
		w.echo(b, ctx, r, id)
		if err := w.tr.WaitAll(ctx); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var baseline []float64
	for i := range 20 {
		baseline = append(baseline, echo(fmt.Sprintf("baseline-%02d", i)).Seconds())
	}
	var healthy, first []float64
	b.ResetTimer()
	for i := range b.N {
		moved := time.Now()
		if err := n.MoveGateway(ctx, gw.Index); err != nil {
			b.Fatal(err)
		}
		echo(fmt.Sprintf("move-%03d", i))
		first = append(first, time.Since(moved).Seconds())
		if err := pollUntil(ctx, 20*time.Millisecond, func() (bool, error) { return providerHealthy(ctx, p) }); err != nil {
			b.Fatal(err)
		}
		healthy = append(healthy, time.Since(moved).Seconds())
	}
	b.StopTimer()
	w.check(b, ctx, r)
	b.ReportMetric(median(baseline), "baseline-p50-s")
	b.ReportMetric(median(first), "first-reply-p50-s")
	b.ReportMetric(median(healthy), "healthy-p50-s")
	b.ReportMetric(median(first)/median(baseline), "x-baseline")
}

// median is the middle of xs (the upper one of an even count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
