package testnet

import (
	"context"
	"crypto/rand"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// TestIdleConnectionFlood: 1000 idle sockets held open against each
// layer-1 mixnode, from an address outside the topology (reopened as soon
// as the node closes them, at up to 200 a second) and from the nodes' own
// address (opened once), plus sockets that send a few garbage bytes now and
// then, do not keep the honest gateway out: its links, cut at the relays
// in front of the layer-1 nodes, come back through the flooded listeners
// and every message sent after arrives. The garbage senders are closed at
// their first bytes, and the nodes count the sockets they closed to make
// room.
func TestIdleConnectionFlood(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{Relays: true})
	ctx := ctxFor(t, 2*time.Minute)
	if !n.HostIP().IsLoopback() || !n.HostIP().Is4() {
		t.Skip("needs the network on an IPv4 loopback address, to flood from another one")
	}
	outside := netip.AddrFrom4([4]byte{127, 0, 0, 2})
	a, b, _ := twoClientsOn(t, ctx, n, 0, 0)
	epA := dialWS(t, a)
	in := newInbox(dialWS(t, b))
	defer in.stop()
	var sent []string
	send := func(msgs ...string) {
		t.Helper()
		if err := sendAll(ctx, epA, b.Address(), msgs, 0); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, msgs...)
		if err := in.waitCount(ctx, len(sent)); err != nil {
			t.Fatal(err)
		}
	}
	send(numbered("before", 0, 3)...)

	l1 := []*Node{n.Mixnode(1, 0), n.Mixnode(1, 1)}
	floodCtx, stopFlood := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopFlood(); wg.Wait() }()
	var floods []*socketFlood
	evicted := func() float64 {
		return metricSum(t, ctx, l1, "peapod_mixnode_inbound_connections_refused_total", "reason", "evicted")
	}
	before := evicted()
	for _, nd := range l1 {
		for _, f := range []*socketFlood{
			{target: nd.Listen, from: outside, count: 1000, redial: true},
			{target: nd.Listen, from: n.HostIP(), count: 1000},
		} {
			floods = append(floods, f)
			wg.Go(func() { f.run(floodCtx) })
		}
	}
	// Every socket of the first round has been opened, and the nodes
	// closed some of them to make room.
	if err := pollUntil(ctx, 100*time.Millisecond, func() (bool, error) {
		for _, f := range floods {
			if f.dialed.Load() < int64(f.count) {
				return false, nil
			}
		}
		return evicted() > before, nil
	}); err != nil {
		t.Fatalf("the flood did not open its sockets: %v", err)
	}

	// Sockets that send garbage now and then are closed at their first
	// bytes (they are not a Noise handshake).
	for i := range 10 {
		c := dialTCPFrom(t, outside, l1[i%2].Listen)
		go func() {
			for range 50 {
				if _, err := c.Write([]byte("garbage!")); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		expectEOF(t, c, l1[i%2].Name())
	}

	// The honest gateway's links drop and come back while the flood runs.
	for _, nd := range l1 {
		nd.Relay.Cut()
	}
	for _, nd := range l1 {
		nd.Relay.Restore()
	}
	send(numbered("during", 0, 10)...)
	for _, nd := range l1 {
		if got := metricOf(t, ctx, nd, "peapod_mixnode_inbound_handshakes"); got > float64(wire.DefaultMaxHandshakes) {
			t.Errorf("%s holds %v connections in their handshake, more than its bound", nd.Name(), got)
		}
	}
	var dialed, closedByNode int64
	for _, f := range floods {
		dialed += f.dialed.Load()
		closedByNode += f.closed.Load()
	}
	t.Logf("the flood opened %d sockets; the nodes closed %d of them (%v evictions counted)", dialed, closedByNode, evicted()-before)
	stopFlood()
	wg.Wait()
	in.quiet(t, 500*time.Millisecond, len(sent))
	checkSequence(t, in.messages(), sent)
}

// socketFlood holds count idle TCP sockets open to target from the source
// address from; with redial, it opens a new one (at most 200 a second)
// whenever the target closes one.
type socketFlood struct {
	target netip.AddrPort
	from   netip.Addr
	count  int
	redial bool

	dialed, closed atomic.Int64
}

func (f *socketFlood) run(ctx context.Context) {
	d := attackerDialer(f.from.String())
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, f.count)
	for range f.count {
		slots <- struct{}{}
	}
	pace := time.NewTicker(5 * time.Millisecond)
	defer pace.Stop()
	for opened := 0; ; opened++ {
		if opened >= f.count {
			if !f.redial {
				<-ctx.Done()
				return
			}
			select {
			case <-pace.C:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-slots:
		case <-ctx.Done():
			return
		}
		c, err := d.DialContext(ctx, "tcp", f.target.String())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			slots <- struct{}{}
			continue
		}
		f.dialed.Add(1)
		wg.Go(func() {
			done := make(chan struct{})
			go func() {
				select {
				case <-ctx.Done():
				case <-done:
				}
				c.Close()
			}()
			var b [1]byte
			if _, err := c.Read(b[:]); err != nil && ctx.Err() == nil {
				f.closed.Add(1)
			}
			close(done)
			slots <- struct{}{}
		})
	}
}

// dialTCPFrom opens a TCP connection to target from the source address
// from.
func dialTCPFrom(t testing.TB, from netip.Addr, target netip.AddrPort) net.Conn {
	t.Helper()
	c, err := attackerDialer(from.String()).Dial("tcp", target.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestExitInjection: one-hop Sphinx packets for a client, sent straight to
// its gateway's mix listener, are delivered only when they come over a
// Noise link from a layer-3 mixnode of the topology. Plain frames, a key
// the topology does not list, and the keys of a layer-1 mixnode and of
// another gateway are refused before any frame is read, and the gateway
// receives nothing from them; the same packets sent as the layer-3 node
// reach the client's gateway (so the refusals are what stopped them). The
// forward direction holds too: a layer-2 mixnode refuses a gateway's key
// and a layer-1 one a layer-2 node's.
func TestExitInjection(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	ctx := ctxFor(t, 2*time.Minute)
	_, b, _ := twoClientsOn(t, ctx, n, 1, 0)
	gw := n.Gateway(0) // b's
	in := newInbox(dialWS(t, b))
	defer in.stop()
	topo, err := n.Topology(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inject := func() []byte {
		p, err := sphinx.NewPacket(rand.Reader, sphinx.AckPacket, []sphinx.Hop{topoHop(t, topo, gw, 0)},
			sphinx.Destination(b.Address().Identity), sphinx.SURBID{}, make([]byte, 21))
		if err != nil {
			t.Fatal(err)
		}
		h, err := wire.HeaderFor(p)
		if err != nil {
			t.Fatal(err)
		}
		return wire.AppendFrame(nil, h, p)
	}
	fromMixes := func() float64 { return metricOf(t, ctx, gw, "peapod_gateway_packets_from_mixes_total") }
	refused := func(nd *Node) float64 {
		return metricOf(t, ctx, nd, mixPrefix(nd)+"inbound_connections_refused_total") +
			metricOf(t, ctx, nd, mixPrefix(nd)+"inbound_connections_closed_total", "reason", "handshake_failed")
	}
	delivered := func() float64 { return metricOf(t, ctx, gw, "peapod_gateway_delivered_live_total") }
	got, gotDelivered := fromMixes(), delivered()

	// Plain frames, as the attack of the review sent them.
	before := refused(gw)
	c, err := net.DialTimeout("tcp", gw.Listen.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		c.Write(inject())
	}
	expectEOF(t, c, gw.Name())
	c.Close()
	waitMetricAbove(t, ctx, "the plain connection refused", func() float64 { return refused(gw) }, before)

	// Noise links as a stranger, a layer-1 mixnode and the other gateway.
	for _, who := range []struct {
		name string
		key  wire.StaticKey
	}{
		{"a key of its own", mustNoiseKey(t)},
		{"a layer-1 mixnode", n.Mixnode(1, 0).NoiseKey()},
		{"another gateway", n.Gateway(1).NoiseKey()},
	} {
		before := refused(gw)
		expectRefused(t, gw, who.key)
		waitMetricAbove(t, ctx, who.name+" refused", func() float64 { return refused(gw) }, before)
	}
	if now := fromMixes(); now != got || delivered() != gotDelivered {
		t.Fatalf("the gateway took %v frames from the refused links, and delivered %v", now-got, delivered()-gotDelivered)
	}

	// The same packets from the layer-3 node that may send them reach b.
	writeAs(t, n, gw, inject())
	waitMetricAbove(t, ctx, "the layer-3 node's packet delivered to b", delivered, gotDelivered)

	// The forward direction: each mixnode takes packets only from the
	// layer before it.
	for _, tc := range []struct{ from, to *Node }{
		{n.Gateway(0), n.Mixnode(2, 0)},
		{n.Mixnode(2, 0), n.Mixnode(1, 0)},
		{n.Mixnode(1, 0), n.Mixnode(3, 0)},
	} {
		before := refused(tc.to)
		expectRefused(t, tc.to, tc.from.NoiseKey())
		waitMetricAbove(t, ctx, tc.from.Name()+" refused by "+tc.to.Name(), func() float64 { return refused(tc.to) }, before)
	}
}

// mixPrefix is the prefix of nd's packet listener's metrics.
func mixPrefix(nd *Node) string {
	if nd.Layer == 0 {
		return "peapod_gateway_mix_"
	}
	return "peapod_mixnode_"
}
