package client

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/gateway"
	"github.com/peapod-mixnet/peapod/localnet"
	"github.com/peapod-mixnet/peapod/mixnode"
)

// testNet is a whole network on loopback (localnet: a directory, two
// mixnodes per layer and two gateways, real sockets between them) with zero
// advertised delay.
type testNet struct {
	*localnet.Network
	t      testing.TB
	dirURL string
}

type netOptions struct {
	dropRate float64 // on the first layer-2 mixnode
	// dropEverywhere is a drop rate on every mixnode: no route avoids it.
	dropEverywhere float64
	// configureGateway, when set, changes a gateway's configuration.
	configureGateway func(index int, cfg *gateway.Config)
	// epoch and rotationEpochs are the network's schedule (zero: the
	// directory's defaults, an hour and six).
	epoch          time.Duration
	rotationEpochs int
}

func startTestNet(t testing.TB, opts netOptions) *testNet {
	t.Helper()
	peak := 5.0 // packets a second: filters for an hour's epochs stay small
	if opts.epoch > 0 {
		peak = 200 // a key lives seconds: a filter of at least 100 tags fills in one
	}
	cfg := localnet.Config{
		DataDir: t.TempDir(), DirectoryAddr: "127.0.0.1:0", PeakRate: peak,
		EpochLength: opts.epoch, RotationEpochs: opts.rotationEpochs,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		ConfigureMixnode: func(layer, index int, cfg *mixnode.Config) {
			cfg.DropRate = opts.dropEverywhere
			if layer == 2 && index == 0 {
				cfg.DropRate = max(cfg.DropRate, opts.dropRate)
			}
		},
		ConfigureGateway: opts.configureGateway,
	}
	net, err := localnet.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Close() })
	return &testNet{Network: net, t: t, dirURL: net.DirectoryURL()}
}

func (n *testNet) gateway(i int) *gateway.Gateway { return n.Gateway(i) }

func (n *testNet) stopGateway(i int) {
	if err := n.Gateway(i).Close(); err != nil {
		n.t.Fatal(err)
	}
}

func (n *testNet) restartGateway(i int) {
	if err := n.RestartGateway(i); err != nil {
		n.t.Fatal(err)
	}
}
