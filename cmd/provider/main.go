// Command provider runs a peapod provider host: a stable mixnet address,
// an HTTP endpoint that publishes it (signed), and handler plugins that
// answer the requests reaching it through the mixnet.
//
//	provider [--config FILE] [--data DIR] [--http ADDR] [--plugins DIR]
//	         [--directory URL | --nym-client URL] [limits and timeouts]
//	provider new-plugin [--dir DIR] [--module PATH] [--peapod DIR] NAME
//
// With no flags it is the whole demo in one process: a local peapod network
// on loopback ports (directory on 127.0.0.1:8090, mixnodes, gateways, real
// sockets, a 15 ms mean delay per hop), the provider's own client on it,
// the plugins found in the "plugins" folder next to the provider binary
// (where `make build` puts the examples), and the HTTP endpoint on
// 127.0.0.1:8080, with all state under ./.peapod. It prints the address and
// the command to try:
//
//	bin/client echo --provider http://127.0.0.1:8080 hello
//
// --directory joins an existing peapod network instead; --nym-client serves
// through a Nym native client (Nym's mixnet, or any client of its WebSocket
// API). The first SIGINT or SIGTERM shuts down gracefully (the HTTP
// endpoint, the intake, requests in flight up to the drain timeout, the
// plugins, the transport, then the embedded network); a second one exits at
// once. Every flag has a key in the TOML file (--config; unknown keys are
// refused); `provider -h` lists them, and docs/provider.md describes them.
//
// `provider new-plugin NAME` writes the Go module of a new handler plugin
// (a service that greets, and its tests) to start from; see docs/plugins.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/framework"
	"github.com/peapod-mixnet/peapod/internal/cli"
	"github.com/peapod-mixnet/peapod/localnet"
	"github.com/peapod-mixnet/peapod/plugins"
)

// startTimeout bounds starting the embedded network and the host (which
// includes connecting to a Nym client).
const startTimeout = time.Minute

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses the command line, runs the provider until a signal, and
// returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "new-plugin" {
		return newPlugin(args[1:], stdout, stderr)
	}
	cmd := cli.Command{Name: "provider", Usage: usage, Stdout: stdout, Stderr: stderr}
	cfg := defaultConfig()
	err := parseArgs(cmd, args, &cfg)
	if err == nil {
		err = cfg.check()
	}
	if err != nil {
		return cmd.Status(err)
	}
	log, err := cli.NewLogger(cmd.Name, stderr, cfg.Log.Level)
	if err != nil {
		return cmd.Status(err)
	}
	var running atomic.Pointer[framework.Host]
	ctx, stop := cli.SignalContext(log, func() {
		// The plugins run in process groups of their own: a forced exit
		// must not leave them behind.
		if h := running.Load(); h != nil {
			killPlugins(h.Plugins())
		}
	})
	defer stop()
	if err := serve(ctx, &cfg, stdout, log, &running); err != nil {
		log.Error().Err(err).Msg("provider failed")
		fmt.Fprintln(stderr, err)
		return cli.ExitError
	}
	return cli.ExitOK
}

// serve starts the embedded network (unless the provider joins another)
// and the host, and stops them when ctx ends: the host first, then the
// network.
func serve(ctx context.Context, cfg *fileConfig, stdout io.Writer, log zerolog.Logger, running *atomic.Pointer[framework.Host]) error {
	pluginsDir, err := pluginsFolder(cfg.Provider.Plugins, log)
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	directory := cfg.Provider.Directory
	trust, err := cfg.trust()
	if err != nil {
		return err
	}
	var network *localnet.Network
	if cfg.embedded() {
		network, err = localnet.Start(startCtx, cfg.networkConfig(cfg.networkLogger(log)))
		if err != nil {
			return fmt.Errorf("provider: starting the local network: %w", err)
		}
		defer func() {
			if err := network.Close(); err != nil {
				log.Warn().Err(err).Msg("closing the local network")
			}
		}()
		directory, trust = network.DirectoryURL(), network.Trust()
	}

	host, err := framework.New(cfg.hostConfig(directory, trust, pluginsDir, log))
	if err != nil {
		return err
	}
	running.Store(host)
	if err := host.Start(startCtx); err != nil {
		return err // Start has stopped whatever it started
	}
	printBanner(stdout, host, cfg, directory, trust)

	<-ctx.Done()
	drain := cfg.Provider.DrainTimeout
	if drain <= 0 {
		drain = framework.DefaultDrainTimeout
	}
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), drain)
	defer cancelShutdown()
	return host.Shutdown(shutdownCtx)
}

// pluginsFolder returns the plugins folder: the one configured, which must
// exist, or else the "plugins" folder next to the provider binary, if it
// exists (a provider without plugins still runs, and says so).
func pluginsFolder(configured string, log zerolog.Logger) (string, error) {
	if configured != "" {
		if fi, err := os.Stat(configured); err != nil || !fi.IsDir() {
			return "", fmt.Errorf("provider: plugins folder %s is not a folder", configured)
		}
		return configured, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("provider: finding the provider binary: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	dir := filepath.Join(filepath.Dir(exe), "plugins")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		log.Warn().Str("folder", dir).Msg("no plugins folder next to the provider binary; running without plugins (build them with `make build`)")
		return "", nil
	}
	return dir, nil
}

// printBanner tells the user where the provider is, what it serves, which
// plugins it runs (and why any of them is not running), and how to try the
// services it has.
func printBanner(w io.Writer, h *framework.Host, cfg *fileConfig, dirURL string, trust *directory.Trust) {
	endpoint := "http://" + h.HTTPAddr()
	services := make(map[string]bool)
	var names []string
	for _, s := range h.Services() {
		names = append(names, s.Name)
		services[s.Name] = true
	}
	keyNote := "the provider's own key"
	if addr := h.Address(); string(h.Key()) == string(addr.Identity[:]) {
		keyNote = "the address's identity key: the descriptor is self-certifying"
	}
	fmt.Fprintln(w, "peapod provider running")
	fmt.Fprintf(w, "  address   %s\n", h.Address())
	fmt.Fprintf(w, "  key       %s (%s)\n", address.EncodeKey(h.Key()), keyNote)
	fmt.Fprintf(w, "  endpoint  %s (status page: %s/)\n", endpoint, endpoint)
	switch {
	case cfg.Provider.NymClient != "":
		fmt.Fprintf(w, "  network   Nym, through the client at %s\n", cfg.Provider.NymClient)
	case cfg.embedded():
		delay := cfg.Network.MixDelay
		if cfg.Client.NoDelay {
			delay = 0
		}
		fmt.Fprintf(w, "  network   local, in this process: directory %s, mean delay %v per hop\n", dirURL, delay)
	default:
		fmt.Fprintf(w, "  network   peapod, directory %s\n", dirURL)
	}
	if trust != nil {
		fmt.Fprintf(w, "  trust     %d of the directory authorities %s sign the topology\n", trust.K(), strings.Join(trust.Keys(), ", "))
	} else if cfg.Provider.NymClient == "" {
		fmt.Fprintln(w, "  trust     none: the topology is whatever the directory serves (give --authorities)")
	}
	printPlugins(w, h.Plugins())
	if len(names) == 0 {
		fmt.Fprintln(w, "  services  (none)")
	} else {
		fmt.Fprintf(w, "  services  %s\n", strings.Join(names, ", "))
	}
	if cfg.Provider.NymClient != "" {
		fmt.Fprintln(w, "\nRequesters reach it through their own Nym client; its descriptor is at "+endpoint+"/.well-known/peapod.json")
		return
	}
	if len(names) == 0 {
		fmt.Fprintln(w, "\nNothing to try yet: put plugin executables in the plugins folder (`make build` builds the examples) and restart.")
		fmt.Fprintln(w, "\nPress Ctrl-C to stop.")
		return
	}
	clientBin := clientCommand()
	fmt.Fprintln(w, "\nTry it:")
	first := ""
	for _, name := range names {
		switch name {
		case "echo":
			fmt.Fprintf(w, "  %s echo --provider %s hello\n", clientBin, endpoint)
		case "kv":
			fmt.Fprintf(w, "  %s kv --provider %s put greeting hello\n", clientBin, endpoint)
		default:
			fmt.Fprintf(w, "  %s call --provider %s %s DATA\n", clientBin, endpoint, name)
		}
		if first == "" {
			first = name
		}
	}
	pinned := fmt.Sprintf("call --provider %s --provider-key %s %s DATA", endpoint, address.EncodeKey(h.Key()), first)
	if services["echo"] {
		pinned = fmt.Sprintf("echo --provider %s --provider-key %s hello", endpoint, address.EncodeKey(h.Key()))
	}
	fmt.Fprintf(w, "Pinning the provider's key:\n  %s %s\n", clientBin, pinned)
	fmt.Fprintln(w, "\nPress Ctrl-C to stop.")
}

// printPlugins writes the banner's plugin lines: each plugin and its state,
// with the reason for one that is not running.
func printPlugins(w io.Writer, ps []plugins.PluginStatus) {
	if len(ps) == 0 {
		fmt.Fprintln(w, "  plugins   (none found)")
		return
	}
	for i, p := range ps {
		label := "plugins"
		if i > 0 {
			label = ""
		}
		state := "running"
		switch {
		case p.Skipped:
			state = "NOT RUNNING: " + p.LastError
		case !p.Up:
			state = "down, restarting: " + p.LastError
		case len(p.Services) > 0:
			state = "running: " + strings.Join(p.Services, ", ")
		}
		fmt.Fprintf(w, "  %-9s %s (%s)\n", label, p.Name, state)
	}
}

// clientCommand returns how to run the client binary that sits next to the
// provider binary, relative to the working directory when possible.
func clientCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "client"
	}
	bin := filepath.Join(filepath.Dir(exe), "client")
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, bin); err == nil && !strings.HasPrefix(rel, "..") {
			if !strings.Contains(rel, string(filepath.Separator)) {
				rel = "." + string(filepath.Separator) + rel
			}
			return rel
		}
	}
	return bin
}
