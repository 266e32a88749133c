package client

import (
	"fmt"
	"testing"
	"time"
)

// Recovery from a network that changed under the client, without waiting
// for the periodic topology refresh (5 minutes by default, far beyond these
// tests' deadlines).

// TestGatewayMoved moves a client's gateway to new ports: the client looks
// it up again by identity, reconnects there, and messages flow both ways,
// including from a sender whose topology still names the old address.
func TestGatewayMoved(t *testing.T) {
	n := startTestNet(t, netOptions{})
	a := startClient(t, testConfig(t, n, 0))
	b := startClient(t, testConfig(t, n, 1))
	ctx := timeout(t, 60*time.Second)
	oldURL := n.gateway(0).ClientURL()
	if err := n.MoveGateway(0); err != nil {
		t.Fatal(err)
	}
	if n.gateway(0).ClientURL() == oldURL {
		t.Fatal("the gateway did not move")
	}

	if _, err := b.Send(ctx, a.Address(), []byte("to the moved gateway")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, ctx, a); string(m.Data) != "to the moved gateway" {
		t.Fatalf("a got %q", m.Data)
	}
	d, err := a.Send(ctx, b.Address(), []byte("from the moved gateway"))
	if err != nil {
		t.Fatal(err)
	}
	if m := receive(t, ctx, b); string(m.Data) != "from the moved gateway" {
		t.Fatalf("b got %q", m.Data)
	}
	if err := d.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Stats().Reconnects == 0 {
		t.Fatal("a never reconnected")
	}
}

// TestFirstHopRefused moves every layer-1 mixnode, so that a client's
// topology names first hops its gateway no longer knows. The gateway
// refuses them, and the client fetches the topology and sends again at once:
// its retransmission timeout is a minute, beyond the test's deadline.
func TestFirstHopRefused(t *testing.T) {
	n := startTestNet(t, netOptions{})
	b := startClient(t, testConfig(t, n, 1))
	cfg := testConfig(t, n, 0)
	cfg.RetransmitBase = time.Minute
	a := startClient(t, cfg)
	ctx := timeout(t, 30*time.Second)
	for i := range 2 {
		if err := n.MoveMixnode(1, i); err != nil {
			t.Fatal(err)
		}
	}
	// A client that starts now routes through the moved nodes, which makes
	// the gateway fetch the topology: it learns their new addresses and
	// forgets the old ones.
	c := startClient(t, testConfig(t, n, 0))
	d, err := c.Send(ctx, b.Address(), []byte("through the new layer 1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	receive(t, ctx, b)

	d, err = a.Send(ctx, b.Address(), []byte("from a stale topology"))
	if err != nil {
		t.Fatal(err)
	}
	if m := receive(t, ctx, b); string(m.Data) != "from a stale topology" {
		t.Fatalf("b got %q", m.Data)
	}
	if err := d.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Stats().Retransmits == 0 {
		t.Fatal("delivered without being sent again: the first hop was not refused")
	}
}

// TestSendsWaitWhileOwnGatewayUnlisted: a client whose topology no longer
// lists its own gateway (it left the directory while it stopped, and the
// client looked it up again meanwhile) keeps what it sends until the
// gateway is back, rather than failing it: the soak under attack
// (`soak -flood`, where gateways stop slowly) lost replies this way.
func TestSendsWaitWhileOwnGatewayUnlisted(t *testing.T) {
	n := startTestNet(t, netOptions{})
	a := startClient(t, testConfig(t, n, 0))
	b := startClient(t, testConfig(t, n, 1))
	ctx := timeout(t, 2*time.Minute)
	n.stopGateway(0)
	for {
		if err := a.refreshTopology(ctx); err != nil {
			t.Fatal(err)
		}
		if _, listed := a.view.Load().gateway(a.addr.Gateway[:]); !listed {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the stopped gateway stayed in the directory")
		case <-time.After(100 * time.Millisecond):
		}
	}
	var ds []*Delivery
	for i := range 5 {
		d, err := a.Send(ctx, b.Address(), fmt.Appendf(nil, "unlisted %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	n.restartGateway(0)
	for i := range 5 {
		if m := receive(t, ctx, b); string(m.Data) != fmt.Sprintf("unlisted %d", i) {
			t.Fatalf("message %d: got %q", i, m.Data)
		}
	}
	for i, d := range ds {
		if err := d.Wait(ctx); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}
