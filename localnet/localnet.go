// Package localnet runs a whole peapod mixnet in one process: three
// directory authorities (Config.Authorities), MixnodesPerLayer mixnodes in
// each of the three layers and a number of gateways, each on its own
// loopback port, talking over real sockets. It is what `mixnet local` runs,
// what the client's tests connect to, and what the provider's embedded mode
// starts.
//
// The authorities admit the network's own nodes only (an allow-list the
// network fills as it makes each node; Config.Open admits anyone) and sign
// the topology together: the nodes, and the clients given
// [Network.DirectoryURL] and [Network.Trust], accept only a topology
// document a majority of them signed.
//
// Every node keeps its state under Config.DataDir:
//
//	DataDir/directory/       the first authority's key and database
//	DataDir/directory-<i>/   those of authority i (from 1)
//	DataDir/mixnode-<L>-<i>/ the keys of mixnode i of layer L (from 0)
//	DataDir/gateway-<i>/     the keys and database of gateway i (from 0)
//
// so a second Start on the same folder brings back the same identities,
// the same authority keys, the same gateway inboxes and the same registered
// clients, and the same addresses: every node, and the authorities when
// DirectoryAddr has port 0, binds the port it had before
// (internal/node.ListenFile), so that clients and a provider that outlive
// the network find it where it was. [Start] returns once every node is
// listed in a signed topology document; [Network.Close] stops the gateways
// (which flush what they hold to disk), then the mixnodes, then the
// authorities.
//
// For fault tests, [Network.RestartGateway] stops one gateway and starts it
// again on the same data and addresses, [Network.MoveGateway] does the same
// on new ports, [Network.RestartMixnode] and [Network.MoveMixnode] the same
// for a mixnode, and Config.ConfigureMixnode can give a mixnode a DropRate
// so that it loses a share of the packets.
package localnet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/gateway"
	"github.com/peapod-mixnet/peapod/internal/node"
	"github.com/peapod-mixnet/peapod/mixnode"
)

// Defaults of a [Config].
const (
	DefaultDirectoryAddr    = "127.0.0.1:8090"
	DefaultMixnodesPerLayer = 2
	DefaultGateways         = 2
	// DefaultPeakRate is the packets a second each node's replay filters
	// are sized for: a local network sees far fewer packets than a public
	// one (with the default schedule, about 1.4 million tags, 4 MB, a
	// filter).
	DefaultPeakRate = 50
)

// Layers is the number of mixnode layers.
const Layers = directory.MaxLayer

// Config configures a [Network]. Zero values take the documented defaults.
type Config struct {
	// DataDir holds every node's state (see the package documentation); it
	// is created when missing. Required.
	DataDir string
	// DirectoryAddr is the loopback ip:port of the directory. Default
	// DefaultDirectoryAddr; tests use "127.0.0.1:0" and read the URL back
	// with Network.DirectoryURL.
	DirectoryAddr string
	// MixnodesPerLayer is how many mixnodes each layer has. Default
	// DefaultMixnodesPerLayer.
	MixnodesPerLayer int
	// Gateways is how many gateways the network has. Default
	// DefaultGateways.
	Gateways int
	// MeanMixDelay is advertised with the topology as the mean per-hop delay
	// clients should draw (mixnodes hold packets for what the sender chose;
	// the network cannot impose it). Zero advertises no delay: a fast
	// network for tests. `mixnet local` advertises 15 ms, Nym's default.
	MeanMixDelay time.Duration
	// PeakRate is the packets a second every node's replay filters are
	// sized for (see mixnode.Config.PeakRate). Default DefaultPeakRate.
	PeakRate float64
	// EpochLength and RotationEpochs are the network's schedule (see
	// directory.Schedule): zero takes directory.DefaultEpochLength and
	// directory.DefaultRotationEpochs. Tests run epochs of a second.
	EpochLength    time.Duration
	RotationEpochs int
	// Authorities is how many directory authorities the network runs, each
	// on a port of its own (the first on DirectoryAddr); a topology document
	// needs a majority of their signatures. Default DefaultAuthorities.
	Authorities int
	// Open makes the authorities admit every node identity that signs its
	// registration; by default they admit the network's own nodes only.
	Open bool
	// ConfigureMixnode, when set, may change the configuration of mixnode
	// index (from 0) of layer (1 to 3) before it starts; for example set
	// DropRate to make it lose a share of the packets. Addresses, layer,
	// data folder and directory are set by the network.
	ConfigureMixnode func(layer, index int, cfg *mixnode.Config)
	// ConfigureGateway, when set, may change the configuration of gateway
	// index (from 0) before it first starts; a restart reuses the result.
	ConfigureGateway func(index int, cfg *gateway.Config)
	// Logger receives every node's logs, each line with a "node" field; the
	// zero value discards them.
	Logger zerolog.Logger
}

func (c *Config) applyDefaults() error {
	if c.DirectoryAddr == "" {
		c.DirectoryAddr = DefaultDirectoryAddr
	}
	if c.MixnodesPerLayer == 0 {
		c.MixnodesPerLayer = DefaultMixnodesPerLayer
	}
	if c.Gateways == 0 {
		c.Gateways = DefaultGateways
	}
	if c.Authorities == 0 {
		c.Authorities = DefaultAuthorities
	}
	if c.PeakRate == 0 {
		c.PeakRate = DefaultPeakRate
	}
	switch {
	case c.DataDir == "":
		return errors.New("localnet: Config.DataDir is required")
	case c.MixnodesPerLayer < 0:
		return fmt.Errorf("localnet: Config.MixnodesPerLayer %d is negative", c.MixnodesPerLayer)
	case c.Authorities < 0 || c.Authorities > directory.MaxAuthorities:
		return fmt.Errorf("localnet: Config.Authorities %d is out of range 1..%d", c.Authorities, directory.MaxAuthorities)
	case c.Gateways < 0:
		return fmt.Errorf("localnet: Config.Gateways %d is negative", c.Gateways)
	case c.MeanMixDelay < 0:
		return fmt.Errorf("localnet: Config.MeanMixDelay %s is negative", c.MeanMixDelay)
	case !(c.PeakRate > 0):
		return fmt.Errorf("localnet: Config.PeakRate %v is not a positive rate", c.PeakRate)
	}
	ap, err := netip.ParseAddrPort(c.DirectoryAddr)
	if err != nil || !ap.Addr().IsLoopback() {
		return fmt.Errorf("localnet: Config.DirectoryAddr %q is not a loopback ip:port", c.DirectoryAddr)
	}
	return nil
}

// Network is a running local mixnet. Its methods are safe for concurrent
// use.
type Network struct {
	cfg   Config
	log   zerolog.Logger
	auths []*authority // authority 0 serves on Config.DirectoryAddr
	trust directory.Trust
	allow *directory.AllowList // the network's own nodes; nil with Config.Open

	restartMu  sync.Mutex        // serialises restarts and Close
	mu         sync.Mutex        // guards the fields below
	mixnodes   [][]*mixnode.Node // by layer (index 0 is layer 1), then index
	mixConfigs [][]mixnode.Config
	gateways   []*gateway.Gateway
	gwConfigs  []gateway.Config // as last started, with the bound addresses
	closed     bool

	closeOnce sync.Once
	closeErr  error
}

// Start starts the directory, the mixnodes and the gateways, and returns
// once every node is listed in the topology. ctx bounds the start-up only.
// On failure it stops whatever it started.
func Start(ctx context.Context, cfg Config) (_ *Network, err error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	n := &Network{cfg: cfg, log: cfg.Logger.With().Str("component", "localnet").Logger()}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := n.startAuthorities(ctx); err != nil {
		return nil, err
	}
	if err := n.startMixnodes(ctx); err != nil {
		return nil, err
	}
	// The gateways fetch the topology when they start, and register before
	// Start returns.
	for i := range cfg.Gateways {
		c := gateway.Config{
			MixListenAddr:    "127.0.0.1:0",
			ClientListenAddr: "127.0.0.1:0",
			DataDir:          filepath.Join(cfg.DataDir, fmt.Sprintf("gateway-%d", i)),
			DirectoryURL:     n.DirectoryURL(),
			Trust:            n.Trust(),
			PeakRate:         cfg.PeakRate,
			Logger:           cfg.Logger.With().Str("node", fmt.Sprintf("gateway-%d", i)).Logger(),
		}
		if cfg.ConfigureGateway != nil {
			cfg.ConfigureGateway(i, &c)
		}
		g, c, err := n.startGateway(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("localnet: gateway %d: %w", i, err)
		}
		n.mu.Lock()
		n.gateways = append(n.gateways, g)
		n.gwConfigs = append(n.gwConfigs, c)
		n.mu.Unlock()
	}
	if err := n.waitListed(ctx); err != nil {
		return nil, err
	}
	n.log.Info().Str("directory", n.DirectoryURL()).Int("mixnodes_per_layer", cfg.MixnodesPerLayer).
		Int("gateways", cfg.Gateways).Msg("local network started")
	return n, nil
}

// startMixnodes starts every mixnode, layer by layer.
func (n *Network) startMixnodes(ctx context.Context) error {
	n.mu.Lock()
	n.mixnodes = make([][]*mixnode.Node, Layers)
	n.mixConfigs = make([][]mixnode.Config, Layers)
	n.mu.Unlock()
	for layer := 1; layer <= Layers; layer++ {
		for i := range n.cfg.MixnodesPerLayer {
			name := fmt.Sprintf("mixnode-%d-%d", layer, i)
			c := mixnode.Config{
				Layer:    layer,
				DataDir:  filepath.Join(n.cfg.DataDir, name),
				PeakRate: n.cfg.PeakRate,
				Logger:   n.cfg.Logger.With().Str("node", name).Logger(),
			}
			if n.cfg.ConfigureMixnode != nil {
				n.cfg.ConfigureMixnode(layer, i, &c)
			}
			c.ListenAddr, c.AnnounceAddr, c.DirectoryURL, c.Trust = "127.0.0.1:0", "", n.DirectoryURL(), n.Trust()
			m, err := n.startMixnode(ctx, c)
			if err != nil {
				return fmt.Errorf("localnet: %s: %w", name, err)
			}
			n.mu.Lock()
			n.mixnodes[layer-1] = append(n.mixnodes[layer-1], m)
			n.mixConfigs[layer-1] = append(n.mixConfigs[layer-1], c)
			n.mu.Unlock()
		}
	}
	return nil
}

// startMixnode makes a mixnode, admits it and starts it.
func (n *Network) startMixnode(ctx context.Context, cfg mixnode.Config) (*mixnode.Node, error) {
	m, err := mixnode.New(cfg)
	if err != nil {
		return nil, err
	}
	n.admit(m.Identity())
	if err := m.Start(ctx); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// startGateway starts a gateway and returns cfg with its bound addresses,
// so that a restart binds the same ones.
func (n *Network) startGateway(ctx context.Context, cfg gateway.Config) (*gateway.Gateway, gateway.Config, error) {
	g, err := gateway.New(cfg)
	if err != nil {
		return nil, cfg, err
	}
	n.admit(g.Identity())
	if err := g.Start(ctx); err != nil {
		return nil, cfg, err // Start closed it
	}
	cfg.MixListenAddr = g.MixAddr().String()
	cfg.ClientListenAddr = g.ClientAddr().String()
	return g, cfg, nil
}

// identities lists the base58 identities of every node.
func (n *Network) identities() []string {
	var ids []string
	for _, m := range n.Mixnodes() {
		ids = append(ids, address.EncodeKey(m.Identity()))
	}
	for _, g := range n.Gateways() {
		ids = append(ids, address.EncodeKey(g.Identity()))
	}
	return ids
}

// Mixnodes returns the mixnodes, layer 1 first, each layer in index order.
// A restart replaces a mixnode: call again after RestartMixnode.
func (n *Network) Mixnodes() []*mixnode.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*mixnode.Node
	for _, layer := range n.mixnodes {
		out = append(out, layer...)
	}
	return out
}

// Mixnode returns mixnode index (from 0) of layer (1 to 3), or nil. A
// restart replaces it.
func (n *Network) Mixnode(layer, index int) *mixnode.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	if layer < 1 || layer > len(n.mixnodes) || index < 0 || index >= len(n.mixnodes[layer-1]) {
		return nil
	}
	return n.mixnodes[layer-1][index]
}

// RestartMixnode stops mixnode index of layer and starts it again on the
// same data folder and address. Mixnode(layer, index) returns the stopped
// node until the new one has started.
func (n *Network) RestartMixnode(layer, index int) error {
	return n.restartMixnode(layer, index, false)
}

// MoveMixnode is RestartMixnode on a new port, as if the mixnode had moved
// to another host.
func (n *Network) MoveMixnode(layer, index int) error {
	return n.restartMixnode(layer, index, true)
}

// restartMixnode is RestartMixnode, or MoveMixnode when move is set.
func (n *Network) restartMixnode(layer, index int, move bool) error {
	n.restartMu.Lock()
	defer n.restartMu.Unlock()
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return errors.New("localnet: network closed")
	}
	if layer < 1 || layer > len(n.mixnodes) || index < 0 || index >= len(n.mixnodes[layer-1]) {
		n.mu.Unlock()
		return fmt.Errorf("localnet: no mixnode %d of layer %d", index, layer)
	}
	old, cfg := n.mixnodes[layer-1][index], n.mixConfigs[layer-1][index]
	n.mu.Unlock()

	if err := old.Close(); err != nil {
		n.log.Warn().Err(err).Int("layer", layer).Int("index", index).Msg("closing the mixnode for a restart")
	}
	if move {
		if err := forgetPorts(cfg.DataDir); err != nil {
			return fmt.Errorf("localnet: moving mixnode %d of layer %d: %w", index, layer, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), restartTimeout)
	defer cancel()
	m, err := n.startMixnode(ctx, cfg)
	if err != nil {
		return fmt.Errorf("localnet: restarting mixnode %d of layer %d: %w", index, layer, err)
	}
	n.mu.Lock()
	n.mixnodes[layer-1][index] = m
	n.mu.Unlock()
	n.log.Info().Int("layer", layer).Int("index", index).Bool("moved", move).Stringer("addr", m.Addr()).Msg("mixnode restarted")
	return nil
}

// forgetPorts deletes the ports a node remembers (internal/node.ListenFile),
// so that it takes new ones at its next start.
func forgetPorts(dataDir string) error {
	if err := os.Remove(filepath.Join(dataDir, node.ListenFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Gateways returns the gateways in index order. A restart replaces a
// gateway: call again after RestartGateway.
func (n *Network) Gateways() []*gateway.Gateway {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.gateways)
}

// Gateway returns gateway i (from 0), or nil. A restart replaces it.
func (n *Network) Gateway(i int) *gateway.Gateway {
	n.mu.Lock()
	defer n.mu.Unlock()
	if i < 0 || i >= len(n.gateways) {
		return nil
	}
	return n.gateways[i]
}

// restartTimeout bounds the start of a restarted gateway.
const restartTimeout = 30 * time.Second

// RestartGateway stops gateway i (which moves what it holds to its store)
// and starts it again on the same data folder and addresses, registered
// again when it returns. Its clients lose their connection and must
// authenticate again. Gateway(i) returns the stopped gateway until the new
// one has started.
func (n *Network) RestartGateway(i int) error {
	return n.restartGateway(i, false)
}

// restartGateway is RestartGateway, or MoveGateway when move is set.
func (n *Network) restartGateway(i int, move bool) error {
	n.restartMu.Lock()
	defer n.restartMu.Unlock()
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return errors.New("localnet: network closed")
	}
	if i < 0 || i >= len(n.gateways) {
		n.mu.Unlock()
		return fmt.Errorf("localnet: no gateway %d", i)
	}
	old, cfg := n.gateways[i], n.gwConfigs[i]
	n.mu.Unlock()

	if err := old.Close(); err != nil {
		n.log.Warn().Err(err).Int("gateway", i).Msg("closing the gateway for a restart")
	}
	ctx, cancel := context.WithTimeout(context.Background(), restartTimeout)
	defer cancel()
	if n.cfg.ConfigureGateway != nil {
		n.cfg.ConfigureGateway(i, &cfg)
	}
	if move {
		cfg.MixListenAddr, cfg.ClientListenAddr = "127.0.0.1:0", "127.0.0.1:0"
		if err := forgetPorts(cfg.DataDir); err != nil {
			return fmt.Errorf("localnet: moving gateway %d: %w", i, err)
		}
	}
	g, cfg, err := n.startGateway(ctx, cfg)
	if err != nil {
		return fmt.Errorf("localnet: restarting gateway %d: %w", i, err)
	}
	n.mu.Lock()
	n.gateways[i], n.gwConfigs[i] = g, cfg
	n.mu.Unlock()
	n.log.Info().Int("gateway", i).Bool("moved", move).Str("client_url", g.ClientURL()).Msg("gateway restarted")
	return nil
}

// MoveGateway stops gateway i and starts it again on the same data folder
// (same identity, store and clients) but on new ports, as if it had moved to
// another host: it registers its new addresses, and its clients and the
// mixnodes must find it there. Gateway(i) returns the stopped gateway until
// the new one has started.
func (n *Network) MoveGateway(i int) error {
	return n.restartGateway(i, true)
}

// Close stops the gateways, then the mixnodes, then the directory, and
// returns when every goroutine they ran has ended. It is safe to call more
// than once.
func (n *Network) Close() error {
	n.closeOnce.Do(func() {
		n.restartMu.Lock() // no restart half done
		defer n.restartMu.Unlock()
		n.mu.Lock()
		n.closed = true
		gateways := n.gateways
		n.mu.Unlock()
		var errs []error
		var wg sync.WaitGroup
		errc := make(chan error, len(gateways)+Layers*n.cfg.MixnodesPerLayer)
		for _, g := range gateways {
			wg.Add(1)
			go func() { defer wg.Done(); errc <- g.Close() }()
		}
		wg.Wait()
		for _, m := range n.Mixnodes() {
			wg.Add(1)
			go func() { defer wg.Done(); errc <- m.Close() }()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, n.closeAuthorities())
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}
