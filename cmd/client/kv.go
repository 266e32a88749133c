package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/peapod-mixnet/peapod/examples/kvstore/kv"

	"github.com/peapod-mixnet/peapod/internal/cli"
)

const kvUsage = "usage: client kv [--provider URL] [--provider-key KEY] put KEY VALUE | get KEY | delete KEY | list [PREFIX]"

// runKV is `client kv [--provider URL] put KEY VALUE | get KEY | delete KEY
// | list [PREFIX]`: one request to the provider's "kv" service (the
// kvstore example), sent anonymously through the mixnet. It prints "ok"
// for put and delete, the value for get, and the keys, one per line, for
// list. When the provider answers with an error (such as not_found), it
// prints the code and message on stderr and exits with status 1.
func runKV(args []string, stdout, stderr io.Writer) int {
	cfg := defaultClientFile("warn")
	var f providerFlags
	cmd := command("kv", stdout, stderr)
	rest, log, status, ok := setupProvider(cmd, args, &cfg, &f)
	if !ok {
		return status
	}
	req, err := kvRequest(rest)
	if err != nil {
		return cmd.Status(err)
	}
	data, err := req.Marshal()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return cli.ExitError
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

// kvRequest builds the request of the command-line arguments.
func kvRequest(args []string) (*kv.Request, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf(kvUsage)
	}
	op, rest := args[0], args[1:]
	var req kv.Request
	switch {
	case op == kv.OpPut && len(rest) == 2:
		req = kv.Request{Op: op, Key: &rest[0], Value: &rest[1]}
	case (op == kv.OpGet || op == kv.OpDelete) && len(rest) == 1:
		req = kv.Request{Op: op, Key: &rest[0]}
	case op == kv.OpList && len(rest) <= 1:
		req = kv.Request{Op: op}
		if len(rest) == 1 {
			req.Prefix = &rest[0]
		}
	default:
		return nil, fmt.Errorf(kvUsage)
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
