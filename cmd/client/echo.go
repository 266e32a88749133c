package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/peapod-mixnet/peapod/internal/cli"
)

// runEcho is `client echo [--provider URL] [--provider-key KEY] MESSAGE...`:
// it discovers the provider from its HTTP endpoint (checking the signed
// descriptor), sends the words of MESSAGE, joined by spaces, to its "echo"
// service anonymously through the mixnet, and prints the reply on stdout.
// When the provider answers with an error, it prints the code and message
// on stderr and exits with status 1.
func runEcho(args []string, stdout, stderr io.Writer) int {
	cfg := defaultClientFile("warn")
	var f providerFlags
	cmd := command("echo", stdout, stderr)
	rest, log, status, ok := setupProvider(cmd, args, &cfg, &f)
	if !ok {
		return status
	}
	if len(rest) == 0 {
		return cmd.Status(fmt.Errorf("usage: client echo [--provider URL] [--provider-key KEY] MESSAGE"))
	}
	ctx, stop := cli.SignalContext(log, nil)
	defer stop()
	reply, err := callProvider(ctx, "echo", cfg, f, log, stderr, "echo", []byte(strings.Join(rest, " ")))
	if err != nil {
		return providerFailure(stderr, "echo", err)
	}
	stdout.Write(reply)
	io.WriteString(stdout, "\n")
	return cli.ExitOK
}
