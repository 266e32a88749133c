package directory

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testAuthorities is a network of authorities serving on loopback.
type testAuthorities struct {
	servers []*testServer
	keys    []ed25519.PrivateKey
	trust   Trust
}

// startAuthorities starts n authorities that know each other, voting every
// 50 ms; configure may change each one's Config before it starts.
func startAuthorities(t *testing.T, n int, configure func(i int, cfg *Config)) *testAuthorities {
	t.Helper()
	keys, trust := newAuthorityKeys(t, n)
	lns := make([]net.Listener, n)
	for i := range lns {
		lns[i] = listen(t)
	}
	a := &testAuthorities{keys: keys, trust: trust}
	for i := range n {
		ac := &AuthorityConfig{Key: keys[i], VoteInterval: 50 * time.Millisecond}
		for j := range n {
			if j != i {
				ac.Peers = append(ac.Peers, Peer{URL: "http://" + lns[j].Addr().String(), Key: trust.Authorities[j]})
			}
		}
		cfg := Config{DataDir: t.TempDir(), Schedule: testSchedule(), Authority: ac}
		if configure != nil {
			configure(i, &cfg)
		}
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		a.servers = append(a.servers, serveOnListener(t, s, cfg, nil, lns[i]))
	}
	return a
}

// urls returns the authorities' URLs, comma-separated, as a Client takes
// them.
func (a *testAuthorities) urls(which ...int) string {
	var out []string
	for i, s := range a.servers {
		if len(which) == 0 || slices.Contains(which, i) {
			out = append(out, s.url)
		}
	}
	return strings.Join(out, ",")
}

// waitFor polls c's topology until ok holds for it, for a few seconds.
func waitFor(t *testing.T, c *Client, what string, ok func(*Topology) bool) *Topology {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		top, err := c.Topology(context.Background())
		if err == nil && ok(top) {
			return top
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no topology with %s within 10s (last error %v)", what, last)
	return nil
}

func lists(top *Topology, ids ...string) bool {
	have := identities(top)
	for _, id := range ids {
		if !slices.Contains(have, id) {
			return false
		}
	}
	return true
}

// TestAuthoritiesPublish: nodes registered with three authorities appear
// in a document every consumer accepts, signed by all three; one authority
// stopped, a node registered afterwards still appears (2 of 3).
func TestAuthoritiesPublish(t *testing.T) {
	a := startAuthorities(t, 3, nil)
	nodes := []testNode{newMixnode(t, 1), newMixnode(t, 2), newMixnode(t, 3), newGateway(t)}
	reg := &Client{BaseURL: a.urls()}
	for _, n := range nodes {
		if err := reg.Register(context.Background(), n.desc, n.key); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.desc.Identity)
	}
	for i := range a.servers {
		c := &Client{BaseURL: a.urls(i), Trust: &a.trust}
		// The document reaches the threshold with two signatures; the
		// third follows when the authority next collects its peers' votes.
		waitFor(t, c, "the four nodes, signed by all three, from authority "+string(rune('A'+i)), func(top *Topology) bool {
			if !lists(top, ids...) {
				return false
			}
			_, body := a.servers[i].get(t, PathDocument)
			d, err := ParseDocument(body)
			return err == nil && len(d.Signatures) == 3
		})
	}

	// Many consumers read the same published document at once (the race
	// detector watches the shared bytes).
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			c := &Client{BaseURL: a.urls(0), Trust: &a.trust}
			if _, err := c.Topology(context.Background()); err != nil {
				t.Errorf("a concurrent fetch: %v", err)
			}
		})
	}
	wg.Wait()

	a.servers[2].Close()
	late := newMixnode(t, 1)
	err := (&Client{BaseURL: a.urls()}).Register(context.Background(), late.desc, late.key)
	if err == nil || !strings.Contains(err.Error(), a.servers[2].url) {
		t.Fatalf("Register with one authority down = %v, want an error naming it", err)
	}
	var partial *PartialError
	if !errors.As(err, &partial) || partial.Reached != 2 {
		t.Fatalf("Register with one authority down = %v, want a *PartialError with 2 reached", err)
	}
	c := &Client{BaseURL: a.urls(), Trust: &a.trust}
	waitFor(t, c, "the node registered with one authority down", func(top *Topology) bool {
		return lists(top, append(ids, late.desc.Identity)...)
	})

	// A registrar keeps a node listed and deregisters it without an error
	// while one authority is down.
	kept := newGateway(t)
	stop := startRegistrar(t, &Registrar{Client: &Client{BaseURL: a.urls()}, Descriptor: kept.desc, Key: kept.key})
	waitFor(t, c, "the registrar's node", func(top *Topology) bool { return lists(top, kept.desc.Identity) })
	if err := stop(); err != nil {
		t.Fatalf("the registrar's deregistration with one authority down: %v", err)
	}
	waitFor(t, c, "no registrar's node", func(top *Topology) bool { return !lists(top, kept.desc.Identity) })
}

// TestLyingAuthority: an authority whose view has a node the others do not
// know, or a node at another address, signs alone and gets neither into a
// document; its own signature on such a topology is refused by consumers.
func TestLyingAuthority(t *testing.T) {
	a := startAuthorities(t, 3, nil)
	honest := newMixnode(t, 1)
	reg := &Client{BaseURL: a.urls()}
	if err := reg.Register(context.Background(), honest.desc, honest.key); err != nil {
		t.Fatal(err)
	}
	consumer := &Client{BaseURL: a.urls(), Trust: &a.trust}
	waitFor(t, consumer, "the honest node", func(top *Topology) bool { return lists(top, honest.desc.Identity) })

	// The liar (authority 2) admits a made-up node and a moved copy of the
	// honest node.
	madeUp := newMixnode(t, 2)
	liar := &Client{BaseURL: a.urls(2)}
	if err := liar.Register(context.Background(), madeUp.desc, madeUp.key); err != nil {
		t.Fatal(err)
	}
	moved := honest
	moved.desc.Address = "127.0.0.1:9"
	if err := liar.Register(context.Background(), moved.desc, moved.key); err != nil {
		t.Fatal(err)
	}
	// A node registered with everyone afterwards shows that documents keep
	// being made without the liar's nodes.
	after := newGateway(t)
	if err := reg.Register(context.Background(), after.desc, after.key); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		c := &Client{BaseURL: a.urls(i), Trust: &a.trust}
		top := waitFor(t, c, "the node registered after the lie", func(top *Topology) bool { return lists(top, after.desc.Identity) })
		if lists(top, madeUp.desc.Identity) {
			t.Fatalf("authority %d's document lists the made-up node", i)
		}
		if m := top.Mixnodes[slices.IndexFunc(top.Mixnodes, func(m Mixnode) bool { return m.Identity == honest.desc.Identity })]; m.Address != honest.desc.Address {
			t.Fatalf("authority %d's document moved the honest node to %s", i, m.Address)
		}
	}
	// The liar's own view, signed by it alone, is refused.
	_, body := a.servers[2].get(t, PathVote)
	vote, err := ParseDocument(body)
	if err != nil {
		t.Fatal(err)
	}
	top, err := vote.Verify(a.trust)
	if refusalReason(err) != RefusedUnderThreshold {
		t.Fatalf("the liar's vote: Verify = %v, %v, want under_threshold", top, err)
	}
	var lied Topology
	if err := decodeStrict(vote.Topology, &lied); err != nil || !lists(&lied, madeUp.desc.Identity) {
		t.Fatalf("the liar's vote does not list the made-up node (%v): the test shows nothing", err)
	}
}

// TestAllowList: an authority with an allow-list refuses a node not on it
// (403, counted) and lists one on it; after the list is replaced the
// removed node leaves the topology and the added one can register.
func TestAllowList(t *testing.T) {
	in, out := newMixnode(t, 1), newMixnode(t, 2)
	allow, err := NewAllowList([]string{in.desc.Identity})
	if err != nil {
		t.Fatal(err)
	}
	a := startAuthorities(t, 1, func(_ int, cfg *Config) { cfg.AllowList = allow })
	s := a.servers[0]
	s.register(t, in)
	err = s.client.Register(context.Background(), out.desc, out.key)
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusForbidden || !strings.Contains(se.Message, "allow-list") {
		t.Fatalf("Register of a node not on the allow-list = %v, want 403 naming the allow-list", err)
	}
	if n := counterValue(t, s, "peapod_directory_requests_rejected_total", `reason="not_admitted"`); n != 1 {
		t.Fatalf("not_admitted counted %v times, want 1", n)
	}
	c := &Client{BaseURL: s.url, Trust: &a.trust}
	waitFor(t, c, "the allowed node", func(top *Topology) bool { return lists(top, in.desc.Identity) })

	if err := allow.Replace([]string{out.desc.Identity}); err != nil {
		t.Fatal(err)
	}
	s.register(t, out)
	waitFor(t, c, "the newly allowed node and not the removed one", func(top *Topology) bool {
		return lists(top, out.desc.Identity) && !lists(top, in.desc.Identity)
	})
}

// TestRegisterRateLimit: past the per-source rate a signed request is
// refused with 429 and counted, before its body is read.
func TestRegisterRateLimit(t *testing.T) {
	s := startServer(t, Config{RegisterRate: 1})
	n := newMixnode(t, 1)
	var limited int
	for range 5 {
		err := s.client.Register(context.Background(), n.desc, n.key)
		var se *StatusError
		if errors.As(err, &se) && se.StatusCode == http.StatusTooManyRequests {
			limited++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	// A burst of 2, then about one a second: 5 requests in a row get 3
	// refusals, or 2 on a machine slow enough to take a second over them.
	if limited < 2 {
		t.Fatalf("%d of 5 quick registrations refused at 1 a second, want at least 2", limited)
	}
	if got := counterValue(t, s, "peapod_directory_requests_rejected_total", `reason="rate_limited"`); int(got) != limited {
		t.Fatalf("rate_limited counted %v, want %d", got, limited)
	}
}

func TestParseAllowList(t *testing.T) {
	a, b := newMixnode(t, 1), newMixnode(t, 1)
	text := "# nodes of example.org\n" + a.desc.Identity + "  # mix 1\n\n" + b.desc.Identity + "\n"
	ids, err := ParseAllowList([]byte(text))
	if err != nil || !slices.Equal(ids, []string{a.desc.Identity, b.desc.Identity}) {
		t.Fatalf("ParseAllowList = %v, %v", ids, err)
	}
	_, err = ParseAllowList([]byte(a.desc.Identity + "\nnot-a-key\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("ParseAllowList of a bad line = %v, want an error naming line 2", err)
	}
}

// counterValue reads the value of the metric name{labels} from the
// server's /metrics.
func counterValue(t *testing.T, s *testServer, name, labels string) float64 {
	t.Helper()
	_, body := s.get(t, PathMetrics)
	prefix := name + "{" + labels + "} "
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s{%s} in /metrics", name, labels)
	return 0
}
