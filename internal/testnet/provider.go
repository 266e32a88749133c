package testnet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/peapod-mixnet/peapod/address"
)

// ProviderOptions configure a provider process. The zero value runs both
// example plugins with no mixing delays and no cover traffic.
type ProviderOptions struct {
	// Delays turns mixing delays on (the network's advertised mean).
	Delays bool
	// Cover turns cover traffic on.
	Cover bool
	// Plugins is the plugins folder; "" takes Binaries.Plugins.
	Plugins string
	// Args are more flags (for example "--queue", "8").
	Args []string
	// Env is added to its environment (for example SSL_CERT_FILE).
	Env []string
	// Embedded runs the provider with its embedded network (no
	// --directory: it runs authorities, mixnodes and gateways in its own
	// process, the first authority at the network's DirectoryAddr), on a
	// network made with Config.OneProcess, which learns the authorities
	// from it.
	Embedded bool
}

// Provider is a `provider` process joined to the network, with its HTTP
// endpoint at HTTP.
type Provider struct {
	*Process
	// HTTP is the base URL of its HTTP endpoint.
	HTTP string
	// Data is its state folder.
	Data string

	addr address.Address
	key  string
	// net, when the provider runs its embedded network, learns the
	// network's authorities at every start.
	net *Network
}

// StartProvider starts a provider process named name on the network and
// waits until it serves.
func (n *Network) StartProvider(ctx context.Context, name string, opts ProviderOptions) (*Provider, error) {
	if n.cfg.Bin.Provider == "" {
		return nil, errors.New("testnet: no provider binary (cmd/provider) was built")
	}
	httpAddr, err := n.port(true)
	if err != nil {
		return nil, err
	}
	plugins := opts.Plugins
	if plugins == "" {
		plugins = n.cfg.Bin.Plugins
	}
	p := &Provider{HTTP: "http://" + httpAddr.String(), Data: n.DataDir(name)}
	args := []string{"--directory", n.DirectoryURL(), "--authorities", n.AuthorityKeys()}
	if opts.Embedded {
		if !n.cfg.OneProcess {
			return nil, errors.New("testnet: an embedded network needs a network made with Config.OneProcess")
		}
		args = []string{"--local-directory", n.oneAddr.String(), "--network-log-level", "info"}
		p.net = n
	}
	args = append(args, "--http", httpAddr.String(), "--data", p.Data,
		"--plugins", plugins, "--log-level", n.cfg.LogLevel)
	if !opts.Delays {
		args = append(args, "--no-delay")
	}
	if !opts.Cover {
		args = append(args, "--no-cover")
	}
	args = append(args, opts.Args...)
	proc, err := NewProcess(ProcessConfig{Name: name, Path: n.cfg.Bin.Provider, Args: args, Env: opts.Env, LogDir: n.logDir,
		Ready: "provider started", Logf: n.cfg.Logf})
	if err != nil {
		return nil, err
	}
	p.Process = proc
	n.mu.Lock()
	n.providers = append(n.providers, p)
	n.mu.Unlock()
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Start starts the provider (again) and waits until it serves.
func (p *Provider) Start(ctx context.Context) error {
	if err := p.Process.Start(ctx); err != nil {
		return err
	}
	fields, err := p.WaitLog(ctx, "provider started")
	if err != nil {
		return err
	}
	s, _ := fields["address"].(string)
	a, err := address.Parse(s)
	if err != nil {
		return fmt.Errorf("testnet: %s reports address %q: %w", p.Name(), s, err)
	}
	p.addr = a
	p.key, _ = fields["key"].(string)
	if p.net != nil {
		return p.net.learnEmbeddedTrust(ctx, p.Process)
	}
	return nil
}

// Restart stops the provider with SIGTERM and starts it again.
func (p *Provider) Restart(ctx context.Context) error {
	p.Stop()
	return p.Start(ctx)
}

// Address is the provider's mixnet address (as of its last start).
func (p *Provider) Address() address.Address { return p.addr }

// Key is the base58 key that signs its descriptor.
func (p *Provider) Key() string { return p.key }

// Gateway is the base58 identity of the provider's gateway.
func (p *Provider) Gateway() string { return address.EncodeKey(p.addr.Gateway[:]) }

// Plugin returns the pid of the running plugin process whose program is
// name (such as "kvstore"), or 0.
func (p *Provider) Plugin(name string) int {
	for pid, comm := range p.ChildPIDs() {
		if comm == name || strings.HasPrefix(name, comm) { // comm is cut at 15 bytes
			return pid
		}
	}
	return 0
}

// KillPlugin SIGKILLs the plugin name and returns its pid.
func (p *Provider) KillPlugin(name string) (int, error) {
	pid := p.Plugin(name)
	if pid == 0 {
		return 0, fmt.Errorf("testnet: %s runs no plugin %q (children: %v)", p.Name(), name, p.ChildPIDs())
	}
	return pid, syscall.Kill(pid, syscall.SIGKILL)
}

// WaitPlugin waits until a plugin name runs with a pid other than not (0
// for any), polling the process table, which signals nothing.
func (p *Provider) WaitPlugin(ctx context.Context, name string, not int) (int, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if pid := p.Plugin(name); pid != 0 && pid != not {
			return pid, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("testnet: plugin %s of %s did not come back: %w", name, p.Name(), ctx.Err())
		case <-t.C:
		}
	}
}

// Metric scrapes the provider's /metrics and sums the samples of name
// whose labels include the label="value" pairs given.
func (p *Provider) Metric(ctx context.Context, name string, labels ...string) (float64, error) {
	return scrapeMetric(ctx, p.HTTP+"/metrics", name, labels...)
}
