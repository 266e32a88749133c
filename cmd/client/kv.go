package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"github.com/peapod-mixnet/peapod/examples/kvstore/kv"

	"github.com/peapod-mixnet/peapod/internal/cli"
)

const kvUsage = `usage: client kv [flags] OPERATION

Operations on the provider's kv service (the kvstore example):
  put KEY VALUE    store VALUE under KEY; prints ok
  put KEY @FILE    store the contents of FILE (UTF-8 text, up to 64 KiB)
  put KEY -        store what standard input holds
  get KEY          print the value of KEY (not_found, exit status 1, if none)
  delete KEY       delete KEY; prints ok
  list [PREFIX]    print the keys, one a line, that start with PREFIX

Flags may go before or after the operation. A key or value that starts
with - goes after --: client kv put -- KEY -5.`

// runKV is `client kv [--provider URL] put KEY VALUE|@FILE|- | get KEY |
// delete KEY | list [PREFIX]`: one request to the provider's "kv" service (the
// kvstore example), sent anonymously through the mixnet. It prints "ok"
// for put and delete, the value for get, and the keys, one per line, for
// list. When the provider answers with an error (such as not_found), it
// prints the code and message on stderr and exits with status 1.
func runKV(args []string, stdout, stderr io.Writer) int {
	cfg := defaultClientFile("warn")
	var f providerFlags
	cmd := command("kv", stdout, stderr)
	cmd.Usage = kvUsage
	rest, log, status, ok := setupProvider(cmd, args, &cfg, &f)
	if !ok {
		return status
	}
	req, err := kvRequest(rest, os.Stdin)
	if err != nil {
		return cmd.Status(cmd.Errorf("%v", err))
	}
	data, err := req.Marshal()
	if err == nil {
		// The service's own rules (sizes, UTF-8), checked before sending.
		_, err = kv.ParseRequest(data)
	}
	if err != nil {
		return cmd.Status(cmd.Errorf("%v", err))
	}
	ctx, stop := cli.SignalContext(log, nil)
	defer stop()
	reply, err := callProvider(ctx, "kv", cfg, f, log, stderr, "kv", data)
	if err != nil {
		return providerFailure(stderr, "kv", err)
	}
	if err := printKVReply(stdout, stderr, req.Op, reply); err != nil {
		fmt.Fprintln(stderr, err)
		return cli.ExitError
	}
	return cli.ExitOK
}

// kvRequest builds the request of the command-line arguments; the value
// of put may be @FILE or - (stdin).
func kvRequest(args []string, stdin io.Reader) (*kv.Request, error) {
	if len(args) == 0 {
		return nil, errors.New("no operation: put, get, delete or list (client kv -h)")
	}
	op, rest := args[0], args[1:]
	var req kv.Request
	switch {
	case op == kv.OpPut && len(rest) == 2:
		b, err := readData(rest[1], stdin)
		if err != nil {
			return nil, err
		}
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("the value from %s is not UTF-8 text, which the kv service stores", rest[1])
		}
		value := string(b)
		req = kv.Request{Op: op, Key: &rest[0], Value: &value}
	case (op == kv.OpGet || op == kv.OpDelete) && len(rest) == 1:
		req = kv.Request{Op: op, Key: &rest[0]}
	case op == kv.OpList && len(rest) <= 1:
		req = kv.Request{Op: op}
		if len(rest) == 1 {
			req.Prefix = &rest[0]
		}
	case op == kv.OpPut || op == kv.OpGet || op == kv.OpDelete || op == kv.OpList:
		return nil, fmt.Errorf("wrong arguments for %s (client kv -h)", op)
	default:
		return nil, fmt.Errorf("unknown operation %q: put, get, delete or list (client kv -h)", op)
	}
	return &req, nil
}

// printKVReply prints a successful reply of the kv service.
func printKVReply(stdout, stderr io.Writer, op string, reply []byte) error {
	var r struct {
		OK        bool     `json:"ok"`
		Value     *string  `json:"value"`
		Keys      []string `json:"keys"`
		Truncated bool     `json:"truncated"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return fmt.Errorf("client kv: unexpected reply %.200q", reply)
	}
	switch op {
	case kv.OpGet:
		if r.Value == nil {
			return fmt.Errorf("client kv: unexpected reply %.200q", reply)
		}
		fmt.Fprintln(stdout, *r.Value)
	case kv.OpList:
		for _, k := range r.Keys {
			fmt.Fprintln(stdout, k)
		}
		if r.Truncated {
			fmt.Fprintln(stderr, "(more keys match: list with a longer prefix)")
		}
	default:
		fmt.Fprintln(stdout, "ok")
	}
	return nil
}
