package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/internal/cli"
	"github.com/peapod-mixnet/peapod/nymapi"
)

// Defaults shared by the subcommands.
const (
	// defaultDirectory is where `mixnet local` serves its directory.
	defaultDirectory = "http://127.0.0.1:8090"
	defaultDataDir   = "./.peapod/client"
)

// clientFile is the TOML file every subcommand reads with --config;
// examples/config/client.toml lists every key with its default
// (TestExampleConfig keeps it so).
type clientFile struct {
	Client    clientSection    `toml:"client"`
	WebSocket webSocketSection `toml:"websocket"`
	Log       logSection       `toml:"log"`
}

// clientSection configures the mixnet client; each key maps to the field of
// client.Config of the same meaning.
type clientSection struct {
	Directory string        `toml:"directory"`
	Data      string        `toml:"data"`
	Gateway   string        `toml:"gateway"`
	MixDelay  time.Duration `toml:"mix_delay"`
	NoDelay   bool          `toml:"no_delay"`
	NoCover   bool          `toml:"no_cover"`
	// Cover traffic's mean gaps (client.CoverConfig); zero takes the
	// defaults, Nym's.
	CoverMainGap time.Duration `toml:"cover_main_gap"`
	CoverLoopGap time.Duration `toml:"cover_loop_gap"`
	// The network's directory authorities (base58 keys separated by
	// commas) and the signatures a topology needs (0: a majority).
	Authorities string `toml:"authorities"`
	Threshold   int    `toml:"threshold"`
	// Metrics is the ip:port of client run's /metrics and /healthz server;
	// "" (the default) serves none.
	Metrics string `toml:"metrics"`
}

// webSocketSection configures the WebSocket API; zero values take nymapi's
// defaults.
type webSocketSection struct {
	Listen         string        `toml:"listen"`
	MaxFrameSize   int64         `toml:"max_frame_size"`
	MaxConnections int           `toml:"max_connections"`
	PingInterval   time.Duration `toml:"ping_interval"`
	SlowTimeout    time.Duration `toml:"slow_timeout"`
	// AllowOrigin lists the web origins whose pages may connect (besides
	// applications, which send no Origin): nymapi.Config.AllowedOrigins.
	AllowOrigin []string `toml:"allow_origin"`
}

// logSection is the [log] section.
type logSection struct {
	// Level is one of trace, debug, info, warn, error.
	Level string `toml:"level"`
}

// defaultClientFile returns the defaults, with logLevel as the log level
// (long-running subcommands log at info, one-off ones at warn).
func defaultClientFile(logLevel string) clientFile {
	return clientFile{
		Client:    clientSection{Directory: defaultDirectory, Data: defaultDataDir},
		WebSocket: webSocketSection{Listen: nymapi.DefaultListenAddr},
		Log:       logSection{Level: logLevel},
	}
}

// bindCommon registers the flags every subcommand has.
func bindCommon(fs *flag.FlagSet, c *clientFile) {
	fs.StringVar(&c.Client.Directory, "directory", c.Client.Directory, "base `URL` of the network's directory, or its authorities' URLs separated by commas")
	cli.TrustFlags(fs, &c.Client.Authorities, &c.Client.Threshold)
	fs.StringVar(&c.Client.Data, "data", c.Client.Data, "`folder` of the client's keys and state")
	fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "log `level`: trace, debug, info, warn or error")
}

// bindTuning registers the flags of subcommands that run the client.
func bindTuning(fs *flag.FlagSet, c *clientFile) {
	fs.DurationVar(&c.Client.MixDelay, "mix-delay", c.Client.MixDelay, "mean delay per hop of the packets sent (0: the network's advertised delay)")
	fs.BoolVar(&c.Client.NoDelay, "no-delay", c.Client.NoDelay, "send without mixing delays (test networks only: it removes the mixing)")
	fs.BoolVar(&c.Client.NoCover, "no-cover", c.Client.NoCover, "send no cover traffic (test networks only)")
	fs.DurationVar(&c.Client.CoverMainGap, "cover-main-gap", c.Client.CoverMainGap, "mean gap of the main Poisson stream, which sends a real packet when one is queued and cover otherwise (0: 20ms, Nym's)")
	fs.DurationVar(&c.Client.CoverLoopGap, "cover-loop-gap", c.Client.CoverLoopGap, "mean gap of the loop cover stream (0: 200ms, Nym's)")
}

// check validates the values every subcommand uses.
func (c *clientFile) check() error {
	switch {
	case c.Client.Data == "":
		return errors.New("client: --data must not be empty")
	case c.Client.Directory == "":
		return errors.New("client: --directory must not be empty")
	case c.Client.MixDelay < 0:
		return fmt.Errorf("client: --mix-delay %v is negative", c.Client.MixDelay)
	case c.Client.CoverMainGap < 0 || c.Client.CoverLoopGap < 0:
		return fmt.Errorf("client: --cover-main-gap %v or --cover-loop-gap %v is negative", c.Client.CoverMainGap, c.Client.CoverLoopGap)
	}
	if err := checkMetricsAddr(c.Client.Metrics); err != nil {
		return err
	}
	if _, err := cli.ParseTrust(c.Client.Authorities, c.Client.Threshold); err != nil {
		return fmt.Errorf("client: --authorities: %w", err)
	}
	for _, o := range c.WebSocket.AllowOrigin {
		if _, err := nymapi.ParseOrigin(o); err != nil {
			return fmt.Errorf("client: --allow-origin: %w (write it as the browser's address bar shows it, e.g. http://localhost:5173)", err)
		}
	}
	return nil
}

// clientConfig returns the client.Config of the [client] section, which
// check has checked.
func (s clientSection) clientConfig(log zerolog.Logger) client.Config {
	trust, _ := cli.ParseTrust(s.Authorities, s.Threshold)
	return client.Config{
		Trust:        trust,
		DataDir:      s.Data,
		DirectoryURL: s.Directory,
		Gateway:      s.Gateway,
		MixDelay:     s.MixDelay,
		NoDelay:      s.NoDelay,
		Cover:        client.CoverConfig{Disabled: s.NoCover, MainGap: s.CoverMainGap, LoopGap: s.CoverLoopGap},
		Logger:       log,
	}
}

// serverConfig returns the nymapi.Config of the [websocket] section.
func (s webSocketSection) serverConfig(b nymapi.Backend, log zerolog.Logger) nymapi.Config {
	return nymapi.Config{
		Backend:        b,
		Logger:         log,
		MaxFrameSize:   s.MaxFrameSize,
		MaxConnections: s.MaxConnections,
		PingInterval:   s.PingInterval,
		SlowTimeout:    s.SlowTimeout,
		AllowedOrigins: s.AllowOrigin,
	}
}

// command returns the cli.Command of subcommand name.
func command(name string, stdout, stderr io.Writer) cli.Command {
	return cli.Command{Name: "client " + name, Stdout: stdout, Stderr: stderr}
}

// setup parses the command line of a subcommand (cli.Parse: the file named
// by --config, then the flags bind registers), validates the common values
// and makes the logger. When it returns false, the command ends with the
// status it returns.
func setup(cmd cli.Command, args []string, cfg *clientFile, bind func(*flag.FlagSet, *clientFile)) (cli.Parsed, zerolog.Logger, int, bool) {
	p, err := cli.Parse(cmd, args, cfg, bind)
	if err == nil {
		err = cfg.check()
	}
	if err != nil {
		return p, zerolog.Logger{}, cmd.Status(err), false
	}
	log, err := cli.NewLogger(cmd.Name, cmd.Stderr, cfg.Log.Level)
	if err != nil {
		return p, zerolog.Logger{}, cmd.Status(err), false
	}
	return p, log, cli.ExitOK, true
}
