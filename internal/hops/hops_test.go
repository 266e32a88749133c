package hops

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/wire"
)

// fakeDirectory serves a topology the test changes, and counts requests.
type fakeDirectory struct {
	mu       sync.Mutex
	topo     directory.Topology
	failing  bool
	requests atomic.Int64
	client   *directory.Client
}

func newFakeDirectory(t *testing.T) *fakeDirectory {
	t.Helper()
	d := &fakeDirectory{topo: directory.Topology{Mixnodes: []directory.Mixnode{}, Gateways: []directory.Gateway{}, Epoch: directory.DefaultSchedule().Info(0)}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.requests.Add(1)
		if r.URL.Path != directory.PathTopology {
			http.NotFound(w, r)
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.failing {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		json.NewEncoder(w).Encode(d.topo)
	}))
	t.Cleanup(srv.Close)
	d.client = &directory.Client{BaseURL: srv.URL}
	return d
}

// addMixnode lists a mixnode of the given layer at addr, and returns its
// Noise key.
func (d *fakeDirectory) addMixnode(t *testing.T, layer int, addr string) [wire.NoiseKeySize]byte {
	t.Helper()
	id, key := keys(t)
	noise := randomKey()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.topo.Mixnodes = append(d.topo.Mixnodes, directory.Mixnode{Layer: layer, Address: addr, Identity: id, SphinxKeys: key,
		NoiseKey: address.EncodeKey(noise[:])})
	return noise
}

// addGateway lists a gateway at addr, and returns its Noise key.
func (d *fakeDirectory) addGateway(t *testing.T, addr string) [wire.NoiseKeySize]byte {
	t.Helper()
	id, key := keys(t)
	noise := randomKey()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.topo.Gateways = append(d.topo.Gateways, directory.Gateway{Address: addr, ClientAddress: "ws://" + addr, Identity: id, SphinxKeys: key,
		NoiseKey: address.EncodeKey(noise[:])})
	return noise
}

func randomKey() [wire.NoiseKeySize]byte {
	var k [wire.NoiseKeySize]byte
	rand.Read(k[:])
	return k
}

func (d *fakeDirectory) setFailing(f bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failing = f
}

// keys returns a fresh base58 identity and a Sphinx key of rotation 0.
func keys(t *testing.T) (identity string, sphinxKeys []directory.SphinxKey) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var k [directory.KeySize]byte
	rand.Read(k[:])
	return address.EncodeKey(pub), []directory.SphinxKey{directory.NewSphinxKey(0, k)}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// eventually polls cond until it holds or a generous timeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// run runs c.Run until the test ends.
func run(t *testing.T, c *Cache, interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, interval, nil)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func TestSelectors(t *testing.T) {
	d := newFakeDirectory(t)
	for layer := directory.MinLayer; layer <= directory.MaxLayer; layer++ {
		d.addMixnode(t, layer, fmt.Sprintf("10.0.0.%d:1789", layer))
	}
	d.addGateway(t, "10.0.0.9:1789")
	d.addGateway(t, "10.0.0.10:1789")
	top, err := d.client.Topology(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		sel  Selector
		want []string
	}{
		{"Mixnodes(1)", Mixnodes(1), []string{"10.0.0.1:1789"}},
		{"After(1)", After(1), []string{"10.0.0.2:1789"}},
		{"After(2)", After(2), []string{"10.0.0.3:1789"}},
		{"After(3)", After(3), []string{"10.0.0.9:1789", "10.0.0.10:1789"}},
		{"Gateways", Gateways, []string{"10.0.0.9:1789", "10.0.0.10:1789"}},
		{"Before(1)", Before(1), []string{"10.0.0.9:1789", "10.0.0.10:1789"}},
		{"Before(2)", Before(2), []string{"10.0.0.1:1789"}},
		{"Before(3)", Before(3), []string{"10.0.0.2:1789"}},
	}
	for _, tc := range cases {
		var got []string
		for _, a := range tc.sel(top) {
			if !a.HasNoiseKey {
				t.Errorf("%s: %v has no Noise key", tc.name, a.Addr)
			}
			got = append(got, a.Addr.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A cache without a directory allows nothing and never blocks.
func TestNoDirectory(t *testing.T) {
	c := New(nil, Mixnodes(1), zerolog.Nop())
	for _, p := range []Policy{NoFetch, FetchIfDue, Wait} {
		if c.Allowed(context.Background(), ap("10.0.0.1:1789"), p) {
			t.Fatalf("policy %d allowed a hop without a directory", p)
		}
	}
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Run(context.Background(), time.Millisecond, nil) // returns at once
	if c.Fetches() != 0 || c.Len() != 0 {
		t.Fatalf("%d fetches, %d hops", c.Fetches(), c.Len())
	}
}

// Refresh replaces the set; a failed fetch keeps the previous one.
func TestRefresh(t *testing.T) {
	d := newFakeDirectory(t)
	d.addMixnode(t, 1, "10.0.0.1:1789")
	d.addMixnode(t, 2, "10.0.0.2:1789")
	c := New(d.client, Mixnodes(1), zerolog.Nop())
	if c.Known(ap("10.0.0.1:1789")) {
		t.Fatal("known before any fetch")
	}
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !c.Known(ap("10.0.0.1:1789")) || !c.Known(ap("[::ffff:10.0.0.1]:1789")) {
		t.Fatal("the layer-1 mixnode is not known, or not by its IPv4-mapped address")
	}
	if c.Known(ap("10.0.0.2:1789")) || c.Known(ap("10.0.0.1:1790")) || c.Len() != 1 {
		t.Fatal("a hop the selector did not pick is known")
	}

	d.setFailing(true)
	err := c.Refresh(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "hops: ") {
		t.Fatalf("failed fetch: %v", err)
	}
	if !c.Known(ap("10.0.0.1:1789")) {
		t.Fatal("a failed fetch lost the previous set")
	}
}

// NoFetch never fetches itself: it answers false and Run fetches soon
// after, once OnDemandGap has passed.
func TestNoFetch(t *testing.T) {
	d := newFakeDirectory(t)
	c := New(d.client, Mixnodes(1), zerolog.Nop())
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.addMixnode(t, 1, "10.0.0.1:1789")
	time.Sleep(OnDemandGap) // a fetch is due: NoFetch still does not make it
	if c.Allowed(context.Background(), ap("10.0.0.1:1789"), NoFetch) {
		t.Fatal("NoFetch fetched")
	}
	if n := d.requests.Load(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	run(t, c, time.Hour)
	eventually(t, "Run fetches on demand", func() bool { return c.Known(ap("10.0.0.1:1789")) })
	if n := d.requests.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

// FetchIfDue fetches at once when no on-demand fetch was made within
// OnDemandGap (the scheduled fetches do not count: a node that fetched at its
// start finds a node that registered a moment later at once), and otherwise
// answers false at once and leaves the fetch to Run.
func TestFetchIfDue(t *testing.T) {
	d := newFakeDirectory(t)
	c := New(d.client, Mixnodes(1), zerolog.Nop())
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.addMixnode(t, 1, "10.0.0.1:1789")
	if !c.Allowed(context.Background(), ap("10.0.0.1:1789"), FetchIfDue) {
		t.Fatal("FetchIfDue did not fetch right after a scheduled fetch")
	}
	if n := d.requests.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	d.addMixnode(t, 1, "10.0.0.2:1789")
	start := time.Now()
	if c.Allowed(context.Background(), ap("10.0.0.2:1789"), FetchIfDue) {
		t.Fatal("FetchIfDue fetched within OnDemandGap of the last on-demand fetch")
	}
	if time.Since(start) >= OnDemandGap/2 || d.requests.Load() != 2 {
		t.Fatal("FetchIfDue waited or fetched within the gap")
	}
	time.Sleep(OnDemandGap)
	if !c.Allowed(context.Background(), ap("10.0.0.2:1789"), FetchIfDue) {
		t.Fatal("FetchIfDue did not fetch once the gap had passed")
	}
}

// Wait fetches at once after a scheduled fetch, waits for the gap after an
// on-demand one; a cancelled ctx ends the wait.
func TestWait(t *testing.T) {
	d := newFakeDirectory(t)
	c := New(d.client, Mixnodes(1), zerolog.Nop())
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.addMixnode(t, 1, "10.0.0.1:1789")
	start := time.Now()
	if !c.Allowed(context.Background(), ap("10.0.0.1:1789"), Wait) {
		t.Fatal("Wait did not find the new hop")
	}
	if waited := time.Since(start); waited >= OnDemandGap/2 {
		t.Fatalf("Wait took %s after a scheduled fetch, want at once", waited)
	}
	d.addMixnode(t, 1, "10.0.0.2:1789")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c.Allowed(ctx, ap("10.0.0.2:1789"), Wait) {
		t.Fatal("fetched with a cancelled context")
	}
	start = time.Now()
	if !c.Allowed(context.Background(), ap("10.0.0.2:1789"), Wait) {
		t.Fatal("Wait did not find the second new hop")
	}
	if waited := time.Since(start); waited < OnDemandGap/2 {
		t.Fatalf("Wait fetched after %s, within the gap of the last on-demand fetch", waited)
	}
}

// A flood of unknown hops costs the directory at most one request per
// OnDemandGap.
func TestOnDemandRateLimited(t *testing.T) {
	d := newFakeDirectory(t)
	c := New(d.client, Mixnodes(1), zerolog.Nop())
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	run(t, c, time.Hour)
	const period = 2500 * time.Millisecond
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; time.Since(start) < period; i++ {
				c.Allowed(context.Background(), netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(w), byte(i >> 8), byte(i)}), 1789), FetchIfDue)
			}
		})
	}
	wg.Wait()
	// One at the start, then at most one a gap.
	if n, most := d.requests.Load(), 1+int64(period/OnDemandGap)+1; n < 2 || n > most {
		t.Fatalf("%d requests in %s, want 2 to %d", n, period, most)
	}
}

// TestPeers: the cache answers a Noise link's questions from the topology
// it holds: which key a next hop has, and which addresses and keys may
// connect (a previous-layer node's, as a pair); a miss asks for a fetch,
// so a node that joined is let in soon after, and one that left is not.
func TestPeers(t *testing.T) {
	d := newFakeDirectory(t)
	l1 := d.addMixnode(t, 1, "10.0.0.1:1789")
	l2 := d.addMixnode(t, 2, "10.0.0.2:1789")
	d.addMixnode(t, 3, "10.0.0.3:1789")
	d.mu.Lock()
	d.topo.Params = &directory.Params{MeanMixDelay: int64(15 * time.Millisecond)}
	d.mu.Unlock()
	c := New(d.client, After(2), zerolog.Nop())
	c.AcceptFrom(Before(2))
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	run(t, c, time.Hour)
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }

	if k, ok := c.PeerKey(ap("10.0.0.3:1789")); !ok {
		t.Errorf("PeerKey of a next hop = %x, %v", k, ok)
	}
	c2 := New(d.client, After(1), zerolog.Nop())
	if err := c2.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if k, ok := c2.PeerKey(ap("10.0.0.2:1789")); !ok || k != l2 {
		t.Errorf("PeerKey of the next hop = %x, %v; want its key", k, ok)
	}
	if _, ok := c2.PeerKey(ap("10.0.0.3:1789")); ok {
		t.Error("PeerKey answered for a node that is no next hop")
	}
	if !c.AcceptsAddr(ip("10.0.0.1")) || !c.AcceptsPeer(ip("10.0.0.1"), l1) {
		t.Error("the layer-1 node may not send to layer 2")
	}
	if c.AcceptsPeer(ip("10.0.0.9"), l1) {
		t.Error("a layer-1 key from another address was accepted")
	}
	if c.AcceptsPeer(ip("10.0.0.1"), l2) || c.AcceptsAddr(ip("10.0.0.3")) {
		t.Error("a node of another layer may send to layer 2")
	}
	if p := c.Params(); p == nil || p.MeanMixDelay != int64(15*time.Millisecond) {
		t.Errorf("Params = %+v", p)
	}

	// A node joins layer 1: its first attempt is refused and asks for a
	// fetch, after which it is accepted.
	fetches := c.Fetches()
	joined := d.addMixnode(t, 1, "10.0.0.11:1789")
	if c.AcceptsPeer(ip("10.0.0.11"), joined) {
		t.Fatal("accepted a node the topology held does not list")
	}
	eventually(t, "a fetch follows the miss", func() bool { return c.Fetches() > fetches })
	eventually(t, "the new node is accepted", func() bool { return c.AcceptsPeer(ip("10.0.0.11"), joined) })
	// It leaves: after the next fetch it is refused.
	d.mu.Lock()
	d.topo.Mixnodes = slices.DeleteFunc(d.topo.Mixnodes, func(m directory.Mixnode) bool { return m.Address == "10.0.0.11:1789" })
	d.mu.Unlock()
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.AcceptsAddr(ip("10.0.0.11")) || c.AcceptsPeer(ip("10.0.0.11"), joined) {
		t.Error("a node that left the topology is still accepted")
	}
}
