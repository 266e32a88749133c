package main

import (
	"flag"
	"io"

	"github.com/peapod-mixnet/peapod/internal/cli"
)

// mixnetFile is the TOML file of the node subcommands (--config): one
// section per subcommand, and [log] for all of them. Each subcommand reads
// its own section and [log], and ignores the others', so one file may
// configure every subcommand (examples/config/mixnet.toml); unknown keys
// are refused in every section. (`mixnet measure` has a file of its own.)
type mixnetFile struct {
	Directory directorySection `toml:"directory"`
	Mixnode   mixnodeSection   `toml:"mixnode"`
	Gateway   gatewaySection   `toml:"gateway"`
	Local     localSection     `toml:"local"`
	Log       logSection       `toml:"log"`
}

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

// command returns the cli.Command of subcommand name.
func command(name string, stdout, stderr io.Writer) cli.Command {
	return cli.Command{Name: "mixnet " + name, Stdout: stdout, Stderr: stderr}
}

// parseConfig fills cfg from the TOML file named by --config, if any, and
// then from the flags in args, which win (see cli.Parse); the subcommands
// take no positional arguments.
func parseConfig[T any](cmd cli.Command, args []string, cfg *T, bind func(*flag.FlagSet, *T)) error {
	p, err := cli.Parse(cmd, args, cfg, bind)
	if err != nil {
		return err
	}
	return cmd.NoArgs(p)
}
