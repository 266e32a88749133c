package hops

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
)

// retries records the addresses a Cache asks to retry; it answers that a
// writer was waiting for each.
type retries struct {
	mu    sync.Mutex
	addrs []netip.AddrPort
}

func (r *retries) Retry(to netip.AddrPort) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs = append(r.addrs, to)
	return true
}

// take returns the addresses asked for since the last take.
func (r *retries) take() []netip.AddrPort {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.addrs
	r.addrs = nil
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}

// TestRetryReturns lists two gateways (the next hops of a layer-3
// mixnode), has one leave the topology (it deregistered as it stopped) and
// come back at the same address: the fetch that lists it again, and only
// that one, hands it to the Retrier, as does a fetch that lists a hop with
// another Noise key; a fetch that lists every hop as before hands none, so
// a node that stays down, listed or not, keeps its backoff.
func TestRetryReturns(t *testing.T) {
	d := newFakeDirectory(t)
	d.addGateway(t, "127.0.0.1:7001")
	d.addGateway(t, "127.0.0.1:7002")
	c := New(d.client, Gateways, zerolog.Nop())
	var r retries
	c.RetryReturns(&r)
	refresh := func() []netip.AddrPort {
		t.Helper()
		if err := c.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		return r.take()
	}
	check := func(what string, got []netip.AddrPort, want ...netip.AddrPort) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s: retried %v, want %v", what, got, want)
		}
	}
	check("first fetch", refresh(), ap("127.0.0.1:7001"), ap("127.0.0.1:7002"))
	check("same topology", refresh())

	d.mu.Lock()
	saved := d.topo.Gateways[0]
	d.topo.Gateways = d.topo.Gateways[1:]
	d.mu.Unlock()
	check("a hop left", refresh())
	check("it stays away", refresh())

	d.mu.Lock()
	d.topo.Gateways = append(d.topo.Gateways, saved)
	d.mu.Unlock()
	check("it is listed again", refresh(), ap("127.0.0.1:7001"))
	check("listed as before", refresh())

	d.mu.Lock()
	k := randomKey()
	d.topo.Gateways[0].NoiseKey = address.EncodeKey(k[:])
	d.mu.Unlock()
	check("a new Noise key", refresh(), ap("127.0.0.1:7002"))
	check("listed as before", refresh())
}
