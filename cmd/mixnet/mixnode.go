package main

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/peapod-mixnet/peapod/internal/cli"
	"github.com/peapod-mixnet/peapod/mixnode"
)

// mixnodeSection is the [mixnode] section of `mixnet mixnode`; each key maps to the field of
// mixnode.Config documented there, and zero means that field's default.
type mixnodeSection struct {
	Listen          string        `toml:"listen"`
	Announce        string        `toml:"announce"`
	Metrics         string        `toml:"metrics"`
	Layer           int           `toml:"layer"`
	Data            string        `toml:"data"`
	Directory       string        `toml:"directory"`
	TopologyRefresh time.Duration `toml:"topology_refresh"`
	ReplayCapacity  int           `toml:"replay_capacity"`
	PeakRate        float64       `toml:"peak_rate"`
	ReplayFPRate    float64       `toml:"replay_fp_rate"`
	ReplaySave      time.Duration `toml:"replay_save_interval"`
	Workers         int           `toml:"workers"`
	MaxQueue        int           `toml:"max_queue"`
	MaxQueueBytes   int           `toml:"max_queue_bytes"`
	MaxQueuePeer    int           `toml:"max_queue_per_peer"`
	MaxBytesPeer    int           `toml:"max_queue_bytes_per_peer"`
	MaxDelay        time.Duration `toml:"max_delay"`
	MaxConns        int           `toml:"max_conns"`
	IdleTimeout     time.Duration `toml:"idle_timeout"`
	FrameTimeout    time.Duration `toml:"frame_timeout"`
	OutboundQueue   int           `toml:"outbound_queue"`
	Authorities     string        `toml:"authorities"`
	Threshold       int           `toml:"threshold"`
}

func defaultMixnodeFile() mixnetFile {
	return mixnetFile{Mixnode: mixnodeSection{Listen: mixnode.DefaultListenAddr}, Log: defaultLog()}
}

func bindMixnodeFlags(fs *flag.FlagSet, c *mixnetFile) {
	m := &c.Mixnode
	fs.StringVar(&m.Listen, "listen", m.Listen, "`ip:port` where the node accepts packets")
	fs.StringVar(&m.Announce, "announce", m.Announce, "`ip:port` published in the directory (default: the listening address)")
	fs.StringVar(&m.Metrics, "metrics", m.Metrics, "`ip:port` of the /metrics and /healthz server (default: none)")
	fs.IntVar(&m.Layer, "layer", m.Layer, "the node's layer, 1 to 3 (required)")
	fs.StringVar(&m.Data, "data", m.Data, "`folder` of the node's keys and replay filter (required)")
	fs.StringVar(&m.Directory, "directory", m.Directory, "`URL` of the directory, or the directory authorities' URLs separated by commas, to register with and fetch the next hops from (default: none, which forwards to any next hop)")
	cli.TrustFlags(fs, &m.Authorities, &m.Threshold)
	fs.DurationVar(&m.TopologyRefresh, "topology-refresh", m.TopologyRefresh, "time between topology fetches (0: the default)")
	fs.IntVar(&m.ReplayCapacity, "replay-capacity", m.ReplayCapacity, "packets the replay filter of a node without a directory is sized for (0: 10 million, about 30 MB)")
	peakRateFlag(fs, &m.PeakRate, &m.ReplayFPRate)
	fs.DurationVar(&m.ReplaySave, "replay-save-interval", m.ReplaySave, "how often the replay filter is saved to the data folder, which it also is on shutdown (0: 1m; negative: only on shutdown)")
	fs.IntVar(&m.Workers, "workers", m.Workers, "goroutines peeling packets (0: one per CPU)")
	fs.IntVar(&m.MaxQueue, "max-queue", m.MaxQueue, "bound on packets waiting to be peeled, and on packets delayed (0: the default)")
	fs.IntVar(&m.MaxQueueBytes, "max-queue-bytes", m.MaxQueueBytes, "bound on the bytes of each of those queues (0: the default, 64 MiB)")
	fs.IntVar(&m.MaxQueuePeer, "max-queue-per-peer", m.MaxQueuePeer, "bound on one upstream peer's packets in each of those queues (0: half of --max-queue)")
	fs.IntVar(&m.MaxBytesPeer, "max-queue-bytes-per-peer", m.MaxBytesPeer, "bound on one upstream peer's bytes in each of those queues (0: half of --max-queue-bytes)")
	fs.DurationVar(&m.MaxDelay, "max-delay", m.MaxDelay, "longest delay honoured; longer ones are cut to it (0: 20 times the mean the directory advertises, 0.1s to 30s; 30s when it advertises none)")
	fs.IntVar(&m.MaxConns, "max-conns", m.MaxConns, "most inbound connections (0: the default)")
	fs.DurationVar(&m.IdleTimeout, "idle-timeout", m.IdleTimeout, "close an inbound connection idle this long (0: the default)")
	fs.DurationVar(&m.FrameTimeout, "frame-timeout", m.FrameTimeout, "close an inbound connection that takes longer to send a frame (0: the default)")
	fs.IntVar(&m.OutboundQueue, "outbound-queue", m.OutboundQueue, "bound on packets waiting for each next hop (0: the default)")
	c.Log.flags(fs)
}

// runMixnode is `mixnet mixnode`.
func runMixnode(args []string, stdout, stderr io.Writer) int {
	cmd := command("mixnode", stdout, stderr)
	cfg := defaultMixnodeFile()
	if err := parseConfig(cmd, args, &cfg, bindMixnodeFlags); err != nil {
		return cmd.Status(err)
	}
	log, err := cli.NewLogger(cmd.Name, stderr, cfg.Log.Level)
	if err != nil {
		return cmd.Status(err)
	}
	m := cfg.Mixnode
	trust, err := cli.ParseTrust(m.Authorities, m.Threshold)
	if err != nil {
		return cmd.Status(cmd.Errorf("%v", err))
	}
	node, err := mixnode.New(mixnode.Config{
		Trust:                   trust,
		ListenAddr:              m.Listen,
		AnnounceAddr:            m.Announce,
		MetricsAddr:             m.Metrics,
		Layer:                   m.Layer,
		DataDir:                 m.Data,
		DirectoryURL:            m.Directory,
		TopologyRefresh:         m.TopologyRefresh,
		ReplayCapacity:          m.ReplayCapacity,
		PeakRate:                m.PeakRate,
		ReplayFalsePositiveRate: m.ReplayFPRate,
		ReplaySaveInterval:      m.ReplaySave,
		Workers:                 m.Workers,
		MaxQueue:                m.MaxQueue,
		MaxQueueBytes:           m.MaxQueueBytes,
		MaxQueuePerPeer:         m.MaxQueuePeer,
		MaxQueueBytesPerPeer:    m.MaxBytesPeer,
		MaxDelay:                m.MaxDelay,
		MaxConns:                m.MaxConns,
		IdleTimeout:             m.IdleTimeout,
		FrameTimeout:            m.FrameTimeout,
		OutboundQueue:           m.OutboundQueue,
		Logger:                  log,
	})
	if err != nil {
		log.Error().Err(err).Msg("cannot start the mixnode")
		return cli.ExitError
	}
	if err := node.Start(context.Background()); err != nil {
		node.Close()
		log.Error().Err(err).Msg("cannot start the mixnode")
		return cli.ExitError
	}
	ctx, stop := cli.SignalContext(log, nil)
	defer stop()
	<-ctx.Done()
	if err := node.Close(); err != nil {
		log.Error().Err(err).Msg("closing the mixnode")
		return cli.ExitError
	}
	return cli.ExitOK
}
