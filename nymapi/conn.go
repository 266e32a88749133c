package nymapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/wsapi"
)

// form is a frame type: how a connection's responses are written.
type form uint8

const (
	formUnset  form = iota // not known yet: binary, as Nym, once FormatWait has passed
	formBinary             // the binary form in binary frames
	formText               // JSON in text frames
)

// parseFormat reads the "format" query parameter of a handshake.
func parseFormat(s string) (form, error) {
	switch s {
	case "":
		return formUnset, nil
	case "binary":
		return formBinary, nil
	case "json", "text":
		return formText, nil
	}
	return formUnset, fmt.Errorf("nymapi: unknown format %q: want binary, json or text", s)
}

// conn is one application's WebSocket connection. Its reader runs on the
// HTTP handler's goroutine and its writer on a goroutine of its own.
type conn struct {
	s   *Server
	ws  *websocket.Conn
	log zerolog.Logger
	q   *outQueue

	// text is the frame type of the connection's last request (or the one
	// asked for in the handshake): the type of frames not answering a
	// request.
	text      atomic.Bool
	ready     chan struct{} // closed once the frame type is known
	readyOnce sync.Once

	// ctx ends when the connection closes; calls into the backend made for
	// it use it.
	ctx    context.Context
	cancel context.CancelFunc

	closeOnce sync.Once
	reason    string // why the connection closed; set once, before ctx ends
}

func newConn(s *Server, ws *websocket.Conn, id uint64, remote string, initial form) *conn {
	c := &conn{
		s:     s,
		ws:    ws,
		log:   s.log.With().Uint64("conn", id).Str("remote", remote).Logger(),
		q:     newOutQueue(s.cfg.QueueFrames, s.cfg.QueueBytes),
		ready: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	if initial != formUnset {
		c.text.Store(initial == formText)
		c.markReady()
	}
	return c
}

// markReady lets the writer start.
func (c *conn) markReady() { c.readyOnce.Do(func() { close(c.ready) }) }

// run serves the connection until it ends; the writer has ended when run
// returns.
func (c *conn) run() {
	c.log.Info().Msg("application connected")
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	err := c.readLoop()
	var closeErr *websocket.CloseError
	var netErr interface{ Timeout() bool }
	switch {
	case err == nil:
		c.close(0, "closed") // already closed: the first reason stays
	case errors.As(err, &closeErr):
		c.close(0, "the application closed the connection")
	case errors.As(err, &netErr) && netErr.Timeout():
		c.close(websocket.CloseGoingAway, fmt.Sprintf("nothing from the application for %v", idlePings*c.s.cfg.PingInterval))
	default:
		c.close(0, err.Error())
	}
	<-writerDone
	c.log.Info().Str("reason", c.reason).Msg("application disconnected")
}

// close ends the connection, once: it stops its queue, unblocks its reader
// and writer and cancels the backend calls made for it. A non-zero code is
// sent to the application in a close frame first.
func (c *conn) close(code int, reason string) {
	c.closeOnce.Do(func() {
		c.reason = reason
		c.s.unregister(c)
		c.q.close()
		c.cancel()
		if code != 0 {
			msg := websocket.FormatCloseMessage(code, reason)
			_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeWriteTimeout))
		}
		c.ws.Close()
	})
}

// push queues a response for the application, waiting while the queue is
// full; a queue whose writer takes nothing for SlowTimeout closes the
// connection as too slow. It reports whether the response was queued.
func (c *conn) push(f outFrame) bool {
	switch c.q.push(f, c.s.cfg.SlowTimeout) {
	case pushed:
		return true
	case timedOut:
		c.log.Warn().Int("queued", c.q.length()).Dur("waited", c.s.cfg.SlowTimeout).
			Msg("closing a connection whose application does not read: outgoing queue full")
		// No close frame: the application is not reading.
		c.close(0, "outgoing queue full")
	}
	return false
}

// respond queues the answer to a request that came in frame type text.
func (c *conn) respond(r wsapi.Response, text bool) bool {
	if e, ok := r.(wsapi.Error); ok {
		c.s.stats.countError(e.Kind)
	}
	f := outFrame{resp: r, form: formBinary, size: answerSize(r)}
	if text {
		f.form = formText
	}
	return c.push(f)
}

// answerSize is what an answer counts against its connection's byte bound:
// the text of an error; the other answers are a few bytes.
func answerSize(r wsapi.Response) int {
	if e, ok := r.(wsapi.Error); ok {
		return len(e.Message)
	}
	return 0
}

// readLoop reads and serves requests until the connection fails or closes.
func (c *conn) readLoop() error {
	idle := time.Duration(0)
	if c.s.cfg.PingInterval > 0 {
		idle = idlePings * c.s.cfg.PingInterval
		alive := func() { _ = c.ws.SetReadDeadline(time.Now().Add(idle)) }
		c.ws.SetPongHandler(func(string) error { alive(); return nil })
		c.ws.SetPingHandler(func(data string) error {
			alive()
			err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(closeWriteTimeout))
			if errors.Is(err, websocket.ErrCloseSent) {
				return nil
			}
			var netErr interface{ Timeout() bool }
			if errors.As(err, &netErr) && netErr.Timeout() {
				return nil
			}
			return err
		})
	}
	for {
		if idle > 0 {
			_ = c.ws.SetReadDeadline(time.Now().Add(idle))
		}
		text, frame, size, err := c.readFrame()
		if err != nil {
			if c.ctx.Err() != nil {
				return nil // closed by the Server; the reason is recorded
			}
			return fmt.Errorf("reading: %w", err)
		}
		c.text.Store(text)
		c.markReady()
		if frame == nil {
			resp := wsapi.Error{Kind: wsapi.KindMalformedRequest, Message: fmt.Sprintf(
				"frame of %d bytes exceeds the limit of %d bytes", size, c.s.cfg.MaxFrameSize)}
			if !c.respond(resp, text) {
				return nil
			}
			continue
		}
		var req wsapi.Request
		if text {
			req, err = wsapi.ParseJSONRequest(frame)
		} else {
			req, err = wsapi.ParseRequest(frame)
		}
		if err != nil {
			var perr *wsapi.ProtocolError
			if !errors.As(err, &perr) {
				perr = &wsapi.ProtocolError{Kind: wsapi.KindMalformedRequest, Detail: err.Error()}
			}
			c.log.Debug().Err(err).Msg("bad request")
			if !c.respond(perr.Response(), text) {
				return nil
			}
			continue
		}
		if !c.handle(req, text) {
			return nil
		}
	}
}

// readFrame reads one data frame. A frame over the size limit is read to its
// end and dropped: frame is nil and size is its length.
func (c *conn) readFrame() (text bool, frame []byte, size int64, err error) {
	typ, r, err := c.ws.NextReader()
	if err != nil {
		return false, nil, 0, err
	}
	text = typ == websocket.TextMessage
	limit := c.s.cfg.MaxFrameSize
	frame, err = io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return false, nil, 0, err
	}
	if int64(len(frame)) <= limit {
		return text, frame, int64(len(frame)), nil
	}
	rest, err := io.Copy(io.Discard, r)
	if err != nil {
		return false, nil, 0, err
	}
	return text, nil, int64(len(frame)) + rest, nil
}

// writeLoop writes queued responses and pings until the connection closes.
func (c *conn) writeLoop() {
	if !c.waitReady() {
		return
	}
	var ping <-chan time.Time
	if c.s.cfg.PingInterval > 0 {
		t := time.NewTicker(c.s.cfg.PingInterval)
		defer t.Stop()
		ping = t.C
	}
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-ping:
			err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.s.cfg.SlowTimeout))
			if err != nil {
				c.close(0, fmt.Sprintf("writing a ping: %v", err))
				return
			}
		case <-c.q.avail:
			for {
				f, ok := c.q.pop()
				if !ok {
					break
				}
				err := c.write(f)
				if f.msg != nil {
					if err == nil {
						f.msg.wrote()
					}
					f.msg.unref()
				}
				if err != nil {
					c.close(0, err.Error())
					return
				}
			}
		}
	}
}

// waitReady holds the writer until the frame type is known or FormatWait
// has passed. It reports false when the connection closed meanwhile.
func (c *conn) waitReady() bool {
	if c.s.cfg.FormatWait < 0 {
		return c.ctx.Err() == nil
	}
	t := time.NewTimer(c.s.cfg.FormatWait)
	defer t.Stop()
	select {
	case <-c.ready:
	case <-t.C:
	case <-c.ctx.Done():
		return false
	}
	return true
}

// write writes one frame, in the frame type it asks for.
func (c *conn) write(f outFrame) error {
	text := f.form == formText || (f.form == formUnset && c.text.Load())
	if err := c.ws.SetWriteDeadline(time.Now().Add(c.s.cfg.SlowTimeout)); err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	if err := wsapi.WriteResponse(c.ws, f.resp, text); err != nil {
		var netErr interface{ Timeout() bool }
		if errors.As(err, &netErr) && netErr.Timeout() {
			c.log.Warn().Dur("waited", c.s.cfg.SlowTimeout).Msg("closing a connection whose application does not read: write timed out")
			return errors.New("write timed out")
		}
		return err
	}
	return nil
}
