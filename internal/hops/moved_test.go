package hops

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// redirects records the moves a Cache hands over.
type redirects struct {
	mu    sync.Mutex
	moves [][2]netip.AddrPort
}

func (r *redirects) Redirect(from, to netip.AddrPort) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.moves = append(r.moves, [2]netip.AddrPort{from, to})
	return 0
}

func (r *redirects) last() [][2]netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][2]netip.AddrPort(nil), r.moves...)
}

// moveGateway lists the gateway at from at to instead, keeping its keys.
func (d *fakeDirectory) moveGateway(from, to string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, g := range d.topo.Gateways {
		if g.Address == from {
			d.topo.Gateways[i].Address, d.topo.Gateways[i].ClientAddress = to, "ws://"+to
		}
	}
}

// TestMovedTo follows a gateway (the next hop of a layer-3 mixnode) that
// left the topology (it deregistered while it stopped) and came back at
// another address with its Noise key: MovedTo names the new address, the
// Redirector is handed the move after the fetch that shows it, and a node
// listed again where it was, or with another key, is not followed.
func TestMovedTo(t *testing.T) {
	d := newFakeDirectory(t)
	d.addGateway(t, "127.0.0.1:7001")
	d.addGateway(t, "127.0.0.1:7002")
	c := New(d.client, Gateways, zerolog.Nop())
	var r redirects
	c.FollowMoves(&r)
	ctx := context.Background()
	refresh := func() {
		t.Helper()
		if err := c.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	refresh()
	if _, ok := c.MovedTo(ap("127.0.0.1:7001")); ok {
		t.Fatal("a hop listed where it is counts as moved")
	}

	// It leaves: nothing to follow yet.
	d.mu.Lock()
	saved := d.topo.Gateways[0]
	d.topo.Gateways = d.topo.Gateways[1:]
	d.mu.Unlock()
	refresh()
	if to, ok := c.MovedTo(ap("127.0.0.1:7001")); ok {
		t.Fatalf("a hop that left is followed to %v", to)
	}
	// It is back elsewhere, with its key.
	saved.Address, saved.ClientAddress = "127.0.0.1:7003", "ws://127.0.0.1:7003"
	d.mu.Lock()
	d.topo.Gateways = append(d.topo.Gateways, saved)
	d.mu.Unlock()
	refresh()
	if to, ok := c.MovedTo(ap("127.0.0.1:7001")); !ok || to != ap("127.0.0.1:7003") {
		t.Fatalf("MovedTo = %v, %v; want 127.0.0.1:7003", to, ok)
	}
	if to, ok := c.MovedTo(ap("[::ffff:127.0.0.1]:7001")); !ok || to != ap("127.0.0.1:7003") {
		t.Fatalf("MovedTo of the IPv4-mapped address = %v, %v", to, ok)
	}
	if got := r.last(); len(got) != 1 || got[0] != [2]netip.AddrPort{ap("127.0.0.1:7001"), ap("127.0.0.1:7003")} {
		t.Fatalf("redirects %v, want one from 7001 to 7003", got)
	}
	// It moves on again: the oldest address follows it too.
	d.moveGateway("127.0.0.1:7003", "127.0.0.1:7004")
	refresh()
	for _, from := range []string{"127.0.0.1:7001", "127.0.0.1:7003"} {
		if to, ok := c.MovedTo(ap(from)); !ok || to != ap("127.0.0.1:7004") {
			t.Fatalf("MovedTo(%s) = %v, %v; want 127.0.0.1:7004", from, to, ok)
		}
	}
	// Another node takes the first address: it is that node's now, and
	// MovedTo is asked only of addresses the topology does not list.
	d.addGateway(t, "127.0.0.1:7001")
	refresh()
	if !c.Known(ap("127.0.0.1:7001")) {
		t.Fatal("the new node at 7001 is not a next hop")
	}
	if to, ok := c.MovedTo(ap("127.0.0.1:7001")); ok {
		t.Fatalf("7001, listed for another node now, is still followed to %v", to)
	}
	if to, ok := c.MovedTo(ap("127.0.0.1:7003")); !ok || to != ap("127.0.0.1:7004") {
		t.Fatalf("MovedTo(7003) = %v, %v after another node took 7001", to, ok)
	}
	// A hop that comes back where it was is not followed away from it.
	d.moveGateway("127.0.0.1:7004", "127.0.0.1:7003")
	refresh()
	if to, ok := c.MovedTo(ap("127.0.0.1:7003")); ok {
		t.Fatalf("7003, its node back there, is followed to %v", to)
	}
}

// TestDialFailedFetches: a failed connection to a next hop makes Run fetch
// the topology at once, without waiting for its (hour-long) schedule.
func TestDialFailedFetches(t *testing.T) {
	d := newFakeDirectory(t)
	d.addGateway(t, "127.0.0.1:7001")
	c := New(d.client, Gateways, zerolog.Nop())
	run(t, c, time.Hour)
	before := c.Fetches()
	c.DialFailed(ap("127.0.0.1:7001"), 1)
	eventually(t, "a fetch after the failed dial", func() bool { return c.Fetches() > before })
}
