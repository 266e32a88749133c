package client

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/gateway"
	"github.com/peapod-mixnet/peapod/mixnode"
)

// testNet is a whole network on loopback for the client's tests: a
// directory, two mixnodes per layer and two gateways, real sockets between
// them.
type testNet struct {
	t        testing.TB
	dir      string
	dirURL   string
	log      zerolog.Logger
	gateways []*gateway.Gateway
	gwCfgs   []gateway.Config
	mixes    []*mixnode.Node
}

type netOptions struct {
	dropRate float64 // on the first layer-2 mixnode
}

func startTestNet(t testing.TB, opts netOptions) *testNet {
	t.Helper()
	n := &testNet{t: t, dir: t.TempDir(), log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}
	ds, err := directory.New(directory.Config{DataDir: filepath.Join(n.dir, "directory")})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ds.Serve(ln)
	t.Cleanup(func() { ds.Close() })
	n.dirURL = "http://" + ln.Addr().String()
	for layer := 1; layer <= 3; layer++ {
		for i := range 2 {
			cfg := mixnode.Config{
				ListenAddr: "127.0.0.1:0", Layer: layer, DataDir: filepath.Join(n.dir, fmt.Sprintf("mix-%d-%d", layer, i)),
				DirectoryURL: n.dirURL, ReplayCapacity: 200_000, Logger: n.log,
			}
			if layer == 2 && i == 0 {
				cfg.DropRate = opts.dropRate
			}
			m, err := mixnode.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			n.mixes = append(n.mixes, m)
		}
	}
	for i := range 2 {
		cfg := gateway.Config{
			MixListenAddr: "127.0.0.1:0", ClientListenAddr: "127.0.0.1:0", DataDir: filepath.Join(n.dir, fmt.Sprintf("gw-%d", i)),
			DirectoryURL: n.dirURL, ReplayCapacity: 200_000, Logger: n.log,
		}
		g := n.startGateway(cfg)
		// Restarts reuse the ports.
		cfg.MixListenAddr = g.MixAddr().String()
		cfg.ClientListenAddr = g.ClientAddr().String()
		n.gwCfgs = append(n.gwCfgs, cfg)
		n.gateways = append(n.gateways, g)
	}
	return n
}

func (n *testNet) startGateway(cfg gateway.Config) *gateway.Gateway {
	n.t.Helper()
	g, err := gateway.New(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { g.Close() })
	return g
}

func (n *testNet) stopGateway(i int) {
	if err := n.gateways[i].Close(); err != nil {
		n.t.Fatal(err)
	}
}

func (n *testNet) restartGateway(i int) {
	n.gateways[i] = n.startGateway(n.gwCfgs[i])
}
