package testnet

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/internal/testnet/relay"
)

// TestLossyLinks is scenario 1: every link into a mixnode or a gateway
// loses 20% of the frames (a relay in front of each), so a packet and its
// ack together cross eight lossy links and only one attempt in six
// succeeds. 200 requests to echo and kv, from ten requesters sending two a
// second each, all get their correct reply, none twice, and the kv store
// holds exactly what was put. The requesters never resend: every reply the
// system loses would show.
func TestLossyLinks(t *testing.T) {
	t.Parallel()
	testLossy(t, 10, 500*time.Millisecond)
}

// TestLossyFewSenders is scenario 1 with the 200 requests coming from two
// requesters, a hundred each. At this loss rate each reply takes about six
// reply SURBs, a request for more crosses five lossy links and arrives one
// time in three, and per-sender ordered delivery releases a sender's
// requests in bursts after a loss, so the provider runs its pools down and
// must ask for SURBs many times: this is the test of the replier's SURB
// policy (docs/protocol.md §5). It lost a fifth to a third of the replies
// before requests went out on two SURBs, were asked again while replies
// waited, and retransmissions left SURBs to ask with.
func TestLossyFewSenders(t *testing.T) {
	t.Parallel()
	testLossy(t, 2, 100*time.Millisecond)
}

// testLossy sends 200 requests (100 echo, 100 kv puts) from senders
// requesters through links that lose 20%, one request from each requester
// every gap.
func testLossy(t *testing.T, senders int, gap time.Duration) {
	n := startNet(t, Config{Relays: true, RelayFaults: relay.Faults{DropRate: 0.2}})
	ctx := ctxFor(t, waitTimeout+time.Minute)
	p := startProvider(t, ctx, n, ProviderOptions{})
	w := newWorkload()
	rs := make([]*Requester, senders)
	for i := range rs {
		rs[i] = newRequester(t, ctx, n, fmt.Sprintf("client-%d", i), p, w.tr, ClientOptions{})
	}
	r1, r2 := rs[0], rs[1]

	want := make(map[string]string)
	for i := range 100 {
		r := rs[(2*i)%senders]
		w.echo(t, ctx, r, fmt.Sprintf("echo-%03d", i))
		r = rs[(2*i+1)%senders]
		key, value := fmt.Sprintf("lossy/%03d", i), fmt.Sprintf("value %d", i*i)
		w.put(t, ctx, r, fmt.Sprintf("put-%03d", i), key, value)
		want[key] = value
		if (2*i+2)%senders == 0 {
			time.Sleep(gap)
		}
	}
	w.check(t, ctx, rs...)

	keys := kvList(t, ctx, r1, "list", "lossy/")
	wantKeys := make([]string, 0, len(want))
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	slices.Sort(wantKeys)
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("kv holds %d keys, want %d", len(keys), len(wantKeys))
	}
	for i, k := range []string{"lossy/000", "lossy/057", "lossy/099"} {
		if v, ok := kvGet(t, ctx, r2, fmt.Sprintf("get-%d", i), k); !ok || v != want[k] {
			t.Errorf("get %s = %q, %v; want %q", k, v, ok, want[k])
		}
	}
	var dropped uint64
	for _, node := range n.Nodes() {
		dropped += node.Relay.Stats().Dropped
	}
	held, _ := p.Metric(ctx, "peapod_provider_surbs_held")
	t.Logf("the relays dropped %d frames; the provider holds %v reply SURBs", dropped, held)
	if dropped == 0 {
		t.Error("the relays dropped nothing")
	}
}

// TestProviderGatewayKilled is scenario 3: the provider's gateway is
// SIGKILLed and restarted, first while requests stream in (they are
// retransmitted by their senders until the gateway is back), then while it
// holds requests in its store for a provider that cannot take them (the
// provider is paused): the stored requests survive the crash and are served
// once the provider is back.
func TestProviderGatewayKilled(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	ctx := ctxFor(t, waitTimeout+time.Minute)
	p := startProvider(t, ctx, n, ProviderOptions{})
	gw := n.GatewayByIdentity(p.Gateway())
	other := n.Gateway(0)
	if other == gw {
		other = n.Gateway(1)
	}
	w := newWorkload()
	r := newRequester(t, ctx, n, "client-1", p, w.tr, ClientOptions{Gateway: other.Identity()})

	// In flight: kill the gateway after 20 of 60 requests.
	for i := range 60 {
		if i == 20 {
			gw.Kill()
			t.Logf("killed %s, the provider's gateway", gw.Name())
		}
		if i == 40 {
			if err := gw.Start(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if i%2 == 0 {
			w.echo(t, ctx, r, fmt.Sprintf("flight-echo-%02d", i))
		} else {
			w.put(t, ctx, r, fmt.Sprintf("flight-put-%02d", i), fmt.Sprintf("flight/%02d", i), "v")
		}
		time.Sleep(50 * time.Millisecond) // a steady stream, not a burst
	}
	w.check(t, ctx, r)

	// Stored: the provider cannot take its messages; the gateway stores
	// them, crashes, and still has them.
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	gw.Kill() // the paused provider cannot reconnect
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	w2 := newWorkload()
	r2 := newRequester(t, ctx, n, "client-2", p, w2.tr, ClientOptions{Gateway: other.Identity()})
	const stored = 30
	for i := range stored {
		w2.echo(t, ctx, r2, fmt.Sprintf("stored-%02d", i))
	}
	waitStored(t, ctx, gw, stored)
	gw.Kill()
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := gw.Metric(ctx, "peapod_gateway_stored_messages"); err != nil || v < stored {
		t.Fatalf("after the crash the store holds %v messages (%v), want %d", v, err, stored)
	}
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	w2.check(t, ctx, r2)
	if v, err := gw.Metric(ctx, "peapod_gateway_delivered_from_store_total"); err != nil || v < stored {
		t.Errorf("the gateway handed %v stored messages to the provider (%v), want at least %d", v, err, stored)
	}
}

// TestProviderKilled is scenario 5: the provider is SIGKILLed and
// restarted. It comes back with the same address and its kv data, and the
// requests sent while it was down (which waited at its gateway) are
// answered once it is back.
func TestProviderKilled(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	ctx := ctxFor(t, waitTimeout+time.Minute)
	p := startProvider(t, ctx, n, ProviderOptions{})
	gw := n.GatewayByIdentity(p.Gateway())
	w := newWorkload()
	r := newRequester(t, ctx, n, "client-1", p, w.tr, ClientOptions{})
	want := make(map[string]string)
	for i := range 20 {
		key := fmt.Sprintf("before/%02d", i)
		want[key] = fmt.Sprintf("value-%d", i)
		w.put(t, ctx, r, "put-"+key, key, want[key])
	}
	w.check(t, ctx, r)

	addr := p.Address()
	plugins := p.ChildPIDs()
	p.Kill()
	if orphans := p.Orphans(); len(orphans) > 0 {
		// Give them a moment to notice their host is gone.
		time.Sleep(2 * time.Second)
		if orphans = p.Orphans(); len(orphans) > 0 {
			t.Errorf("plugins outlived their SIGKILLed provider: %v (they were %v)", orphans, plugins)
		}
	}
	for i := range 30 {
		if i%3 == 0 {
			w.echo(t, ctx, r, fmt.Sprintf("outage-echo-%02d", i))
		} else {
			key := fmt.Sprintf("outage/%02d", i)
			want[key] = fmt.Sprintf("later-%d", i)
			w.put(t, ctx, r, "put-"+key, key, want[key])
		}
	}
	waitStored(t, ctx, gw, 30)
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Address() != addr {
		t.Fatalf("the provider came back as %s, was %s", p.Address(), addr)
	}
	w.check(t, ctx, r)

	keys := kvList(t, ctx, r, "list-all", "")
	if len(keys) != len(want) {
		t.Errorf("kv holds %d keys, want %d: %v", len(keys), len(want), keys)
	}
	for i, k := range []string{"before/00", "before/19", "outage/29"} {
		if v, ok := kvGet(t, ctx, r, fmt.Sprintf("get-%d", i), k); !ok || v != want[k] {
			t.Errorf("get %s = %q, %v; want %q", k, v, ok, want[k])
		}
	}
}

// TestPluginKilled is scenario 6: the kvstore plugin is SIGKILLed ten times
// while requests stream in. The host restarts it each time; a request that
// reaches it while it is down gets handler_failed, every other request
// succeeds, every request gets exactly one reply, and the echo plugin, which
// nobody kills, answers everything.
func TestPluginKilled(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	ctx := ctxFor(t, waitTimeout+time.Minute)
	p := startProvider(t, ctx, n, ProviderOptions{})
	w := newWorkload()
	r := newRequester(t, ctx, n, "client-1", p, w.tr, ClientOptions{})

	stop := make(chan struct{})
	streamDone := make(chan map[string]string)
	go func() {
		puts := make(map[string]string) // key → value, for every put sent
		defer func() { streamDone <- puts }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(40 * time.Millisecond):
			}
			if i%2 == 0 {
				w.echo(t, ctx, r, fmt.Sprintf("echo-%04d", i))
				continue
			}
			key := fmt.Sprintf("k/%04d", i)
			puts[key] = fmt.Sprintf("v%d", i)
			w.put(t, ctx, r, "put-"+key, key, puts[key], "handler_failed")
		}
	}()

	pid, err := p.WaitPlugin(ctx, "kvstore", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		time.Sleep(700 * time.Millisecond) // traffic between kills
		if _, err := p.KillPlugin("kvstore"); err != nil {
			t.Fatal(err)
		}
		if pid, err = p.WaitPlugin(ctx, "kvstore", pid); err != nil {
			t.Fatalf("kill %d: %v", i+1, err)
		}
	}
	time.Sleep(time.Second)
	close(stop)
	puts := <-streamDone
	rep := w.check(t, ctx, r)
	if rep.Outcomes[OutcomeOK] == 0 {
		t.Fatal("no request succeeded")
	}
	t.Logf("kvstore killed 10 times: %d puts failed with handler_failed while it was down", rep.Outcomes["handler_failed"])
	for id := range w.expect {
		if reps := r.Replies(id); len(reps) > 0 && reps[0].Err != nil && w.expect[id].service == "echo" {
			t.Errorf("echo %s failed: %v", id, reps[0].Err)
		}
	}
	// Every put that succeeded is in the store. A failed one may be too: the
	// plugin can die after its write and before its reply.
	keys := kvList(t, ctx, r, "list-all", "k/")
	stored := make(map[string]bool)
	for _, k := range keys {
		stored[k] = true
	}
	for key := range puts {
		reps := r.Replies("put-" + key)
		if len(reps) == 0 {
			continue
		}
		if reps[0].Err == nil && !stored[key] {
			t.Errorf("put %s replied ok but the store does not have it", key)
		}
	}
	if restarts, err := p.Metric(ctx, "peapod_plugin_restarts_total"); err != nil || restarts < 10 {
		t.Errorf("the provider reports %v plugin restarts (%v), want at least 10", restarts, err)
	}
}
