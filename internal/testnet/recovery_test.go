package testnet

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"
)

// nodeAddrs maps every node of the topology (mixnodes and gateways) to the
// address it is listed at, by identity.
func nodeAddrs(t testing.TB, ctx context.Context, n *Network) map[string]string {
	t.Helper()
	top, err := n.Topology(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string)
	for _, m := range top.Mixnodes {
		out[m.Identity] = m.Address
	}
	for _, g := range top.Gateways {
		out[g.Identity] = g.Address + " " + g.ClientAddress
	}
	return out
}

// waitAllListed waits until the topology lists every node of want, at the
// address want has for it.
func waitAllListed(ctx context.Context, n *Network, want map[string]string) error {
	return pollUntil(ctx, 50*time.Millisecond, func() (bool, error) {
		top, err := n.Topology(ctx)
		if err != nil {
			return false, err
		}
		got := make(map[string]string)
		for _, m := range top.Mixnodes {
			got[m.Identity] = m.Address
		}
		for _, g := range top.Gateways {
			got[g.Identity] = g.Address + " " + g.ClientAddress
		}
		for id, addr := range want {
			if got[id] != addr {
				return false, fmt.Errorf("%s listed at %q, was at %q", id, got[id], addr)
			}
		}
		return true, nil
	})
}

// keepRequesting sends an echo through r every gap, ids prefix-000 on,
// until stop is closed and after more sends after that, and returns the
// ids sent after stop closed, in order.
func keepRequesting(t testing.TB, ctx context.Context, w *workload, r *Requester, prefix string, gap time.Duration, stop <-chan struct{}, after int) []string {
	t.Helper()
	var late []string
	for i := 0; len(late) < after; i++ {
		id := fmt.Sprintf("%s-%03d", prefix, i)
		select {
		case <-stop:
			late = append(late, id)
		default:
		}
		w.echo(t, ctx, r, id)
		select {
		case <-time.After(gap): // a steady trickle of requests, not a wait for something
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	return late
}

// TestProviderRestartEmbedded restarts a provider that runs its embedded
// network (no network flags) under a `client run` that keeps sending it a
// request every 100 ms. The embedded network's nodes come back at the
// addresses they had (they remember their ports), so the client, which
// outlives it, reconnects to its gateway where it was, and every request,
// those sent while the provider was down included, gets exactly one right
// reply.
func TestProviderRestartEmbedded(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{OneProcess: true})
	ctx := ctxFor(t, waitTimeout+time.Minute)
	p := startProvider(t, ctx, n, ProviderOptions{Embedded: true})
	before := nodeAddrs(t, ctx, n)
	if len(before) != 3*DefaultMixnodesPerLayer+DefaultGateways {
		t.Fatalf("the embedded network lists %d nodes: %v", len(before), before)
	}
	w := newWorkload()
	r := newRequester(t, ctx, n, "client-1", p, w.tr, ClientOptions{})
	w.echo(t, ctx, r, "first")
	w.check(t, ctx, r)

	restarted := make(chan struct{})
	var restartErr error
	var stopped, down, back time.Time
	go func() {
		defer close(restarted)
		time.Sleep(300 * time.Millisecond) // a few requests go out before the stop
		stopped = time.Now()
		if err := p.Stop(); err != nil {
			restartErr = fmt.Errorf("stop: %w", err)
			return
		}
		down = time.Now()
		restartErr = p.Start(ctx)
		back = time.Now()
	}()
	late := keepRequesting(t, ctx, w, r, "during", 100*time.Millisecond, restarted, 10)
	if restartErr != nil {
		t.Fatal(restartErr)
	}
	t.Logf("provider stopped in %v, serving again %v after the stop began", down.Sub(stopped).Round(time.Millisecond), back.Sub(stopped).Round(time.Millisecond))
	if err := w.tr.WaitAll(ctx); err != nil {
		t.Fatal(err)
	}
	first, _ := w.tr.Arrived(late[0])
	t.Logf("every reply %v after the provider served again; the first request sent after it (%s) answered after %v",
		time.Since(back).Round(time.Millisecond), late[0], first.Sub(back).Round(time.Millisecond))
	w.check(t, ctx, r)
	if after := nodeAddrs(t, ctx, n); !maps.Equal(after, before) {
		t.Errorf("the embedded network's nodes moved in the restart:\nbefore %v\nafter  %v", before, after)
	}
}

// TestLocalRestart stops `mixnet local` under a running provider (joined
// to it with --directory) and starts it again on the same data. The
// provider's /healthz says it is unhealthy while its network is away, and
// healthy again by itself once it is back, with no restart of the
// provider; the nodes are back at their addresses, and requests sent
// after the network is back each get exactly one right reply.
func TestLocalRestart(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{OneProcess: true})
	ctx := ctxFor(t, waitTimeout+time.Minute)
	local, err := n.StartLocal(ctx, "local", LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := nodeAddrs(t, ctx, n)
	p := startProvider(t, ctx, n, ProviderOptions{})
	w := newWorkload()
	r := newRequester(t, ctx, n, "client-1", p, w.tr, ClientOptions{})
	w.echo(t, ctx, r, "before")
	w.check(t, ctx, r)

	if err := local.Stop(); err != nil {
		t.Fatalf("stopping mixnet local: %v", err)
	}
	if err := pollUntil(ctx, 50*time.Millisecond, func() (bool, error) {
		ok, err := providerHealthy(ctx, p)
		return !ok, err
	}); err != nil {
		t.Fatalf("the provider still says it is healthy with its network gone: %v", err)
	}
	if err := n.StartLocalAgain(ctx, local); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	if err := waitAllListed(ctx, n, before); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if err := pollUntil(ctx, 50*time.Millisecond, func() (bool, error) { return providerHealthy(ctx, p) }); err != nil {
		t.Fatalf("the provider did not turn healthy: %v", err)
	}
	t.Logf("provider healthy %v after mixnet local was back", time.Since(back).Round(time.Millisecond))
	for i := range 10 {
		w.echo(t, ctx, r, fmt.Sprintf("after-%02d", i))
	}
	w.check(t, ctx, r)
	t.Logf("every reply %v after mixnet local was back", time.Since(back).Round(time.Millisecond))
}
