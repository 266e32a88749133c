package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/internal/gwproto"
	"github.com/peapod-mixnet/peapod/sphinx"
)

const (
	handshakeTimeout = 10 * time.Second
	minBackoff       = 100 * time.Millisecond
	// maxBackoff bounds the wait between attempts at reaching the gateway
	// (and, at start, the directory): short, so that a client finds its
	// gateway within a few seconds of its return (a restart under it).
	maxBackoff   = 3 * time.Second
	pingInterval = 15 * time.Second
	// outQueue bounds built packets waiting for the gateway link; builders
	// block when it is full.
	outQueue = 256
)

// outPacket is a built packet on its way to the gateway.
type outPacket struct {
	firstHop sphinx.NodeAddress
	packet   []byte
	// sent, when set, is called once the packet has been handed to the
	// gateway; it arms the retransmission timer.
	sent func()
}

// link keeps the client connected to its gateway: it registers or
// authenticates, reconnects with backoff, writes packets (shaping them into
// the Poisson stream when cover traffic is on) and reads what the gateway
// delivers.
type link struct {
	c *Client

	out    chan *outPacket // real packets, in order
	covers chan *outPacket // ready-made cover packets

	session   atomic.Pointer[gwproto.Session]
	connected chan struct{} // closed on the first successful connection
	firstOnce sync.Once
	reconnect atomic.Int64

	confirmMu sync.Mutex
	confirms  []uint64
}

func newLink(c *Client) *link {
	return &link{
		c:         c,
		out:       make(chan *outPacket, outQueue),
		covers:    make(chan *outPacket, 4),
		connected: make(chan struct{}),
	}
}

// run keeps the link up until ctx ends.
func (l *link) run(ctx context.Context) {
	backoff := minBackoff
	var carry *outPacket // a packet whose send failed, first in line next time
	for first := true; ctx.Err() == nil; first = false {
		// After a failure, the gateway may have moved: look it up again.
		sess, err := l.connect(ctx, !first)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.c.log.Warn().Err(err).Dur("retry_in", backoff).Msg("gateway connection failed")
			select {
			case <-ctx.Done():
				return
			case <-time.After(jitter(backoff)):
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		l.session.Store(sess)
		l.firstOnce.Do(func() { close(l.connected) })
		l.c.log.Info().Msg("connected to gateway")

		readDone := make(chan error, 1)
		go func() { readDone <- l.readLoop(sess) }()
		carry, err = l.writeLoop(ctx, sess, readDone, carry)
		l.session.Store(nil)
		sess.Close()
		if rerr := <-readDone; err == nil {
			err = rerr
		}
		if ctx.Err() != nil {
			return
		}
		l.reconnect.Add(1)
		l.c.log.Warn().Err(err).Msg("gateway connection lost; reconnecting")
	}
}

// refusal reads the first line of a refused upgrade's body: the gateway's
// reason (gorilla/websocket keeps at most 1 KiB of it).
func refusal(body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, 1024))
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.ToValidUTF8(strings.TrimSpace(line), "?")
}

func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

// connect dials the gateway and runs the handshake: authentication when the
// client is registered, registration otherwise (or when the gateway has
// forgotten it). With refresh it first reads the topology again (as often
// as topologyGap allows), so that a gateway that moved is found where it is
// now; a directory that cannot be reached leaves the view held.
func (l *link) connect(ctx context.Context, refresh bool) (*gwproto.Session, error) {
	c := l.c
	if refresh {
		if err := c.refreshTopology(ctx); err != nil {
			c.log.Debug().Err(err).Msg("looking the gateway up again")
		}
	}
	view, err := c.topology(ctx)
	if err != nil {
		return nil, err
	}
	binding := c.binding()
	gwID := binding.identity
	gw, ok := view.gateway(gwID)
	if !ok {
		c.refreshTopology(ctx)
		if view, err = c.topology(ctx); err != nil {
			return nil, err
		}
		if gw, ok = view.gateway(gwID); !ok {
			return nil, fmt.Errorf("client: gateway %s is not in the topology", address.EncodeKey(gwID))
		}
	}
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	dial := func() (*websocket.Conn, error) {
		ws, resp, err := websocket.DefaultDialer.DialContext(hctx, gw.clientURL.String(), nil)
		if err != nil {
			if resp != nil { // the gateway answered, but refused: say why
				err = fmt.Errorf("%w: %s: %s", err, resp.Status, refusal(resp.Body))
			}
			return nil, fmt.Errorf("client: dialing gateway %s: %w", gw.clientURL, err)
		}
		return ws, nil
	}
	ws, err := dial()
	if err != nil {
		return nil, err
	}
	keys := gwproto.GatewayKeys{Identity: gwID, Noise: gw.noiseKey}
	if binding.registered {
		sess, err := gwproto.Authenticate(hctx, ws, c.keys.identity, keys, binding.key, c.cfg.Rand, time.Now())
		if err == nil {
			return sess, nil
		}
		ws.Close()
		if !errors.Is(err, gwproto.ErrNotRegistered) {
			return nil, err
		}
		c.log.Warn().Msg("the gateway does not know this client any more; registering again")
		if ws, err = dial(); err != nil {
			return nil, err
		}
	}
	key, sess, err := gwproto.Register(hctx, ws, c.keys.identity, keys, c.cfg.Rand, time.Now())
	if err != nil {
		ws.Close()
		return nil, err
	}
	if err := c.setBinding(&gatewayBinding{identity: gwID, key: key}); err != nil {
		sess.Close()
		return nil, err
	}
	return sess, nil
}

// writeLoop sends packets until the session fails, the reader stops or ctx
// ends. It returns a packet it could not send, to go first next time.
func (l *link) writeLoop(ctx context.Context, sess *gwproto.Session, readDone chan error, carry *outPacket) (*outPacket, error) {
	send := func(p *outPacket) error {
		if err := sess.Send(&gwproto.Forward{FirstHop: p.firstHop, Packet: p.packet}); err != nil {
			return err
		}
		l.c.stats.packetsSent.Add(1)
		if p.sent != nil {
			p.sent()
		}
		return nil
	}
	if carry != nil {
		if err := send(carry); err != nil {
			return carry, err
		}
	}
	cover := !l.c.cfg.Cover.Disabled
	var mainTick, loopTick <-chan time.Time
	if cover {
		mainTick = time.After(expGap(l.c.cfg.Cover.MainGap))
		loopTick = time.After(expGap(l.c.cfg.Cover.LoopGap))
	}
	ping := time.NewTicker(pingInterval)
	defer ping.Stop()
	sendCover := func() error {
		select {
		case p := <-l.covers:
			l.c.stats.coverSent.Add(1)
			return send(p)
		default:
			return nil // the generator is behind; skip this tick
		}
	}
	for {
		var realCh <-chan *outPacket
		if !cover {
			realCh = l.out
		}
		var err error
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case rerr := <-readDone:
			readDone <- rerr // run reads it again
			return nil, rerr
		case p := <-realCh:
			if err = send(p); err != nil {
				return p, err
			}
		case <-mainTick:
			mainTick = time.After(expGap(l.c.cfg.Cover.MainGap))
			select {
			case p := <-l.out:
				if err = send(p); err != nil {
					return p, err
				}
			default:
				err = sendCover()
			}
		case <-loopTick:
			loopTick = time.After(expGap(l.c.cfg.Cover.LoopGap))
			err = sendCover()
		case <-ping.C:
			err = sess.Send(&gwproto.Ping{Value: uint64(time.Now().UnixNano())})
		}
		if err != nil {
			return nil, err
		}
	}
}

func expGap(mean time.Duration) time.Duration {
	return time.Duration(rand.ExpFloat64() * float64(mean))
}

// readLoop hands what the gateway delivers to the client.
func (l *link) readLoop(sess *gwproto.Session) error {
	for {
		m, err := sess.Receive()
		if err != nil {
			return err
		}
		switch m := m.(type) {
		case *gwproto.Deliver:
			l.c.deliver(m.ID, m.Kind, m.Payload)
		case *gwproto.Ping:
			if err := sess.Send(&gwproto.Pong{Value: m.Value}); err != nil {
				return err
			}
		case *gwproto.Pong:
		case *gwproto.Error:
			l.c.log.Warn().Str("code", m.Code.String()).Str("message", m.Message).Msg("gateway reported an error")
			if m.Code == gwproto.CodeRefused {
				// A first hop the gateway's topology does not list: ours is
				// out of date. Fetch it and send those fragments again.
				l.c.kickTopology()
			}
		default:
			return fmt.Errorf("client: the gateway sent a %T", m)
		}
	}
}

// confirm queues a delivered message id for the next Received.
func (l *link) confirm(id uint64) {
	l.confirmMu.Lock()
	l.confirms = append(l.confirms, id)
	l.confirmMu.Unlock()
}

// flushConfirms commits the client's state and then confirms everything
// queued, so that nothing is confirmed (and so deleted at the gateway) before
// the client's record of it is durable.
func (l *link) flushConfirms() {
	l.confirmMu.Lock()
	ids := l.confirms
	l.confirms = nil
	l.confirmMu.Unlock()
	if len(ids) == 0 {
		return
	}
	l.c.persistOrder()
	if err := l.c.persistPartials(); err != nil {
		// Not confirmed: the gateway keeps them, and delivers them again.
		l.confirmMu.Lock()
		l.confirms = append(ids, l.confirms...)
		l.confirmMu.Unlock()
		return
	}
	sess := l.session.Load()
	for len(ids) > 0 && sess != nil {
		n := min(len(ids), gwproto.MaxReceivedIDs)
		if err := sess.Send(&gwproto.Received{IDs: ids[:n]}); err != nil {
			break
		}
		ids = ids[n:]
	}
	if len(ids) > 0 {
		// Not confirmed: keep them for the next session. The gateway
		// delivers them again meanwhile, and the client drops duplicates.
		l.confirmMu.Lock()
		l.confirms = append(ids, l.confirms...)
		l.confirmMu.Unlock()
	}
}

// confirmLoop flushes confirmations every interval.
func (l *link) confirmLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.flushConfirms()
			return
		case <-t.C:
			l.flushConfirms()
		}
	}
}

// coverLoop keeps a few cover packets ready.
func (l *link) coverLoop(ctx context.Context) {
	for ctx.Err() == nil {
		p, err := l.c.coverPacket(ctx)
		if err != nil {
			if ctx.Err() == nil {
				l.c.log.Debug().Err(err).Msg("building a cover packet")
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		select {
		case l.covers <- p:
		case <-ctx.Done():
			return
		}
	}
}
