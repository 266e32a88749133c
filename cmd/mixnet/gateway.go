package main

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/peapod-mixnet/peapod/gateway"
	"github.com/peapod-mixnet/peapod/internal/cli"
)

// gatewaySection is the [gateway] section of `mixnet gateway`; each key maps to the field of
// gateway.Config documented there, and zero means that field's default.
type gatewaySection struct {
	Listen           string        `toml:"listen"`
	ClientListen     string        `toml:"client_listen"`
	Announce         string        `toml:"announce"`
	ClientAnnounce   string        `toml:"client_announce"`
	Data             string        `toml:"data"`
	Directory        string        `toml:"directory"`
	Metrics          string        `toml:"metrics"`
	MessageTTL       time.Duration `toml:"message_ttl"`
	PageSize         int           `toml:"page_size"`
	MaxPending       int           `toml:"max_pending"`
	MaxStored        int           `toml:"max_stored"`
	MaxStoredClient  int           `toml:"max_stored_per_client"`
	MaxExitQueue     int           `toml:"max_exit_queue"`
	MaxExitQueuePeer int           `toml:"max_exit_queue_per_peer"`
	PurgeInterval    time.Duration `toml:"purge_interval"`
	TopologyRefresh  time.Duration `toml:"topology_refresh"`
	HandshakeTimeout time.Duration `toml:"handshake_timeout"`
	MaxHandshakes    int           `toml:"max_handshakes"`
	MaxHandshakesSrc int           `toml:"max_handshakes_per_source"`
	MaxClients       int           `toml:"max_clients"`
	MaxClientsSrc    int           `toml:"max_clients_per_source"`
	ClientTTL        time.Duration `toml:"client_ttl"`
	ReplayCapacity   int           `toml:"replay_capacity"`
	PeakRate         float64       `toml:"peak_rate"`
	ReplayFPRate     float64       `toml:"replay_fp_rate"`
	ReplaySave       time.Duration `toml:"replay_save_interval"`
	Authorities      string        `toml:"authorities"`
	Threshold        int           `toml:"threshold"`
}

func defaultGatewayFile() mixnetFile {
	return mixnetFile{
		Gateway: gatewaySection{
			Listen:       gateway.DefaultMixListenAddr,
			ClientListen: gateway.DefaultClientListenAddr,
		},
		Log: defaultLog(),
	}
}

func bindGatewayFlags(fs *flag.FlagSet, c *mixnetFile) {
	g := &c.Gateway
	fs.StringVar(&g.Listen, "listen", g.Listen, "`ip:port` where mixnodes deliver packets")
	fs.StringVar(&g.ClientListen, "client-listen", g.ClientListen, "`ip:port` of the clients' WebSocket listener")
	fs.StringVar(&g.Announce, "announce", g.Announce, "`ip:port` published in the directory for mixnodes (default: the listening address)")
	fs.StringVar(&g.ClientAnnounce, "client-announce", g.ClientAnnounce, "ws:// or wss:// `URL` published in the directory for clients (default: ws:// and the client listening address)")
	fs.StringVar(&g.Data, "data", g.Data, "`folder` of the gateway's keys, database and replay filter (required)")
	fs.StringVar(&g.Directory, "directory", g.Directory, "`URL` of the directory, or the directory authorities' URLs separated by commas, to register with and fetch the topology from (default: none, which refuses every forward)")
	cli.TrustFlags(fs, &g.Authorities, &g.Threshold)
	fs.StringVar(&g.Metrics, "metrics", g.Metrics, "`ip:port` of the /metrics and /healthz server (default: none)")
	fs.DurationVar(&g.MessageTTL, "message-ttl", g.MessageTTL, "how long a stored message waits for its client (0: 24h)")
	fs.IntVar(&g.PageSize, "page-size", g.PageSize, "stored messages handed to a client at once (0: 100)")
	fs.IntVar(&g.MaxPending, "max-pending", g.MaxPending, "unconfirmed live messages per client before the rest go to the store (0: the default)")
	fs.IntVar(&g.MaxStored, "max-stored", g.MaxStored, "messages the store holds for all clients; beyond, new ones are refused unacknowledged (0: the default)")
	fs.IntVar(&g.MaxStoredClient, "max-stored-per-client", g.MaxStoredClient, "messages the store holds for one client (0: the default)")
	fs.IntVar(&g.MaxExitQueue, "max-exit-queue", g.MaxExitQueue, "packets from mixnodes waiting to be peeled (0: 4096)")
	fs.IntVar(&g.MaxExitQueuePeer, "max-exit-queue-per-peer", g.MaxExitQueuePeer, "one layer-3 mixnode's part of those; beyond, its own packets are dropped (0: half of --max-exit-queue)")
	fs.DurationVar(&g.PurgeInterval, "purge-interval", g.PurgeInterval, "time between purges of expired messages (0: the default)")
	fs.DurationVar(&g.TopologyRefresh, "topology-refresh", g.TopologyRefresh, "time between topology fetches (0: the default)")
	fs.DurationVar(&g.HandshakeTimeout, "handshake-timeout", g.HandshakeTimeout, "bound on a client's handshake, from its TCP connection on (0: the default)")
	fs.IntVar(&g.MaxHandshakes, "max-handshakes", g.MaxHandshakes, "client connections in their handshake at once; more are answered 503 (0: 1024)")
	fs.IntVar(&g.MaxHandshakesSrc, "max-handshakes-per-source", g.MaxHandshakesSrc, "the same from one address, an IPv4 address or an IPv6 /64 (0: 64; negative: no limit)")
	fs.IntVar(&g.MaxClients, "max-clients", g.MaxClients, "registered clients; further registrations are refused (0: 100000)")
	fs.IntVar(&g.MaxClientsSrc, "max-clients-per-source", g.MaxClientsSrc, "clients registered from one address (0: 1000; negative: no limit, for a gateway behind a proxy)")
	fs.DurationVar(&g.ClientTTL, "client-ttl", g.ClientTTL, "how long a registered client may stay away before it is forgotten (0: 720h)")
	fs.IntVar(&g.ReplayCapacity, "replay-capacity", g.ReplayCapacity, "packets the replay filter of a node without a directory is sized for (0: 10 million, about 30 MB)")
	peakRateFlag(fs, &g.PeakRate, &g.ReplayFPRate)
	fs.DurationVar(&g.ReplaySave, "replay-save-interval", g.ReplaySave, "how often the replay filter is saved to the data folder, which it also is on shutdown (0: 1m; negative: only on shutdown)")
	c.Log.flags(fs)
}

// runGateway is `mixnet gateway`.
func runGateway(args []string, stdout, stderr io.Writer) int {
	cmd := command("gateway", stdout, stderr)
	cfg := defaultGatewayFile()
	if err := parseConfig(cmd, args, &cfg, bindGatewayFlags); err != nil {
		return cmd.Status(err)
	}
	log, err := cli.NewLogger(cmd.Name, stderr, cfg.Log.Level)
	if err != nil {
		return cmd.Status(err)
	}
	s := cfg.Gateway
	trust, err := cli.ParseTrust(s.Authorities, s.Threshold)
	if err != nil {
		return cmd.Status(cmd.Errorf("%v", err))
	}
	g, err := gateway.New(gateway.Config{
		Trust:                   trust,
		MixListenAddr:           s.Listen,
		ClientListenAddr:        s.ClientListen,
		AnnounceAddr:            s.Announce,
		ClientAnnounceURL:       s.ClientAnnounce,
		DataDir:                 s.Data,
		DirectoryURL:            s.Directory,
		MetricsAddr:             s.Metrics,
		MessageTTL:              s.MessageTTL,
		PageSize:                s.PageSize,
		MaxPendingPerClient:     s.MaxPending,
		MaxStored:               s.MaxStored,
		MaxStoredPerClient:      s.MaxStoredClient,
		MaxExitQueue:            s.MaxExitQueue,
		MaxExitQueuePerPeer:     s.MaxExitQueuePeer,
		PurgeInterval:           s.PurgeInterval,
		TopologyRefresh:         s.TopologyRefresh,
		HandshakeTimeout:        s.HandshakeTimeout,
		MaxHandshakes:           s.MaxHandshakes,
		MaxHandshakesPerSource:  s.MaxHandshakesSrc,
		MaxClients:              s.MaxClients,
		MaxClientsPerSource:     s.MaxClientsSrc,
		ClientTTL:               s.ClientTTL,
		ReplayCapacity:          s.ReplayCapacity,
		PeakRate:                s.PeakRate,
		ReplayFalsePositiveRate: s.ReplayFPRate,
		ReplaySaveInterval:      s.ReplaySave,
		Logger:                  log,
	})
	if err != nil {
		log.Error().Err(err).Msg("cannot start the gateway")
		return cli.ExitError
	}
	if err := g.Start(context.Background()); err != nil {
		log.Error().Err(err).Msg("cannot start the gateway") // Start closed it
		return cli.ExitError
	}
	ctx, stop := cli.SignalContext(log, nil)
	defer stop()
	<-ctx.Done()
	if err := g.Close(); err != nil {
		log.Error().Err(err).Msg("closing the gateway")
		return cli.ExitError
	}
	return cli.ExitOK
}
