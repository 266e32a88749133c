package testnet

import (
	"context"
	"fmt"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/wsapi"
)

// ClientOptions configure a `client run` process. The zero value is a fast
// test client: no mixing delays, no cover traffic.
type ClientOptions struct {
	// Gateway is the base58 identity of the gateway to register with on
	// first start; "" lets the client pick one at random.
	Gateway string
	// Delays turns mixing delays on; MixDelay is then their mean per hop
	// (0: the network's advertised delay, or the client's 15 ms default).
	Delays   bool
	MixDelay time.Duration
	// Cover turns cover traffic on.
	Cover bool
	// Args are more flags for `client run`.
	Args []string
}

// Client is a `client run` process: a mixnet client serving Nym's native
// WebSocket API on WS.
type Client struct {
	*Process
	// WS is the URL of its WebSocket API, such as "ws://127.0.0.1:20001".
	WS string
	// Data is its data folder.
	Data string

	addr address.Address
}

// StartClient starts a `client run` process named name (its data folder
// is DataDir(name)) and waits until it is connected to its gateway and
// serves its WebSocket API.
func (n *Network) StartClient(ctx context.Context, name string, opts ClientOptions) (*Client, error) {
	ws, err := n.port(true)
	if err != nil {
		return nil, err
	}
	c := &Client{WS: "ws://" + ws.String(), Data: n.DataDir(name)}
	args := []string{"run", "--directory", n.DirectoryURL(), "--authorities", n.AuthorityKeys(), "--ws", ws.String(), "--data", c.Data,
		"--log-level", n.cfg.LogLevel}
	if opts.Gateway != "" {
		args = append(args, "--gateway", opts.Gateway)
	}
	if !opts.Delays {
		args = append(args, "--no-delay")
	} else if opts.MixDelay > 0 {
		args = append(args, "--mix-delay", opts.MixDelay.String())
	}
	if !opts.Cover {
		args = append(args, "--no-cover")
	}
	args = append(args, opts.Args...)
	p, err := NewProcess(ProcessConfig{Name: name, Path: n.cfg.Bin.Client, Args: args, LogDir: n.logDir,
		Ready: "client running", Logf: n.cfg.Logf})
	if err != nil {
		return nil, err
	}
	c.Process = p
	n.mu.Lock()
	n.clients = append(n.clients, c)
	n.mu.Unlock()
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Start starts the client (again) and waits until it serves its API.
func (c *Client) Start(ctx context.Context) error {
	if err := c.Process.Start(ctx); err != nil {
		return err
	}
	fields, err := c.WaitLog(ctx, "client running")
	if err != nil {
		return err
	}
	s, _ := fields["address"].(string)
	a, err := address.Parse(s)
	if err != nil {
		return fmt.Errorf("testnet: %s reports address %q: %w", c.Name(), s, err)
	}
	c.addr = a
	return nil
}

// Restart stops the client with SIGTERM and starts it again.
func (c *Client) Restart(ctx context.Context) error {
	c.Stop()
	return c.Start(ctx)
}

// Address is the client's mixnet address.
func (c *Client) Address() address.Address { return c.addr }

// Gateway is the base58 identity of the client's gateway, from its
// address.
func (c *Client) Gateway() string { return address.EncodeKey(c.addr.Gateway[:]) }

// Dial opens a connection to the client's WebSocket API.
func (c *Client) Dial(ctx context.Context, opts ...wsapi.Option) (*wsapi.Conn, error) {
	return wsapi.Dial(ctx, c.WS, opts...)
}
