// Package mixnode runs a mixnode: a node in one layer of the mixnet that
// receives Sphinx packets from other nodes, peels one layer of each, holds
// it for the delay its sender chose, and sends it on to the next hop.
//
// The pipeline of a [Node]:
//
//	inbound connections (internal/wire Server)
//	  → bounded work queue
//	  → Workers goroutines: sphinx.Processor.Process (replay filter included)
//	  → delay queue (one goroutine, one timer, a min-heap; zero delays skip it)
//	  → outbound pool (internal/wire Pool): one queue and connection per next hop
//
// Every stage is bounded: a packet that does not fit is dropped and counted
// by [DropReason] rather than queued without limit, so overload costs
// packets, never memory. Packets the node cannot use are dropped and
// counted the same way: a replay, a header that fails authentication, a
// route that ends at this node, and, when the node has a directory, a next
// hop that is not in the topology even after a fetch made for it (see
// [DropUnknownHop]): a node is not an open relay, and a layer-1 node does
// not skip layers. A drop is logged at debug level with its reason and peer, never with
// packet bytes or keys. Packets are forwarded with Nym's frame header
// (internal/wire) and key rotation "unknown"; the key-rotation byte of
// incoming frames is ignored, since a node holds one Sphinx key.
//
// The node keeps its ed25519 identity, its Noise static key and its Sphinx
// key in Config.DataDir (files of package internal/node), so that its
// address in the directory survives restarts, and its replay filter, saved
// periodically and on Close, so that a restarted node still refuses
// the packets it processed before, and registers itself with the directory at
// Config.DirectoryURL while it runs, and fetches from it the next hops it may
// forward to (internal/hops), every Config.TopologyRefresh and soon after a
// packet names a hop it does not know. Its counters are available as [Stats]
// and, with Config.MetricsAddr, as Prometheus metrics at [PathMetrics]
// (each named peapod_mixnode_…: packets_received_total,
// packets_forwarded_total, packets_dropped_total{reason},
// queue_depth{queue}, and the connection counters).
//
// Lifecycle: [New] loads the keys and the replay filter, [Node.Start]
// listens and registers, [Node.Close] deregisters, stops accepting, saves
// the replay filter once no packet is being peeled, and returns when every
// goroutine has ended.
package mixnode

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/fairq"
	"github.com/peapod-mixnet/peapod/internal/hops"
	"github.com/peapod-mixnet/peapod/internal/httpstop"
	"github.com/peapod-mixnet/peapod/internal/node"
	"github.com/peapod-mixnet/peapod/internal/promserve"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// Node is a mixnode. Create it with [New], run it with [Node.Start] and
// stop it with [Node.Close]. Its methods are safe for concurrent use.
type Node struct {
	cfg    Config
	log    zerolog.Logger
	keys   *node.Keys
	sphinx *node.SphinxKeys
	life   *node.Lifecycle // nil without a directory

	server    *wire.Server
	pool      *wire.Pool
	work      workQueue
	delay     *delayQueue
	counters  counters
	peerDrops fairq.Drops
	registry  *prometheus.Registry
	// hops are the next hops the node may forward to; nil without
	// Config.DirectoryURL, when it forwards to any.
	hops   *hops.Cache
	dir    *directory.Client // the one hops fetches with; nil with hops
	heldMu sync.Mutex
	held   []heldPacket // waiting for a fetch of the topology; guarded by heldMu

	stop    chan struct{} // closed by Close: workers and the delay queue end
	ctx     context.Context
	cancel  context.CancelFunc // cancels ctx, in Close: ends topology fetches
	wg      sync.WaitGroup
	closing atomic.Bool

	mu          sync.Mutex
	started     bool
	closed      bool
	addr        netip.AddrPort
	announce    netip.AddrPort
	metricsAddr netip.AddrPort
	metricsSrv  *httpstop.Server

	closeOnce sync.Once
	closeErr  error
}

// New applies cfg's defaults, validates it, and loads the node's keys from
// cfg.DataDir, creating them on first start, with their saved replay
// filters (see package internal/node). The node does nothing until Start.
func New(cfg Config) (*Node, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	keys, err := node.LoadKeys(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("mixnode: loading keys: %w", err)
	}
	log := cfg.Logger.With().Str("component", "mixnode").Int("layer", cfg.Layer).Logger()
	sphinxKeys, err := node.OpenSphinxKeys(node.KeysConfig{
		DataDir:           cfg.DataDir,
		Static:            cfg.DirectoryURL == "",
		StaticCapacity:    cfg.ReplayCapacity,
		PeakRate:          cfg.PeakRate,
		FalsePositiveRate: cfg.ReplayFalsePositiveRate,
		SaveInterval:      cfg.ReplaySaveInterval,
		Logger:            log,
	}, time.Now())
	if err != nil {
		return nil, fmt.Errorf("mixnode: %w", err)
	}
	n := &Node{
		cfg:    cfg,
		log:    log,
		keys:   keys,
		sphinx: sphinxKeys,
		work:   newWorkQueue(cfg.queueQuota()),
		delay:  newDelayQueue(cfg.queueQuota()),
		stop:   make(chan struct{}),
	}
	// With a directory the node's links are Noise links with the nodes
	// around its layer, as the topology lists them.
	var noise *wire.NoiseConfig
	if cfg.DirectoryURL != "" {
		n.dir = &directory.Client{BaseURL: cfg.DirectoryURL, Trust: cfg.Trust}
		n.hops = hops.New(n.dir, hops.After(cfg.Layer), n.log)
		n.hops.AcceptFrom(hops.Before(cfg.Layer))
		noise = &wire.NoiseConfig{Key: keys.Noise, Peers: n.hops}
	} else {
		n.log.Warn().Msg("no directory: the node reads plain frames from anyone and forwards to any address; for tests and benchmarks only")
	}
	n.server, err = wire.NewServer(wire.ServerConfig{
		Handler:      wire.HandlerFunc(n.handleFrame),
		Noise:        noise,
		MaxConns:     cfg.MaxConns,
		IdleTimeout:  cfg.IdleTimeout,
		FrameTimeout: cfg.FrameTimeout,
		Logger:       n.log,
	})
	if err != nil {
		sphinxKeys.Close()
		return nil, fmt.Errorf("mixnode: %w", err)
	}
	pcfg := wire.PoolConfig{Noise: noise, QueueLen: cfg.OutboundQueue, Logger: n.log}
	if n.hops != nil {
		// A next hop that cannot be reached may have moved: look it up
		// again at once, and follow it (internal/hops, moved.go).
		pcfg.OnDialFailure = n.hops.DialFailed
	}
	n.pool, err = wire.NewPool(pcfg)
	if err != nil {
		sphinxKeys.Close()
		return nil, fmt.Errorf("mixnode: %w", err)
	}
	if n.hops != nil {
		n.hops.FollowMoves(n.pool)
		// A next hop listed again after it was down is reconnected at
		// once, not after the pool's backoff (internal/hops, returned.go).
		n.hops.RetryReturns(n.pool)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.registry = newRegistry(n)
	return n, nil
}

// Start listens on Config.ListenAddr (and Config.MetricsAddr), starts the
// pipeline and, when Config.DirectoryURL is set, a registrar that keeps the
// node listed until Close and a goroutine that fetches the topology. ctx
// bounds only the start-up; stop the node with Close. Start may be called
// once.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.closed:
		return errors.New("mixnode: Start called after Close")
	case n.started:
		return errors.New("mixnode: Start called twice")
	}

	var lc net.ListenConfig
	ln, err := node.Listen(ctx, n.cfg.DataDir, "mix", n.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("mixnode: %w", err)
	}
	addr := boundAddr(ln)
	announce, err := n.announceAddr(addr)
	if err != nil {
		ln.Close()
		return err
	}
	if n.cfg.DirectoryURL != "" {
		desc := directory.NewMixnodeDescriptor(n.cfg.Layer, announce, n.Identity(), nil)
		noise := n.keys.Noise.Public()
		desc.NoiseKey = address.EncodeKey(noise[:])
		n.life, err = node.NewLifecycle(node.LifecycleConfig{
			Keys:       n.sphinx,
			Directory:  &directory.Client{BaseURL: n.cfg.DirectoryURL},
			Descriptor: desc,
			Identity:   n.keys.Identity,
			Fetch:      n.hops.Refresh,
			Logger:     n.log,
		})
		if err != nil {
			ln.Close()
			return fmt.Errorf("mixnode: %w", err)
		}
		n.hops.OnFetch(n.life.Topology)
	}
	var mln net.Listener
	if n.cfg.MetricsAddr != "" {
		if mln, err = lc.Listen(ctx, "tcp", n.cfg.MetricsAddr); err != nil {
			ln.Close()
			return fmt.Errorf("mixnode: metrics: %w", err)
		}
		n.metricsAddr = boundAddr(mln)
	}
	n.started, n.addr, n.announce = true, addr, announce

	for range n.cfg.Workers {
		n.wg.Add(1)
		go n.worker()
	}
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.delay.run(n.stop, n.forward)
	}()
	go func() {
		defer n.wg.Done()
		if err := n.server.Serve(ln); err != nil && !errors.Is(err, wire.ErrServerClosed) {
			n.log.Error().Err(err).Msg("listener failed; no longer accepting packets")
		}
	}()
	if mln != nil {
		n.metricsSrv = n.newMetricsServer()
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.metricsSrv.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Error().Err(err).Msg("metrics server failed")
			}
		}()
	}
	if n.life != nil {
		// Registers once the node has keys for the network's schedule: at
		// once if it was saved, else after the first fetch of the topology.
		n.life.Start(ctx, false) // cannot fail: called once
	}
	if n.hops != nil {
		// In the background: Start does not wait for the directory. The
		// packets peeled before the first fetch are held for it.
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.hops.Refresh(n.ctx) // logs its own failures
			n.topologyFetched()
			n.hops.Run(n.ctx, n.cfg.TopologyRefresh, n.topologyFetched)
		}()
	}

	ev := n.log.Info().Stringer("addr", addr).Stringer("announce", announce).
		Str("identity", address.EncodeKey(n.Identity())).Interface("sphinx_key_rotations", n.sphinx.Held()).
		Int("workers", n.cfg.Workers)
	if n.metricsAddr.IsValid() {
		ev = ev.Stringer("metrics", n.metricsAddr)
	}
	ev.Msg("mixnode started")
	return nil
}

// topologyFetched runs after every fetch of the topology: the packets held
// for it go on, and the links of nodes that left the previous layer close.
func (n *Node) topologyFetched() {
	n.resolveHeld()
	n.server.Recheck()
}

// announceAddr returns the address to publish, given the bound address.
func (n *Node) announceAddr(bound netip.AddrPort) (netip.AddrPort, error) {
	if n.cfg.AnnounceAddr == "" {
		return bound, nil
	}
	ap, err := netip.ParseAddrPort(n.cfg.AnnounceAddr) // checked by applyDefaults
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("mixnode: %w", err)
	}
	if ap.Port() == 0 {
		ap = netip.AddrPortFrom(ap.Addr(), bound.Port())
	}
	return ap, nil
}

// Close deregisters the node from the directory, stops accepting packets,
// drops the packets still waiting to be peeled or delayed (counted as
// DropShutdown), saves the replay filter once no worker peels packets any
// more, gives the outbound connections a moment to write what they hold,
// and returns when every goroutine of the node has ended. It returns the
// errors of the deregistration and of the save, if any. It is safe to call
// more than once, and without Start.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.closing.Store(true)
		n.mu.Lock()
		n.closed = true
		life, metricsSrv := n.life, n.metricsSrv
		n.mu.Unlock()

		var errs []error
		// Leave the topology first, so that clients stop choosing this node
		// while it still forwards what it has.
		if life != nil {
			if err := life.Close(); err != nil {
				errs = append(errs, fmt.Errorf("mixnode: %w", err))
			}
		}
		n.server.Close()
		close(n.stop)
		n.work.close()
		n.cancel()
		if metricsSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), promserve.ShutdownTimeout)
			if err := metricsSrv.Shutdown(ctx); err != nil {
				metricsSrv.Close()
			}
			cancel()
		}
		n.wg.Wait()
		// The workers have ended: the filters hold every tag they will.
		if err := n.sphinx.Close(); err != nil {
			errs = append(errs, fmt.Errorf("mixnode: %w", err))
		}
		n.drainQueues()
		n.pool.Close()
		n.closeErr = errors.Join(errs...)
		n.log.Info().Msg("mixnode closed")
	})
	return n.closeErr
}

// drainQueues drops what is left in the work and delay queues, and the
// packets held for a fetch of the topology, once no goroutine reads them
// any more.
func (n *Node) drainQueues() {
	n.releaseAll(n.work.drain(), DropShutdown)
	n.releaseAll(n.delay.drain(), DropShutdown)
	n.heldMu.Lock()
	held := n.held
	n.held = nil
	n.heldMu.Unlock()
	for _, h := range held {
		n.release(h.pb, DropShutdown)
	}
}

// Addr is the address the node listens on (the zero AddrPort before
// Start).
func (n *Node) Addr() netip.AddrPort {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

// AnnounceAddr is the address the node publishes in the directory, and
// where packets for it should be sent (the zero AddrPort before Start).
func (n *Node) AnnounceAddr() netip.AddrPort {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.announce
}

// MetricsAddr is the address of the metrics server (the zero AddrPort when
// there is none).
func (n *Node) MetricsAddr() netip.AddrPort {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.metricsAddr
}

// Layer is the node's layer.
func (n *Node) Layer() int { return n.cfg.Layer }

// Identity is the node's ed25519 public identity key.
func (n *Node) Identity() ed25519.PublicKey { return n.keys.IdentityPublic() }

// NoiseKey is the node's Noise static key pair (see package internal/node).
func (n *Node) NoiseKey() *node.NoiseKey { return n.keys.Noise }

// SphinxKey is the node's X25519 public Sphinx key of the current
// rotation (the zero key before the schedule is known), or, for a node
// without a directory, its one key: the key senders build packets routed
// through it with.
func (n *Node) SphinxKey() sphinx.PublicKey { return n.sphinx.Current(time.Now()) }

// SphinxKeys are the node's Sphinx keys, by rotation.
func (n *Node) SphinxKeys() *node.SphinxKeys { return n.sphinx }

// Stats are a node's counters and gauges. Once the node is idle,
// Received = Forwarded + the sum of Dropped.
type Stats struct {
	// Received counts packets that arrived in well-formed frames.
	Received uint64
	// Forwarded counts packets written to their next hop's connection.
	Forwarded uint64
	// Dropped counts dropped packets by reason; every reason in
	// DropReasons is present.
	Dropped map[DropReason]uint64
	// DelaysClamped counts packets that asked for a longer delay than the
	// node's bound (MaxDelay) and were held for the bound.
	DelaysClamped uint64
	// MaxDelay is the delay bound now (see Config.MaxDelay).
	MaxDelay time.Duration
	// WorkQueue, DelayQueue and OutboundQueue are how many packets wait in
	// each stage now.
	WorkQueue, DelayQueue, OutboundQueue int
	// PeerQueues are what each upstream peer holds in the work and delay
	// queues now, by peer (PeerQueue.Peer); peers holding nothing are
	// absent.
	PeerQueues map[string]PeerQueue
	// PeerDrops counts the dropped packets by the upstream peer that sent
	// them (for every reason but the outbound ones), for the first 256
	// peers that had drops; OtherPeers counts the rest.
	PeerDrops map[string]uint64
	// Connections is how many inbound connections are open.
	Connections int
	// Inbound connections closed because of the peer: a malformed header,
	// a stream ending inside a frame, a frame not completed within
	// Config.FrameTimeout, no frame within Config.IdleTimeout.
	MalformedFrames, TruncatedFrames, FrameTimeouts, IdleTimeouts uint64
}

// DroppedTotal is the sum of s.Dropped.
func (s Stats) DroppedTotal() uint64 {
	var t uint64
	for _, v := range s.Dropped {
		t += v
	}
	return t
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	ps, ss := n.pool.Stats(), n.server.Stats()
	st := Stats{
		Received:        n.counters.received.Load(),
		Forwarded:       ps.Sent,
		Dropped:         make(map[DropReason]uint64, len(DropReasons)),
		DelaysClamped:   n.counters.clamped.Load(),
		MaxDelay:        n.maxDelay(),
		WorkQueue:       n.work.len(),
		DelayQueue:      n.delay.len(),
		PeerQueues:      n.peerQueues(),
		PeerDrops:       n.peerDrops.Snapshot(),
		OutboundQueue:   ps.Queued,
		Connections:     ss.Active,
		MalformedFrames: ss.Malformed,
		TruncatedFrames: ss.Truncated,
		FrameTimeouts:   ss.FrameTimeouts,
		IdleTimeouts:    ss.IdleTimeouts,
	}
	for i, r := range localReasons {
		st.Dropped[r] = n.counters.dropped[i].Load()
	}
	st.Dropped[DropOutboundQueueFull] = ps.DroppedQueueFull
	st.Dropped[DropOutboundWriteError] = ps.DroppedWriteError
	st.Dropped[DropOutboundClosed] = ps.DroppedClosed
	st.Dropped[DropOutboundTooManyDestinations] = ps.DroppedTooManyDestinations
	st.Dropped[DropOther] += ps.DroppedInvalid
	return st
}

// peerQueues returns what each peer holds in the queues now.
func (n *Node) peerQueues() map[string]PeerQueue {
	byPeer := make(map[string]*PeerQueue)
	n.work.perPeer(byPeer)
	n.delay.perPeer(byPeer)
	out := make(map[string]PeerQueue, len(byPeer))
	for k, v := range byPeer {
		out[k] = *v
	}
	return out
}

// maxDelay is the longest delay the node honours now (see
// Config.MaxDelay).
func (n *Node) maxDelay() time.Duration {
	if n.cfg.MaxDelay > 0 {
		return n.cfg.MaxDelay
	}
	if n.hops == nil {
		return DefaultMaxDelay
	}
	p := n.hops.Params()
	if p == nil {
		return DefaultMaxDelay
	}
	return delayBound(time.Duration(p.MeanMixDelay))
}

// delayBound is the delay bound derived from an advertised mean.
func delayBound(mean time.Duration) time.Duration {
	if mean >= DefaultMaxDelay/DelayBoundFactor {
		return DefaultMaxDelay
	}
	return max(DelayBoundFactor*mean, MinDelayBound)
}

// boundAddr returns a listener's address.
func boundAddr(ln net.Listener) netip.AddrPort {
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
