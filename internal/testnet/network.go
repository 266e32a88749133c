package testnet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/node"
	"github.com/peapod-mixnet/peapod/internal/testnet/relay"
	"github.com/peapod-mixnet/peapod/internal/wire"
)

// Defaults of a [Config].
const (
	DefaultMixnodesPerLayer = 2
	DefaultGateways         = 2
	// DefaultPeakRate sizes each node's replay filters: with the default
	// schedule (keys live 8 hours) 144,000 tags, far more packets than a
	// test sends, far less memory than a public node's filters.
	DefaultPeakRate = 5
	// DefaultLogLevel is the log level of every process.
	DefaultLogLevel = "info"
	// Layers is the number of mixnode layers.
	Layers = directory.MaxLayer
)

// sampleInterval is how often a Network reads every process's peak RSS.
const sampleInterval = 250 * time.Millisecond

// Config configures a [Network]. Zero values take the documented defaults.
type Config struct {
	// Dir holds every process's data folder (data/<name>) and log file
	// (logs/<name>.log). Required.
	Dir string
	// Bin are the programs to run. Required.
	Bin *Binaries
	// MixnodesPerLayer and Gateways size the network. Defaults
	// DefaultMixnodesPerLayer and DefaultGateways.
	MixnodesPerLayer, Gateways int
	// Relays puts a relay (package relay) in front of the packet listener
	// of every mixnode and gateway: the node announces the relay's address,
	// so every packet between nodes passes through one, and Node.Relay
	// controls its faults.
	Relays bool
	// RelayFaults are the relays' faults at the start.
	RelayFaults relay.Faults
	// PeakRate sizes every node's replay filters (mixnet mixnode
	// --peak-rate). Default DefaultPeakRate.
	PeakRate float64
	// Epoch and RotationEpochs are the network's schedule (mixnet directory
	// --epoch, --rotation-epochs); zero keeps the directory's defaults.
	Epoch          time.Duration
	RotationEpochs int
	// DirectoryTTL is how long the directory lists a node that stopped
	// refreshing; zero keeps the directory's default (90 s).
	DirectoryTTL time.Duration
	// MixDelay, when positive, is the mean per-hop delay the directory
	// advertises (`mixnet directory --mix-delay`); zero advertises none.
	MixDelay time.Duration
	// Authorities is how many directory authorities (mixnet directory
	// processes, peers of each other, admitting any node: --open) the
	// network runs. Every node, client and provider is given their URLs and
	// keys and accepts only a topology a majority of them signed. Default
	// 1: a network of one authority, whose signature alone makes a
	// document.
	Authorities int
	// DirectoryProxy puts an HTTP proxy (DirectoryProxy) in front of every
	// authority: the nodes, clients and providers reach the authorities
	// through it, and a test can make it serve a forged document.
	DirectoryProxy bool
	// MixnodeArgs and GatewayArgs, when set, add flags to a node's command
	// line (for example "--frame-timeout", "2s").
	MixnodeArgs func(layer, index int) []string
	GatewayArgs func(index int) []string
	// LogLevel is every process's --log-level: trace, debug or info (the
	// harness learns that a process is ready from an info line). Default
	// DefaultLogLevel.
	LogLevel string
	// Namespaces, when set, runs the mixnodes in network namespaces of
	// their own (see Namespaces); every other process listens on its
	// bridge address instead of 127.0.0.1.
	Namespaces *Namespaces
	// Logf receives one line per harness event (starts, stops, faults);
	// nil discards them.
	Logf func(format string, args ...any)
	// OneProcess starts no authority, mixnode or gateway: the test runs a
	// network that lives in one process, `mixnet local`
	// ([Network.StartLocal]) or a provider's embedded network
	// (ProviderOptions.Embedded), whose first authority binds
	// DirectoryAddr, and which tells the harness its authorities' URLs and
	// keys once it runs.
	OneProcess bool
}

// Network is a mixnet of separate processes on this machine: a directory,
// mixnodes, gateways, and the clients and provider a test adds. Its
// methods are safe for concurrent use.
type Network struct {
	cfg     Config
	hostIP  netip.Addr
	dataDir string
	logDir  string

	authorities []*Process
	authAddrs   []netip.AddrPort
	authKeys    []string // base58, in the order of authorities
	// oneAddr is where a Config.OneProcess network's first authority
	// listens; oneURLs and oneKeys are its authorities' URLs and keys
	// (comma-separated), as it said when it started (guarded by mu).
	oneAddr          netip.AddrPort
	oneURLs, oneKeys string
	proxies          []*DirectoryProxy
	mixnodes         [][]*Node // by layer (index 0 is layer 1), then index
	gateways         []*Node

	mu        sync.Mutex
	noiseKeys map[[wire.NoiseKeySize]byte]*node.NoiseKey // every node's, by public key
	clients   []*Client
	providers []*Provider
	extra     []*Process // other processes a test started through the network
	closed    bool

	samplerOn   bool // set before the sampler starts, read by Close
	stopSampler chan struct{}
	samplerDone chan struct{}
}

// Node is a mixnode or a gateway.
type Node struct {
	*Process
	// Role is directory.RoleMixnode or directory.RoleGateway.
	Role directory.Role
	// Layer is a mixnode's layer (1 to 3), 0 for a gateway; Index its
	// number within the layer (or among the gateways), from 0.
	Layer, Index int
	// Listen is the node's real packet listener; Announce the address the
	// directory lists (the relay's when there is one).
	Listen, Announce netip.AddrPort
	// ClientListen is a gateway's WebSocket listener.
	ClientListen netip.AddrPort
	// Metrics serves /metrics and /healthz.
	Metrics netip.AddrPort
	// Relay sits in front of Listen when the network has relays.
	Relay *relay.Relay

	net      *Network
	identity string
	noise    *node.NoiseKey // made by the harness before the node starts
}

// NoiseKey is the node's Noise static key pair, which the harness made in
// its data folder before starting it: with it a test can take part in the
// node's links, as the relays do.
func (node *Node) NoiseKey() *node.NoiseKey { return node.noise }

// Start starts the directory, the mixnodes and the gateways, each as a
// process of its own, and returns when every node is listed by the
// directory. On failure it stops what it started.
func Start(ctx context.Context, cfg Config) (_ *Network, err error) {
	if cfg.Dir == "" || cfg.Bin == nil {
		return nil, errors.New("testnet: Config.Dir and Config.Bin are required")
	}
	if cfg.MixnodesPerLayer == 0 {
		cfg.MixnodesPerLayer = DefaultMixnodesPerLayer
	}
	if cfg.Gateways == 0 {
		cfg.Gateways = DefaultGateways
	}
	if cfg.PeakRate == 0 {
		cfg.PeakRate = DefaultPeakRate
	}
	switch cfg.LogLevel {
	case "":
		cfg.LogLevel = DefaultLogLevel
	case "trace", "debug", "info":
	default:
		return nil, fmt.Errorf("testnet: Config.LogLevel %q: want trace, debug or info (readiness is an info line)", cfg.LogLevel)
	}
	n := &Network{
		cfg:         cfg,
		hostIP:      netip.MustParseAddr("127.0.0.1"),
		dataDir:     filepath.Join(cfg.Dir, "data"),
		logDir:      filepath.Join(cfg.Dir, "logs"),
		stopSampler: make(chan struct{}),
		samplerDone: make(chan struct{}),
	}
	if cfg.Namespaces != nil {
		n.hostIP = cfg.Namespaces.HostIP()
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if cfg.OneProcess {
		if n.oneAddr, err = n.port(true); err != nil {
			return nil, err
		}
		n.samplerOn = true
		go n.sampler()
		return n, nil
	}
	if cfg.Authorities == 0 {
		n.cfg.Authorities = 1
	}
	if err := n.startAuthorities(ctx); err != nil {
		return nil, err
	}
	if err := n.startMixnodes(ctx); err != nil {
		return nil, err
	}
	if err := n.startGateways(ctx); err != nil {
		return nil, err
	}
	if err := n.learnIdentities(ctx); err != nil {
		return nil, err
	}
	// The sampler reads the fields set above; it starts once they are.
	n.samplerOn = true
	go n.sampler()
	n.logf("network up: directory %s, %d mixnodes, %d gateways, relays %v", n.DirectoryURL(),
		Layers*cfg.MixnodesPerLayer, cfg.Gateways, cfg.Relays)
	return n, nil
}

func (n *Network) logf(format string, args ...any) {
	if n.cfg.Logf != nil {
		n.cfg.Logf(format, args...)
	}
}

// HostIP is the address the processes outside namespaces listen on:
// 127.0.0.1, or the namespaces' bridge address.
func (n *Network) HostIP() netip.Addr { return n.hostIP }

// DataDir is the data folder of the process named name.
func (n *Network) DataDir(name string) string { return filepath.Join(n.dataDir, name) }

// LogDir is the folder of the log files.
func (n *Network) LogDir() string { return n.logDir }

// NewProcess makes a process of this network (it is stopped by Close and
// listed in reports) from cfg, whose LogDir and Logf default to the
// network's. It does not start it.
func (n *Network) NewProcess(cfg ProcessConfig) (*Process, error) {
	if cfg.LogDir == "" {
		cfg.LogDir = n.logDir
	}
	if cfg.Logf == nil {
		cfg.Logf = n.cfg.Logf
	}
	p, err := NewProcess(cfg)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.extra = append(n.extra, p)
	n.mu.Unlock()
	return p, nil
}

func (n *Network) port(check bool) (netip.AddrPort, error) { return freePort(n.hostIP, check) }

// nodeAddrs makes a node's keys in its data folder and picks its
// addresses: its listener (in its namespace, if any), its metrics server,
// and its relay if the network has relays.
func (n *Network) nodeAddrs(nd *Node, name, ns string, nsIP netip.Addr) error {
	keys, err := node.LoadKeys(n.DataDir(name))
	if err != nil {
		return fmt.Errorf("testnet: %s: %w", name, err)
	}
	clear(keys.Identity) // the node's own business
	nd.noise = keys.Noise
	n.mu.Lock()
	if n.noiseKeys == nil {
		n.noiseKeys = make(map[[wire.NoiseKeySize]byte]*node.NoiseKey)
	}
	n.noiseKeys[keys.Noise.Public()] = keys.Noise
	n.mu.Unlock()
	return n.pickAddrs(nd, ns, nsIP)
}

// lookupNoise returns the node key whose public half is pub, or nil.
func (n *Network) lookupNoise(pub [wire.NoiseKeySize]byte) wire.StaticKey {
	n.mu.Lock()
	defer n.mu.Unlock()
	if k := n.noiseKeys[pub]; k != nil {
		return k
	}
	return nil
}

// pickAddrs picks a node's addresses.
func (n *Network) pickAddrs(node *Node, ns string, nsIP netip.Addr) error {
	var err error
	ip, check := n.hostIP, true
	if ns != "" {
		ip, check = nsIP, false
	}
	if node.Listen, err = freePort(ip, check); err != nil {
		return err
	}
	if node.Metrics, err = freePort(ip, check); err != nil {
		return err
	}
	node.Announce = node.Listen
	if n.cfg.Relays {
		r, err := n.newRelay(node.Listen, node.noise)
		if err != nil {
			return err
		}
		node.Relay, node.Announce = r, r.Addr()
	}
	return nil
}

// newRelay starts a relay in front of target, whose Noise key is key, on a
// free port, with the keys to take part in the node's Noise links. The
// machine is shared: another program can bind the port between the check
// and the relay's own bind, so a port taken meanwhile is replaced by
// another.
func (n *Network) newRelay(target netip.AddrPort, key *node.NoiseKey) (*relay.Relay, error) {
	var err error
	for range 5 {
		var ra netip.AddrPort
		if ra, err = n.port(true); err != nil {
			return nil, err
		}
		var r *relay.Relay
		r, err = relay.New(relay.Config{Listen: ra.String(), Target: target.String(), Faults: n.cfg.RelayFaults,
			Noise: &relay.NoiseKeys{Target: key, Lookup: n.lookupNoise}})
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
	}
	return nil, err
}

func (n *Network) startMixnodes(ctx context.Context) error {
	n.mixnodes = make([][]*Node, Layers)
	var all []*Node
	for layer := 1; layer <= Layers; layer++ {
		for i := range n.cfg.MixnodesPerLayer {
			name := fmt.Sprintf("mixnode-%d-%d", layer, i)
			node := &Node{Role: directory.RoleMixnode, Layer: layer, Index: i, net: n}
			var ns string
			var nsIP netip.Addr
			if n.cfg.Namespaces != nil {
				ns, nsIP = n.cfg.Namespaces.Layer(layer)
			}
			if err := n.nodeAddrs(node, name, ns, nsIP); err != nil {
				return err
			}
			args := []string{"mixnode", "--layer", strconv.Itoa(layer),
				"--listen", node.Listen.String(), "--announce", node.Announce.String(),
				"--metrics", node.Metrics.String(), "--directory", n.DirectoryURL(),
				"--authorities", n.AuthorityKeys(),
				"--data", n.DataDir(name), "--peak-rate", strconv.FormatFloat(n.cfg.PeakRate, 'g', -1, 64),
				"--log-level", n.cfg.LogLevel}
			if n.cfg.MixnodeArgs != nil {
				args = append(args, n.cfg.MixnodeArgs(layer, i)...)
			}
			p, err := NewProcess(ProcessConfig{Name: name, Path: n.cfg.Bin.Mixnet, Args: args, LogDir: n.logDir,
				Ready: "mixnode started", NetNS: ns, Logf: n.cfg.Logf})
			if err != nil {
				return err
			}
			node.Process = p
			n.mixnodes[layer-1] = append(n.mixnodes[layer-1], node)
			all = append(all, node)
		}
	}
	return startAll(ctx, all)
}

func (n *Network) startGateways(ctx context.Context) error {
	for i := range n.cfg.Gateways {
		name := fmt.Sprintf("gateway-%d", i)
		node := &Node{Role: directory.RoleGateway, Index: i, net: n}
		if err := n.nodeAddrs(node, name, "", netip.Addr{}); err != nil {
			return err
		}
		var err error
		if node.ClientListen, err = n.port(true); err != nil {
			return err
		}
		args := []string{"gateway",
			"--listen", node.Listen.String(), "--announce", node.Announce.String(),
			"--client-listen", node.ClientListen.String(),
			"--metrics", node.Metrics.String(), "--directory", n.DirectoryURL(),
			"--authorities", n.AuthorityKeys(),
			"--data", n.DataDir(name), "--peak-rate", strconv.FormatFloat(n.cfg.PeakRate, 'g', -1, 64),
			"--log-level", n.cfg.LogLevel}
		if n.cfg.GatewayArgs != nil {
			args = append(args, n.cfg.GatewayArgs(i)...)
		}
		p, err := NewProcess(ProcessConfig{Name: name, Path: n.cfg.Bin.Mixnet, Args: args, LogDir: n.logDir,
			Ready: "gateway started", Logf: n.cfg.Logf})
		if err != nil {
			return err
		}
		node.Process = p
		n.gateways = append(n.gateways, node)
	}
	return startAll(ctx, n.gateways)
}

// startAll starts nodes in parallel.
func startAll(ctx context.Context, nodes []*Node) error {
	errc := make(chan error, len(nodes))
	for _, node := range nodes {
		go func() { errc <- node.Start(ctx) }()
	}
	var errs []error
	for range nodes {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// learnIdentities reads every node's identity from the topology.
// A mixnode registers once it has fetched the topology (which gives it the
// network's schedule, hence its Sphinx keys): after it says it started.
func (n *Network) learnIdentities(ctx context.Context) error {
	var missing *Node
	err := pollUntil(ctx, 20*time.Millisecond, func() (bool, error) {
		top, err := n.Topology(ctx)
		if err != nil {
			return false, nil // the directory is starting
		}
		byAddr := make(map[string]string)
		for _, m := range top.Mixnodes {
			byAddr[m.Address] = m.Identity
		}
		for _, g := range top.Gateways {
			byAddr[g.Address] = g.Identity
		}
		for _, node := range n.Nodes() {
			id, ok := byAddr[node.Announce.String()]
			if !ok {
				missing = node
				return false, nil
			}
			node.identity = id
		}
		return true, nil
	})
	if err != nil && missing != nil {
		return fmt.Errorf("testnet: %s (%s) is not in the topology: %w", missing.Name(), missing.Announce, err)
	}
	return err
}

// Topology fetches the topology document the authorities signed, and
// checks it as the nodes do.
func (n *Network) Topology(ctx context.Context) (*directory.Topology, error) {
	c := &directory.Client{BaseURL: n.DirectoryURL(), HTTP: &http.Client{Timeout: 10 * time.Second}, Trust: n.Trust()}
	return c.Topology(ctx)
}

// Mixnodes returns the mixnodes, layer 1 first.
func (n *Network) Mixnodes() []*Node {
	var out []*Node
	for _, l := range n.mixnodes {
		out = append(out, l...)
	}
	return out
}

// Mixnode returns mixnode index (from 0) of layer (1 to 3), or nil.
func (n *Network) Mixnode(layer, index int) *Node {
	if layer < 1 || layer > len(n.mixnodes) || index < 0 || index >= len(n.mixnodes[layer-1]) {
		return nil
	}
	return n.mixnodes[layer-1][index]
}

// Gateways returns the gateways.
func (n *Network) Gateways() []*Node { return slices.Clone(n.gateways) }

// Gateway returns gateway i (from 0), or nil.
func (n *Network) Gateway(i int) *Node {
	if i < 0 || i >= len(n.gateways) {
		return nil
	}
	return n.gateways[i]
}

// GatewayByIdentity returns the gateway with the base58 identity id, or
// nil.
func (n *Network) GatewayByIdentity(id string) *Node {
	for _, g := range n.gateways {
		if g.identity == id {
			return g
		}
	}
	return nil
}

// Nodes returns every mixnode and gateway.
func (n *Network) Nodes() []*Node { return append(n.Mixnodes(), n.gateways...) }

// Processes returns every process of the network: the directory, the
// nodes, the provider, the clients and the rest, in that order.
func (n *Network) Processes() []*Process {
	var out []*Process
	for _, a := range n.authorities {
		if a != nil {
			out = append(out, a)
		}
	}
	for _, node := range n.Nodes() {
		if node.Process != nil {
			out = append(out, node.Process)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.providers {
		out = append(out, p.Process)
	}
	for _, c := range n.clients {
		out = append(out, c.Process)
	}
	return append(out, n.extra...)
}

// Identity is the node's base58 identity key.
func (node *Node) Identity() string { return node.identity }

// Metric scrapes the node's /metrics and returns the sum of the samples of
// the metric name whose labels include every label="value" pair given.
func (node *Node) Metric(ctx context.Context, name string, labels ...string) (float64, error) {
	return scrapeMetric(ctx, "http://"+node.Metrics.String()+"/metrics", name, labels...)
}

// UnexpectedExits lists, for every process of the network, how it ended
// without being asked to ("name: status").
func (n *Network) UnexpectedExits() []string {
	var out []string
	for _, p := range n.Processes() {
		for _, s := range p.UnexpectedExits() {
			out = append(out, p.Name()+": "+s)
		}
	}
	return out
}

// CPU is the CPU time all of the network's processes have used so far
// (their children's included).
func (n *Network) CPU() time.Duration {
	var total time.Duration
	for _, p := range n.Processes() {
		total += p.CPU()
	}
	return total
}

func (n *Network) sampler() {
	defer close(n.samplerDone)
	t := time.NewTicker(sampleInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stopSampler:
			return
		case <-t.C:
			for _, p := range n.Processes() {
				p.Sample()
			}
		}
	}
}

// Close stops every process with SIGTERM (clients first, then providers,
// gateways, mixnodes and the directory; SIGKILL after DefaultStopTimeout),
// kills plugins that outlived a provider, and closes the relays. It
// returns the stop errors: a process that exited with a non-zero status or
// had to be killed. It is safe to call more than once.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	clients, providers, extra := slices.Clone(n.clients), slices.Clone(n.providers), slices.Clone(n.extra)
	n.mu.Unlock()

	var mu sync.Mutex
	var errs []error
	stop := func(ps []*Process) {
		var wg sync.WaitGroup
		for _, p := range ps {
			if p == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.close(); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", p.Name(), err))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	var ps []*Process
	for _, c := range clients {
		ps = append(ps, c.Process)
	}
	stop(append(ps, extra...))
	ps = nil
	for _, p := range providers {
		ps = append(ps, p.Process)
	}
	stop(ps)
	for _, p := range ps {
		if killed := p.killOrphans(); len(killed) > 0 {
			n.logf("killed plugins that outlived %s: %s", p.Name(), strings.Join(killed, ", "))
		}
	}
	ps = nil
	for _, g := range n.gateways {
		ps = append(ps, g.Process)
	}
	stop(ps)
	ps = nil
	for _, m := range n.Mixnodes() {
		ps = append(ps, m.Process)
	}
	stop(ps)
	stop(n.authorities)
	for _, p := range n.proxies {
		p.Close()
	}
	for _, node := range n.Nodes() {
		if node.Relay != nil {
			node.Relay.Close()
		}
	}
	close(n.stopSampler)
	if n.samplerOn {
		<-n.samplerDone
	}
	return errors.Join(errs...)
}

// MoveGateway stops gateway i, gives it new packet and client ports (its
// data folder, so its identity and keys, stay), and starts it again,
// waiting until it is ready: a gateway moved to another port, or host. It
// needs a network without relays or namespaces.
func (n *Network) MoveGateway(ctx context.Context, i int) error {
	if n.cfg.Relays || n.cfg.Namespaces != nil {
		return errors.New("testnet: MoveGateway needs a network without relays or namespaces")
	}
	node := n.Gateway(i)
	if err := node.Stop(); err != nil {
		n.logf("%s: stop before moving: %v", node.Name(), err)
	}
	listen, err := n.port(true)
	if err != nil {
		return err
	}
	client, err := n.port(true)
	if err != nil {
		return err
	}
	node.Listen, node.Announce, node.ClientListen = listen, listen, client
	node.SetFlag("--listen", listen.String())
	node.SetFlag("--announce", listen.String())
	node.SetFlag("--client-listen", client.String())
	return node.Start(ctx)
}
