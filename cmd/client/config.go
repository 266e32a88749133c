package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/nymapi"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Defaults shared by the subcommands.
const (
	// defaultDirectory is where `mixnet local` serves its directory.
	defaultDirectory = "http://127.0.0.1:8090"
	defaultDataDir   = "./.peapod/client"
)

// clientFile is the TOML file every subcommand reads with --config:
//
//	[client]
//	directory = "http://127.0.0.1:8090"
//	data = "./.peapod/client"
//	gateway = ""        # base58 identity; empty keeps the one registered with
//	mix_delay = "0s"    # 0 takes the network's advertised delay
//	no_delay = false    # tests only: no mixing delays
//	no_cover = false    # tests only: no cover traffic
//
//	[websocket]          # client run
//	listen = "127.0.0.1:1977"
//	max_frame_size = 16777216
//	max_connections = 64
//	ping_interval = "30s"
//	slow_timeout = "10s"
//
//	[log]
//	level = "info"
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
}

// webSocketSection configures the WebSocket API; zero values take nymapi's
// defaults.
type webSocketSection struct {
	Listen         string        `toml:"listen"`
	MaxFrameSize   int64         `toml:"max_frame_size"`
	MaxConnections int           `toml:"max_connections"`
	PingInterval   time.Duration `toml:"ping_interval"`
	SlowTimeout    time.Duration `toml:"slow_timeout"`
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
	fs.StringVar(&c.Client.Directory, "directory", c.Client.Directory, "base `URL` of the network's directory")
	fs.StringVar(&c.Client.Data, "data", c.Client.Data, "`folder` of the client's keys and state")
	fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "log `level`: trace, debug, info, warn or error")
}

// bindTuning registers the flags of subcommands that run the client.
func bindTuning(fs *flag.FlagSet, c *clientFile) {
	fs.DurationVar(&c.Client.MixDelay, "mix-delay", c.Client.MixDelay, "mean delay per hop of the packets sent (0: the network's advertised delay)")
	fs.BoolVar(&c.Client.NoDelay, "no-delay", c.Client.NoDelay, "send without mixing delays (test networks only: it removes the mixing)")
	fs.BoolVar(&c.Client.NoCover, "no-cover", c.Client.NoCover, "send no cover traffic (test networks only)")
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
	}
	return nil
}

// clientConfig returns the client.Config of the [client] section.
func (s clientSection) clientConfig(log zerolog.Logger) client.Config {
	return client.Config{
		DataDir:      s.Data,
		DirectoryURL: s.Directory,
		Gateway:      s.Gateway,
		MixDelay:     s.MixDelay,
		NoDelay:      s.NoDelay,
		Cover:        client.CoverConfig{Disabled: s.NoCover},
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
	}
}

// loadFile decodes the TOML file at path into v, refusing keys that v does
// not have.
func loadFile(path string, v any) error {
	md, err := toml.DecodeFile(path, v)
	if err != nil {
		return fmt.Errorf("client: config %s: %w", path, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return fmt.Errorf("client: config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	return nil
}

// parsedArgs is what parseArgs found on a command line.
type parsedArgs struct {
	rest []string        // the arguments after the flags
	set  map[string]bool // the flags given on the command line
}

// parseArgs fills cfg from the TOML file named by --config, if any, and then
// from the flags in args, which win. bind registers the subcommand's flags
// on a flag set, bound to the fields of a config (and, for flags that are
// not in the file, to the subcommand's own variables). It returns
// flag.ErrHelp when the user asked for help, and errReported when the flag
// package has printed the problem already.
func parseArgs(name string, args []string, stderr io.Writer, cfg *clientFile, bind func(*flag.FlagSet, *clientFile)) (parsedArgs, error) {
	newFlagSet := func(c *clientFile, configPath *string, out io.Writer) *flag.FlagSet {
		fs := flag.NewFlagSet("client "+name, flag.ContinueOnError)
		fs.SetOutput(out)
		fs.StringVar(configPath, "config", "", "TOML configuration `file`; flags override it")
		bind(fs, c)
		return fs
	}
	// First pass: check the flags and find --config, on a scratch copy.
	scratch := *cfg
	var configPath string
	fs := newFlagSet(&scratch, &configPath, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return parsedArgs{}, err
		}
		return parsedArgs{}, errReported // the flag package printed it, with the usage
	}
	if configPath != "" {
		if err := loadFile(configPath, cfg); err != nil {
			return parsedArgs{}, err
		}
	}
	// Second pass: the flags given on the command line override the file.
	fs = newFlagSet(cfg, new(string), io.Discard)
	if err := fs.Parse(args); err != nil {
		return parsedArgs{}, err
	}
	p := parsedArgs{rest: fs.Args(), set: map[string]bool{}}
	fs.Visit(func(f *flag.Flag) { p.set[f.Name] = true })
	return p, nil
}

// newLogger returns a logger to stderr at the given level: human-readable
// when stderr is a terminal, JSON lines otherwise.
func newLogger(stderr io.Writer, level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("client: unknown log level %q", level)
	}
	w := stderr
	if isTerminal(stderr) {
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// errReported stands for an error already printed to stderr.
var errReported = errors.New("client: bad usage")

// usageStatus turns a configuration error into an exit status, printing it
// unless it is a request for help or was printed already.
func usageStatus(stderr io.Writer, err error) int {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errReported):
		return exitUsage
	}
	fmt.Fprintln(stderr, err)
	return exitUsage
}

// setup parses the command line of a subcommand, validates the common
// values and makes the logger.
func setup(name string, args []string, stderr io.Writer, cfg *clientFile, bind func(*flag.FlagSet, *clientFile)) (parsedArgs, zerolog.Logger, int, bool) {
	p, err := parseArgs(name, args, stderr, cfg, bind)
	if err == nil {
		err = cfg.check()
	}
	if err != nil {
		return p, zerolog.Logger{}, usageStatus(stderr, err), false
	}
	log, err := newLogger(stderr, cfg.Log.Level)
	if err != nil {
		return p, zerolog.Logger{}, usageStatus(stderr, err), false
	}
	return p, log, exitOK, true
}
