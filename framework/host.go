// Package framework is the peapod provider host: the process that keeps a
// stable mixnet address, publishes it for discovery, and answers the
// requests that reach it through the mixnet with handler plugins, sending
// each reply back on the requester's reply SURBs so that the requester
// stays anonymous to it.
//
// A [Host] owns the pieces and wires them together:
//
//		mixnet ─▶ Transport ─▶ receive loop ─▶ queue ─▶ workers ─▶ handlers.Router ─▶ plugins
//		                 ▲                                  │
//		                 └──────────── replies ◀────────────┘
//
//	  - the provider's identity: keys kept in its data folder, so the address
//	    and the signed descriptor's key survive restarts;
//	  - a [Transport] to the mixnet, one of two chosen by configuration:
//	    [ClientTransport], an embedded peapod client joining a network from its
//	    directory URL, or [NymTransport], an external Nym native client spoken
//	    to over its WebSocket API. Handlers never know which;
//	  - the request protocol (package envelope): each message is parsed, a
//	    repeated request (same sender tag and id within a window) gets the
//	    first reply instead of running again, and malformed, oversized or
//	    excess requests are answered with an error code at once;
//	  - bounded work: a queue of fixed size in front of a fixed number of
//	    workers; when the queue is full the requester is told "overloaded";
//	    every request runs under a timeout (handlers.Timeout), with panics
//	    recovered (handlers.Recover) and one log line each (handlers.Logging);
//	  - the plugin supervisor (package plugins), which starts, restarts and
//	    stops the handler plugins;
//	  - the HTTP endpoint: GET /address, GET /.well-known/peapod.json (the
//	    signed descriptor, package descriptor), GET /healthz and GET /metrics.
//
// Handlers see an opaque requester id derived from the requester's sender
// tag with a secret of the host (HMAC-SHA256): stable for one requester,
// meaningless elsewhere, and different at every provider.
//
// [Host.Start] starts the plugins, then the transport, then the workers and
// the HTTP endpoint. [Host.Shutdown] stops them in this order: the HTTP
// endpoint; the intake of requests; the requests in flight and queued,
// which are given until the deadline to finish (then cancelled); the
// plugins; the transport, which gives replies it has accepted a moment to
// leave. docs/provider.md describes the protocol, the descriptor, the
// endpoint and the configuration.
package framework

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/framework/descriptor"
	"github.com/peapod-mixnet/peapod/handlers"
	"github.com/peapod-mixnet/peapod/internal/httpstop"
	"github.com/peapod-mixnet/peapod/plugins"
)

// Host is a running provider. Create it with New, then call Start once and
// Shutdown (or Close) once. Its methods are safe for concurrent use.
type Host struct {
	cfg        Config
	log        zerolog.Logger
	transport  Transport
	supervisor *plugins.Supervisor
	local      handlers.Router // the in-process services
	localNames map[string]bool // their names; fixed by New
	handler    handlers.Handler
	requesters *requesterIDs
	cache      *replyCache
	registry   *prometheus.Registry
	metrics    *metrics
	outcomes   outcomeCounts // for the status page
	created    time.Time     // when New made the Host
	network    descriptor.Network

	providerKey ed25519.PrivateKey
	signer      crypto.Signer // set by Start

	queue *fairQueue

	// recvCtx ends the intake; workCtx is the parent of every handler's
	// context, cancelled when the drain deadline passes; replyCtx is the
	// parent of every reply's, cancelled once the workers are done.
	recvCtx, workCtx, replyCtx          context.Context
	recvCancel, workCancel, replyCancel context.CancelFunc
	recvDone                            chan struct{}
	workers                             sync.WaitGroup

	httpServer *httpstop.Server
	httpLn     net.Listener
	httpDone   chan struct{}

	descMu sync.Mutex
	desc   signedDescriptor // guarded by descMu

	mu       sync.Mutex
	started  bool // Start was called
	running  bool // the workers and the receive loop were started
	serving  bool // the HTTP server was started
	stopped  bool // Shutdown was called
	stopOnce sync.Once
	stopErr  error
}

// signedDescriptor is the last descriptor signed, and what it was signed
// for.
type signedDescriptor struct {
	doc      []byte
	content  string // the Info it holds, as JSON
	renewAt  time.Time
	signedBy string
}

// New checks cfg, loads or creates the provider's keys in cfg.DataDir, and
// builds the transport and the plugin supervisor. It starts nothing: no
// process, no socket.
func New(cfg Config) (*Host, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("framework: data folder: %w", err)
	}
	h := &Host{
		cfg:     cfg,
		created: cfg.Now(),
		log:     cfg.Logger,
		cache: newReplyCache(cacheLimits{
			window:     cfg.Idempotence.Window,
			maxEntries: cfg.Idempotence.MaxEntries, maxBytes: cfg.Idempotence.MaxBytes,
			perSenderEntries: cfg.Idempotence.MaxEntriesPerRequester, perSenderBytes: cfg.Idempotence.MaxBytesPerRequester,
		}),
		registry: prometheus.NewRegistry(),
		queue:    newFairQueue(cfg.Limits.QueueSize),
		recvDone: make(chan struct{}),
		httpDone: make(chan struct{}),
	}
	h.recvCtx, h.recvCancel = context.WithCancel(context.Background())
	h.workCtx, h.workCancel = context.WithCancel(context.Background())
	h.replyCtx, h.replyCancel = context.WithCancel(context.Background())

	var err error
	if h.providerKey, err = loadProviderKey(cfg.DataDir); err != nil {
		return nil, err
	}
	if h.requesters, err = loadRequesterIDs(cfg.DataDir); err != nil {
		return nil, err
	}
	h.localNames = make(map[string]bool, len(cfg.Services))
	for _, s := range cfg.Services {
		if err := h.local.Register(s.ServiceInfo, s.Handler); err != nil {
			return nil, fmt.Errorf("framework: %w", err)
		}
		h.localNames[s.Name] = true
	}

	switch {
	case cfg.Transport != nil:
		h.transport = cfg.Transport
		h.network = cfg.Network
	case cfg.NymClientURL != "":
		nc := cfg.Nym
		nc.URL = cfg.NymClientURL
		nc.Logger = cfg.Logger.With().Str("component", "transport").Logger()
		t, err := NewNymTransport(nc)
		if err != nil {
			return nil, err
		}
		h.transport = t
		h.network = descriptor.Network{Type: descriptor.NetworkNym}
	default:
		cc := cfg.Client
		cc.DataDir = filepath.Join(cfg.DataDir, clientDir)
		cc.DirectoryURL = cfg.DirectoryURL
		cc.Logger = cfg.Logger // the client names its component itself
		t, err := NewClientTransport(ClientTransportConfig{Client: cc, Logger: cfg.Logger.With().Str("component", "transport").Logger()})
		if err != nil {
			return nil, err
		}
		h.transport = t
		h.network = descriptor.Network{Type: descriptor.NetworkPeapod, Directory: cfg.DirectoryURL}
		if tr := cfg.Client.Trust; tr != nil {
			h.network.Authorities, h.network.Threshold = tr.Keys(), tr.Threshold
		}
	}

	h.supervisor, err = plugins.NewSupervisor(plugins.SupervisorConfig{
		Dir:          cfg.Plugins.Dir,
		Paths:        cfg.Plugins.Paths,
		DataDir:      filepath.Join(cfg.DataDir, pluginsDataDir),
		Logger:       cfg.Logger,
		MinBackoff:   cfg.Plugins.MinBackoff,
		MaxBackoff:   cfg.Plugins.MaxBackoff,
		StartTimeout: cfg.Plugins.StartTimeout,
		MaxReplySize: cfg.Limits.MaxReplySize,
		Registerer:   h.registry,
	})
	if err != nil {
		h.closeTransportUnstarted()
		return nil, err
	}
	h.handler = handlers.Chain(handlers.HandlerFunc(h.route),
		handlers.Logging(cfg.Logger),
		handlers.Recover(),
		handlers.Timeout(cfg.Limits.RequestTimeout),
	)
	h.metrics = newMetrics(h.registry, h)
	h.httpServer = h.newHTTPServer()
	return h, nil
}

// closeTransportUnstarted releases a transport New built when New fails.
func (h *Host) closeTransportUnstarted() {
	if h.cfg.Transport == nil && h.transport != nil {
		_ = h.transport.Close()
	}
}

// Start starts the plugins, the transport, the workers and the HTTP
// endpoint, in that order, and returns once requests can flow. ctx bounds
// the starting only. On failure everything started is stopped again; the
// Host cannot be started twice.
func (h *Host) Start(ctx context.Context) (err error) {
	h.mu.Lock()
	if h.started || h.stopped {
		h.mu.Unlock()
		return errors.New("framework: host already started or stopped")
	}
	h.started = true
	h.mu.Unlock()
	defer func() {
		if err != nil {
			_ = h.Close()
		}
	}()

	if !h.cfg.HTTP.Disabled {
		if h.httpLn, err = net.Listen("tcp", h.cfg.HTTP.Addr); err != nil {
			return fmt.Errorf("framework: HTTP endpoint: %w", err)
		}
	}
	if err := h.supervisor.Start(ctx); err != nil {
		return err
	}
	if err := h.transport.Start(ctx); err != nil {
		return fmt.Errorf("framework: starting the transport: %w", err)
	}
	var signer crypto.Signer = h.providerKey
	if as, ok := h.transport.(AddressSigner); ok {
		if s := as.AddressSigner(); s != nil {
			signer = s
		}
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return errors.New("framework: host stopped while starting")
	}
	h.signer = signer
	h.running = true
	for range h.cfg.Limits.MaxConcurrent {
		h.workers.Add(1)
		go h.worker()
	}
	go h.receiveLoop()
	if h.httpLn != nil {
		h.serving = true
		go h.serveHTTP()
	}
	h.log.Info().
		Str("address", h.transport.Address().String()).
		Str("key", address.EncodeKey(signer.Public().(ed25519.PublicKey))).
		Str("http", h.HTTPAddr()).
		Msg("provider started")
	return nil
}

// Address returns the provider's current mixnet address; it is valid once
// Start has returned.
func (h *Host) Address() address.Address { return h.transport.Address() }

// Key returns the public key that signs the provider's descriptor: the
// identity key of its address when the transport can sign with it (the
// embedded client), else the provider's own key from its data folder.
func (h *Host) Key() ed25519.PublicKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.signer != nil {
		return h.signer.Public().(ed25519.PublicKey)
	}
	return h.providerKey.Public().(ed25519.PublicKey)
}

// HTTPAddr returns the address the HTTP endpoint listens on (useful with
// port 0), or "" when it is disabled or not started.
func (h *Host) HTTPAddr() string {
	if h.httpLn == nil {
		return ""
	}
	return h.httpLn.Addr().String()
}

// Services lists the services the provider offers now: the in-process ones
// and those of the plugins that started, sorted by name.
func (h *Host) Services() []handlers.ServiceInfo {
	local := h.local.Services()
	seen := make(map[string]bool, len(local))
	for _, s := range local {
		seen[s.Name] = true
	}
	out := local
	for _, s := range h.supervisor.Services() {
		if !seen[s.Name] {
			out = append(out, s)
		}
	}
	sortServices(out)
	return out
}

// Plugins describes every plugin the Host found, sorted by name (see
// plugins.Supervisor.Status).
func (h *Host) Plugins() []plugins.PluginStatus { return h.supervisor.Status() }

// Registry returns the Host's Prometheus registry, served at /metrics.
func (h *Host) Registry() *prometheus.Registry { return h.registry }

// route dispatches a request to an in-process service, or else to the
// plugins.
func (h *Host) route(ctx context.Context, req *handlers.Request) ([]byte, error) {
	if h.localNames[req.Service] {
		return h.local.Handle(ctx, req)
	}
	return h.supervisor.Handler().Handle(ctx, req)
}

// Close shuts the Host down as Shutdown does, with Config.DrainTimeout for
// the requests in flight.
func (h *Host) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.DrainTimeout)
	defer cancel()
	return h.Shutdown(ctx)
}

// Shutdown stops the Host, in this order:
//
//  1. the HTTP endpoint stops accepting connections and finishes the
//     requests it is serving;
//  2. the intake stops: no further message is read from the transport;
//  3. requests already accepted (running or queued) are given until ctx
//     ends to finish and send their replies; past that, the running ones
//     are cancelled and answered "handler_failed", those still queued are
//     answered "overloaded" (and forgotten, so that a retry with the same
//     id runs after a restart), each of these replies being given at most
//     a second to be accepted by the transport;
//  4. the plugins are stopped;
//  5. the transport is closed (it gives replies it accepted a moment to
//     leave).
//
// It returns when all of the Host's goroutines have ended. Shutdown may be
// called more than once, also without Start; later calls wait for the first
// and return its result.
func (h *Host) Shutdown(ctx context.Context) error {
	h.stopOnce.Do(func() { h.stopErr = h.shutdown(ctx) })
	return h.stopErr
}

func (h *Host) shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.stopped = true
	running, serving := h.running, h.serving
	h.mu.Unlock()

	var errs []error
	// 1. HTTP.
	if serving {
		if err := h.httpServer.Shutdown(ctx); err != nil {
			_ = h.httpServer.Close()
		}
		<-h.httpDone
	} else if h.httpLn != nil {
		h.httpLn.Close()
	}
	// 2. Intake.
	h.recvCancel()
	if running {
		<-h.recvDone
		// 3. Drain. The receive loop was the only sender on the queue.
		h.queue.close()
		drained := make(chan struct{})
		go func() { h.workers.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-ctx.Done():
			h.log.Warn().Int("queued", h.queue.len()).Msg("drain deadline passed; cancelling the requests in flight")
			h.workCancel()
			<-drained
		}
	}
	h.workCancel()
	h.replyCancel()
	// 4. Plugins.
	if err := h.supervisor.Close(); err != nil {
		errs = append(errs, err)
	}
	// 5. Transport.
	if err := h.transport.Close(); err != nil {
		errs = append(errs, fmt.Errorf("framework: closing the transport: %w", err))
	}
	h.log.Info().Msg("provider stopped")
	return errors.Join(errs...)
}
