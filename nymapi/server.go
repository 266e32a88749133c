package nymapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/client"
)

// DefaultListenAddr is where Nym's native client serves its WebSocket API,
// and where cmd/client serves this one unless told otherwise.
const DefaultListenAddr = "127.0.0.1:1977"

// Defaults of a zero Config.
const (
	// DefaultMaxFrameSize bounds the frames an application may send: a
	// message of 16 MiB, far beyond one Sphinx payload; the client splits
	// messages into as many packets as they need.
	DefaultMaxFrameSize = 16 << 20
	// DefaultMaxConnections bounds the WebSocket connections open at once.
	DefaultMaxConnections = 64
	// DefaultQueueFrames and DefaultQueueBytes bound each connection's
	// outgoing queue.
	DefaultQueueFrames = 1024
	DefaultQueueBytes  = 64 << 20
	// DefaultSlowTimeout is how long a connection may make no progress on a
	// full outgoing queue, or block in one write, before it is closed.
	DefaultSlowTimeout = 10 * time.Second
	// DefaultPingInterval is the gap between WebSocket pings on a connection.
	DefaultPingInterval = 30 * time.Second
	// DefaultFormatWait is how long the frames for a new connection are held
	// until its first request shows which frame type it speaks.
	DefaultFormatWait = time.Second
)

// idlePings is how many ping intervals may pass without any frame (a pong
// included) from the application before its connection is closed.
const idlePings = 3

// closeWriteTimeout bounds how long writing a close frame may take.
const closeWriteTimeout = time.Second

// Config configures a Server. Only Backend is required; a zero or negative
// value of the other fields takes the default, except where noted.
type Config struct {
	// Backend is the client the Server serves. Required.
	Backend Backend
	// Logger receives one line per connection opened or closed and per
	// problem; the zero value discards them.
	Logger zerolog.Logger

	// MaxFrameSize bounds the size of a request frame, in bytes. A larger
	// frame is read to its end, dropped, and answered with an Error
	// (KindMalformedRequest); the connection stays usable. Default
	// DefaultMaxFrameSize.
	MaxFrameSize int64
	// MaxConnections bounds the connections open at once; more are refused
	// with HTTP 503. Default DefaultMaxConnections.
	MaxConnections int
	// QueueFrames and QueueBytes bound each of the two shares of a
	// connection's outgoing queue: answers to its requests (the bytes are
	// those of error texts) and messages from the mixnet (the bytes are
	// their data). Default DefaultQueueFrames and DefaultQueueBytes.
	QueueFrames int
	QueueBytes  int
	// SlowTimeout is how long a connection may take nothing from its full
	// outgoing queue, or block in a single write, before it is closed as
	// too slow. While the queue of one connection is full, messages for all
	// connections wait (at most about this long) rather than be lost.
	// Default DefaultSlowTimeout.
	SlowTimeout time.Duration
	// PingInterval is the gap between WebSocket pings on every connection; a
	// connection from which nothing (not even a pong) arrives for three
	// intervals is closed. Negative turns pings and the idle check off.
	// Default DefaultPingInterval.
	PingInterval time.Duration
	// FormatWait is how long frames for a new connection wait for its first
	// request, whose frame type they then take (see the package doc).
	// Negative does not wait. Default DefaultFormatWait.
	FormatWait time.Duration
	// AllowedOrigins are the web origins ("http://localhost:5173", scheme
	// and host, with the port unless it is the scheme's default) whose
	// pages may connect, besides the client's own origin. Handshakes
	// without an Origin header (applications, not web pages) are always
	// accepted; from any other origin they are refused with HTTP 403, so
	// that a web site cannot drive the client from a user's browser. See
	// ParseOrigin.
	AllowedOrigins []string
	// CheckOrigin, if set, decides about the origins AllowedOrigins does
	// not admit (instead of refusing them).
	CheckOrigin func(r *http.Request) bool
}

func (c *Config) applyDefaults() {
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.QueueFrames <= 0 {
		c.QueueFrames = DefaultQueueFrames
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.SlowTimeout <= 0 {
		c.SlowTimeout = DefaultSlowTimeout
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.FormatWait == 0 {
		c.FormatWait = DefaultFormatWait
	}
	// A connection must not be found too slow while its frames are held.
	c.FormatWait = min(c.FormatWait, c.SlowTimeout/2)
}

// errNoBackend is what a Server without a Backend answers.
var errNoBackend = errors.New("nymapi: Config.Backend is nil")

// Server serves Nym's native WebSocket API for a Backend. Create it with New;
// it is safe for concurrent use, and Close must be called to release it.
type Server struct {
	cfg      Config
	log      zerolog.Logger
	upgrader websocket.Upgrader
	origins  map[string]bool // Config.AllowedOrigins, in ParseOrigin's form

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the Server started or runs in

	mu        sync.Mutex
	closed    bool
	nextID    uint64 // of connections, for logs
	upgrading int    // handshakes under way, counted against MaxConnections
	conns     map[*conn]struct{}
	servers   map[*http.Server]struct{}
	active    context.Context // nil while no connection is open; ends when the last one closes
	inactive  context.CancelFunc
	wake      chan struct{} // closed and replaced when the first connection opens

	// returned holds messages every connection they went to dropped
	// unwritten, oldest first; recvCancel wakes the receive loop from the
	// backend to send them (see giveBack).
	returned   []client.Message
	recvCancel context.CancelFunc

	stats counters
}

// New returns a Server for cfg.Backend. It starts one goroutine that reads
// from the backend while at least one application is connected. A nil
// Backend gives a Server that refuses every connection (its Serve returns
// an error).
func New(cfg Config) *Server {
	cfg.applyDefaults()
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("component", "nymapi").Logger(),
		conns:   map[*conn]struct{}{},
		servers: map[*http.Server]struct{}{},
		wake:    make(chan struct{}),
	}
	s.origins = make(map[string]bool, len(cfg.AllowedOrigins))
	for _, o := range cfg.AllowedOrigins {
		if origin, err := ParseOrigin(o); err == nil {
			s.origins[origin] = true
		}
	}
	s.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.SlowTimeout,
		CheckOrigin:      s.checkOrigin,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.Backend != nil {
		s.wg.Add(1)
		go s.receiveLoop()
	}
	return s
}

// Handler returns the HTTP handler that accepts WebSocket connections, on
// any path, as Nym's client does. The query parameter format=json (or
// format=text) or format=binary sets the frame type of the connection's
// first frames (see the package doc). The handler returns when the
// connection ends.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Serve accepts connections on ln until Close, and closes ln. It returns nil
// when Close ended it, and otherwise the error that stopped it.
func (s *Server) Serve(ln net.Listener) error {
	if s.cfg.Backend == nil {
		ln.Close()
		return errNoBackend
	}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.SlowTimeout,
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return errors.New("nymapi: serving on a closed server")
	}
	s.servers[hs] = struct{}{}
	s.mu.Unlock()

	s.log.Info().Str("listen", ln.Addr().String()).Msg("serving the WebSocket API")
	err := hs.Serve(ln)
	s.mu.Lock()
	delete(s.servers, hs)
	closed := s.closed
	s.mu.Unlock()
	if closed && errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("nymapi: serving: %w", err)
}

// Close stops every Serve, closes every connection (with a WebSocket close
// frame, "going away") and returns when every goroutine of the Server has
// ended, those of handlers run by another http.Server included. Messages
// the Server has taken from the backend and not yet written are lost; those
// it has not taken stay in the backend. It does not close the Backend. Close
// may be called more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	servers := make([]*http.Server, 0, len(s.servers))
	for hs := range s.servers {
		servers = append(servers, hs)
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	var errs []error
	for _, hs := range servers {
		if err := hs.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	var closing sync.WaitGroup
	for _, c := range conns {
		closing.Go(func() { c.close(websocket.CloseGoingAway, "server closing") })
	}
	closing.Wait()
	s.cancel()
	s.wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nymapi: closing: %w", err)
	}
	return nil
}

// serveHTTP upgrades one request to a WebSocket and serves it until it ends.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Backend == nil {
		http.Error(w, errNoBackend.Error(), http.StatusInternalServerError)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		s.stats.refused[refusedHandshake].Add(1)
		http.Error(w, "nymapi: this is a WebSocket endpoint (Nym's native client API)", http.StatusBadRequest)
		return
	}
	initial, err := parseFormat(r.URL.Query().Get("format"))
	if err != nil {
		s.stats.refused[refusedHandshake].Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !s.reserve() {
		s.stats.refused[refusedFull].Add(1)
		http.Error(w, "nymapi: too many connections, or closing", http.StatusServiceUnavailable)
		return
	}
	defer s.wg.Done()
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.unreserve()
		s.stats.refused[refusedHandshake].Add(1)
		s.log.Debug().Err(err).Str("remote", r.RemoteAddr).Msg("refused a WebSocket handshake")
		return // the upgrader has answered
	}
	c := s.register(ws, r.RemoteAddr, initial)
	if c == nil {
		return
	}
	c.run()
}

// reserve counts a connection about to be upgraded, or refuses it when the
// Server is closed or full. On success it has added one to s.wg.
func (s *Server) reserve() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.conns)+s.upgrading >= s.cfg.MaxConnections {
		return false
	}
	s.upgrading++
	s.wg.Add(1)
	return true
}

// unreserve undoes reserve after a failed upgrade.
func (s *Server) unreserve() {
	s.mu.Lock()
	s.upgrading--
	s.mu.Unlock()
}

// register turns a reservation into an open connection. It returns nil,
// having closed ws, when the Server closed during the handshake.
func (s *Server) register(ws *websocket.Conn, remote string, initial form) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.upgrading--
	if s.closed {
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server closing")
		_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeWriteTimeout))
		ws.Close()
		return nil
	}
	s.nextID++
	s.stats.accepted.Add(1)
	c := newConn(s, ws, s.nextID, remote, initial)
	if len(s.conns) == 0 {
		s.active, s.inactive = context.WithCancel(s.ctx)
		close(s.wake)
		s.wake = make(chan struct{})
	}
	s.conns[c] = struct{}{}
	return c
}

// unregister forgets a closed connection.
func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	if len(s.conns) == 0 {
		s.inactive()
		s.active, s.inactive = nil, nil
	}
}

// connections returns the open connections.
func (s *Server) connections() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// waitActive waits until a connection is open and returns a context that
// ends when none is left or the Server closes. ok is false once the Server
// is closed.
func (s *Server) waitActive() (ctx context.Context, ok bool) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, false
		}
		if s.active != nil {
			ctx := s.active
			s.mu.Unlock()
			return ctx, true
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-s.ctx.Done():
			return nil, false
		}
	}
}

// spawn runs f on a goroutine the Server waits for at Close, unless the
// Server is closed already; it reports whether f runs.
func (s *Server) spawn(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}
