package main

import (
	"flag"
	"io"
	"net"
	"time"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/cli"
)

// directorySection is the [directory] section of `mixnet directory`.
type directorySection struct {
	// Listen is the ip:port of the HTTP server.
	Listen string `toml:"listen"`
	// Data is the folder of the database.
	Data string `toml:"data"`
	// TTL is how long a node stays listed without refreshing.
	TTL time.Duration `toml:"ttl"`
	// MaxNodes bounds the identities tracked (0: the default).
	MaxNodes int `toml:"max_nodes"`
	// MaxClockSkew bounds the age of a signed request (0: the default).
	MaxClockSkew time.Duration `toml:"max_clock_skew"`
	// MixDelay is the mean per-hop delay advertised to senders with the
	// topology, from which mixnodes also derive the longest delay they
	// honour (0: none, and each client uses its own default).
	MixDelay time.Duration `toml:"mix_delay"`
	// Epoch is the length of the network's epochs and RotationEpochs the
	// epochs of each Sphinx key rotation (0: the defaults, 1h and 6).
	Epoch          time.Duration `toml:"epoch"`
	RotationEpochs int           `toml:"rotation_epochs"`
}

func defaultDirectoryFile() mixnetFile {
	return mixnetFile{
		Directory: directorySection{Listen: "127.0.0.1:8090", TTL: directory.DefaultTTL},
		Log:       defaultLog(),
	}
}

func bindDirectoryFlags(fs *flag.FlagSet, c *mixnetFile) {
	d := &c.Directory
	fs.StringVar(&d.Listen, "listen", d.Listen, "`ip:port` of the HTTP server")
	fs.StringVar(&d.Data, "data", d.Data, "`folder` of the database (required)")
	fs.DurationVar(&d.TTL, "ttl", d.TTL, "how long a node stays listed without refreshing")
	fs.IntVar(&d.MaxNodes, "max-nodes", d.MaxNodes, "most node identities tracked (0: the default)")
	fs.DurationVar(&d.MaxClockSkew, "max-clock-skew", d.MaxClockSkew, "largest accepted clock difference of a signed request (0: the default)")
	fs.DurationVar(&d.MixDelay, "mix-delay", d.MixDelay, "mean per-hop delay advertised to senders, from which mixnodes bound the delays they honour (0: none; each client uses its own default, 15ms, and mixnodes honour up to 30s)")
	scheduleFlags(fs, &d.Epoch, &d.RotationEpochs)
	c.Log.flags(fs)
}

// runDirectory is `mixnet directory`.
func runDirectory(args []string, stdout, stderr io.Writer) int {
	cmd := command("directory", stdout, stderr)
	cfg := defaultDirectoryFile()
	if err := parseConfig(cmd, args, &cfg, bindDirectoryFlags); err != nil {
		return cmd.Status(err)
	}
	log, err := cli.NewLogger(cmd.Name, stderr, cfg.Log.Level)
	if err != nil {
		return cmd.Status(err)
	}
	srv, err := directory.New(directory.Config{
		DataDir:      cfg.Directory.Data,
		TTL:          cfg.Directory.TTL,
		MaxNodes:     cfg.Directory.MaxNodes,
		MaxClockSkew: cfg.Directory.MaxClockSkew,
		Params:       advertised(cfg.Directory.MixDelay),
		Schedule:     directory.Schedule{EpochLength: cfg.Directory.Epoch, RotationEpochs: cfg.Directory.RotationEpochs},
		Logger:       log,
	})
	if err != nil {
		log.Error().Err(err).Msg("cannot start the directory")
		return cli.ExitError
	}
	ln, err := net.Listen("tcp", cfg.Directory.Listen)
	if err != nil {
		srv.Close()
		log.Error().Err(err).Msg("cannot listen")
		return cli.ExitError
	}
	log.Info().Str("addr", ln.Addr().String()).Msg("directory listening")
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	ctx, stop := cli.SignalContext(log, nil)
	defer stop()
	var failure error
	select {
	case <-ctx.Done():
	case failure = <-served:
		log.Error().Err(failure).Msg("shutting down after a failure")
	}
	if err := srv.Close(); err != nil {
		log.Error().Err(err).Msg("closing the directory")
		return cli.ExitError
	}
	if failure != nil {
		return cli.ExitError
	}
	log.Info().Msg("directory stopped")
	return cli.ExitOK
}

// advertised returns the network parameters a directory publishes with
// the topology: the mean per-hop delay, unless it is 0.
func advertised(mixDelay time.Duration) *directory.Params {
	if mixDelay == 0 {
		return nil
	}
	return &directory.Params{MeanMixDelay: int64(mixDelay)}
}

// scheduleFlags binds the flags of a network's schedule.
func scheduleFlags(fs *flag.FlagSet, epoch *time.Duration, rotation *int) {
	fs.DurationVar(epoch, "epoch", *epoch, "length of the network's epochs, the step of Sphinx key rotation (0: 1h; at least 500ms)")
	fs.IntVar(rotation, "rotation-epochs", *rotation, "epochs each Sphinx key is current for (0: 6; at least 2)")
}

// peakRateFlag binds the flags of a node's replay filter sizing.
func peakRateFlag(fs *flag.FlagSet, rate, falsePositives *float64) {
	fs.Float64Var(rate, "peak-rate", *rate, "packets a second each Sphinx key's replay filter is sized for, over the key's life (0: 500)")
	fs.Float64Var(falsePositives, "replay-fp-rate", *falsePositives, "share of fresh packets a full replay filter may wrongly refuse (0: 1e-5)")
}
