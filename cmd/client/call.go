package main

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/peapod-mixnet/peapod/internal/cli"
)

const callUsage = `usage: client call [flags] SERVICE [DATA | @FILE | -]

Sends one request to the provider's service SERVICE and prints the reply's
data on stdout as it is (with a newline after it on a terminal, when it has
none). The request's data is DATA as written, the contents of FILE with
@FILE, standard input with -, or empty. To send data that starts with @ or
-, put it in a file or on standard input (or after --).
When the provider answers with an error, its code and message go to stderr
and the exit status is 1.`

// maxInput bounds the data call and kv read from a file or standard input;
// the provider's own limit (in its descriptor, 256 KiB by default) is
// checked before sending.
const maxInput = 64 << 20

// runCall is `client call SERVICE [DATA | @FILE | -]`: one request to any
// service of a provider, sent anonymously through the mixnet, and its
// reply printed as it is.
func runCall(args []string, stdout, stderr io.Writer) int {
	cfg := defaultClientFile("warn")
	var f providerFlags
	cmd := command("call", stdout, stderr)
	cmd.Usage = callUsage
	rest, log, status, ok := setupProvider(cmd, args, &cfg, &f)
	if !ok {
		return status
	}
	if len(rest) == 0 || len(rest) > 2 {
		return cmd.Status(cmd.Errorf("expected SERVICE and at most one DATA, @FILE or - (client call -h)"))
	}
	service := rest[0]
	var data []byte
	if len(rest) == 2 {
		var err error
		if data, err = readData(rest[1], os.Stdin); err != nil {
			return cmd.Status(cmd.Errorf("%v", err))
		}
	}
	ctx, stop := cli.SignalContext(log, nil)
	defer stop()
	reply, err := callProvider(ctx, "call", cfg, f, log, stderr, service, data)
	if err != nil {
		return providerFailure(stderr, "call", err)
	}
	stdout.Write(reply)
	if cli.IsTerminal(stdout) && !bytes.HasSuffix(reply, []byte("\n")) {
		io.WriteString(stdout, "\n")
	}
	return cli.ExitOK
}

// readData returns the data an argument stands for: the contents of FILE
// for @FILE, all of stdin for -, else the argument itself.
func readData(arg string, stdin io.Reader) ([]byte, error) {
	var r io.Reader
	name := arg
	switch {
	case arg == "-":
		r, name = stdin, "standard input"
	case len(arg) > 1 && arg[0] == '@':
		f, err := os.Open(arg[1:])
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r, name = f, arg[1:]
	default:
		return []byte(arg), nil
	}
	b, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > maxInput {
		return nil, fmt.Errorf("%s holds more than %d MiB, more than the client sends", name, maxInput>>20)
	}
	return b, nil
}
