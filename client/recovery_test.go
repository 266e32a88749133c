package client

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client/internal/fragment"
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

// TestSendsWaitWhileOwnGatewayUnlisted: a client whose gateway has left
// the directory (it stopped; a whole network restarting looks the same
// until its nodes register again) keeps the topology it holds, which can
// route, rather than take one that cannot, and keeps what it sends, plain
// and anonymous, until the gateway is back, rather than failing it: the
// soak under attack (`soak -flood`, where gateways stop slowly) lost
// replies this way, and so did a provider's embedded network restarted
// under a client (testnet.TestProviderRestartEmbedded).
func TestSendsWaitWhileOwnGatewayUnlisted(t *testing.T) {
	n := startTestNet(t, netOptions{})
	a := startClient(t, testConfig(t, n, 0))
	b := startClient(t, testConfig(t, n, 1))
	ctx := timeout(t, 2*time.Minute)
	n.stopGateway(0)
	for {
		top, err := a.dir.Topology(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, listed := top.Gateway(address.EncodeKey(a.addr.Gateway[:])); !listed {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the stopped gateway stayed in the directory")
		case <-time.After(100 * time.Millisecond):
		}
	}
	a.viewMu.Lock()
	a.fetchAt = time.Time{} // no rate limit for this fetch
	a.viewMu.Unlock()
	if err := a.refreshTopology(ctx); !errors.Is(err, errUnroutable) {
		t.Fatalf("refreshing without the own gateway listed: %v, want errUnroutable", err)
	}
	if _, listed := a.view.Load().gateway(a.addr.Gateway[:]); !listed {
		t.Fatal("the client took a topology that does not list its gateway")
	}
	var ds []*Delivery
	for i := range 5 {
		d, err := a.Send(ctx, b.Address(), fmt.Appendf(nil, "unlisted %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	d, err := a.SendAnonymous(ctx, b.Address(), []byte("anonymous"), 2)
	if err != nil {
		t.Fatalf("an anonymous send while the gateway is unlisted: %v", err)
	}
	ds = append(ds, d)
	n.restartGateway(0)
	// The plain messages in order; the anonymous one, a stream of its own,
	// anywhere among them.
	var plain []string
	anonymous := 0
	for range 6 {
		if m := string(receive(t, ctx, b).Data); m == "anonymous" {
			anonymous++
		} else {
			plain = append(plain, m)
		}
	}
	if want := []string{"unlisted 0", "unlisted 1", "unlisted 2", "unlisted 3", "unlisted 4"}; anonymous != 1 || !slices.Equal(plain, want) {
		t.Fatalf("got %q and %d anonymous, want %q and one", plain, anonymous, want)
	}
	for i, d := range ds {
		if err := d.Wait(ctx); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}

// TestIncompleteMessageSurvivesRestart: a client that has received, and so
// confirmed to its gateway, some fragments of a message when it stops
// rebuilds the message after its restart from those (kept on disk) and the
// rest. Before, the fragments lived only in memory: the message was never
// completed, and its stream waited out the gap (a provider restarted under
// a requester, testnet.TestProviderRestartEmbedded, lost a request so).
func TestIncompleteMessageSurvivesRestart(t *testing.T) {
	n := startTestNet(t, netOptions{})
	cfg := testConfig(t, n, 0)
	b := startClient(t, cfg)
	ctx := timeout(t, 30*time.Second)
	data := bytes.Repeat([]byte("three fragments "), FragmentCapacity*3/16)
	frags, err := fragment.Split(plainMessage(streamPos{stream: [streamIDSize]byte{1}}, data), FragmentCapacity, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if len(frags) < 3 {
		t.Fatalf("%d fragments, want 3 or more", len(frags))
	}
	for _, f := range frags[:2] {
		b.receiveFragment(f.AppendBinary(nil), false)
	}
	if err := b.persistPartials(); err != nil { // as before a confirmation
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = startClient(t, cfg)
	for _, f := range frags[2:] {
		b.receiveFragment(f.AppendBinary(nil), false)
	}
	if m := receive(t, ctx, b); !bytes.Equal(m.Data, data) {
		t.Fatalf("got %d bytes, want the %d of the message", len(m.Data), len(data))
	}
	// Complete, its fragments leave the disk with the next commit.
	if err := b.persistPartials(); err != nil {
		t.Fatal(err)
	}
	if left, err := b.state.loadPartials(); err != nil || len(left) != 0 {
		t.Fatalf("%d fragments left on disk (%v)", len(left), err)
	}
}
