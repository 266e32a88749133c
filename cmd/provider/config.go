package main

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/framework"
	"github.com/peapod-mixnet/peapod/internal/cli"
	"github.com/peapod-mixnet/peapod/localnet"
)

// Defaults of the command (the library's defaults apply to the rest).
const (
	defaultDataDir = "./.peapod"
	// defaultMixDelay is the mean per-hop delay the embedded network
	// advertises: Nym's default, snappy for a demo and still mixing.
	defaultMixDelay = 15 * time.Millisecond
)

// Folders under the data folder.
const (
	providerSubdir = "provider"
	networkSubdir  = "network"
)

// fileConfig is the TOML file read with --config. Every key is optional;
// flags given on the command line override the file.
// examples/config/provider.toml lists every key with its default
// (TestExampleConfig keeps it so).
type fileConfig struct {
	Provider    providerSection    `toml:"provider"`
	HTTP        httpSection        `toml:"http"`
	Network     networkSection     `toml:"network"`
	Client      clientSection      `toml:"client"`
	Limits      limitsSection      `toml:"limits"`
	Idempotence idempotenceSection `toml:"idempotence"`
	Log         logSection         `toml:"log"`
}

type providerSection struct {
	Data          string        `toml:"data"`
	Plugins       string        `toml:"plugins"`
	PluginPaths   []string      `toml:"plugin_paths"`
	Directory     string        `toml:"directory"`
	Authorities   string        `toml:"authorities"`
	Threshold     int           `toml:"threshold"`
	NymClient     string        `toml:"nym_client"`
	DrainTimeout  time.Duration `toml:"drain_timeout"`
	DescriptorTTL time.Duration `toml:"descriptor_ttl"`
}

type httpSection struct {
	Listen string `toml:"listen"`
}

type networkSection struct {
	DirectoryListen  string        `toml:"directory_listen"`
	MixDelay         time.Duration `toml:"mix_delay"`
	MixnodesPerLayer int           `toml:"mixnodes_per_layer"`
	Gateways         int           `toml:"gateways"`
	// LogLevel is the least level of the embedded network's log lines
	// (its nodes start, connect and disconnect at info level, which would
	// bury the provider's own lines); it cannot go below [log] level.
	LogLevel string `toml:"log_level"`
}

type clientSection struct {
	MixDelay time.Duration `toml:"mix_delay"`
	NoDelay  bool          `toml:"no_delay"`
	NoCover  bool          `toml:"no_cover"`
	// Cover traffic's mean gaps (client.CoverConfig); zero takes Nym's.
	CoverMainGap time.Duration `toml:"cover_main_gap"`
	CoverLoopGap time.Duration `toml:"cover_loop_gap"`
	// What the provider keeps of its requesters' SURBs (client.SURBConfig).
	MaxSURBSenders int           `toml:"max_surb_senders"`
	MaxSURBsHeld   int           `toml:"max_surbs_held"`
	SURBLifetime   time.Duration `toml:"surb_lifetime"`
}

type limitsSection struct {
	MaxConcurrent  int           `toml:"max_concurrent"`
	QueueSize      int           `toml:"queue_size"`
	RequestTimeout time.Duration `toml:"request_timeout"`
	MaxRequestSize int           `toml:"max_request_size"`
	MaxReplySize   int           `toml:"max_reply_size"`
	ReplyTimeout   time.Duration `toml:"reply_timeout"`
}

type idempotenceSection struct {
	Window     time.Duration `toml:"window"`
	MaxEntries int           `toml:"max_entries"`
	MaxBytes   int           `toml:"max_bytes"`
	// Per sender tag.
	MaxEntriesPerRequester int `toml:"max_entries_per_requester"`
	MaxBytesPerRequester   int `toml:"max_bytes_per_requester"`
}

type logSection struct {
	Level string `toml:"level"`
}

// defaultConfig returns the defaults of the command.
func defaultConfig() fileConfig {
	return fileConfig{
		Provider: providerSection{Data: defaultDataDir},
		HTTP:     httpSection{Listen: framework.DefaultHTTPAddr},
		Network:  networkSection{DirectoryListen: localnet.DefaultDirectoryAddr, MixDelay: defaultMixDelay, LogLevel: "warn"},
		Log:      logSection{Level: "info"},
	}
}

// bind registers the command's flags on fs, bound to c's fields.
func bind(fs *flag.FlagSet, c *fileConfig) {
	fs.StringVar(&c.Provider.Data, "data", c.Provider.Data, "state `folder`: keys, plugin data, the embedded network")
	fs.StringVar(&c.Provider.Plugins, "plugins", c.Provider.Plugins, "plugins `folder` (default: \"plugins\" next to the provider binary)")
	fs.StringVar(&c.Provider.Directory, "directory", c.Provider.Directory, "join the peapod network whose directory is at this `URL` (or whose authorities are at these URLs, separated by commas) instead of starting one")
	fs.StringVar(&c.Provider.Authorities, "authorities", c.Provider.Authorities, "with --directory: the network's directory authority `keys`, separated by commas; the client accepts only a topology a threshold of them signed, and the descriptor publishes them")
	fs.IntVar(&c.Provider.Threshold, "threshold", c.Provider.Threshold, "with --authorities: signatures of distinct authorities a topology needs (0: a majority)")
	fs.StringVar(&c.Provider.NymClient, "nym-client", c.Provider.NymClient, "serve through the Nym native client at this WebSocket `URL` (e.g. ws://127.0.0.1:1977)")
	fs.DurationVar(&c.Provider.DrainTimeout, "drain-timeout", c.Provider.DrainTimeout, "how long a shutdown waits for requests in flight (default 10s)")
	fs.StringVar(&c.HTTP.Listen, "http", c.HTTP.Listen, "`address` of the HTTP endpoint")
	fs.StringVar(&c.Network.DirectoryListen, "local-directory", c.Network.DirectoryListen, "`address` of the embedded network's directory")
	fs.DurationVar(&c.Network.MixDelay, "mix-delay", c.Network.MixDelay, "mean delay per hop the embedded network advertises")
	fs.BoolVar(&c.Client.NoDelay, "no-delay", c.Client.NoDelay, "no mixing delays (tests and benchmarks only: it removes the mixing)")
	fs.BoolVar(&c.Client.NoCover, "no-cover", c.Client.NoCover, "no cover traffic (tests and benchmarks only)")
	fs.IntVar(&c.Limits.MaxConcurrent, "max-concurrent", c.Limits.MaxConcurrent, "requests handled at once (default 32)")
	fs.IntVar(&c.Limits.QueueSize, "queue", c.Limits.QueueSize, "requests waiting for a slot before \"overloaded\" (default 256)")
	fs.DurationVar(&c.Limits.RequestTimeout, "timeout", c.Limits.RequestTimeout, "time limit of one request (default 10s)")
	fs.IntVar(&c.Limits.MaxRequestSize, "max-request", c.Limits.MaxRequestSize, "largest request, `bytes` (default 262144)")
	fs.IntVar(&c.Limits.MaxReplySize, "max-reply", c.Limits.MaxReplySize, "largest reply payload, `bytes` (default 1048576)")
	fs.DurationVar(&c.Idempotence.Window, "idempotence-window", c.Idempotence.Window, "how long a reply is kept for repeated requests (default 10m)")
	fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "log `level`: trace, debug, info, warn or error")
	fs.StringVar(&c.Network.LogLevel, "network-log-level", c.Network.LogLevel, "log `level` of the embedded network's nodes")
}

// check validates what the library does not.
func (c *fileConfig) check() error {
	switch {
	case c.Provider.Data == "":
		return errors.New("provider: --data must not be empty")
	case c.Provider.Directory != "" && c.Provider.NymClient != "":
		return errors.New("provider: --directory and --nym-client exclude each other")
	case c.Provider.Directory == "" && (c.Provider.Authorities != "" || c.Provider.Threshold != 0):
		return errors.New("provider: --authorities and --threshold go with --directory (the embedded network has its own)")
	case c.Network.MixDelay < 0:
		return fmt.Errorf("provider: --mix-delay %v is negative", c.Network.MixDelay)
	case c.Client.MixDelay < 0:
		return fmt.Errorf("provider: [client] mix_delay %v is negative", c.Client.MixDelay)
	case c.Client.CoverMainGap < 0 || c.Client.CoverLoopGap < 0:
		return errors.New("provider: [client] cover_main_gap and cover_loop_gap must not be negative")
	case c.Network.MixnodesPerLayer < 0 || c.Network.Gateways < 0:
		return errors.New("provider: [network] mixnodes_per_layer and gateways must not be negative")
	}
	if _, err := zerolog.ParseLevel(c.Network.LogLevel); err != nil || c.Network.LogLevel == "" {
		return fmt.Errorf("provider: unknown --network-log-level %q (trace, debug, info, warn or error)", c.Network.LogLevel)
	}
	return nil
}

// networkLogger returns the logger of the embedded network: log's lines,
// marked "network":"embedded" (each node names its own component), from the level of [network] log_level (checked)
// or log's own level, whichever is higher.
func (c *fileConfig) networkLogger(log zerolog.Logger) zerolog.Logger {
	lvl, _ := zerolog.ParseLevel(c.Network.LogLevel)
	return log.With().Str("network", "embedded").Logger().Level(max(lvl, log.GetLevel()))
}

// embedded reports whether the provider starts its own network.
func (c *fileConfig) embedded() bool {
	return c.Provider.Directory == "" && c.Provider.NymClient == ""
}

// trust returns the directory authorities of the network --directory
// names, nil when none are configured.
func (c *fileConfig) trust() (*directory.Trust, error) {
	t, err := cli.ParseTrust(c.Provider.Authorities, c.Provider.Threshold)
	if err != nil {
		return nil, fmt.Errorf("provider: --authorities: %w", err)
	}
	return t, nil
}

// hostConfig returns the framework.Config of c; directoryURL is the
// network to join when the provider is not behind a Nym client, and trust
// its directory authorities (nil: none).
func (c *fileConfig) hostConfig(directoryURL string, trust *directory.Trust, pluginsDir string, log zerolog.Logger) framework.Config {
	cfg := framework.Config{
		DataDir:      filepath.Join(c.Provider.Data, providerSubdir),
		NymClientURL: c.Provider.NymClient,
		Client: client.Config{
			Trust:    trust,
			MixDelay: c.Client.MixDelay,
			NoDelay:  c.Client.NoDelay,
			Cover:    client.CoverConfig{Disabled: c.Client.NoCover, MainGap: c.Client.CoverMainGap, LoopGap: c.Client.CoverLoopGap},
			SURBs: client.SURBConfig{
				MaxSenders: c.Client.MaxSURBSenders,
				MaxHeld:    c.Client.MaxSURBsHeld,
				Lifetime:   c.Client.SURBLifetime,
			},
		},
		Plugins: framework.PluginsConfig{Dir: pluginsDir, Paths: c.Provider.PluginPaths},
		HTTP:    framework.HTTPConfig{Addr: c.HTTP.Listen},
		Limits: framework.Limits{
			MaxConcurrent:  c.Limits.MaxConcurrent,
			QueueSize:      c.Limits.QueueSize,
			RequestTimeout: c.Limits.RequestTimeout,
			MaxRequestSize: c.Limits.MaxRequestSize,
			MaxReplySize:   c.Limits.MaxReplySize,
			ReplyTimeout:   c.Limits.ReplyTimeout,
		},
		Idempotence: framework.IdempotenceConfig{
			Window:                 c.Idempotence.Window,
			MaxEntries:             c.Idempotence.MaxEntries,
			MaxBytes:               c.Idempotence.MaxBytes,
			MaxEntriesPerRequester: c.Idempotence.MaxEntriesPerRequester,
			MaxBytesPerRequester:   c.Idempotence.MaxBytesPerRequester,
		},
		DescriptorTTL: c.Provider.DescriptorTTL,
		DrainTimeout:  c.Provider.DrainTimeout,
		Logger:        log,
	}
	if c.Provider.NymClient == "" {
		cfg.DirectoryURL = directoryURL
	}
	return cfg
}

// networkConfig returns the localnet.Config of the embedded network.
func (c *fileConfig) networkConfig(log zerolog.Logger) localnet.Config {
	delay := c.Network.MixDelay
	if c.Client.NoDelay {
		delay = 0
	}
	return localnet.Config{
		DataDir:          filepath.Join(c.Provider.Data, networkSubdir),
		DirectoryAddr:    c.Network.DirectoryListen,
		MixnodesPerLayer: c.Network.MixnodesPerLayer,
		Gateways:         c.Network.Gateways,
		MeanMixDelay:     delay,
		Logger:           log,
	}
}

// parseArgs fills cfg from the file named by --config, if any, and then from
// the flags in args, which win (see cli.Parse).
func parseArgs(cmd cli.Command, args []string, cfg *fileConfig) error {
	p, err := cli.Parse(cmd, args, cfg, bind)
	if err != nil {
		return err
	}
	return cmd.NoArgs(p)
}

// usage is what `provider -h` prints before the flags.
const usage = `usage: provider [flags]
       provider new-plugin NAME   (writes a new plugin's Go module; new-plugin -h)

With no flags: a local peapod network in this process, the plugins next to the
binary, and the HTTP endpoint on 127.0.0.1:8080, with state under ./.peapod.
examples/config/provider.toml shows every key of the --config file.`
