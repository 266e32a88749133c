package testnet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// LocalOptions configure a `mixnet local` process.
type LocalOptions struct {
	// Epoch and RotationEpochs are its schedule (--epoch,
	// --rotation-epochs); zero keeps the defaults.
	Epoch          time.Duration
	RotationEpochs int
	// Args are more flags.
	Args []string
}

// oneProcessTrust returns the authorities' URLs and keys of a
// Config.OneProcess network, "" until its process has said them.
func (n *Network) oneProcessTrust() (urls, keys string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.oneURLs, n.oneKeys
}

// setOneProcessTrust records the authorities' URLs and keys a
// Config.OneProcess network's process said it runs.
func (n *Network) setOneProcessTrust(urls, keys string) error {
	if urls == "" || keys == "" {
		return fmt.Errorf("testnet: the network's process named no authorities (urls %q, keys %q)", urls, keys)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.oneURLs, n.oneKeys = urls, keys
	return nil
}

// StartLocal starts `mixnet local` named name (data folder DataDir(name))
// as the authorities, mixnodes and gateways of a network made with
// Config.OneProcess, its first authority at DirectoryAddr, waits until the
// whole network is listed, and learns its authorities from its log.
// Restart it with Process.Stop and [Network.StartLocalAgain]: its nodes
// come back on the ports they had (they remember them in the data folder).
func (n *Network) StartLocal(ctx context.Context, name string, opts LocalOptions) (*Process, error) {
	if !n.cfg.OneProcess {
		return nil, errors.New("testnet: StartLocal needs a network made with Config.OneProcess")
	}
	args := []string{"local", "--directory-addr", n.oneAddr.String(), "--data", n.DataDir(name),
		"--mix-delay", "0s", "--peak-rate", strconv.FormatFloat(n.cfg.PeakRate, 'g', -1, 64),
		"--log-level", n.cfg.LogLevel}
	if opts.Epoch > 0 {
		args = append(args, "--epoch", opts.Epoch.String())
	}
	if opts.RotationEpochs > 0 {
		args = append(args, "--rotation-epochs", strconv.Itoa(opts.RotationEpochs))
	}
	args = append(args, opts.Args...)
	p, err := n.NewProcess(ProcessConfig{Name: name, Path: n.cfg.Bin.Mixnet, Args: args, Ready: "local network running"})
	if err != nil {
		return nil, err
	}
	return p, n.StartLocalAgain(ctx, p)
}

// StartLocalAgain starts the `mixnet local` process p (again) and waits
// until its network is up, as StartLocal does.
func (n *Network) StartLocalAgain(ctx context.Context, p *Process) error {
	if err := p.Start(ctx); err != nil {
		return err
	}
	fields, err := p.WaitLog(ctx, "local network running")
	if err != nil {
		return err
	}
	urls, _ := fields["directory"].(string)
	keys, _ := fields["authorities"].(string)
	return n.setOneProcessTrust(urls, keys)
}

// learnEmbeddedTrust reads, from a provider that runs its embedded
// network, the network's authorities: their URLs from the network's
// "local network started" line (the provider logs it at info with
// --network-log-level info), their keys from its banner's trust line.
func (n *Network) learnEmbeddedTrust(ctx context.Context, p *Process) error {
	fields, err := p.WaitLog(ctx, "local network started")
	if err != nil {
		return err
	}
	urls, _ := fields["directory"].(string)
	line, err := p.WaitOutput(ctx, "of the directory authorities")
	if err != nil {
		return err
	}
	_, rest, _ := strings.Cut(line, "of the directory authorities ")
	rest, _, _ = strings.Cut(rest, " sign")
	return n.setOneProcessTrust(urls, strings.ReplaceAll(rest, ", ", ","))
}
