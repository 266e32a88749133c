package testnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/internal/testbuild"
	"github.com/peapod-mixnet/peapod/internal/testnet/relay"
)

// Scenario 8's sizes: make test runs the light version; TESTNET_FULL=1 (or
// -testnet.full) runs the full minute.
const (
	loadClients       = 50
	loadLightDuration = 20 * time.Second
	loadFullDuration  = time.Minute
	// loadWindow is how many requests each client keeps outstanding.
	loadWindow = 3
	// loadMaxProviderRSS bounds the provider's peak RSS under load.
	loadMaxProviderRSS = 512 << 20
	// loadWorkers and loadQueue are the provider's --max-concurrent and
	// --queue, and loadSlow how long a request to the slow service holds a
	// worker: one slot in loadWindow calls it, so about 50 slow requests
	// arrive within the first round trip, where the provider has room for
	// loadWorkers+loadQueue = 20, and it serves loadWorkers/loadSlow = 4 a
	// second after that.
	loadWorkers = 4
	loadQueue   = 16
	loadSlow    = time.Second
)

// loadPlugins is the test plugin (plugins/internal/testplugin), whose
// "sleep:D" requests hold a worker for D: echo and kv answer in well under
// a millisecond, so the network, not the provider, would set the pace, and
// whether the provider saturates would be left to chance (a clean clone
// on a busy 2-core machine loaded it at 12-29 requests a second and it
// never answered overloaded).
var loadPlugins = testbuild.New("peapod-testnet-load-",
	testbuild.Target{Out: "test", Pkg: "../../plugins/internal/testplugin"})

// TestLoad is scenario 8: 50 client processes send to the provider at
// once, each keeping three requests outstanding (echo, kv and a slow
// service that holds a worker for a second), for 20 s (a minute with
// TESTNET_FULL=1). The provider runs with a small queue (16) and four
// workers, so that it is saturated: it answers "overloaded" to what it
// cannot queue instead of queueing without bound, every request still gets
// exactly one reply (ok or overloaded), and its memory stays bounded. The
// peak RSS of every process is in the test log.
func TestLoad(t *testing.T) {
	duration := loadLightDuration
	if *flagFull {
		duration = loadFullDuration
	}
	n := startNet(t, Config{})
	ctx := ctxFor(t, duration+5*time.Minute)
	p := startProvider(t, ctx, n, ProviderOptions{
		Plugins: loadPluginsDir(t, n),
		Args:    []string{"--queue", fmt.Sprint(loadQueue), "--max-concurrent", fmt.Sprint(loadWorkers)},
	})
	w := newWorkload()

	// Start the clients a few at a time.
	rs := make([]*Requester, loadClients)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	var startErr error
	var mu sync.Mutex
	for i := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := n.StartClient(ctx, fmt.Sprintf("client-%02d", i), ClientOptions{})
			if err != nil {
				mu.Lock()
				startErr = errors.Join(startErr, err)
				mu.Unlock()
				return
			}
			conn, err := c.Dial(ctx)
			if err != nil {
				mu.Lock()
				startErr = errors.Join(startErr, err)
				mu.Unlock()
				return
			}
			rs[i] = NewRequester(&WSEndpoint{Conn: conn}, p.Address(), w.tr, RequesterOptions{})
		}()
	}
	wg.Wait()
	if startErr != nil {
		t.Fatal(startErr)
	}
	defer func() {
		for _, r := range rs {
			r.Close()
		}
	}()
	t.Logf("%d clients up; loading the provider for %v", loadClients, duration)

	// Each client keeps loadWindow requests outstanding until the end.
	end := time.Now().Add(duration)
	var sent sync.Map // id → expectation
	var lwg sync.WaitGroup
	for ci, r := range rs {
		for slot := range loadWindow {
			lwg.Add(1)
			go func() {
				defer lwg.Done()
				for i := 0; time.Now().Before(end); i++ {
					id := fmt.Sprintf("c%02d-s%d-%05d", ci, slot, i)
					var e expectation
					switch {
					case slot == loadWindow-1:
						data := fmt.Appendf(nil, "sleep:%v %s", loadSlow, id)
						e = expectation{service: "test", data: data, want: data, codes: []string{"overloaded"}}
					case i%2 == 0:
						data := []byte("load " + id)
						e = expectation{service: "echo", data: data, want: data, codes: []string{"overloaded"}}
					default:
						e = expectation{service: "kv", data: kvRequest("put", "load/"+id, id), want: []byte(`{"ok":true}`), codes: []string{"overloaded"}}
					}
					sent.Store(id, e)
					if err := r.Request(ctx, id, e.service, e.data); err != nil {
						t.Errorf("%s: %v", id, err)
						return
					}
					wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
					_, err := r.Await(wctx, id)
					cancel()
					if err != nil {
						t.Errorf("%s: %v", id, err)
						return
					}
				}
			}()
		}
	}
	lwg.Wait()
	sent.Range(func(k, v any) bool {
		w.expect[k.(string)] = v.(expectation)
		return true
	})
	rep := w.check(t, ctx, rs...)
	t.Logf("load: %d requests in %v, %.0f a second; %d overloaded",
		rep.Sent, duration, float64(rep.Sent)/duration.Seconds(), rep.Outcomes["overloaded"])
	if rep.Outcomes["overloaded"] == 0 {
		t.Error("the provider never answered overloaded: the load did not saturate it")
	}
	if rep.Outcomes[OutcomeOK] == 0 {
		t.Error("no request succeeded under load")
	}
	if rss := p.PeakRSS(); rss > loadMaxProviderRSS {
		t.Errorf("the provider's peak RSS is %d MiB, over %d MiB", rss>>20, loadMaxProviderRSS>>20)
	}
	for name, rss := range p.ChildPeakRSS() {
		t.Logf("plugin %s peak RSS %.1f MiB", name, float64(rss)/(1<<20))
	}
}

// loadPluginsDir makes a plugins folder holding the network's example
// plugins and the test plugin.
func loadPluginsDir(t *testing.T, n *Network) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"echo", "kvstore"} {
		src := n.cfg.Bin.Plugin(name)
		if src == "" {
			t.Fatalf("the example plugin %s was not built", name)
		}
		copyExecutable(t, src, filepath.Join(dir, name))
	}
	copyExecutable(t, loadPlugins.Path(t, "test"), filepath.Join(dir, "test"))
	return dir
}

// copyExecutable links src to dst, or copies it where a link cannot be made
// (another file system).
func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	if os.Link(src, dst) == nil {
		return
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestNamespaces runs the mixnodes in network namespaces of their own, one
// per layer, joined to the host by veth pairs on a bridge, with tc netem
// adding 2% loss and 5 ms of latency to every veth interface (or, where the
// kernel has no netem, the relays adding the same): 100 requests to echo
// and kv all get their correct reply, once. It skips where namespaces
// cannot be made (not root, no ip command, a container without
// CAP_NET_ADMIN).
func TestNamespaces(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs a network of processes")
	}
	if err := NamespacesAvailable(); err != nil {
		t.Skipf("network namespaces are not available here: %v", err)
	}
	ctx := ctxFor(t, waitTimeout+time.Minute)
	netem := Netem{Loss: 0.02, Delay: 5 * time.Millisecond}
	ns, err := NewNamespaces(ctx, netem)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Errorf("removing the namespaces: %v", err)
		}
	})
	cfg := Config{Namespaces: ns}
	if ok, why := ns.Netem(); !ok {
		t.Logf("tc netem is not available (%v): the relays add the loss and latency instead", why)
		cfg.Relays = true
		cfg.RelayFaults = relay.Faults{DropRate: netem.Loss, Delay: netem.Delay}
	}
	n := startNet(t, cfg)
	for _, m := range n.Mixnodes() {
		if same, err := sameNetNS(os.Getpid(), m.PID()); err != nil || same {
			t.Fatalf("%s is not in a namespace of its own (%v)", m.Name(), err)
		}
	}
	p := startProvider(t, ctx, n, ProviderOptions{})
	w := newWorkload()
	r := newRequester(t, ctx, n, "client-1", p, w.tr, ClientOptions{})
	for i := range 50 {
		w.echo(t, ctx, r, fmt.Sprintf("echo-%02d", i))
		w.put(t, ctx, r, fmt.Sprintf("put-%02d", i), fmt.Sprintf("ns/%02d", i), "v")
		time.Sleep(50 * time.Millisecond)
	}
	w.check(t, ctx, r)
	if keys := kvList(t, ctx, r, "list", "ns/"); len(keys) != 50 {
		t.Errorf("kv holds %d keys, want 50", len(keys))
	}
}

// sameNetNS reports whether two processes share a network namespace.
func sameNetNS(a, b int) (bool, error) {
	la, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", a))
	if err != nil {
		return false, err
	}
	lb, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", b))
	if err != nil {
		return false, err
	}
	return la == lb, nil
}
