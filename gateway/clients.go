package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/internal/gwproto"
	"github.com/peapod-mixnet/peapod/internal/wire"
)

// Client connections.
const (
	// writeTimeout bounds one frame written to a client; a client that
	// does not read loses its connection.
	writeTimeout = 30 * time.Second
	// controlSlots is room in a connection's queue beyond its messages, for
	// Pong and Error replies.
	controlSlots = 16
)

// errProtocol ends a connection whose client sent a message only a gateway
// sends.
var errProtocol = errors.New("gateway: client sent a gateway-to-client message")

// conn is one authenticated client connection. Its maps and flags are
// guarded by the gateway's mu.
type conn struct {
	client clientID
	sess   *gwproto.Session
	log    zerolog.Logger

	// out queues the messages the writer sends. Its capacity is
	// MaxPendingPerClient + PageSize + controlSlots, room for every pending
	// message and a page; senders check for room (hasRoomLocked) and never
	// block, so a client that confirms messages before it has them, or
	// does not read, only sends its own messages to the store.
	out  chan gwproto.Message
	wake chan struct{} // nudges the pager; capacity 1
	done chan struct{} // closed when the connection ends

	maxPending int
	pending    map[uint64]*message // delivered live, unconfirmed
	page       map[uint64]struct{} // stored, handed over, unconfirmed
	replaced   bool
	detached   bool
}

// offerLocked delivers m at once if the connection has room for another
// pending message, counting it with counter (when not nil) before the
// client can see it. The caller holds the gateway's mu.
func (c *conn) offerLocked(m *message, counter *atomic.Uint64) bool {
	if c.detached || len(c.pending) >= c.maxPending || !c.hasRoomLocked() {
		return false
	}
	c.pending[m.id] = m
	if counter != nil {
		counter.Add(1)
	}
	c.out <- &gwproto.Deliver{ID: m.id, Kind: m.kind, Payload: m.payload}
	return true
}

// hasRoomLocked reports whether a message can be queued without blocking.
// Only the writer takes from out, and every sender holds the gateway's mu,
// so the room cannot shrink before the caller queues. The caller holds the
// gateway's mu.
func (c *conn) hasRoomLocked() bool { return len(c.out) < cap(c.out) }

// trySend queues a control message (Pong, Error) unless the queue is full.
func (g *Gateway) trySend(c *conn, m gwproto.Message) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c.hasRoomLocked() {
		c.out <- m
	}
}

// nudge wakes the pager without blocking.
func (c *conn) nudge() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// serveWebSocket upgrades a client's HTTP request and serves the
// connection until it ends.
func (g *Gateway) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		http.Error(w, "gateway closing", http.StatusServiceUnavailable)
		return
	}
	g.connWG.Add(1)
	g.mu.Unlock()
	defer g.connWG.Done()

	log := g.log.With().Str("remote", r.RemoteAddr).Logger()
	ac := admittedConnOf(r.Context())
	ws, err := g.upgrader.Upgrade(w, r, nil) // answers a bad request itself
	if err != nil {
		g.counters.handshakeFailures.Add(1)
		log.Info().Err(err).Msg("refusing a client request that is not a WebSocket upgrade")
		return
	}
	ws.SetReadLimit(frameLimit)
	deadline, done := time.Now().Add(g.cfg.HandshakeTimeout), func() {}
	if ac != nil {
		deadline, done = ac.deadline, ac.handshakeDone
	}
	g.serveClient(ws, sourceOf(ws.RemoteAddr()), log, deadline, done)
}

// serveClient runs the handshake on ws and then the session.
//
// The handshake gets context.Background() and a deadline on the socket
// rather than a context that ends: gwproto.Accept resets the websocket's
// deadlines on its way out, and a context ending at that moment would set
// them concurrently, which gorilla/websocket does not allow. Close ends a
// handshake in progress by closing its socket instead.
//
// The handshake must end by deadline; handshakeDone is called once it has
// ended, either way.
func (g *Gateway) serveClient(ws *websocket.Conn, src source, log zerolog.Logger, deadline time.Time, handshakeDone func()) {
	defer handshakeDone() // on every early return
	if !g.trackHandshake(ws) {
		ws.Close()
		return
	}
	ws.UnderlyingConn().SetDeadline(deadline)
	identity, sess, err := gwproto.Accept(context.Background(), ws, gwproto.AcceptConfig{
		Identity: g.keys.Identity,
		Noise:    g.keys.Noise,
		Registry: registry{s: g.store, src: src, refused: g.counters.refuse},
		Rand:     rand.Reader,
		Now:      g.cfg.Now,
	})
	handshakeDone()
	closing := !g.untrackHandshake(ws)
	if err != nil {
		ws.Close()
		if closing {
			return
		}
		var refused *refusedError
		if errors.As(err, &refused) {
			log.Info().Str("source", src.String()).Msg(refused.msg)
			return
		}
		g.counters.handshakeFailures.Add(1)
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			log.Warn().Dur("timeout", g.cfg.HandshakeTimeout).Msg("closing a client connection: handshake not completed in time")
		} else {
			log.Warn().Err(err).Msg("closing a client connection: handshake failed")
		}
		return
	}
	sess.SetWriteTimeout(writeTimeout)
	client := clientID(identity)
	log = log.With().Str("client", address.EncodeKey(identity)).Logger()
	qlen := g.cfg.MaxPendingPerClient + g.cfg.PageSize + controlSlots
	c := &conn{
		client:     client,
		sess:       sess,
		log:        log,
		out:        make(chan gwproto.Message, qlen),
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		maxPending: g.cfg.MaxPendingPerClient,
		pending:    make(map[uint64]*message),
		page:       make(map[uint64]struct{}),
	}
	if !g.attach(c) {
		sess.Close()
		return
	}
	log.Info().Msg("client connected")

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); g.writeLoop(c) }()
	go func() { defer wg.Done(); g.pageLoop(c) }()
	err = g.readLoop(c)
	g.detach(c)
	close(c.done)
	sess.Close()
	wg.Wait()
	g.logEnd(c, err)
}

// trackHandshake records ws as in its handshake, so that Close can end it,
// and reports false when the gateway is closing.
func (g *Gateway) trackHandshake(ws *websocket.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.handshakes[ws] = struct{}{}
	return true
}

// untrackHandshake ends what trackHandshake began, and reports false when
// the gateway started closing meanwhile.
func (g *Gateway) untrackHandshake(ws *websocket.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.handshakes, ws)
	return !g.closing
}

// attach makes c its client's live connection, moving the unconfirmed
// messages of the connection it replaces to it. It reports false when the
// gateway is closing.
func (g *Gateway) attach(c *conn) bool {
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		return false
	}
	old := g.conns[c.client]
	g.conns[c.client] = c
	var spill []*message
	if old != nil {
		old.replaced = true
		old.detached = true
		for _, m := range old.pending {
			if !c.offerLocked(m, nil) {
				spill = append(spill, m)
			}
		}
		old.pending = nil
	}
	g.mu.Unlock()
	if old != nil {
		old.sess.Close() // ends its reader, then its writer and pager
	}
	for _, m := range spill {
		g.storeQ <- m
	}
	c.nudge() // hand over the stored messages
	return true
}

// detach ends c's part in delivery: it stops being its client's live
// connection, and its unconfirmed live messages go to the store.
func (g *Gateway) detach(c *conn) {
	g.mu.Lock()
	if g.conns[c.client] == c {
		delete(g.conns, c.client)
	}
	c.detached = true
	spill := make([]*message, 0, len(c.pending))
	for _, m := range c.pending {
		spill = append(spill, m)
	}
	c.pending = nil
	g.mu.Unlock()
	for _, m := range spill {
		g.storeQ <- m
	}
}

// readLoop serves c's requests until the connection fails.
func (g *Gateway) readLoop(c *conn) error {
	for {
		m, err := c.sess.Receive()
		if err != nil {
			return err
		}
		switch m := m.(type) {
		case *gwproto.Forward:
			g.forward(c, m)
		case *gwproto.Received:
			if err := g.confirm(c, m.IDs); err != nil {
				return err
			}
		case *gwproto.Ping:
			// A client pinging faster than it reads gets no answer.
			g.trySend(c, &gwproto.Pong{Value: m.Value})
		case *gwproto.Pong:
		default:
			return fmt.Errorf("%w (%T)", errProtocol, m)
		}
	}
}

// forward is the entry role: it sends a client's packet to its first hop,
// which must be a layer-1 mixnode.
func (g *Gateway) forward(c *conn, f *gwproto.Forward) {
	hop, err := f.FirstHop.AddrPort()
	if err != nil || !g.topo.isLayer1(g.ctx, hop, true) {
		g.counters.drop(DropForwardRefused)
		c.log.Debug().Str("hop", f.FirstHop.String()).Msg("refusing to forward: first hop is not a layer-1 mixnode")
		g.trySend(c, &gwproto.Error{Code: gwproto.CodeRefused, Message: "first hop " + f.FirstHop.String() + " is not a layer-1 mixnode"})
		return
	}
	// The client's Forward names no key rotation: the layer-1 mixnode tries
	// its current key, then the other (see internal/node).
	if g.send(hop, f.Packet, wire.KeyRotationUnknown) { // the pool copies the packet
		g.counters.forwarded.Add(1)
	}
}

// confirm handles a Received: it sends the acks of confirmed live messages
// and deletes confirmed stored ones, then lets the pager send the next page
// once the current one is all confirmed. Ids c was not given are ignored.
func (g *Gateway) confirm(c *conn, ids []uint64) error {
	var acked []*message
	var stored []uint64
	g.mu.Lock()
	for _, id := range ids {
		if m, ok := c.pending[id]; ok {
			delete(c.pending, id)
			acked = append(acked, m)
		} else if _, ok := c.page[id]; ok {
			delete(c.page, id)
			stored = append(stored, id)
		}
	}
	pageDone := len(stored) > 0 && len(c.page) == 0
	g.mu.Unlock()
	g.counters.confirmed.Add(uint64(len(acked) + len(stored)))
	for _, m := range acked {
		g.sendAck(m)
	}
	if len(stored) > 0 {
		// Deleted before the next page is read, so it is not read again.
		if _, err := g.store.remove(c.client, stored); err != nil {
			return err
		}
	}
	if pageDone {
		c.nudge()
	}
	return nil
}

// pageLoop hands c's stored messages over a page at a time: when nudged
// and no page is unconfirmed, it reads the next one.
func (g *Gateway) pageLoop(c *conn) {
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		}
		g.mu.Lock()
		busy := len(c.page) > 0 || c.detached
		g.mu.Unlock()
		if busy {
			continue
		}
		msgs, err := g.store.page(c.client, g.cfg.PageSize)
		if err != nil {
			c.log.Error().Err(err).Msg("reading stored messages failed")
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		sent := 0
		g.mu.Lock()
		for _, m := range msgs {
			if c.detached {
				break
			}
			if !c.hasRoomLocked() {
				// Only a client confirming what it has not been sent fills
				// the queue; the rest waits for a later page.
				break
			}
			c.page[m.id] = struct{}{}
			g.counters.deliveredStored.Add(1) // before the client can see it
			c.out <- &gwproto.Deliver{ID: m.id, Kind: m.kind, Payload: m.payload}
			sent++
		}
		g.mu.Unlock()
		c.log.Debug().Int("messages", sent).Msg("handed over a page of stored messages")
	}
}

// wakePagers nudges the pagers of the connected clients of msgs, just
// committed to the store.
func (g *Gateway) wakePagers(msgs []*message) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range msgs {
		if c := g.conns[m.client]; c != nil {
			c.nudge()
		}
	}
}

// writeLoop sends c's queued messages until the connection ends. A failed
// write closes the session, which ends the reader.
func (g *Gateway) writeLoop(c *conn) {
	for {
		var m gwproto.Message
		select {
		case <-c.done:
			return
		case m = <-c.out:
		}
		if err := c.sess.Send(m); err != nil {
			c.log.Debug().Err(err).Msg("writing to the client failed")
			c.sess.Close()
			return
		}
	}
}

// logEnd writes the one line that says why c ended.
func (g *Gateway) logEnd(c *conn, err error) {
	g.mu.Lock()
	replaced := c.replaced
	g.mu.Unlock()
	var closeErr *websocket.CloseError
	switch {
	case replaced:
		c.log.Info().Msg("client connection replaced by a newer one")
	case g.ctx.Err() != nil:
		c.log.Debug().Msg("client connection closed: gateway closing")
	case errors.As(err, &closeErr) && (closeErr.Code == websocket.CloseNormalClosure || closeErr.Code == websocket.CloseGoingAway):
		c.log.Info().Msg("client disconnected")
	case errors.Is(err, gwproto.ErrAuthentication):
		g.counters.clientErrors.Add(1)
		c.log.Warn().Msg("closing a client connection: a sealed frame failed to open")
	case errors.Is(err, gwproto.ErrMalformed), errors.Is(err, errProtocol), errors.Is(err, websocket.ErrReadLimit):
		g.counters.clientErrors.Add(1)
		c.log.Warn().Err(err).Msg("closing a client connection: bad frame")
	default:
		c.log.Info().Err(err).Msg("client connection ended")
	}
}
