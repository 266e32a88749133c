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
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// logSection is the [log] section every subcommand's file may have.
type logSection struct {
	// Level is one of trace, debug, info, warn, error.
	Level string `toml:"level"`
}

func defaultLog() logSection { return logSection{Level: "info"} }

// flags registers the section's flags, bound to its fields.
func (s *logSection) flags(fs *flag.FlagSet) {
	fs.StringVar(&s.Level, "log-level", s.Level, "log `level`: trace, debug, info, warn or error")
}

// loadFile decodes the TOML file at path into v, refusing keys that v does
// not have.
func loadFile(path string, v any) error {
	md, err := toml.DecodeFile(path, v)
	if err != nil {
		return fmt.Errorf("mixnet: config %s: %w", path, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return fmt.Errorf("mixnet: config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	return nil
}

// parseConfig fills cfg from the TOML file named by --config, if any, and
// then from the flags in args, which win. bind registers the flags of a
// config on a flag set, bound to that config's fields. It returns
// flag.ErrHelp when the user asked for help.
func parseConfig[T any](name string, args []string, stderr io.Writer, cfg *T, bind func(*flag.FlagSet, *T)) error {
	newFlagSet := func(c *T, configPath *string, out io.Writer) *flag.FlagSet {
		fs := flag.NewFlagSet("mixnet "+name, flag.ContinueOnError)
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
			return err
		}
		return errReported // the flag package printed it, with the usage
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("mixnet %s: unexpected argument %q", name, fs.Arg(0))
	}
	if configPath != "" {
		if err := loadFile(configPath, cfg); err != nil {
			return err
		}
	}
	// Second pass: the flags given on the command line override the file.
	return newFlagSet(cfg, new(string), io.Discard).Parse(args)
}

// newLogger returns a logger to stderr at the given level: human-readable
// when stderr is a terminal, JSON lines otherwise.
func newLogger(stderr io.Writer, level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("mixnet: unknown log level %q", level)
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
var errReported = errors.New("mixnet: bad usage")

// exitStatus turns a configuration error into an exit status, printing it
// unless it is a request for help or was printed already.
func exitStatus(stderr io.Writer, err error) int {
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errReported):
		return exitUsage
	}
	fmt.Fprintln(stderr, err)
	return exitUsage
}
