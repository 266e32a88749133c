package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/peapod-mixnet/peapod/internal/cli"
)

// runAddress is `client address`: it prints the address of the client in
// the data folder, read from its key files: no network is needed, and it
// works while `client run` holds the folder. A client that has never
// registered with a gateway has no address yet; that is exit status 1 with
// a message that says so.
func runAddress(args []string, stdout, stderr io.Writer) int {
	cfg := defaultClientFile("warn")
	cmd := command("address", stdout, stderr)
	p, _, status, ok := setup(cmd, args, &cfg, func(fs *flag.FlagSet, c *clientFile) {
		fs.StringVar(&c.Client.Data, "data", c.Client.Data, "`folder` of the client's keys and state")
	})
	if !ok {
		return status
	}
	if err := cmd.NoArgs(p); err != nil {
		return cmd.Status(err)
	}
	a, err := readAddress(cfg.Client.Data)
	if err != nil {
		// client.ErrNotRegistered carries its own advice; other errors name the
		// file that is wrong.
		fmt.Fprintln(stderr, err)
		return cli.ExitError
	}
	fmt.Fprintln(stdout, a)
	return cli.ExitOK
}
