// Package gateway is peapod's gateway: the node where clients attach to the
// mixnet. It plays two roles.
//
// Entry: a client connects over a WebSocket (package internal/gwproto:
// register once, authenticate on every later connection) and sends Forward
// requests; the gateway passes each packet, unpeeled, to its first hop over
// the outbound pool of package internal/wire, but only when that hop is a
// layer-1 mixnode of the directory's current topology, so that the gateway
// is no open relay.
//
// Exit: mixnodes deliver frames to the gateway's TCP listener; the gateway
// peels the last Sphinx layer with its own key and replay filter. The final
// payload of a data packet (regular size or larger) is
//
//	ack first hop[19] ‖ SURB-ack[386] ‖ message
//
// where the ack first hop is a node address in compact form (the first
// sphinx.CompactNodeAddressSize bytes of a sphinx.NodeAddress) and the
// SURB-ack an ack-size Sphinx packet the sender made for a route back to
// its own gateway. The gateway strips the SURB-ack, whose first hop must be
// a layer-1 mixnode, and hands the message (end-to-end encrypted, never read
// here) to the client the packet names as destination, which must be
// registered. The final payload of an ack-size packet is an ack for the
// client and is handed over whole.
//
// # Durability
//
// Nothing the gateway acknowledges is ever lost: it sends a message's
// SURB-ack into the mixnet only once the message is safe, either confirmed
// by the client with Received or committed to the store. A connected client
// gets each message at once (Deliver) and the gateway keeps it in memory,
// pending, until the client confirms it; then the ack goes out. Messages
// for a client that is offline, that holds MaxPendingPerClient unconfirmed
// messages already, or whose connection ends with messages pending, are
// committed to the store (bbolt, batched commits), and their acks go out
// after the commit. If the gateway dies before either, the sender gets no
// ack and retransmits; so it does when the store already holds MaxStored
// messages, or MaxStoredPerClient for that client, which keeps a flooded or
// long-offline client from filling the disk. Message ids are unique per gateway, across restarts,
// live and stored messages alike.
//
// When a client connects, its stored messages are handed over in pages of
// PageSize, each deleted once the client confirms it, the next page sent once
// the previous one is all confirmed; live messages flow meanwhile. Stored
// messages older than MessageTTL are purged. One connection per client
// identity is live: a newer authenticated connection replaces the older,
// whose unconfirmed messages move to the newer. A client only ever receives
// and confirms its own messages.
//
// # Store layout
//
// The database is DataDir/gateway.db (bbolt), with three top-level buckets:
//
//	meta     "version" → 0x02
//	         "next_id" → u64: message ids below it may have been handed out
//	clients  identity[32] → shared key[32] ‖ last accepted timestamp u64 (unix ns) ‖
//	         source[16] (the address it registered from, IPv4 mapped into IPv6;
//	         an IPv6 source is its /64; all zero: unknown)
//	inbox    identity[32] → bucket: id u64 → received u64 (unix ns) ‖ kind u8 ‖ payload
//
// A version 1 database (client records without the source) is upgraded
// when it is opened, its clients' sources unknown.
//
// # Limits on clients
//
// Anyone may connect and register, so the gateway bounds what that costs
// it. A client connection holds a handshake slot from its TCP accept to the
// end of its gwproto handshake, which must end within HandshakeTimeout;
// past MaxHandshakes slots in all, or MaxHandshakesPerSource for one source
// address, a new connection is answered HTTP 503 with the reason and closed
// before anything is read from it. A registration past MaxClients clients,
// or MaxClientsPerSource registered from one source, is refused (gwproto
// code "refused", with the reason); registered clients authenticate
// regardless. A client that has not authenticated for ClientTTL, and is not
// connected, is forgotten at the next purge; its stored messages stay until
// their own MessageTTL. Every refusal is counted by reason in /metrics
// (peapod_gateway_refused_total), next to the limits
// (peapod_gateway_limit, which also gives the store's bounds and the two
// TTLs).
//
// Integers are big-endian, so an inbox iterates in id order, which is
// arrival order. kind is gwproto.KindMessage (payload: the end-to-end
// encrypted message, as it came) or gwproto.KindAck (payload: the ack
// packet's payload). Ids are reserved 2^20 at a time by raising next_id
// before any of them is used, so a restart never reuses one. An inbox bucket
// is deleted when it empties. The keys (identity.pem, noise.pem, sphinx.pem)
// live next to the database, in the formats of package internal/keyfile, and so does
// the replay filter (replay.bin, package internal/replaystore), saved every
// ReplaySaveInterval and on Close so that a restarted gateway still refuses
// the packets it processed before.
package gateway

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/fairq"
	"github.com/peapod-mixnet/peapod/internal/node"
	"github.com/peapod-mixnet/peapod/internal/promserve"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// HTTP server limits of the client and metrics listeners.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = time.Minute
	maxHeaderBytes    = 16 << 10
)

// Storing.
const (
	// storeWorkers is how many goroutines commit messages at once; bbolt
	// gathers their commits into one transaction.
	storeWorkers = 4
	// storeGroup bounds the messages one worker commits at a time.
	storeGroup = 256
	// storeQueueLen bounds the messages waiting to be committed; beyond it
	// the mix listener waits, and TCP pushes back on the mixnodes.
	storeQueueLen = 4096
)

// Gateway is a running gateway. Create it with [New], start it with
// [Gateway.Start] and stop it with [Gateway.Close]. Its methods are safe for
// concurrent use.
type Gateway struct {
	cfg       Config
	log       zerolog.Logger
	keys      *node.Keys
	sphinx    *node.SphinxKeys
	life      *node.Lifecycle // nil without a directory
	store     *store
	topo      *topology
	counters  *counters
	admission *admission
	registry  *prometheus.Registry
	upgrader  websocket.Upgrader

	// ctx is cancelled by Close: it aborts topology fetches and ends the
	// background loops.
	ctx    context.Context
	cancel context.CancelFunc

	// Set by Start.
	mixServer  *wire.Server
	pool       *wire.Pool
	mixLn      net.Listener
	clientLn   net.Listener
	metricsLn  net.Listener
	clientHTTP *http.Server
	metrics    *http.Server
	announce   netip.AddrPort
	clientURL  string

	// The exit path: packets from mixnodes wait in exitQ, fairly shared
	// between the peers, for the exit workers (exitqueue.go).
	exitQ     *fairq.Queue[*exitPacket]
	exitWG    sync.WaitGroup
	peerDrops fairq.Drops

	storeQ  chan *message
	quota   storeQuota
	storeWG sync.WaitGroup // store workers
	bgWG    sync.WaitGroup // listeners' serve loops, refresher, purger, registrar
	connWG  sync.WaitGroup // client connections

	// mu guards the fields below and every conn's state.
	mu         sync.Mutex
	started    bool
	closing    bool
	conns      map[clientID]*conn
	handshakes map[*websocket.Conn]struct{} // connections in their handshake

	// mixFrameTimeout, when set (by tests) before Start, replaces the mix
	// listener's default FrameTimeout.
	mixFrameTimeout time.Duration

	lifeDone chan error // the lifecycle's Close, run by stop

	closeOnce sync.Once
	closeErr  error
}

// New loads (or makes, on first start) the gateway's keys in cfg.DataDir,
// loads its saved replay filter (an empty one on first start, or when the
// saved one is for another key or capacity, or damaged) and opens its
// database. It binds nothing; Start does.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	keys, err := node.LoadKeys(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	log := cfg.Logger.With().Str("component", "gateway").
		Str("identity", address.EncodeKey(keys.IdentityPublic())).Logger()
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
		return nil, fmt.Errorf("gateway: %w", err)
	}
	st, err := openStore(cfg.DataDir)
	if err != nil {
		sphinxKeys.Close()
		return nil, err
	}
	st.limits = registrationLimits{total: cfg.MaxClients, perSource: cfg.MaxClientsPerSource}
	var dir *directory.Client
	if cfg.DirectoryURL != "" {
		dir = &directory.Client{BaseURL: cfg.DirectoryURL, Trust: cfg.Trust}
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gateway{
		cfg:        cfg,
		log:        log,
		keys:       keys,
		sphinx:     sphinxKeys,
		store:      st,
		topo:       newTopology(dir, log),
		counters:   newCounters(),
		ctx:        ctx,
		cancel:     cancel,
		exitQ:      fairq.NewOrdered[*exitPacket](cfg.exitQuota()),
		storeQ:     make(chan *message, storeQueueLen),
		quota:      storeQuota{client: make(map[clientID]int), peer: make(map[wire.PeerID]int)},
		conns:      make(map[clientID]*conn),
		handshakes: make(map[*websocket.Conn]struct{}),
		upgrader: websocket.Upgrader{
			HandshakeTimeout: cfg.HandshakeTimeout,
			// Clients are programs, not web pages: the handshake
			// authenticates them, not their origin.
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	g.admission = newAdmission(&g.cfg, g.counters)
	g.registry = newRegistry(g)
	if dir != nil {
		g.registry.MustRegister(directory.NewRefusedCollector(dir))
	}
	return g, nil
}

// Start binds the listeners, starts serving mixnodes and clients, fetches
// the topology and, when DirectoryURL is set, registers the gateway: the
// first registration is made before Start returns (bounded by ctx), and
// fails Start if it fails; a background registrar refreshes it afterwards.
// On failure Start closes the gateway (as Close does) and returns the error.
// Start may be called once, and not concurrently with Close.
func (g *Gateway) Start(ctx context.Context) (err error) {
	g.mu.Lock()
	if g.started || g.closing {
		g.mu.Unlock()
		return errors.New("gateway: Start called twice or after Close")
	}
	g.started = true
	g.mu.Unlock()
	defer func() {
		if err != nil {
			g.Close()
		}
	}()

	var lc net.ListenConfig
	if g.mixLn, err = node.Listen(ctx, g.cfg.DataDir, "mix", g.cfg.MixListenAddr); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if g.clientLn, err = node.Listen(ctx, g.cfg.DataDir, "client", g.cfg.ClientListenAddr); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if g.cfg.MetricsAddr != "" {
		if g.metricsLn, err = lc.Listen(ctx, "tcp", g.cfg.MetricsAddr); err != nil {
			return fmt.Errorf("gateway: metrics listener: %w", err)
		}
	}
	if err := g.resolveAnnounce(); err != nil {
		return err
	}

	// With a directory the gateway's links are Noise links: to layer-1
	// mixnodes, from layer-3 mixnodes, as the topology lists them.
	var noise *wire.NoiseConfig
	if g.cfg.DirectoryURL != "" {
		noise = &wire.NoiseConfig{Key: g.keys.Noise, Peers: g.topo}
	} else {
		g.log.Warn().Msg("no directory: the mix listener reads plain frames from anyone and delivers their packets; for tests and benchmarks only")
	}
	pcfg := wire.PoolConfig{Noise: noise, Logger: g.log.With().Str("side", "outbound").Logger()}
	if g.cfg.DirectoryURL != "" {
		// A layer-1 mixnode that cannot be reached may have moved: look it
		// up again at once, and follow it (internal/hops, moved.go).
		pcfg.OnDialFailure = g.topo.DialFailed
	}
	if g.pool, err = wire.NewPool(pcfg); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.topo.FollowMoves(g.pool)
	// A layer-1 mixnode listed again after it was down is reconnected at
	// once, not after the pool's backoff (internal/hops, returned.go).
	g.topo.RetryReturns(g.pool)
	mixServer, err := wire.NewServer(wire.ServerConfig{
		Handler:      wire.HandlerFunc(g.handleFrame),
		Noise:        noise,
		FrameTimeout: g.mixFrameTimeout,
		Logger:       g.log.With().Str("side", "mix").Logger(),
	})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.mu.Lock() // the metrics collector reads it
	g.mixServer = mixServer
	g.mu.Unlock()
	for range storeWorkers {
		g.storeWG.Add(1)
		go g.storeWorker()
	}
	for range g.cfg.ExitWorkers {
		g.exitWG.Add(1)
		go g.exitWorker()
	}
	g.goBackground(func() {
		if err := g.mixServer.Serve(g.mixLn); err != nil && !errors.Is(err, wire.ErrServerClosed) {
			g.log.Error().Err(err).Msg("mix listener failed")
		}
	})
	g.clientHTTP = &http.Server{
		Handler:           http.HandlerFunc(g.serveWebSocket),
		ConnContext:       withConn,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          stdlog.New(g.log, "", 0),
	}
	clientLn := admissionListener{Listener: g.clientLn, a: g.admission}
	g.goBackground(func() { serveHTTP(g.log, g.clientHTTP, clientLn, "client listener") })
	if g.metricsLn != nil {
		g.metrics = &http.Server{
			Handler:           promserve.Handler(g.registry, g.isClosing),
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          stdlog.New(g.log, "", 0),
		}
		g.goBackground(func() { serveHTTP(g.log, g.metrics, g.metricsLn, "metrics listener") })
	}
	g.goBackground(g.purgeLoop)

	if g.cfg.DirectoryURL != "" {
		if err := g.startLifecycle(ctx); err != nil {
			return err
		}
	}
	g.log.Info().Stringer("mix_addr", g.MixAddr()).Stringer("client_addr", g.ClientAddr()).
		Str("announce", g.announce.String()).Str("client_url", g.clientURL).Msg("gateway started")
	return nil
}

// serveHTTP serves srv on ln until it is closed.
func serveHTTP(log zerolog.Logger, srv *http.Server, ln net.Listener, what string) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error().Err(err).Msg(what + " failed")
	}
}

// goBackground runs f on a goroutine that Close waits for.
func (g *Gateway) goBackground(f func()) {
	g.bgWG.Add(1)
	go func() {
		defer g.bgWG.Done()
		f()
	}()
}

// resolveAnnounce works out the addresses registered with the directory.
func (g *Gateway) resolveAnnounce() error {
	if g.cfg.AnnounceAddr != "" {
		g.announce, _ = parseAnnounceAddr(g.cfg.AnnounceAddr) // checked by applyDefaults
	} else if ap := unmap(g.MixAddr()); reachable(ap) {
		g.announce = ap
	}
	if g.cfg.ClientAnnounceURL != "" {
		g.clientURL = g.cfg.ClientAnnounceURL
	} else if ap := unmap(g.ClientAddr()); reachable(ap) {
		g.clientURL = "ws://" + ap.String()
	}
	if g.cfg.DirectoryURL != "" && (!g.announce.IsValid() || g.clientURL == "") {
		return errors.New("gateway: a listener is bound to an unspecified address; set AnnounceAddr and ClientAnnounceURL to the addresses others reach")
	}
	return nil
}

// startLifecycle fetches the topology, which gives the network's schedule
// and so the gateway's Sphinx keys, and registers the gateway: a first
// attempt before it returns, so that the gateway is listed by then when
// the directory is up, then a registrar that retries until it succeeds,
// re-registers periodically and registers new keys as they come. A
// descriptor the directory could never accept is an error; a directory
// that is down or refuses the first attempt is not: the gateway serves
// meanwhile, and the registrar logs each failure. A gateway may start
// before the mixnodes: the on-demand refresh finds them later.
func (g *Gateway) startLifecycle(ctx context.Context) error {
	desc := directory.NewGatewayDescriptor(g.announce, g.clientURL, g.Identity(), nil)
	noise := g.keys.Noise.Public()
	desc.NoiseKey = address.EncodeKey(noise[:])
	life, err := node.NewLifecycle(node.LifecycleConfig{
		Keys:       g.sphinx,
		Directory:  &directory.Client{BaseURL: g.cfg.DirectoryURL},
		Descriptor: desc,
		Identity:   g.keys.Identity,
		Fetch:      g.topo.Refresh,
		// The registrar names the identity itself.
		Logger: g.cfg.Logger.With().Str("component", "gateway").Logger(),
	})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.life = life
	g.topo.OnFetch(life.Topology)
	g.topo.Refresh(ctx)
	// A layer-3 mixnode that left the topology loses its links.
	g.goBackground(func() { g.topo.Run(g.ctx, g.cfg.TopologyRefresh, func() { g.mixServer.Recheck() }) })
	return life.Start(ctx, true)
}

// purgeLoop purges expired messages every PurgeInterval until Close.
func (g *Gateway) purgeLoop() {
	t := time.NewTicker(g.cfg.PurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
			g.purge()
		}
	}
}

// purge forgets the clients idle for ClientTTL and deletes the stored
// messages older than MessageTTL; it returns how many messages it deleted.
func (g *Gateway) purge() (int, error) {
	g.expireClients()
	n, err := g.store.purge(g.cfg.Now().Add(-g.cfg.MessageTTL))
	if err != nil {
		g.log.Error().Err(err).Msg("purging expired messages failed")
		return 0, err
	}
	g.counters.purged.Add(uint64(n))
	if n > 0 {
		g.log.Info().Int("purged", n).Dur("ttl", g.cfg.MessageTTL).Msg("purged expired messages")
	}
	return n, nil
}

// expireClients forgets the clients that have not authenticated for
// ClientTTL and are not connected.
func (g *Gateway) expireClients() {
	g.mu.Lock()
	connected := make(map[clientID]bool, len(g.conns))
	for id := range g.conns {
		connected[id] = true
	}
	g.mu.Unlock()
	n, err := g.store.expireClients(g.cfg.Now().Add(-g.cfg.ClientTTL), connected)
	if err != nil {
		g.log.Error().Err(err).Msg("expiring idle clients failed")
		return
	}
	g.counters.expiredClients.Add(uint64(n))
	if n > 0 {
		g.log.Info().Int("clients", n).Dur("ttl", g.cfg.ClientTTL).Msg("forgot clients that have not connected for the client TTL")
	}
}

// Close stops the gateway: it deregisters, stops accepting frames and
// clients, closes every client connection (moving unconfirmed messages to
// the store), commits every message in flight and sends their acks, closes
// the outbound pool (which writes what it holds for a moment), saves the
// replay filter, closes the database, and returns when every goroutine of the
// gateway has ended. It is safe to call more than once, and without Start;
// later calls return the first call's error.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() { g.closeErr = g.stop() })
	return g.closeErr
}

// isClosing reports whether Close has begun: /healthz then answers 503.
func (g *Gateway) isClosing() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closing
}

// stop is Close's work.
func (g *Gateway) stop() error {
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()

	var errs []error
	if g.life != nil {
		// Deregisters in the background while the rest stops.
		g.lifeDone = make(chan error, 1)
		go func() { g.lifeDone <- g.life.Close() }()
	}
	// No more frames from mixnodes once the server has closed; then every
	// packet taken is peeled, and its message delivered live or queued for
	// the store.
	if g.mixServer != nil {
		g.mixServer.Close()
	} else if g.mixLn != nil {
		g.mixLn.Close()
	}
	g.stopExit()
	if g.clientHTTP != nil {
		g.clientHTTP.Close() // the listener and connections not yet upgraded
	} else if g.clientLn != nil {
		g.clientLn.Close()
	}
	g.cancel() // aborts topology fetches in progress
	g.mu.Lock()
	conns := make([]*conn, 0, len(g.conns))
	for _, c := range g.conns {
		conns = append(conns, c)
	}
	for ws := range g.handshakes {
		ws.UnderlyingConn().Close() // ends the handshake; its goroutine closes ws
	}
	g.mu.Unlock()
	for _, c := range conns {
		c.sess.Close()
	}
	g.connWG.Wait() // every connection has moved its pending messages to the queue
	close(g.storeQ)
	g.storeWG.Wait() // every message committed, its ack handed to the pool
	if g.pool != nil {
		g.pool.Close()
	}
	if g.metrics != nil {
		g.metrics.Close()
	} else if g.metricsLn != nil {
		g.metricsLn.Close()
	}
	g.bgWG.Wait()
	if g.lifeDone != nil {
		if err := <-g.lifeDone; err != nil {
			g.log.Warn().Err(err).Msg("deregistering")
		}
	}
	// The mix server has closed, so no frame is being peeled: the filters
	// hold every tag they will.
	if err := g.sphinx.Close(); err != nil {
		errs = append(errs, fmt.Errorf("gateway: %w", err))
	}
	if err := g.store.close(); err != nil {
		errs = append(errs, err)
	}
	g.log.Info().Msg("gateway closed")
	return errors.Join(errs...)
}

// Identity returns the gateway's ed25519 public identity key, which names
// it in client addresses and in the directory.
func (g *Gateway) Identity() ed25519.PublicKey { return g.keys.IdentityPublic() }

// NoiseKey returns the gateway's Noise static key pair (see package
// internal/node).
func (g *Gateway) NoiseKey() *node.NoiseKey { return g.keys.Noise }

// SphinxPublicKey returns the gateway's X25519 Sphinx public key of the
// current rotation (the zero key before the schedule is known), or, for a
// gateway without a directory, its one key.
func (g *Gateway) SphinxPublicKey() sphinx.PublicKey { return g.sphinx.Current(time.Now()) }

// SphinxKeys are the gateway's Sphinx keys, by rotation.
func (g *Gateway) SphinxKeys() *node.SphinxKeys { return g.sphinx }

// MixAddr returns the bound address of the mix listener (valid after Start).
func (g *Gateway) MixAddr() netip.AddrPort { return listenerAddr(g.mixLn) }

// ClientAddr returns the bound address of the client WebSocket listener
// (valid after Start).
func (g *Gateway) ClientAddr() netip.AddrPort { return listenerAddr(g.clientLn) }

// MetricsAddr returns the bound address of the metrics listener, or the
// zero AddrPort when there is none.
func (g *Gateway) MetricsAddr() netip.AddrPort { return listenerAddr(g.metricsLn) }

// AnnounceAddr returns the mix-facing address registered with the
// directory, as a Sphinx node address would name it (valid after Start;
// zero when no address others can reach is known).
func (g *Gateway) AnnounceAddr() netip.AddrPort { return g.announce }

// ClientURL returns the ws:// URL registered with the directory for clients
// (valid after Start; empty when no address others can reach is known).
func (g *Gateway) ClientURL() string { return g.clientURL }

// Registry returns the gateway's Prometheus registry, the one MetricsAddr
// serves.
func (g *Gateway) Registry() *prometheus.Registry { return g.registry }

func listenerAddr(ln net.Listener) netip.AddrPort {
	if ln == nil {
		return netip.AddrPort{}
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		return a.AddrPort()
	}
	return netip.AddrPort{}
}

// Stats returns the gateway's counters and state.
func (g *Gateway) Stats() Stats {
	c := g.counters
	s := Stats{
		PacketsFromMixes:    c.fromMixes.Load(),
		ForwardedForClients: c.forwarded.Load(),
		DeliveredLive:       c.deliveredLive.Load(),
		DeliveredFromStore:  c.deliveredStored.Load(),
		Stored:              c.stored.Load(),
		Confirmed:           c.confirmed.Load(),
		AcksSent:            c.acksSent.Load(),
		Purged:              c.purged.Load(),
		HandshakeFailures:   c.handshakeFailures.Load(),
		ClientErrors:        c.clientErrors.Load(),
		Dropped:             make(map[DropReason]uint64, len(dropReasons)),
		Refused:             make(map[RefusalReason]uint64, len(refusalReasons)),
		ExpiredClients:      c.expiredClients.Load(),
		Handshakes:          g.admission.inProgress(),
		ConnectedClients:    g.connectedClients(),
		StoredMessages:      g.store.stored(),
		RegisteredClients:   g.store.clientCount(),
		ExitQueue:           g.exitQ.Len(),
		PeerExitQueues:      g.peerExitQueues(),
		PeerDrops:           g.peerDrops.Snapshot(),
	}
	for r, v := range c.dropped {
		s.Dropped[r] = v.Load()
	}
	for r, v := range c.refused {
		s.Refused[r] = v.Load()
	}
	return s
}

// connectedClients is the number of live authenticated connections.
func (g *Gateway) connectedClients() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}
