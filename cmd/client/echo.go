package main

import (
	"fmt"
	"io"
	"strings"
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
	rest, log, status, ok := setupProvider("echo", args, stderr, &cfg, &f)
	if !ok {
		return status
	}
	if len(rest) == 0 {
		return usageStatus(stderr, fmt.Errorf("usage: client echo [--provider URL] [--provider-key KEY] MESSAGE"))
	}
	ctx, stop := signalContext(log)
	defer stop()
	reply, err := callProvider(ctx, "echo", cfg, f, log, stderr, "echo", []byte(strings.Join(rest, " ")))
	if err != nil {
		return providerFailure(stderr, "echo", err)
	}
	stdout.Write(reply)
	io.WriteString(stdout, "\n")
	return exitOK
}
