package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/framework"
	"github.com/peapod-mixnet/peapod/framework/requester"

	"github.com/peapod-mixnet/peapod/internal/cli"
)

// Defaults of the subcommands that talk to a provider (echo, kv).
const (
	defaultProvider        = "http://" + framework.DefaultHTTPAddr
	defaultProviderTimeout = 2 * time.Minute
)

// providerFlags are the flags of the subcommands that talk to a provider.
type providerFlags struct {
	provider string
	key      string
	known    string
	network  string
	timeout  time.Duration
}

// setupProvider parses the command line of a provider subcommand (echo,
// kv): the provider flags, --data (empty by default: a temporary client),
// the tuning flags and --log-level. It returns the arguments after the
// flags.
func setupProvider(cmd cli.Command, args []string, cfg *clientFile, f *providerFlags) ([]string, zerolog.Logger, int, bool) {
	cfg.Client.Data = ""
	f.provider, f.timeout = defaultProvider, defaultProviderTimeout
	p, err := cli.Parse(cmd, args, cfg, func(fs *flag.FlagSet, c *clientFile) {
		fs.StringVar(&f.provider, "provider", f.provider, "the provider's HTTP endpoint `URL`")
		fs.StringVar(&f.key, "provider-key", f.key, "pin the provider's descriptor `key` (base58, as the provider prints it)")
		fs.StringVar(&f.known, "known-providers", f.known, "`file` remembering each provider's key from its first use (default: "+
			requester.KnownProvidersFile+" in --data, or in "+defaultDataDir+")")
		fs.StringVar(&f.network, "directory", f.network, "refuse a provider whose descriptor names another network than this directory `URL` "+
			"(default: join the network the descriptor names)")
		fs.StringVar(&c.Client.Authorities, "authorities", c.Client.Authorities, "the directory authorities' base58 `keys` you trust, separated by commas: "+
			"refuse a provider whose descriptor names others, and accept only a topology a threshold of them signed (default: the descriptor's)")
		fs.IntVar(&c.Client.Threshold, "threshold", c.Client.Threshold, "signatures of distinct authorities a topology needs (0: a majority)")
		fs.DurationVar(&f.timeout, "timeout", f.timeout, "how long to wait for connecting and the reply")
		fs.StringVar(&c.Client.Data, "data", c.Client.Data, "client `folder` to use (default: a temporary one, a new identity each time)")
		fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "log `level`: trace, debug, info, warn or error")
		bindTuning(fs, c)
	})
	if err == nil && f.timeout <= 0 {
		err = cmd.Errorf("--timeout must be positive")
	}
	if err == nil {
		if _, terr := cli.ParseTrust(cfg.Client.Authorities, cfg.Client.Threshold); terr != nil {
			err = cmd.Errorf("--authorities: %v", terr)
		}
	}
	if err != nil {
		return nil, zerolog.Logger{}, cmd.Status(err), false
	}
	if f.known == "" {
		dir := cfg.Client.Data
		if dir == "" {
			dir = defaultDataDir
		}
		f.known = filepath.Join(dir, requester.KnownProvidersFile)
	}
	log, err := cli.NewLogger(cmd.Name, cmd.Stderr, cfg.Log.Level)
	if err != nil {
		return nil, zerolog.Logger{}, cmd.Status(err), false
	}
	return p.Args, log, cli.ExitOK, true
}

// callProvider discovers the provider (checking its signed descriptor),
// runs a client on its network, sends one request to service and returns
// the reply's data. A failure the provider reports comes back as a
// *handlers.Error.
func callProvider(ctx context.Context, name string, cfg clientFile, f providerFlags, log zerolog.Logger, stderr io.Writer, service string, data []byte) ([]byte, error) {
	var pin ed25519.PublicKey
	if f.key != "" {
		k, err := address.DecodeKey(f.key, ed25519.PublicKeySize)
		if err != nil {
			return nil, fmt.Errorf("client %s: --provider-key: %w", name, err)
		}
		pin = k
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	cc := cfg.Client.clientConfig(log)
	s, err := requester.Connect(ctx, requester.Config{
		ProviderURL:    f.provider,
		ProviderKey:    pin,
		KnownProviders: requester.OpenKnownProviders(f.known),
		Directory:      f.network,
		Warn:           func(w string) { fmt.Fprintf(stderr, "warning: %s\n", w) },
		DataDir:        cfg.Client.Data,
		Client:         cc,
		Options:        requester.Options{Logger: log},
	})
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", name, err)
	}
	defer s.Close()
	d := s.Descriptor
	if _, ok := d.Service(service); !ok {
		return nil, fmt.Errorf("client %s: the provider at %s offers no service %q", name, f.provider, service)
	}
	reply, err := s.Do(ctx, service, data)
	if err != nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("client %s: no reply within %v", name, f.timeout)
	}
	return reply, err
}

// providerFailure prints err and returns the exit status: the provider's
// error code and message when it answered with one.
func providerFailure(stderr io.Writer, name string, err error) int {
	var tooLarge *requester.TooLargeError
	if errors.As(err, &tooLarge) {
		fmt.Fprintf(stderr, "client %s: %s\n", name, strings.TrimPrefix(tooLarge.Error(), "requester: "))
		return cli.ExitError
	}
	if e, ok := requester.AsError(err); ok {
		fmt.Fprintf(stderr, "client %s: the provider answered %s: %s\n", name, e.Code, e.Message)
		return cli.ExitError
	}
	fmt.Fprintln(stderr, err)
	return cli.ExitError
}
