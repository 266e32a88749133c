// Package cli is the command-line plumbing the binaries under cmd/ share, so
// that each flag and rule exists once:
//
//   - Parse reads an optional TOML file (--config) and then the flags, which
//     override it; flags may come before, between or after the positional
//     arguments ("--" ends them), and --version prints Version.
//   - Load reads a TOML file strictly: unknown keys are refused, and so is a
//     bare number where a duration belongs (BurntSushi/toml would read
//     `request_timeout = 5` as 5 nanoseconds).
//   - StringsVar registers a repeatable flag whose values replace the file's.
//   - NewLogger makes the zerolog logger of a command; durations in its lines
//     carry their unit ("15ms").
//   - SignalContext turns the first SIGINT or SIGTERM into a graceful
//     shutdown and a second one into an immediate exit.
//
// A command's main function builds a Command, calls Parse with a function
// that binds its flags to the fields of its file's struct, and turns any
// error into an exit status with Command.Status:
//
//	cmd := cli.Command{Name: "mixnet gateway", Stdout: stdout, Stderr: stderr}
//	cfg := defaultGatewayFile()
//	if _, err := cli.Parse(cmd, args, &cfg, bindGatewayFlags); err != nil {
//		return cmd.Status(err)
//	}
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// Exit statuses of every command.
const (
	ExitOK    = 0
	ExitError = 1 // the command ran and failed
	ExitUsage = 2 // the command line or the configuration is wrong
)

// Errors Parse returns that Command.Status turns into exit statuses.
var (
	// ErrReported stands for a usage error already printed (by the flag
	// package, with the usage).
	ErrReported = errors.New("cli: bad usage")
	// ErrVersion means --version was given and the version printed.
	ErrVersion = errors.New("cli: version printed")
)

// Command is one command line: a binary or a binary's subcommand.
type Command struct {
	// Name is the command as the user types it ("provider", "client kv");
	// it prefixes the command's error messages.
	Name string
	// Usage, when set, is printed by -h before the list of flags.
	Usage string
	// Stdout receives results (and the version); Stderr errors and usage.
	Stdout, Stderr io.Writer
}

// Status returns the exit status for an error of Parse or of the command's
// own checks, printing it to Stderr unless it was printed already or is a
// request for help or the version (exit status 0).
func (c Command) Status(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp), errors.Is(err, ErrVersion):
		return ExitOK
	case errors.Is(err, ErrReported):
		return ExitUsage
	}
	fmt.Fprintln(c.Stderr, err)
	return ExitUsage
}

// Errorf returns an error prefixed with the command's name.
func (c Command) Errorf(format string, args ...any) error {
	return fmt.Errorf(c.Name+": "+format, args...)
}
