package localnet

import (
	"context"
	"crypto/rand"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/gateway"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/mixnode"
	"github.com/peapod-mixnet/peapod/sphinx"
)

func startNetwork(t *testing.T, cfg Config) *Network {
	t.Helper()
	if cfg.DirectoryAddr == "" {
		cfg.DirectoryAddr = "127.0.0.1:0"
	}
	if cfg.PeakRate == 0 {
		cfg.PeakRate = 0.1 // the smallest filters
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func fetchTopology(t *testing.T, n *Network) *directory.Topology {
	t.Helper()
	top, err := (&directory.Client{BaseURL: n.DirectoryURL()}).Topology(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// checkListed checks that the topology lists exactly the network's nodes,
// at their addresses.
func checkListed(t *testing.T, n *Network, top *directory.Topology) {
	t.Helper()
	if len(top.Mixnodes) != 3*2 || len(top.Gateways) != 2 {
		t.Fatalf("topology has %d mixnodes and %d gateways, want 6 and 2", len(top.Mixnodes), len(top.Gateways))
	}
	for layer := 1; layer <= 3; layer++ {
		got := map[string]string{}
		for _, m := range top.Layer(layer) {
			got[m.Identity] = m.Address
		}
		for i := range 2 {
			m := n.Mixnode(layer, i)
			if addr := got[address.EncodeKey(m.Identity())]; addr != m.Addr().String() {
				t.Fatalf("layer %d: mixnode %d listed at %q, listens at %v", layer, i, addr, m.Addr())
			}
		}
	}
	for i, g := range n.Gateways() {
		e, ok := top.Gateway(address.EncodeKey(g.Identity()))
		if !ok || e.Address != g.MixAddr().String() || e.ClientAddress != "ws://"+g.ClientAddr().String() {
			t.Fatalf("gateway %d listed as %+v (listed: %v)", i, e, ok)
		}
	}
}

// checkNoGoroutines fails if a goroutine of the network's packages is
// still running.
func checkNoGoroutines(t *testing.T) {
	t.Helper()
	ours := []string{"peapod/gateway.", "peapod/mixnode.", "peapod/directory.", "peapod/internal/wire.", "peapod/localnet.(*Network)"}
	var leaked string
	clean := func() bool {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "localnet.checkNoGoroutines") {
				continue
			}
			for _, s := range ours {
				if strings.Contains(g, s) {
					leaked = g
					return false
				}
			}
		}
		return true
	}
	// Close returns after the goroutines end; allow the runtime a moment
	// to retire them.
	deadline := time.Now().Add(2 * time.Second)
	for !clean() {
		if time.Now().After(deadline) {
			t.Fatalf("goroutine left behind:\n%s", leaked)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNetworkLifecycle(t *testing.T) {
	data := t.TempDir()
	n := startNetwork(t, Config{DataDir: data, MeanMixDelay: 15 * time.Millisecond})
	top := fetchTopology(t, n)
	checkListed(t, n, top)
	if top.Params == nil || top.Params.MeanMixDelay != int64(15*time.Millisecond) {
		t.Fatalf("params %+v, want a 15ms mean mix delay", top.Params)
	}

	before := n.Gateway(1)
	id, mixAddr, clientAddr := before.Identity(), before.MixAddr(), before.ClientAddr()
	if err := n.RestartGateway(1); err != nil {
		t.Fatal(err)
	}
	after := n.Gateway(1)
	if after == before || !after.Identity().Equal(id) || after.MixAddr() != mixAddr || after.ClientAddr() != clientAddr {
		t.Fatal("the restarted gateway changed identity or address")
	}
	checkListed(t, n, fetchTopology(t, n))

	var ids, addrs []string
	for _, m := range n.Mixnodes() {
		ids = append(ids, address.EncodeKey(m.Identity()))
		addrs = append(addrs, m.Addr().String())
	}
	gwURLs := []string{n.Gateway(0).ClientURL(), n.Gateway(1).ClientURL()}
	dirURL := n.DirectoryURL()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := n.RestartGateway(0); err == nil {
		t.Fatal("restarted a gateway of a closed network")
	}
	checkNoGoroutines(t)

	// A second start on the same folder brings back the same identities,
	// at the same addresses (the directory's too, though it was given port
	// 0 again), so clients that outlive the network find it.
	n = startNetwork(t, Config{DataDir: data})
	defer n.Close()
	for i, m := range n.Mixnodes() {
		if address.EncodeKey(m.Identity()) != ids[i] {
			t.Fatalf("mixnode %d has a new identity", i)
		}
		if m.Addr().String() != addrs[i] {
			t.Errorf("mixnode %d moved from %s to %s", i, addrs[i], m.Addr())
		}
	}
	if !n.Gateway(1).Identity().Equal(id) {
		t.Fatal("gateway 1 has a new identity")
	}
	for i, u := range gwURLs {
		if got := n.Gateway(i).ClientURL(); got != u {
			t.Errorf("gateway %d moved from %s to %s", i, u, got)
		}
	}
	if n.DirectoryURL() != dirURL {
		t.Errorf("the directory moved from %s to %s", dirURL, n.DirectoryURL())
	}
	checkListed(t, n, fetchTopology(t, n))
}

// ConfigureMixnode can make a mixnode lose packets, and ConfigureGateway
// reaches the gateways.
func TestNetworkFaultInjection(t *testing.T) {
	configured := 0
	n := startNetwork(t, Config{
		DataDir: t.TempDir(),
		ConfigureMixnode: func(layer, index int, cfg *mixnode.Config) {
			if layer == 2 && index == 0 {
				cfg.DropRate = 1
			}
		},
		ConfigureGateway: func(index int, cfg *gateway.Config) {
			configured++
			cfg.PageSize = 7
		},
	})
	defer n.Close()
	if configured != 2 {
		t.Fatalf("ConfigureGateway ran %d times, want 2", configured)
	}
	lossy := n.Mixnode(2, 0)
	// Any packet will do: the node drops it before peeling it.
	packet := make([]byte, sphinx.AckPacket.Len())
	rand.Read(packet)
	conn, err := net.Dial("tcp", lossy.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Links are Noise links: the frame comes from a layer-1 node's key.
	nc, err := wire.Initiate(conn, n.Mixnode(1, 0).NoiseKey(), lossy.NoiseKey().Public(), time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := wire.HeaderFor(packet)
	if _, err := nc.Write(wire.AppendFrame(nil, h, packet)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for lossy.Stats().Dropped[mixnode.DropInjected] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want one injected drop", lossy.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{DataDir: "x", DirectoryAddr: "0.0.0.0:8090"},
		{DataDir: "x", DirectoryAddr: "localhost:8090"},
		{DataDir: "x", MixnodesPerLayer: -1},
		{DataDir: "x", Gateways: -1},
		{DataDir: "x", MeanMixDelay: -1},
	} {
		if _, err := Start(context.Background(), cfg); err == nil {
			t.Errorf("Start accepted %+v", cfg)
		}
	}
}
