package framework

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/wsapi"
)

// Defaults of a NymTransportConfig.
const (
	DefaultNymMinBackoff   = 100 * time.Millisecond
	DefaultNymMaxBackoff   = 5 * time.Second
	DefaultNymDialTimeout  = 5 * time.Second
	DefaultNymPingInterval = 10 * time.Second
	DefaultNymInboxSize    = 64
	// DefaultNymReadLimit is the largest frame accepted from the client:
	// room for the largest request and the frame's header.
	DefaultNymReadLimit = 16 << 20
)

// NymTransportConfig configures a NymTransport.
type NymTransportConfig struct {
	// URL is the client's WebSocket, e.g. "ws://127.0.0.1:1977". Required.
	URL string
	// MinBackoff and MaxBackoff bound the wait between attempts to
	// (re)connect: it starts at MinBackoff and doubles up to MaxBackoff,
	// with jitter. Defaults DefaultNymMinBackoff and DefaultNymMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds one connection attempt, including the SelfAddress
	// exchange that follows it. Default DefaultNymDialTimeout.
	DialTimeout time.Duration
	// PingInterval is how often the transport asks the client for its
	// address to check that the connection is alive (Nym's API has no
	// heartbeat); a client that does not answer within the interval is
	// disconnected from and reconnected to. Default DefaultNymPingInterval.
	PingInterval time.Duration
	// InboxSize is how many received messages wait for Receive before the
	// transport stops reading. Default DefaultNymInboxSize.
	InboxSize int
	// ReadLimit is the largest frame accepted, in bytes. Default
	// DefaultNymReadLimit.
	ReadLimit int64
	// Logger receives the transport's logs.
	Logger zerolog.Logger
}

// NymTransport is a Transport over a Nym native client (or any program that
// serves its WebSocket API, such as peapod's own client) in another
// process, spoken to with binary frames as reference §1 describes: requests
// arrive as Received responses with a sender tag, and replies go out as
// Reply requests to that tag. The Nym client holds the SURBs and the keys;
// it never gives out its identity key, so the Host signs its descriptor
// with the provider's own key.
//
// The transport survives the client restarting: when the connection
// breaks, or the client stops answering the periodic SelfAddress check, it
// reconnects with backoff and reads the address again (logging a warning
// if it changed). Replies wait for a connection until their context ends.
type NymTransport struct {
	cfg NymTransportConfig
	log zerolog.Logger

	inbox  chan Message
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	mu      sync.Mutex
	conn    *wsapi.Conn // nil while disconnected
	addr    address.Address
	changed chan struct{} // closed and replaced when conn changes
	started bool
	closed  bool
}

var _ Transport = (*NymTransport)(nil)

// NewNymTransport checks cfg. It connects to nothing until Start.
func NewNymTransport(cfg NymTransportConfig) (*NymTransport, error) {
	if cfg.URL == "" {
		return nil, errors.New("framework: NymTransportConfig.URL is required")
	}
	if err := checkURL(cfg.URL, "ws", "wss"); err != nil {
		return nil, fmt.Errorf("framework: NymTransportConfig.URL: %w", err)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"MinBackoff", &cfg.MinBackoff, DefaultNymMinBackoff},
		{"MaxBackoff", &cfg.MaxBackoff, DefaultNymMaxBackoff},
		{"DialTimeout", &cfg.DialTimeout, DefaultNymDialTimeout},
		{"PingInterval", &cfg.PingInterval, DefaultNymPingInterval},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("framework: NymTransportConfig.%s %v is negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, errors.New("framework: NymTransportConfig.MaxBackoff is less than MinBackoff")
	}
	if cfg.InboxSize < 0 || cfg.ReadLimit < 0 {
		return nil, errors.New("framework: NymTransportConfig.InboxSize and ReadLimit must not be negative")
	}
	if cfg.InboxSize == 0 {
		cfg.InboxSize = DefaultNymInboxSize
	}
	if cfg.ReadLimit == 0 {
		cfg.ReadLimit = DefaultNymReadLimit
	}
	t := &NymTransport{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("nym_client", cfg.URL).Logger(),
		inbox:   make(chan Message, cfg.InboxSize),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t, nil
}

// Start connects to the client and reads its address. It returns once
// connected, or with an error when ctx ends first; the transport keeps
// trying in the background until Close.
func (t *NymTransport) Start(ctx context.Context) error {
	t.mu.Lock()
	if t.started || t.closed {
		t.mu.Unlock()
		return errors.New("framework: transport already started or closed")
	}
	t.started = true
	t.mu.Unlock()
	go t.run()
	for {
		t.mu.Lock()
		conn, changed := t.conn, t.changed
		t.mu.Unlock()
		if conn != nil {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("framework: connecting to the Nym client at %s: %w", t.cfg.URL, ctx.Err())
		case <-t.ctx.Done():
			return ErrTransportClosed
		}
	}
}

// Address returns the client's address, as it last reported it.
func (t *NymTransport) Address() address.Address {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addr
}

// Connected reports whether the transport is connected to the client.
func (t *NymTransport) Connected() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.conn != nil
}

// Receive returns the next message the client received.
func (t *NymTransport) Receive(ctx context.Context) (Message, error) {
	select {
	case m := <-t.inbox:
		return m, nil
	case <-ctx.Done():
		return Message{}, fmt.Errorf("framework: receiving: %w", ctx.Err())
	case <-t.ctx.Done():
		return Message{}, ErrTransportClosed
	}
}

// Reply sends a Reply request for tag. While the transport is
// disconnected it waits for the connection to come back, until ctx ends.
// A send that fails because the connection broke is tried again on the
// next connection.
func (t *NymTransport) Reply(ctx context.Context, tag address.SenderTag, data []byte) error {
	req := wsapi.Reply{SenderTag: tag, Data: data}
	for {
		t.mu.Lock()
		conn, changed, closed := t.conn, t.changed, t.closed
		t.mu.Unlock()
		if closed {
			return ErrTransportClosed
		}
		if conn != nil {
			err := conn.Send(ctx, req)
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return fmt.Errorf("framework: replying: %w", ctx.Err())
			}
			// The connection broke; run notices and reconnects.
			t.dropConn(conn)
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("framework: replying: not connected to the Nym client: %w", ctx.Err())
		case <-t.ctx.Done():
			return ErrTransportClosed
		}
	}
}

// Close disconnects from the client and returns once the transport's
// goroutine has ended.
func (t *NymTransport) Close() error {
	t.mu.Lock()
	started := t.started
	t.closed = true
	conn := t.conn
	t.mu.Unlock()
	t.cancel()
	if conn != nil {
		_ = conn.Close()
	}
	if started {
		<-t.done
	}
	return nil
}

// run connects, reads until the connection breaks, and connects again,
// until Close.
func (t *NymTransport) run() {
	defer close(t.done)
	backoff := t.cfg.MinBackoff
	for t.ctx.Err() == nil {
		conn, err := t.connect()
		if err != nil {
			if t.ctx.Err() != nil {
				return
			}
			wait := jittered(backoff)
			t.log.Warn().Err(err).Dur("retry_in", wait).Msg("cannot connect to the Nym client")
			select {
			case <-time.After(wait):
			case <-t.ctx.Done():
				return
			}
			backoff = min(2*backoff, t.cfg.MaxBackoff)
			continue
		}
		backoff = t.cfg.MinBackoff
		t.serve(conn)
	}
}

// connect dials the client and asks for its address.
func (t *NymTransport) connect() (*wsapi.Conn, error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.DialTimeout)
	defer cancel()
	dialer := *websocket.DefaultDialer
	dialer.HandshakeTimeout = t.cfg.DialTimeout
	conn, err := wsapi.Dial(ctx, t.cfg.URL, wsapi.WithDialer(&dialer), wsapi.WithReadLimit(t.cfg.ReadLimit))
	if err != nil {
		return nil, err
	}
	addr, err := conn.SelfAddress(ctx)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("asking for its address: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		conn.Close()
		return nil, ErrTransportClosed
	}
	if !t.addr.IsZero() && t.addr != addr {
		t.log.Warn().Str("old", t.addr.String()).Str("new", addr.String()).
			Msg("the Nym client's address changed; requesters must learn the new one")
	}
	t.addr = addr
	t.conn = conn
	t.signalLocked()
	t.log.Info().Str("address", addr.String()).Msg("connected to the Nym client")
	return conn, nil
}

// serve reads from conn until it breaks or the transport closes, while a
// second goroutine checks that the client still answers.
func (t *NymTransport) serve(conn *wsapi.Conn) {
	ctx, cancel := context.WithCancel(t.ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t.ping(ctx, conn)
	}()
	defer func() {
		t.dropConn(conn)
		cancel()
		wg.Wait()
	}()
	for {
		resp, err := conn.Receive(t.ctx)
		var perr *wsapi.ProtocolError
		switch {
		case errors.As(err, &perr):
			t.log.Warn().Err(err).Msg("unreadable frame from the Nym client")
			continue
		case err != nil:
			if t.ctx.Err() == nil {
				t.log.Warn().Err(err).Msg("connection to the Nym client lost")
			}
			return
		}
		switch r := resp.(type) {
		case wsapi.Received:
			select {
			case t.inbox <- Message{Data: r.Data, SenderTag: r.SenderTag}:
			case <-t.ctx.Done():
				return
			}
		case wsapi.Error:
			// A reply the client could not send (for example no SURBs
			// left for that sender), or a request it did not understand.
			t.log.Warn().Str("kind", r.Kind.String()).Str("error", r.Message).Msg("error from the Nym client")
		default:
			// A late answer to a SelfAddress that timed out, or a lane
			// length nobody asked for.
		}
	}
}

// ping asks the client for its address every PingInterval and drops the
// connection when it does not answer within the interval. It skips the
// check while the inbox is full: the reader is then waiting for the Host,
// not for the client.
func (t *NymTransport) ping(ctx context.Context, conn *wsapi.Conn) {
	tick := time.NewTicker(t.cfg.PingInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if len(t.inbox) == cap(t.inbox) {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, t.cfg.PingInterval)
		addr, err := conn.SelfAddress(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			t.log.Warn().Err(err).Msg("the Nym client does not answer; reconnecting")
			t.dropConn(conn)
			return
		}
		t.mu.Lock()
		if addr != t.addr {
			t.log.Warn().Str("old", t.addr.String()).Str("new", addr.String()).Msg("the Nym client's address changed")
			t.addr = addr
		}
		t.mu.Unlock()
	}
}

// dropConn closes conn and, if it is the current connection, marks the
// transport disconnected.
func (t *NymTransport) dropConn(conn *wsapi.Conn) {
	_ = conn.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == conn {
		t.conn = nil
		t.signalLocked()
	}
}

// signalLocked wakes everyone waiting for a change of connection.
func (t *NymTransport) signalLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// jittered returns d plus or minus up to a quarter of it.
func jittered(d time.Duration) time.Duration {
	q := int64(d) / 4
	if q <= 0 {
		return d
	}
	return d - time.Duration(q) + time.Duration(rand.Int64N(2*q+1))
}
