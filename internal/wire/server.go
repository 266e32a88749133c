package wire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Handler receives the frames a [Server] reads.
type Handler interface {
	// HandleFrame is called once for every well-formed frame, on the
	// goroutine that reads the frame's connection: frames of one connection
	// arrive in order, calls for different connections run concurrently,
	// and a handler that blocks stalls only its own connection (TCP then
	// pushes back on that peer). from is the same *Peer for every frame of
	// a connection, and may be kept; packet is only valid until
	// HandleFrame returns: copy it to keep it.
	HandleFrame(from *Peer, h Header, packet []byte)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(from *Peer, h Header, packet []byte)

// HandleFrame calls f.
func (f HandlerFunc) HandleFrame(from *Peer, h Header, packet []byte) { f(from, h, packet) }

// Server defaults.
const (
	DefaultMaxConns               = 1024
	DefaultMaxHandshakes          = 64
	DefaultMaxHandshakesPerSource = 8
	DefaultMaxUnlistedHandshakes  = 8
	DefaultMaxConnsPerPeer        = 4
	DefaultMaxFaults              = 3
	DefaultIdleTimeout            = 10 * time.Minute
	DefaultFrameTimeout           = 30 * time.Second
	DefaultReadBufferSize         = 32 << 10
)

// ServerConfig configures a [Server]. Zero values take the documented
// defaults.
type ServerConfig struct {
	// Handler receives the frames. Required.
	Handler Handler
	// Noise, when set, secures every connection with Noise (see
	// NoiseConfig) and admits only the peers Noise.Peers accepts. Without
	// it the server reads plain frames from anyone: for tests and
	// benchmarks on a trusted network.
	Noise *NoiseConfig
	// MaxConns bounds the connections open at once. On a plain server a
	// connection accepted beyond it is closed at once; on a Noise server
	// the oldest connection still in its handshake is closed to make room,
	// and the new one is refused only when every open connection is an
	// authenticated peer's. An authenticated connection holds a read
	// buffer and a MaxPacketLen packet buffer (about 64 KiB at the
	// defaults; twice that with Noise). Default DefaultMaxConns.
	MaxConns int
	// MaxHandshakes bounds the connections in their Noise handshake,
	// MaxHandshakesPerSource those from one IP address, and
	// MaxUnlistedHandshakes those from addresses no accepted peer has
	// (Peers.AcceptsAddr; such a connection is let in only in case its
	// node joined the topology a moment ago, and refused after its
	// handshake unless a fresh topology lists it). A connection beyond a
	// bound closes the oldest one in the same bound (and an unlisted one
	// only closes unlisted ones), so that connections that never finish
	// their handshake, from anywhere, from one address or from outside the
	// topology, cannot lock a listed peer out. The bounds are checked
	// before anything is read or allocated for the connection. Defaults
	// DefaultMaxHandshakes, DefaultMaxHandshakesPerSource and
	// DefaultMaxUnlistedHandshakes.
	MaxHandshakes, MaxHandshakesPerSource, MaxUnlistedHandshakes int
	// MaxConnsPerPeer bounds the authenticated connections of one peer
	// (one Noise key); a newer one closes the oldest, so that a peer that
	// reconnects is never refused because of connections it lost. Default
	// DefaultMaxConnsPerPeer.
	MaxConnsPerPeer int
	// MaxFaults is how many frames failing authentication past the link
	// (Peer.Fault) close a plain connection. Noise connections are not
	// closed for them: see Peer.Fault. Default DefaultMaxFaults.
	MaxFaults int
	// IdleTimeout closes a connection on which no frame has started for
	// this long. Default DefaultIdleTimeout: longer than a Pool's idle
	// timeout, so that the sending side normally closes first.
	IdleTimeout time.Duration
	// FrameTimeout closes a connection that has sent part of a frame and
	// not the rest within this long (a slow-loris or half-open peer).
	// Default DefaultFrameTimeout.
	FrameTimeout time.Duration
	// ReadBufferSize is the size of each connection's read buffer. Default
	// DefaultReadBufferSize.
	ReadBufferSize int
	// Logger receives one line per closed connection that misbehaved (field
	// peer); the zero value discards them.
	Logger zerolog.Logger
}

func (c *ServerConfig) applyDefaults() error {
	defaults := []struct {
		v *int
		d int
	}{
		{&c.MaxConns, DefaultMaxConns}, {&c.MaxHandshakes, DefaultMaxHandshakes},
		{&c.MaxHandshakesPerSource, DefaultMaxHandshakesPerSource}, {&c.MaxUnlistedHandshakes, DefaultMaxUnlistedHandshakes},
		{&c.MaxConnsPerPeer, DefaultMaxConnsPerPeer},
		{&c.MaxFaults, DefaultMaxFaults}, {&c.ReadBufferSize, DefaultReadBufferSize},
	}
	for _, d := range defaults {
		if *d.v == 0 {
			*d.v = d.d
		}
		if *d.v < 0 {
			return fmt.Errorf("wire: ServerConfig has a negative bound %d", *d.v)
		}
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.FrameTimeout == 0 {
		c.FrameTimeout = DefaultFrameTimeout
	}
	switch {
	case c.Handler == nil:
		return errors.New("wire: ServerConfig.Handler is required")
	case c.IdleTimeout < 0:
		return fmt.Errorf("wire: ServerConfig.IdleTimeout %s is negative", c.IdleTimeout)
	case c.FrameTimeout < 0:
		return fmt.Errorf("wire: ServerConfig.FrameTimeout %s is negative", c.FrameTimeout)
	}
	if c.Noise != nil {
		n := *c.Noise // the caller's struct is left as it was
		if err := n.applyDefaults(); err != nil {
			return err
		}
		c.Noise = &n
	}
	return nil
}

// ServerStats are a Server's counters since it was made.
type ServerStats struct {
	// Accepted counts connections admitted; Active is how many are open
	// now, Handshaking how many of them are in their Noise handshake, and
	// Peers how many peers (Noise keys) have an authenticated connection.
	Accepted    uint64
	Active      int
	Handshaking int
	Peers       int
	// Connections turned away or closed by the server's bounds: closed at
	// once because MaxConns were open (Refused); from an address no
	// accepted peer has, after their handshake, since a fresh topology did
	// not list them either (RefusedAddr); from a listed address with a key
	// Peers does not accept there (RefusedKey); in their handshake, closed
	// to make room
	// for a newer one (Evicted); a peer's older connection closed for its
	// newer (Replaced); a peer's connection closed because the topology
	// no longer lists it (Unlisted); a plain connection closed after
	// MaxFaults faults (FaultCloses).
	Refused, RefusedAddr, RefusedKey, Evicted, Replaced, Unlisted, FaultCloses uint64
	// Frames counts well-formed frames handed to the Handler; Faults the
	// frames the Handler reported with Peer.Fault.
	Frames, Faults uint64
	// Connections closed because of the peer: a refused frame or noise
	// header (Malformed), a stream that ended inside a frame (Truncated),
	// a frame not completed within FrameTimeout (FrameTimeouts), no frame
	// within IdleTimeout (IdleTimeouts), a Noise handshake that failed
	// (HandshakeFailures) or did not finish within its timeout
	// (HandshakeTimeouts), a Noise data message that failed
	// authentication (AuthFailures).
	Malformed, Truncated, FrameTimeouts, IdleTimeouts  uint64
	HandshakeFailures, HandshakeTimeouts, AuthFailures uint64
}

// Server accepts TCP connections and reads frames from them. Create it with
// [NewServer], serve listeners with [Server.Serve] and stop it with
// [Server.Close]. Its methods are safe for concurrent use.
type Server struct {
	cfg   ServerConfig
	log   zerolog.Logger
	noise *NoiseConfig // nil on a plain server

	ctx    context.Context // cancelled by Close: ends waits for the topology
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	table     connTable      // guarded by mu
	wg        sync.WaitGroup // accept loops and connections
	done      chan struct{}  // closed by Close

	// limited keeps floods of refusals from flooding the log.
	limited logLimiter

	accepted, refused, refusedAddr, refusedKey, evicted, replaced, unlisted atomic.Uint64
	frames, faults, faultCloses                                             atomic.Uint64
	malformed, truncated, frameTimeouts, idleTimeouts                       atomic.Uint64
	handshakeFailures, handshakeTimeouts, authFailures                      atomic.Uint64
}

// NewServer returns a Server that hands frames to cfg.Handler.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		noise:     cfg.Noise,
		ctx:       ctx,
		cancel:    cancel,
		listeners: make(map[net.Listener]struct{}),
		table:     newConnTable(),
		done:      make(chan struct{}),
	}, nil
}

// ErrServerClosed is returned by Serve when it is called after Close.
var ErrServerClosed = errors.New("wire: server closed")

// Serve accepts connections on ln and serves each on its own goroutine until
// Close is called, then returns nil; it closes ln. It returns
// ErrServerClosed if the server was already closed, and an error if ln
// fails for good. Temporary accept failures (such as too many open files)
// are logged and retried after a pause.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var pause time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("wire: accepting: %w", err)
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			s.log.Warn().Err(err).Dur("retry_in", pause).Msg("accepting a connection failed")
			select {
			case <-s.done:
				return nil
			case <-time.After(pause):
			}
			continue
		}
		pause = 0
		if !s.admit(c) {
			return nil
		}
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops every listener, closes every connection and returns when all
// of the server's goroutines (Serve loops included) have ended. Frames being
// handled finish first. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
		s.cancel()
		for ln := range s.listeners {
			ln.Close()
		}
		for sc := range s.table.all {
			sc.c.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	active, handshaking, peers := len(s.table.all), len(s.table.pending), len(s.table.byKey)
	s.mu.Unlock()
	return ServerStats{
		Accepted:          s.accepted.Load(),
		Active:            active,
		Handshaking:       handshaking,
		Peers:             peers,
		Refused:           s.refused.Load(),
		RefusedAddr:       s.refusedAddr.Load(),
		RefusedKey:        s.refusedKey.Load(),
		Evicted:           s.evicted.Load(),
		Replaced:          s.replaced.Load(),
		Unlisted:          s.unlisted.Load(),
		FaultCloses:       s.faultCloses.Load(),
		Frames:            s.frames.Load(),
		Faults:            s.faults.Load(),
		Malformed:         s.malformed.Load(),
		Truncated:         s.truncated.Load(),
		FrameTimeouts:     s.frameTimeouts.Load(),
		IdleTimeouts:      s.idleTimeouts.Load(),
		HandshakeFailures: s.handshakeFailures.Load(),
		HandshakeTimeouts: s.handshakeTimeouts.Load(),
		AuthFailures:      s.authFailures.Load(),
	}
}

// serveConn runs sc's handshake, when the server has Noise, and then reads
// frames from it until it fails or the server closes.
func (s *Server) serveConn(sc *serverConn) {
	defer s.wg.Done()
	defer s.forget(sc)
	peer := &Peer{Addr: remoteAddrPort(sc.c), sc: sc}
	var conn net.Conn = sc.c
	if s.noise != nil {
		deadline := time.Now().Add(s.noise.HandshakeTimeout)
		nc, err := Respond(sc.c, s.noise.Key, deadline)
		if err != nil {
			s.handshakeFailed(sc, peer.Addr, err)
			return
		}
		peer.Key, peer.Secure = nc.PeerKey(), true
		if !s.awaitPeer(sc, peer.Key, deadline) {
			if sc.listed {
				s.refusedKey.Add(1)
			} else {
				s.refusedAddr.Add(1)
			}
			s.limited.event(s.log, zerolog.WarnLevel, "refused_key").Stringer("peer", peer.Addr).
				Stringer("key", peer.ID()).Msg("refusing a connection: no previous-layer node has its Noise key and address")
			return
		}
		if !s.establish(sc, peer.Key) {
			return
		}
		conn = nc
	}
	log := s.log.With().Stringer("peer", peer.Addr).Logger()
	br := bufio.NewReaderSize(conn, s.cfg.ReadBufferSize)
	buf := make([]byte, MaxPacketLen)
	for {
		idle, err := s.awaitFrame(conn, br)
		if err == nil {
			var h Header
			var packet []byte
			h, packet, err = ReadFrame(br, buf)
			if err == nil {
				s.frames.Add(1)
				s.cfg.Handler.HandleFrame(peer, h, packet)
				continue
			}
		}
		s.closing(log, sc, err, idle)
		return
	}
}

// awaitPeer asks Peers whether the peer with key, on sc, may send to this
// node, letting it look at a newer topology until deadline (or until the
// server closes).
func (s *Server) awaitPeer(sc *serverConn, key [NoiseKeySize]byte, deadline time.Time) bool {
	if s.noise.Peers.AcceptsPeer(sc.src, key) {
		return true
	}
	ctx, cancel := context.WithDeadline(s.ctx, deadline)
	defer cancel()
	return s.noise.Peers.AwaitPeer(ctx, sc.src, key)
}

// handshakeFailed counts and logs a failed handshake. Failures are logged
// at debug level (anyone can cause them), rate-limited warnings aside.
func (s *Server) handshakeFailed(sc *serverConn, from netip.AddrPort, err error) {
	if s.gone(sc) {
		return
	}
	if isTimeout(err) {
		s.handshakeTimeouts.Add(1)
	} else {
		s.handshakeFailures.Add(1)
	}
	s.limited.event(s.log, zerolog.InfoLevel, "handshake").Err(err).Stringer("peer", from).
		Msg("closing a connection: Noise handshake failed")
}

// awaitFrame waits, for at most IdleTimeout, until a frame starts, then sets
// a deadline of FrameTimeout for the rest of it unless it is already
// buffered. idle reports whether the wait for the first byte was the part
// that failed.
func (s *Server) awaitFrame(c net.Conn, br *bufio.Reader) (idle bool, err error) {
	if br.Buffered() == 0 {
		if err := c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout)); err != nil {
			return true, err
		}
		if _, err := br.Peek(1); err != nil {
			return true, err
		}
	}
	if !frameBuffered(br) {
		if err := c.SetReadDeadline(time.Now().Add(s.cfg.FrameTimeout)); err != nil {
			return false, err
		}
	}
	return false, nil
}

// closing counts and logs why a connection ends.
func (s *Server) closing(log zerolog.Logger, sc *serverConn, err error, idle bool) {
	var herr *HeaderError
	switch {
	case s.gone(sc):
		// Close, a bound or a fault closed it; that was counted.
	case idle && errors.Is(err, io.EOF):
		log.Debug().Msg("peer closed the connection")
	case idle && errors.Is(err, os.ErrDeadlineExceeded):
		s.idleTimeouts.Add(1)
		log.Debug().Dur("idle_timeout", s.cfg.IdleTimeout).Msg("closing an idle connection")
	case errors.Is(err, ErrNoiseAuthentication):
		s.authFailures.Add(1)
		log.Warn().Err(err).Msg("closing the connection: a Noise message failed authentication")
	case errors.As(err, &herr):
		s.malformed.Add(1)
		log.Warn().Err(err).Msg("closing the connection: malformed frame")
	case errors.Is(err, io.ErrUnexpectedEOF):
		s.truncated.Add(1)
		log.Warn().Err(err).Msg("peer closed the connection in the middle of a frame")
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.frameTimeouts.Add(1)
		log.Warn().Dur("frame_timeout", s.cfg.FrameTimeout).Msg("closing the connection: frame not completed in time")
	default:
		log.Info().Err(err).Msg("connection failed")
	}
}

// remoteAddrPort returns c's remote address, or the zero AddrPort for a
// connection that is not TCP.
func remoteAddrPort(c net.Conn) netip.AddrPort {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
