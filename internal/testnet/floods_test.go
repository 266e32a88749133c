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

// floodAttack is one of the floods of issue 15 as an attacker holding a
// listed node's Noise key sends it: the network's settings that leave only
// the bound under test between the flood and the honest traffic, whose
// key the attacker holds, the nodes it floods and the packets it sends
// each of them. The honest traffic is an echo from client a to client b,
// both on gateway 0, with mixing delays.
type floodAttack struct {
	cfg     Config
	flooder func(*Network) *Node // whose Noise key the attacker holds
	targets func(*Network) []*Node
	// supply sends the packets for target to out until ctx ends.
	supply func(tb testing.TB, ctx context.Context, topo *directory.Topology, target *Node, out chan<- []byte)
	rate   int // packets a second to each target
	// hold reports whether the flood has taken hold at target: filled its
	// queue, or had packets dropped.
	hold func(ctx context.Context, target *Node) (bool, error)
}

// The echoes of a flood run: one every echoGap.
const (
	floodMixDelay = 50 * time.Millisecond
	floodEchoes   = 25
	echoGap       = 60 * time.Millisecond
)

// delayQueueFlood: a gateway's key floods both layer-1 mixnodes with
// fresh ack packets that ask for 29 s there and have a real next hop; the
// nodes' delay queues hold 32 packets, all of which one peer may hold.
func delayQueueFlood() floodAttack {
	const queue = 32
	return floodAttack{
		cfg: Config{MixDelay: floodMixDelay, MixnodeArgs: func(int, int) []string {
			return []string{"--max-queue", fmt.Sprint(queue), "--max-queue-per-peer", fmt.Sprint(queue)}
		}},
		flooder: func(n *Network) *Node { return n.Gateway(1) },
		targets: func(n *Network) []*Node { return []*Node{n.Mixnode(1, 0), n.Mixnode(1, 1)} },
		supply: func(tb testing.TB, ctx context.Context, topo *directory.Topology, nd *Node, out chan<- []byte) {
			buildPackets(ctx, floodRoute(tb, topo, nd, 29*time.Second), out)
		},
		rate: 100,
		hold: func(ctx context.Context, nd *Node) (bool, error) {
			v, err := nd.Metric(ctx, "peapod_mixnode_queue_depth", "queue", "delay")
			return v >= queue*3/4, err
		},
	}
}

// exitFlood: a layer-3 mixnode's key (mixnode-3-1's, whose process keeps
// relaying honest packets meanwhile) floods gateway 0, the exit of the
// honest echoes, with one-hop packets for a client it does not have: each
// costs the gateway a peel. 256 packets sent again and again (a replay
// costs the peel as much), 3000 a second in bursts of 30; the gateway's
// exit queue holds 32 packets, 16 of them one peer's, so that every burst
// overflows the flooder's share however fast the gateway peels.
func exitFlood() floodAttack {
	const queue, share = 32, 16
	return floodAttack{
		cfg: Config{MixDelay: floodMixDelay, GatewayArgs: func(int) []string {
			return []string{"--max-exit-queue", fmt.Sprint(queue), "--max-exit-queue-per-peer", fmt.Sprint(share)}
		}},
		flooder: func(n *Network) *Node { return n.Mixnode(3, 1) },
		targets: func(n *Network) []*Node { return []*Node{n.Gateway(0)} },
		supply: func(tb testing.TB, ctx context.Context, topo *directory.Topology, gw *Node, out chan<- []byte) {
			var stranger sphinx.Destination
			rand.Read(stranger[:])
			route := []sphinx.Hop{topoHop(tb, topo, gw, 0)}
			packets := make([][]byte, 256)
			for i := range packets {
				p, err := sphinx.NewPacket(rand.Reader, sphinx.AckPacket, route, stranger, sphinx.SURBID{}, nil)
				if err != nil {
					panic(err) // the route was checked
				}
				packets[i] = p
			}
			for i := 0; ; i++ {
				select {
				case out <- packets[i%len(packets)]:
				case <-ctx.Done():
					return
				}
			}
		},
		rate: 3000,
		hold: func(ctx context.Context, gw *Node) (bool, error) {
			v, err := gw.Metric(ctx, "peapod_gateway_dropped_total", "reason", "exit_queue_full")
			return v > 0, err
		},
	}
}

// floodRun is a network under one floodAttack, with its honest clients.
type floodRun struct {
	attack  floodAttack
	n       *Network
	ctx     context.Context
	epA     Endpoint
	b       *Client
	in      *inbox
	sent    []string // the echoes sent, by phase-i name
	targets []*Node
	supply  []chan []byte
}

// startFloodRun starts the network and the honest clients, builds the
// flood's first packets and sends five echoes to warm the links up (a
// node that has not fetched the topology yet holds the first packets).
func startFloodRun(tb testing.TB, attack floodAttack) *floodRun {
	n := startNet(tb, attack.cfg)
	r := &floodRun{attack: attack, n: n, ctx: ctxFor(tb, 5*time.Minute), targets: attack.targets(n)}
	honest := n.Gateway(0)
	a, err := n.StartClient(r.ctx, "client-a", ClientOptions{Gateway: honest.Identity(), Delays: true})
	if err != nil {
		tb.Fatal(err)
	}
	r.b, err = n.StartClient(r.ctx, "client-b", ClientOptions{Gateway: honest.Identity(), Delays: true})
	if err != nil {
		tb.Fatal(err)
	}
	r.epA = dialWS(tb, a)
	r.in = newInbox(dialWS(tb, r.b))
	tb.Cleanup(r.in.stop)

	topo, err := n.Topology(r.ctx)
	if err != nil {
		tb.Fatal(err)
	}
	supplyCtx, stop := context.WithCancel(r.ctx)
	tb.Cleanup(stop)
	for _, nd := range r.targets {
		ch := make(chan []byte, attack.rate*4/10) // 0.4 s of flood
		r.supply = append(r.supply, ch)
		go attack.supply(tb, supplyCtx, topo, nd, ch)
	}
	if err := pollUntil(r.ctx, 100*time.Millisecond, func() (bool, error) {
		for _, ch := range r.supply {
			if len(ch) < cap(ch) {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		tb.Fatal("the flood's packets were not built in time")
	}
	r.echo(tb, "warmup", 5)
	return r
}

// echo sends count echoes named phase-i and returns how long each took.
func (r *floodRun) echo(tb testing.TB, phase string, count int) []time.Duration {
	sent := len(r.sent)
	took := echoLatencies(tb, r.ctx, r.epA, r.b.Address(), r.in, &sent, phase, count, echoGap)
	r.sent = append(r.sent, numberedEchoes(phase, count)...)
	return took
}

// flood starts the flood, one Noise link to each target with the
// flooder's key, and returns once it has taken hold at every target; stop
// ends it and reports whether it ran as it should.
func (r *floodRun) flood(tb testing.TB) (stop func() error) {
	var wg sync.WaitGroup
	stopFlood := make(chan struct{})
	errs := make(chan error, len(r.targets))
	for i, nd := range r.targets {
		c, nc := dialAs(tb, r.attack.flooder(r.n), nd)
		wg.Go(func() {
			if err := flood(nc, r.supply[i], r.attack.rate, stopFlood, 10*time.Minute); err != nil {
				errs <- fmt.Errorf("flooding %s: %w", nd.Name(), err)
			}
			c.Close()
		})
	}
	stop = sync.OnceValue(func() error {
		close(stopFlood)
		wg.Wait()
		close(errs)
		return <-errs
	})
	tb.Cleanup(func() { stop() })
	for _, nd := range r.targets {
		if err := pollUntil(r.ctx, 50*time.Millisecond, func() (bool, error) { return r.attack.hold(r.ctx, nd) }); err != nil {
			tb.Fatalf("the flood did not take hold at %s: %v", nd.Name(), err)
		}
	}
	return stop
}

// check fails tb unless b received every echo sent, once, in order.
func (r *floodRun) check(tb testing.TB) {
	got := r.in.messages()
	want := slices.Clone(r.sent)
	slices.Sort(got)
	slices.Sort(want)
	checkSequence(tb, got, want)
}

// p50 is the median of d (the upper one of an even count).
func p50(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// reportFlood logs the honest echoes' latency with and without the flood.
func reportFlood(tb testing.TB, unloaded, flooded []time.Duration) {
	tb.Logf("honest echo p50: %v unloaded, %v flooded (%.2f×; max %v, %v); BenchmarkFloods measures the ratio",
		p50(unloaded), p50(flooded), float64(p50(flooded))/float64(p50(unloaded)), slices.Max(unloaded), slices.Max(flooded))
}

// TestDelayQueueFlood: a gateway of the topology (its Noise key, held by
// an attacker) floods both layer-1 mixnodes with fresh, well-formed ack
// packets that ask for 29 s at layer 1 and have real next hops: the attack
// that filled every node's delay queue and stalled honest echoes for 15-25
// s. The nodes run with a delay queue of 32 packets, all of which one peer
// may hold, so that only the eviction policy stands between the flood and
// the honest gateway's packets; the directory advertises a mean delay of
// 50 ms, so the nodes honour at most 1 s. While the flood fills the
// queues, honest echoes (client a to client b, both on the other gateway,
// sent one at a time with mixing delays) all arrive, no packet of the
// honest gateway is dropped at layer 1, and the flooder's packets are:
// clamped to the bound, then evicted or refused. Their latency is logged;
// BenchmarkFloods measures it against the unloaded one.
func TestDelayQueueFlood(t *testing.T) {
	t.Parallel()
	const wantBound = 20 * floodMixDelay // mixnode.DelayBoundFactor times the mean
	r := startFloodRun(t, delayQueueFlood())
	ctx := r.ctx
	unloaded := r.echo(t, "unloaded", floodEchoes)
	stop := r.flood(t)
	flooded := r.echo(t, "flooded", floodEchoes)

	// While the flood still runs: what the layer-1 nodes did with it.
	for _, nd := range r.targets {
		if got := metricOf(t, ctx, nd, "peapod_mixnode_max_delay_seconds"); got != wantBound.Seconds() {
			t.Errorf("%s honours delays up to %vs, want %v (20 times the advertised mean)", nd.Name(), got, wantBound)
		}
		if got := metricOf(t, ctx, nd, "peapod_mixnode_delays_clamped_total"); got == 0 {
			t.Errorf("%s clamped no delay", nd.Name())
		}
		checkPeerDrops(t, ctx, nd, "peapod_mixnode_peer_packets_dropped_total", r.attack.flooder(r.n), r.n.Gateway(0))
		evicted := metricOf(t, ctx, nd, "peapod_mixnode_packets_dropped_total", "reason", "delay_evicted")
		refused := metricOf(t, ctx, nd, "peapod_mixnode_packets_dropped_total", "reason", "delay_queue_full")
		t.Logf("%s: %v flood packets evicted, %v refused", nd.Name(), evicted, refused)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	reportFlood(t, unloaded, flooded)
	r.check(t)
}

// TestExitFlood: an attacker holding a layer-3 mixnode's Noise key (the
// one kind of key the gateway takes exit frames from, TestExitInjection)
// floods the honest clients' gateway with packets to peel, far faster than
// it peels them, while that mixnode keeps relaying honest packets. The
// gateway's exit queue holds 32 packets, 16 of them one peer's.
// While the flood runs, honest echoes (client a to client b on that
// gateway) all arrive, none of the other layer-3 node's packets is
// dropped, and the flooder's are, counted under its key; their latency is
// logged, and BenchmarkFloods measures it against the unloaded one.
func TestExitFlood(t *testing.T) {
	t.Parallel()
	r := startFloodRun(t, exitFlood())
	ctx := r.ctx
	gw := r.targets[0]
	unloaded := r.echo(t, "unloaded", floodEchoes)
	stop := r.flood(t)
	flooded := r.echo(t, "flooded", floodEchoes)

	checkPeerDrops(t, ctx, gw, "peapod_gateway_peer_packets_dropped_total", r.attack.flooder(r.n), r.n.Mixnode(3, 0))
	full := metricOf(t, ctx, gw, "peapod_gateway_dropped_total", "reason", "exit_queue_full")
	evicted := metricOf(t, ctx, gw, "peapod_gateway_dropped_total", "reason", "exit_queue_evicted")
	peeled := metricOf(t, ctx, gw, "peapod_gateway_dropped_total", "reason", "replay") +
		metricOf(t, ctx, gw, "peapod_gateway_dropped_total", "reason", "unknown_client")
	t.Logf("%s: %v flood packets peeled and dropped, %v refused at the exit queue, %v evicted", gw.Name(), peeled, full, evicted)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	reportFlood(t, unloaded, flooded)
	r.check(t)
}

// checkPeerDrops fails t unless nd's metric of drops by peer counts some
// of flooder's packets and none of spared's (a peer without drops is
// absent).
func checkPeerDrops(t *testing.T, ctx context.Context, nd *Node, metric string, flooder, spared *Node) {
	t.Helper()
	if got := metricOf(t, ctx, nd, metric, "peer", peerName(flooder)); got == 0 {
		t.Errorf("%s dropped none of the flooder's (%s's key's) packets", nd.Name(), flooder.Name())
	}
	if got, err := nd.Metric(ctx, metric, "peer", peerName(spared)); err == nil {
		t.Errorf("%s dropped %v packets of %s", nd.Name(), got, spared.Name())
	}
}

// BenchmarkFloods measures the honest echoes of TestDelayQueueFlood and
// TestExitFlood while their floods run, against the same echoes on the
// same network before the flood: 25 unloaded echoes, then b.N flooded
// ones. Reported: the medians (unloaded-p50-ms, flooded-p50-ms) and
// x-unloaded, their ratio (issue 15: within 2).
func BenchmarkFloods(b *testing.B) {
	for _, bc := range []struct {
		name   string
		attack func() floodAttack
	}{{"delay-queue", delayQueueFlood}, {"exit", exitFlood}} {
		b.Run(bc.name, func(b *testing.B) {
			r := startFloodRun(b, bc.attack())
			unloaded := r.echo(b, "unloaded", floodEchoes)
			stop := r.flood(b)
			b.ResetTimer()
			flooded := r.echo(b, "flooded", b.N)
			b.StopTimer()
			if err := stop(); err != nil {
				b.Fatal(err)
			}
			r.check(b)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(p50(unloaded)), "unloaded-p50-ms")
			b.ReportMetric(ms(p50(flooded)), "flooded-p50-ms")
			b.ReportMetric(float64(p50(flooded))/float64(p50(unloaded)), "x-unloaded")
		})
	}
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
