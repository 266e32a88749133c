package wsapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/peapod-mixnet/peapod/address"
)

// ErrClosed is returned (wrapped) by the methods of a Conn after Close.
var ErrClosed = errors.New("wsapi: connection closed")

// closeWriteTimeout bounds how long Close waits to send the close frame.
const closeWriteTimeout = time.Second

// Option configures Dial.
type Option func(*dialConfig)

type dialConfig struct {
	text      bool
	dialer    *websocket.Dialer
	readLimit int64
}

// WithJSON makes the Conn send requests as JSON in text frames instead of
// the default binary frames. Either way it reads responses of both kinds.
// Nym's own client understands only the JSON forms of Send, SendAnonymous,
// Reply and SelfAddress (see the package doc).
func WithJSON() Option {
	return func(c *dialConfig) { c.text = true }
}

// WithDialer sets the WebSocket dialer (timeouts, TLS, proxy); the default,
// also used for nil, is websocket.DefaultDialer.
func WithDialer(d *websocket.Dialer) Option {
	return func(c *dialConfig) {
		if d != nil {
			c.dialer = d
		}
	}
}

// WithReadLimit caps the size of a frame the Conn accepts, in bytes; a
// larger frame ends the connection. The default, 0, means no cap.
func WithReadLimit(n int64) Option {
	return func(c *dialConfig) { c.readLimit = n }
}

// Conn is an application's connection to a client that serves this API (a
// Nym native client or peapod's client).
//
// One goroutine may call Receive while another calls Send; SelfAddress may
// be called from any goroutine, also while another is blocked in Receive.
// Concurrent calls of the same method are serialized. A context that ends
// while a call is blocked on the network closes the Conn, because the
// WebSocket cannot be resumed after a partial frame; a context that has
// already ended when a call starts only fails that call.
type Conn struct {
	ws   *websocket.Conn
	text bool

	writeMu  sync.Mutex
	writeBuf []byte // guarded by writeMu

	// readTurn holds one token while a goroutine reads frames.
	readTurn chan struct{}

	mu      sync.Mutex
	pending []frameResult          // read during SelfAddress, waiting for Receive
	waiters []chan address.Address // SelfAddress calls waiting for their answer
	fatal   error                  // first error that broke the connection

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}
}

type frameResult struct {
	resp Response
	err  error // a *ProtocolError
}

// Dial connects to the client's WebSocket at url, for example
// "ws://127.0.0.1:1977".
func Dial(ctx context.Context, url string, opts ...Option) (*Conn, error) {
	cfg := dialConfig{dialer: websocket.DefaultDialer}
	for _, o := range opts {
		o(&cfg)
	}
	ws, resp, err := cfg.dialer.DialContext(ctx, url, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("wsapi: dialing %s: %w (HTTP status %s)", url, err, resp.Status)
		}
		return nil, fmt.Errorf("wsapi: dialing %s: %w", url, err)
	}
	ws.SetReadLimit(cfg.readLimit)
	return &Conn{
		ws:       ws,
		text:     cfg.text,
		readTurn: make(chan struct{}, 1),
		closed:   make(chan struct{}),
	}, nil
}

// Send writes r as one frame, binary unless the Conn was dialed WithJSON.
// It returns once the frame is handed to the operating system; the client
// reports a failure, if any, later as an Error response.
func (c *Conn) Send(ctx context.Context, r Request) error {
	if r == nil {
		return errors.New("wsapi: sending a nil request")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("wsapi: sending: %w", err)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.brokenErr(); err != nil {
		return err
	}
	typ := websocket.BinaryMessage
	if c.text {
		typ, c.writeBuf = websocket.TextMessage, r.appendJSON(c.writeBuf[:0])
	} else {
		c.writeBuf = r.appendBinary(c.writeBuf[:0])
	}
	stop := context.AfterFunc(ctx, c.abort)
	err := c.ws.WriteMessage(typ, c.writeBuf)
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		return c.fail(fmt.Errorf("wsapi: sending: %w", err))
	}
	return nil
}

// Receive returns the next response from the client. A *ProtocolError means
// one frame could not be parsed; the Conn stays usable. Any other error ends
// the Conn. A SelfAddressResponse that answers a pending SelfAddress call
// goes to that call, not to Receive.
func (c *Conn) Receive(ctx context.Context) (Response, error) {
	if err := c.takeReadTurn(ctx); err != nil {
		return nil, err
	}
	defer c.releaseReadTurn()
	for {
		if r, ok := c.popPending(); ok {
			return r.resp, r.err
		}
		resp, err := c.readFrame(ctx)
		if err != nil {
			return nil, err
		}
		if sa, ok := resp.(SelfAddressResponse); ok && c.deliverSelfAddress(sa.Address) {
			continue
		}
		return resp, nil
	}
}

// SelfAddress asks the client for its address and waits for the answer.
// Responses that arrive in the meantime are kept for Receive. It waits until
// ctx ends if the client never answers, so give ctx a deadline.
func (c *Conn) SelfAddress(ctx context.Context) (address.Address, error) {
	answer := make(chan address.Address, 1)
	c.mu.Lock()
	c.waiters = append(c.waiters, answer)
	c.mu.Unlock()
	defer c.dropWaiter(answer)

	if err := c.Send(ctx, SelfAddress{}); err != nil {
		return address.Address{}, err
	}
	for {
		select {
		case a := <-answer:
			return a, nil
		case c.readTurn <- struct{}{}:
			err := c.readUntilAnswered(ctx, answer)
			c.releaseReadTurn()
			if err != nil {
				return address.Address{}, err
			}
			return <-answer, nil
		case <-ctx.Done():
			return address.Address{}, fmt.Errorf("wsapi: waiting for self address: %w", ctx.Err())
		case <-c.closed:
			return address.Address{}, ErrClosed
		}
	}
}

// readUntilAnswered reads frames, holding the read turn, until answer has a
// value (it returns nil only then), keeping other responses for Receive.
func (c *Conn) readUntilAnswered(ctx context.Context, answer chan address.Address) error {
	for len(answer) == 0 {
		resp, err := c.readFrame(ctx)
		var perr *ProtocolError
		switch {
		case errors.As(err, &perr):
			c.pushPending(frameResult{err: err})
		case err != nil:
			return err
		default:
			if sa, ok := resp.(SelfAddressResponse); ok && c.deliverSelfAddress(sa.Address) {
				continue
			}
			c.pushPending(frameResult{resp: resp})
		}
	}
	return nil
}

// Close sends a close frame (waiting at most a second) and closes the
// connection. Blocked calls return an error wrapping ErrClosed. Close may be
// called more than once and concurrently with the other methods.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeWriteTimeout))
		if err := c.ws.Close(); err != nil {
			c.closeErr = fmt.Errorf("wsapi: closing: %w", err)
		}
	})
	return c.closeErr
}

// readFrame reads and parses one frame; the caller holds the read turn.
func (c *Conn) readFrame(ctx context.Context) (Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("wsapi: receiving: %w", err)
	}
	if err := c.brokenErr(); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, c.abort)
	typ, frame, err := c.ws.ReadMessage()
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		return nil, c.fail(fmt.Errorf("wsapi: receiving: %w", err))
	}
	if typ == websocket.TextMessage {
		return ParseJSONResponse(frame)
	}
	return ParseResponse(frame)
}

// abort closes the network connection under a blocked read or write.
func (c *Conn) abort() { c.ws.NetConn().Close() }

// fail records the first error that broke the connection and returns the
// error callers should see: ErrClosed once Close has been called.
func (c *Conn) fail(err error) error {
	select {
	case <-c.closed:
		err = ErrClosed
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fatal == nil {
		c.fatal = err
		// gorilla/websocket panics on repeated reads after a failure, and
		// the connection cannot recover: make sure nobody touches it again.
		c.ws.NetConn().Close()
	}
	return err
}

// brokenErr returns ErrClosed after Close, the recorded fatal error after a
// failure, or nil.
func (c *Conn) brokenErr() error {
	select {
	case <-c.closed:
		return ErrClosed
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fatal
}

func (c *Conn) takeReadTurn(ctx context.Context) error {
	select {
	case c.readTurn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wsapi: receiving: %w", ctx.Err())
	case <-c.closed:
		return ErrClosed
	}
}

func (c *Conn) releaseReadTurn() { <-c.readTurn }

func (c *Conn) popPending() (frameResult, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return frameResult{}, false
	}
	r := c.pending[0]
	c.pending[0] = frameResult{}
	c.pending = c.pending[1:]
	return r, true
}

func (c *Conn) pushPending(r frameResult) {
	c.mu.Lock()
	c.pending = append(c.pending, r)
	c.mu.Unlock()
}

// deliverSelfAddress hands a to the longest-waiting SelfAddress call and
// reports whether there was one.
func (c *Conn) deliverSelfAddress(a address.Address) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.waiters) == 0 {
		return false
	}
	w := c.waiters[0]
	c.waiters = slices.Delete(c.waiters, 0, 1)
	w <- a // buffered, and each waiter is served once
	return true
}

func (c *Conn) dropWaiter(w chan address.Address) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(c.waiters, w); i >= 0 {
		c.waiters = slices.Delete(c.waiters, i, i+1)
	}
}
