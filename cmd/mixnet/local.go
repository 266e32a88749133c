package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/peapod-mixnet/peapod/internal/cli"
	"github.com/peapod-mixnet/peapod/localnet"
)

// localSection is the [local] section of `mixnet local`; each key maps to the field of
// localnet.Config documented there.
type localSection struct {
	Data             string        `toml:"data"`
	DirectoryAddr    string        `toml:"directory_addr"`
	MixDelay         time.Duration `toml:"mix_delay"`
	MixnodesPerLayer int           `toml:"mixnodes_per_layer"`
	Gateways         int           `toml:"gateways"`
	Epoch            time.Duration `toml:"epoch"`
	RotationEpochs   int           `toml:"rotation_epochs"`
	PeakRate         float64       `toml:"peak_rate"`
	Authorities      int           `toml:"authorities"`
	Open             bool          `toml:"open"`
}

// defaultMixDelay is Nym's mean delay per hop.
const defaultMixDelay = 15 * time.Millisecond

// localStartTimeout bounds the start of the whole network.
const localStartTimeout = time.Minute

func defaultLocalFile() mixnetFile {
	return mixnetFile{
		Local: localSection{
			Data:             "./.peapod/network",
			DirectoryAddr:    localnet.DefaultDirectoryAddr,
			MixDelay:         defaultMixDelay,
			MixnodesPerLayer: localnet.DefaultMixnodesPerLayer,
			Gateways:         localnet.DefaultGateways,
		},
		Log: defaultLog(),
	}
}

func bindLocalFlags(fs *flag.FlagSet, c *mixnetFile) {
	l := &c.Local
	fs.StringVar(&l.Data, "data", l.Data, "`folder` of every node's keys and databases")
	fs.StringVar(&l.DirectoryAddr, "directory-addr", l.DirectoryAddr, "loopback `ip:port` of the directory")
	fs.DurationVar(&l.MixDelay, "mix-delay", l.MixDelay, "mean delay per hop advertised to clients (senders draw the delays; 0 for none)")
	fs.IntVar(&l.MixnodesPerLayer, "mixnodes-per-layer", l.MixnodesPerLayer, "mixnodes in each of the three layers")
	fs.IntVar(&l.Gateways, "gateways", l.Gateways, "number of gateways")
	scheduleFlags(fs, &l.Epoch, &l.RotationEpochs)
	fs.Float64Var(&l.PeakRate, "peak-rate", l.PeakRate, "packets a second each node's replay filters are sized for (0: 50)")
	fs.IntVar(&l.Authorities, "authorities", l.Authorities, "directory authorities; a topology needs a majority of their signatures (0: 3)")
	fs.BoolVar(&l.Open, "open", l.Open, "the authorities admit any node that registers, not only the network's own")
	c.Log.flags(fs)
}

// runLocal is `mixnet local`: a whole network in this process, until
// interrupted. It prints two lines on stdout: the directory authorities'
// URLs, then their keys, each list separated by commas (what a client's or
// a node's --directory and --authorities take).
func runLocal(args []string, stdout, stderr io.Writer) int {
	cmd := command("local", stdout, stderr)
	cfg := defaultLocalFile()
	if err := parseConfig(cmd, args, &cfg, bindLocalFlags); err != nil {
		return cmd.Status(err)
	}
	log, err := cli.NewLogger(cmd.Name, stderr, cfg.Log.Level)
	if err != nil {
		return cmd.Status(err)
	}
	l := cfg.Local
	if l.MixnodesPerLayer < 1 || l.Gateways < 1 {
		fmt.Fprintln(stderr, "mixnet local: --mixnodes-per-layer and --gateways must be at least 1")
		return cli.ExitUsage
	}
	startCtx, cancel := context.WithTimeout(context.Background(), localStartTimeout)
	network, err := localnet.Start(startCtx, localnet.Config{
		DataDir:          l.Data,
		DirectoryAddr:    l.DirectoryAddr,
		MixnodesPerLayer: l.MixnodesPerLayer,
		Gateways:         l.Gateways,
		MeanMixDelay:     l.MixDelay,
		EpochLength:      l.Epoch,
		RotationEpochs:   l.RotationEpochs,
		PeakRate:         l.PeakRate,
		Authorities:      l.Authorities,
		Open:             l.Open,
		Logger:           log,
	})
	cancel()
	if err != nil {
		log.Error().Err(err).Msg("cannot start the local network")
		return cli.ExitError
	}
	for i, g := range network.Gateways() {
		log.Info().Int("gateway", i).Str("client_url", g.ClientURL()).Msg("gateway ready")
	}
	sched := network.Directory().Schedule()
	trust := network.Trust()
	keys := strings.Join(trust.Keys(), ",")
	log.Info().Str("directory", network.DirectoryURL()).Str("authorities", keys).Int("threshold", trust.K()).
		Dur("mix_delay", l.MixDelay).Dur("epoch", sched.EpochLength).Int("rotation_epochs", sched.RotationEpochs).
		Msg("local network running")
	fmt.Fprintln(stdout, network.DirectoryURL())
	fmt.Fprintln(stdout, keys)

	ctx, stop := cli.SignalContext(log, nil)
	defer stop()
	<-ctx.Done()
	if err := network.Close(); err != nil {
		log.Error().Err(err).Msg("closing the local network")
		return cli.ExitError
	}
	log.Info().Msg("local network stopped")
	return cli.ExitOK
}
