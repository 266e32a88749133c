// Command client runs a peapod mixnet client: the app side of the mixnet,
// serving Nym's native-client WebSocket API to applications.
//
//	client init    [--data DIR] [--directory URL] [--gateway ID]
//	client run     [--data DIR] [--directory URL] [--ws 127.0.0.1:1977] [--metrics ADDR] [--mix-delay D] [--no-delay] [--no-cover] [--config FILE]
//	client send    --to ADDRESS [--anonymous [--reply-surbs N]] [--wait D] [--replies N] [--via ws://127.0.0.1:1977] [MESSAGE]
//	client address [--data DIR]
//	client echo    [--provider URL] [--provider-key KEY] [--known-providers FILE] [--directory URL] [--authorities KEYS] [--data DIR] MESSAGE
//	client kv      [--provider URL] [--provider-key KEY] [--known-providers FILE] [--directory URL] [--authorities KEYS] [--data DIR] put KEY VALUE|@FILE|- | get KEY | delete KEY | list [PREFIX]
//	client call    [--provider URL] [--provider-key KEY] [--known-providers FILE] [--directory URL] [--authorities KEYS] [--data DIR] SERVICE [DATA | @FILE | -]
//
// init creates the client's keys in its data folder (default
// ./.peapod/client), registers with a gateway and prints the address. run
// runs the client and serves the WebSocket API (package nymapi) until
// SIGINT or SIGTERM: the first signal shuts down gracefully, a second one
// exits at once; with --metrics it serves Prometheus metrics at /metrics
// and its health at /healthz on that address (docs/operate.md §5). send sends one message from a shell, waits until it is
// delivered and prints the replies that come back; it runs its own client
// from the data folder, or with --via goes through a running client's
// WebSocket API. address prints the address without touching the network.
// echo, kv and call are the requesters of a provider (cmd/provider): they
// fetch and verify the provider's signed descriptor from its HTTP endpoint
// (default http://127.0.0.1:8080), run a client on the provider's network
// (a temporary one unless --data is given), send one request anonymously
// with reply SURBs, and print the reply (call: to any service, its data
// given as an argument, @FILE or - for stdin), or the provider's error code and
// message with exit status 1. Without --provider-key they trust the
// provider's key on first use: they print it, remember it in
// known_providers.json in the data folder (./.peapod/client for a
// temporary client), and refuse a descriptor signed by another key later.
// With --directory or --authorities they refuse, before anything is sent,
// a descriptor naming another network or other directory authorities than
// those (THE PROVIDER'S NETWORK IS NOT YOURS); without --authorities they
// verify the topology with the authorities the descriptor names.
//
// Every subcommand reads an optional TOML file (--config, sections
// [client], [websocket] and [log]; unknown keys are refused) and then its
// flags, which override the file; `client <subcommand> -h` lists them. The
// directory defaults to http://127.0.0.1:8090, where `mixnet local` serves
// it. Logs go to stderr, as JSON lines, or human-readable when stderr is a
// terminal; results (addresses, replies) go to stdout.
package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"

	"github.com/peapod-mixnet/peapod/internal/cli"
)

// subcommand is one entry of the dispatch table.
type subcommand struct {
	// run runs the subcommand with its arguments and returns the process's
	// exit status. Results go to stdout, logs and errors to stderr.
	run     func(args []string, stdout, stderr io.Writer) int
	summary string
}

// subcommands is the dispatch table. Each subcommand lives in its own file.
var subcommands = map[string]subcommand{
	"init":    {runInit, "create the client's keys, register with a gateway, print the address"},
	"run":     {runRun, "run the client and serve Nym's native WebSocket API"},
	"send":    {runSend, "send one message and print the replies"},
	"address": {runAddress, "print the client's address (no network needed)"},
	"echo":    {runEcho, "send a message to a provider's echo service and print the reply"},
	"kv":      {runKV, "put, get, delete or list keys in a provider's kv service"},
	"call":    {runCall, "send DATA, a file or stdin to any service of a provider and print the reply"},
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
		fmt.Fprintln(stdout, cli.Version("client"))
		return cli.ExitOK
	}
	sub, ok := subcommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "client: unknown subcommand %q\n\n", args[0])
		usage(stderr)
		return cli.ExitUsage
	}
	return sub.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: client <subcommand> [flags]")
	fmt.Fprintln(w, "\nsubcommands:")
	for _, name := range slices.Sorted(maps.Keys(subcommands)) {
		fmt.Fprintf(w, "  %-10s %s\n", name, subcommands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'client <subcommand> -h' for its flags, 'client --version' for the version.")
}
