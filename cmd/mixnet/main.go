// Command mixnet runs the processes of a peapod mixnet: the directory,
// mixnodes and gateways, one subcommand each, or a whole network on loopback.
//
//	mixnet directory --listen 127.0.0.1:8090 --data DIR (--open | --allow-list FILE) [--peers URL=KEY,...] [--threshold K] [--ttl 90s] [--config FILE]
//	mixnet authority-key --data DIR
//	mixnet mixnode --listen ADDR --announce ADDR --layer N --directory URL[,URL...] [--authorities KEY,... [--threshold K]] --data DIR [--metrics ADDR] [--config FILE]
//	mixnet gateway --listen ADDR --client-listen ADDR --directory URL[,URL...] [--authorities KEY,... [--threshold K]] --data DIR [--metrics ADDR] [--config FILE]
//	mixnet local [--data ./.peapod/network] [--directory-addr 127.0.0.1:8090] [--mix-delay 15ms]
//	mixnet measure [--short] [--clients 20] [--delays 0,5ms,15ms,50ms] [--cover on,off] [--doc docs/anonymity.md]
//	mixnet --version
//
// Each subcommand reads an optional TOML file (--config; unknown keys and
// durations without a unit are refused) and then its flags, which override
// the file; `mixnet <subcommand> -h` lists them. One file serves every node
// subcommand, each reading its own section and [log]:
// examples/config/mixnet.toml shows every key. The first SIGINT or SIGTERM
// shuts the process down gracefully; a second one exits at once. Logs go
// to stderr, as JSON lines, or human-readable when stderr is a terminal.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/peapod-mixnet/peapod/internal/cli"
)

// subcommands maps each subcommand to its entry point, which returns the
// process's exit status.
var subcommands = map[string]struct {
	run     func(args []string, stdout, stderr io.Writer) int
	summary string
}{
	"directory":     {runDirectory, "run a directory authority, which admits mixnodes and gateways and signs the topology with its peers"},
	"authority-key": {runAuthorityKey, "print a directory authority's public key (made on first use)"},
	"mixnode":       {runMixnode, "run a mixnode"},
	"gateway":       {runGateway, "run a gateway, where clients attach to the mixnet"},
	"local":         {runLocal, "run a whole network (directory authorities, mixnodes, gateways) on loopback"},
	"measure":       {runMeasure, "measure the anonymity a network of processes gives against a global passive adversary"},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return cli.ExitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return cli.ExitOK
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, cli.Version("mixnet"))
		return cli.ExitOK
	}
	sub, ok := subcommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "mixnet: unknown subcommand %q\n\n", args[0])
		usage(stderr)
		return cli.ExitUsage
	}
	return sub.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mixnet <subcommand> [flags]")
	fmt.Fprintln(w, "\nsubcommands:")
	for _, name := range []string{"directory", "authority-key", "mixnode", "gateway", "local", "measure"} {
		fmt.Fprintf(w, "  %-14s %s\n", name, subcommands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'mixnet <subcommand> -h' for its flags, 'mixnet --version' for the version.")
}
