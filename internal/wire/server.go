package wire

import (
	"bufio"
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
	// pushes back on that peer). packet is only valid until HandleFrame
	// returns; copy it to keep it.
	HandleFrame(from netip.AddrPort, h Header, packet []byte)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(from netip.AddrPort, h Header, packet []byte)

// HandleFrame calls f.
func (f HandlerFunc) HandleFrame(from netip.AddrPort, h Header, packet []byte) { f(from, h, packet) }

// Server defaults.
const (
	DefaultMaxConns       = 1024
	DefaultIdleTimeout    = 10 * time.Minute
	DefaultFrameTimeout   = 30 * time.Second
	DefaultReadBufferSize = 32 << 10
)

// ServerConfig configures a [Server]. Zero values take the documented
// defaults.
type ServerConfig struct {
	// Handler receives the frames. Required.
	Handler Handler
	// MaxConns bounds the connections served at once; a connection accepted
	// beyond it is closed at once. Each open connection holds a read buffer
	// and a MaxPacketLen packet buffer (about 64 KiB at the defaults).
	// Default DefaultMaxConns.
	MaxConns int
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
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.FrameTimeout == 0 {
		c.FrameTimeout = DefaultFrameTimeout
	}
	if c.ReadBufferSize == 0 {
		c.ReadBufferSize = DefaultReadBufferSize
	}
	switch {
	case c.Handler == nil:
		return errors.New("wire: ServerConfig.Handler is required")
	case c.MaxConns < 0:
		return fmt.Errorf("wire: ServerConfig.MaxConns %d is negative", c.MaxConns)
	case c.IdleTimeout < 0:
		return fmt.Errorf("wire: ServerConfig.IdleTimeout %s is negative", c.IdleTimeout)
	case c.FrameTimeout < 0:
		return fmt.Errorf("wire: ServerConfig.FrameTimeout %s is negative", c.FrameTimeout)
	case c.ReadBufferSize < 0:
		return fmt.Errorf("wire: ServerConfig.ReadBufferSize %d is negative", c.ReadBufferSize)
	}
	return nil
}

// ServerStats are a Server's counters since it was made.
type ServerStats struct {
	// Accepted counts connections served; Refused those closed at once
	// because MaxConns were open; Active is how many are open now.
	Accepted, Refused uint64
	Active            int
	// Frames counts well-formed frames handed to the Handler.
	Frames uint64
	// Connections closed because of the peer: a refused header (Malformed),
	// a stream that ended inside a frame (Truncated), a frame not completed
	// within FrameTimeout (FrameTimeouts), no frame within IdleTimeout
	// (IdleTimeouts).
	Malformed, Truncated, FrameTimeouts, IdleTimeouts uint64
}

// Server accepts TCP connections and reads frames from them. Create it with
// [NewServer], serve listeners with [Server.Serve] and stop it with
// [Server.Close]. Its methods are safe for concurrent use.
type Server struct {
	cfg ServerConfig
	log zerolog.Logger
	sem chan struct{} // one token per open connection

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup // accept loops and connections
	done      chan struct{}  // closed by Close

	accepted, refused, frames                         atomic.Uint64
	malformed, truncated, frameTimeouts, idleTimeouts atomic.Uint64
}

// NewServer returns a Server that hands frames to cfg.Handler.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	return &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		sem:       make(chan struct{}, cfg.MaxConns),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
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
		select {
		case s.sem <- struct{}{}:
		default:
			s.refused.Add(1)
			s.log.Warn().Str("peer", c.RemoteAddr().String()).Int("max_conns", s.cfg.MaxConns).
				Msg("refusing a connection: too many open")
			c.Close()
			continue
		}
		if !s.track(c) {
			<-s.sem
			c.Close()
			return nil
		}
		s.accepted.Add(1)
		go s.serveConn(c)
	}
}

// track registers c, or reports false when the server is closing.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
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
		for ln := range s.listeners {
			ln.Close()
		}
		for c := range s.conns {
			c.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Accepted:      s.accepted.Load(),
		Refused:       s.refused.Load(),
		Active:        len(s.sem),
		Frames:        s.frames.Load(),
		Malformed:     s.malformed.Load(),
		Truncated:     s.truncated.Load(),
		FrameTimeouts: s.frameTimeouts.Load(),
		IdleTimeouts:  s.idleTimeouts.Load(),
	}
}

// serveConn reads frames from c until it fails or the server closes.
func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
		<-s.sem
	}()
	peer := remoteAddrPort(c)
	log := s.log.With().Stringer("peer", peer).Logger()
	br := bufio.NewReaderSize(c, s.cfg.ReadBufferSize)
	buf := make([]byte, MaxPacketLen)
	for {
		idle, err := s.awaitFrame(c, br)
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
		s.closing(log, err, idle)
		return
	}
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
func (s *Server) closing(log zerolog.Logger, err error, idle bool) {
	var herr *HeaderError
	switch {
	case s.isClosed() && errors.Is(err, net.ErrClosed):
		// Close closed it.
	case idle && errors.Is(err, io.EOF):
		log.Debug().Msg("peer closed the connection")
	case idle && errors.Is(err, os.ErrDeadlineExceeded):
		s.idleTimeouts.Add(1)
		log.Debug().Dur("idle_timeout", s.cfg.IdleTimeout).Msg("closing an idle connection")
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
