package testnet

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// TestDelayQueueFlood: a gateway of the topology (its Noise key, held by
// an attacker) floods both layer-1 mixnodes with fresh, well-formed ack
// packets that ask for 29 s at layer 1 and have real next hops: the attack
// that filled every node's delay queue and stalled honest echoes for 15-25
// s. The nodes run with a delay queue of 64 packets, all of which one peer
// may hold, so that only the eviction policy stands between the flood and
// the honest gateway's packets; the directory advertises a mean delay of
// 50 ms, so the nodes honour at most 1 s. While the flood fills the
// queues, honest echoes (client a to client b, both on the other gateway,
// sent one at a time with mixing delays) keep their median latency within
// twice the unloaded one, no packet of the honest gateway is dropped at
// layer 1, and the flooder's packets are: clamped to the bound, then
// evicted or refused.
func TestDelayQueueFlood(t *testing.T) {
	t.Parallel()
	const (
		mixDelay    = 50 * time.Millisecond
		queue       = 32
		echoes      = 25
		echoGap     = 60 * time.Millisecond
		floodRate   = 100 // packets a second to each layer-1 node
		floodAsk    = 29 * time.Second
		wantBound   = 20 * mixDelay // mixnode.DelayBoundFactor times the mean
		maxFloodFor = 20 * time.Second
	)
	n := startNet(t, Config{MixDelay: mixDelay, MixnodeArgs: func(int, int) []string {
		return []string{"--max-queue", fmt.Sprint(queue), "--max-queue-per-peer", fmt.Sprint(queue)}
	}})
	ctx := ctxFor(t, 2*time.Minute)
	honest, flooder := n.Gateway(0), n.Gateway(1)
	a, err := n.StartClient(ctx, "client-a", ClientOptions{Gateway: honest.Identity(), Delays: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.StartClient(ctx, "client-b", ClientOptions{Gateway: honest.Identity(), Delays: true})
	if err != nil {
		t.Fatal(err)
	}
	epA := dialWS(t, a)
	in := newInbox(dialWS(t, b))
	defer in.stop()
	l1 := []*Node{n.Mixnode(1, 0), n.Mixnode(1, 1)}

	// The flood's packets, fresh ones only (a replay would be dropped before
	// the queue), built ahead of the measurements and topped up meanwhile.
	topo, err := n.Topology(ctx)
	if err != nil {
		t.Fatal(err)
	}
	floodCtx, stopBuilding := context.WithCancel(ctx)
	defer stopBuilding()
	supply := make([]chan []byte, len(l1))
	for i, nd := range l1 {
		supply[i] = make(chan []byte, floodRate*4)
		route := floodRoute(t, topo, nd, floodAsk)
		go buildPackets(floodCtx, route, supply[i])
	}
	if err := pollUntil(ctx, 100*time.Millisecond, func() (bool, error) {
		return len(supply[0]) == cap(supply[0]) && len(supply[1]) == cap(supply[1]), nil
	}); err != nil {
		t.Fatal("the flood's packets were not built in time")
	}

	sent := 0
	echo := func(phase string) []time.Duration {
		return echoLatencies(t, ctx, epA, b.Address(), in, &sent, phase, echoes, echoGap)
	}
	// Warm-up: the gateways' links and the clients' first packets (a node
	// that has not fetched the topology yet holds them) cost nothing below.
	echoLatencies(t, ctx, epA, b.Address(), in, &sent, "warmup", 5, echoGap)
	unloaded := echo("unloaded")

	// The flood: one Noise link per layer-1 node as the flooding gateway.
	var wg sync.WaitGroup
	stopFlood := make(chan struct{})
	var floodErr error
	var floodMu sync.Mutex
	for i, nd := range l1 {
		c, nc := dialAs(t, flooder, nd)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := flood(nc, supply[i], floodRate, stopFlood, maxFloodFor); err != nil {
				floodMu.Lock()
				floodErr = fmt.Errorf("flooding %s: %w", nd.Name(), err)
				floodMu.Unlock()
			}
			c.Close()
		}()
	}
	stop := sync.OnceFunc(func() { close(stopFlood); wg.Wait(); stopBuilding() })
	defer stop()
	for _, nd := range l1 {
		if err := pollUntil(ctx, 50*time.Millisecond, func() (bool, error) {
			v, err := nd.Metric(ctx, "queue_depth", "queue", "delay")
			return v >= queue*3/4, err
		}); err != nil {
			t.Fatalf("%s's delay queue did not fill: %v", nd.Name(), err)
		}
	}
	loaded := echo("flooded")
	floodMu.Lock()
	if floodErr != nil {
		t.Fatal(floodErr)
	}
	floodMu.Unlock()

	// While the flood still runs: what the layer-1 nodes did with it.
	honestKey, flooderKey := peerName(honest), peerName(flooder)
	for _, nd := range l1 {
		if got := metricOf(t, ctx, nd, "max_delay_seconds"); got != wantBound.Seconds() {
			t.Errorf("%s honours delays up to %vs, want %v (20 times the advertised mean)", nd.Name(), got, wantBound)
		}
		if got := metricOf(t, ctx, nd, "delays_clamped_total"); got == 0 {
			t.Errorf("%s clamped no delay", nd.Name())
		}
		if got := metricOf(t, ctx, nd, "peer_packets_dropped_total", "peer", flooderKey); got == 0 {
			t.Errorf("%s dropped none of the flooder's packets", nd.Name())
		}
		if got, err := nd.Metric(ctx, "peer_packets_dropped_total", "peer", honestKey); err == nil {
			t.Errorf("%s dropped %v packets of the honest gateway", nd.Name(), got)
		}
		evicted := metricOf(t, ctx, nd, "packets_dropped_total", "reason", "delay_evicted")
		refused := metricOf(t, ctx, nd, "packets_dropped_total", "reason", "delay_queue_full")
		t.Logf("%s: %v flood packets evicted, %v refused", nd.Name(), evicted, refused)
	}
	stop()

	p50 := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2]
	}
	t.Logf("echo p50: %v unloaded, %v flooded (p90 %v, %v)", p50(unloaded), p50(loaded),
		slices.Max(unloaded), slices.Max(loaded))
	if p50(loaded) > 2*p50(unloaded) {
		t.Errorf("the flood took the honest echoes' median from %v to %v, more than twice", p50(unloaded), p50(loaded))
	}
	got := in.messages()
	slices.Sort(got)
	want := append(numberedEchoes("warmup", 5), numberedEchoes("unloaded", echoes)...)
	want = append(want, numberedEchoes("flooded", echoes)...)
	slices.Sort(want)
	checkSequence(t, got, want)
}

// echoLatencies sends count messages named phase-i from ep to to, one every
// gap, and returns how long each took to reach in, which *sent counts the
// messages of.
func echoLatencies(t testing.TB, ctx context.Context, ep Endpoint, to address.Address, in *inbox, sent *int, phase string, count int, gap time.Duration) []time.Duration {
	t.Helper()
	base := *sent
	start := make([]time.Time, count)
	var mu sync.Mutex
	errc := make(chan error, 1)
	go func() {
		for i := range count {
			mu.Lock()
			start[i] = time.Now()
			mu.Unlock()
			if err := ep.Send(ctx, to, fmt.Appendf(nil, "%s-%d", phase, i)); err != nil {
				errc <- err
				return
			}
			time.Sleep(gap)
		}
		errc <- nil
	}()
	took := make([]time.Duration, count)
	for k := 1; k <= count; k++ {
		if err := in.waitCount(ctx, base+k); err != nil {
			t.Fatalf("%s: %v", phase, err)
		}
		now := time.Now()
		msgs := in.messages()
		var i int
		if _, err := fmt.Sscanf(strings.TrimPrefix(msgs[base+k-1], phase+"-"), "%d", &i); err != nil || i >= count {
			t.Fatalf("%s: unexpected message %q", phase, msgs[base+k-1])
		}
		mu.Lock()
		took[i] = now.Sub(start[i])
		mu.Unlock()
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	*sent += count
	return took
}

// numberedEchoes are the messages echo sends in a phase.
func numberedEchoes(phase string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", phase, i)
	}
	return out
}

// peerName is how a node names nd as its upstream peer in its metrics:
// its Noise key in base58.
func peerName(nd *Node) string {
	k := nd.NoiseKey().Public()
	return address.EncodeKey(k[:])
}

// floodRoute is a route through first, asking it for delay, to a node of
// the next layer, where it ends, with the topology's Sphinx keys: the next
// hop is real, so that the packets pass every check of first's but the
// delay's (the next node drops them as routes ending there).
func floodRoute(t testing.TB, topo *directory.Topology, first *Node, delay time.Duration) []sphinx.Hop {
	t.Helper()
	return []sphinx.Hop{topoHop(t, topo, first, delay), topoHop(t, topo, first.net.Mixnode(first.Layer+1, 0), 0)}
}

// topoHop is nd as a hop, with the address and the Sphinx key the topology
// lists for it.
func topoHop(t testing.TB, topo *directory.Topology, nd *Node, delay time.Duration) sphinx.Hop {
	t.Helper()
	var key [directory.KeySize]byte
	var ap string
	ok := false
	for _, m := range topo.Mixnodes {
		if m.Identity == nd.Identity() {
			key, ok = m.SphinxKeyFor(topo.Epoch.Rotation)
			ap = m.Address
		}
	}
	for _, g := range topo.Gateways {
		if g.Identity == nd.Identity() {
			key, ok = g.SphinxKeyFor(topo.Epoch.Rotation)
			ap = g.Address
		}
	}
	if ap == "" || !ok {
		t.Fatalf("%s is not in the topology with a key of rotation %d", nd.Name(), topo.Epoch.Rotation)
	}
	addr, err := sphinx.NewNodeAddress(nd.Announce)
	if err != nil || nd.Announce.String() != ap {
		t.Fatalf("%s: address %s, topology %s (%v)", nd.Name(), nd.Announce, ap, err)
	}
	pub, err := sphinx.ParsePublicKey(key[:])
	if err != nil {
		t.Fatal(err)
	}
	return sphinx.Hop{Address: addr, PublicKey: pub, Delay: delay}
}

// buildPackets sends fresh ack packets for route to out until ctx ends.
func buildPackets(ctx context.Context, route []sphinx.Hop, out chan<- []byte) {
	for {
		p, err := sphinx.NewPacket(rand.Reader, sphinx.AckPacket, route, sphinx.Destination{}, sphinx.SURBID{}, nil)
		if err != nil {
			panic(err) // the route was checked
		}
		select {
		case out <- p:
		case <-ctx.Done():
			return
		}
	}
}

// flood writes the packets of supply as frames to nc, rate a second in
// bursts every 10 ms, until stop is closed or for at most limit.
func flood(nc net.Conn, supply <-chan []byte, rate int, stop <-chan struct{}, limit time.Duration) error {
	const tick = 10 * time.Millisecond
	perTick := max(rate*int(tick)/int(time.Second), 1)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	end := time.After(limit)
	var buf []byte
	for {
		select {
		case <-stop:
			return nil
		case <-end:
			return nil
		case <-ticker.C:
		}
		buf = buf[:0]
		for range perTick {
			p := <-supply
			h, err := wire.HeaderFor(p)
			if err != nil {
				return err
			}
			buf = wire.AppendFrame(buf, h, p)
		}
		if _, err := nc.Write(buf); err != nil {
			return err
		}
	}
}
