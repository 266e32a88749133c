package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/peapod-mixnet/peapod/internal/cli"
)

// defaultInitTimeout bounds the registration of `client init`.
const defaultInitTimeout = time.Minute

// runInit is `client init`: it creates the client's keys in the data folder
// (or keeps those there), registers with a gateway (--gateway, or one at
// random from the directory) and prints the address on stdout.
func runInit(args []string, stdout, stderr io.Writer) int {
	cfg := defaultClientFile("warn")
	timeout := defaultInitTimeout
	cmd := command("init", stdout, stderr)
	p, log, status, ok := setup(cmd, args, &cfg, func(fs *flag.FlagSet, c *clientFile) {
		bindCommon(fs, c)
		fs.StringVar(&c.Client.Gateway, "gateway", c.Client.Gateway, "base58 `identity` of the gateway to register with (default: one at random)")
		fs.DurationVar(&timeout, "timeout", timeout, "how long to try to register")
	})
	if !ok {
		return status
	}
	if err := cmd.NoArgs(p); err != nil {
		return cmd.Status(err)
	}

	ctx, stop := cli.SignalContext(log, nil)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	ccfg := cfg.Client.clientConfig(log)
	ccfg.Cover.Disabled = true // registering sends nothing worth hiding
	c, err := openClient(ccfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return cli.ExitError
	}
	err = c.Start(ctx)
	addr := c.Address()
	if cerr := c.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintf(stderr, "client init: registering through the directory %s: %v\n", cfg.Client.Directory, err)
		return cli.ExitError
	}
	fmt.Fprintln(stdout, addr)
	return cli.ExitOK
}
