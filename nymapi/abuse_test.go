package nymapi

import (
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/wsapi"
)

// Attacks on the local API by an application that floods it or reads
// nothing, over real WebSocket connections. Local processes are trusted
// with the client's messages (docs/threat-model.md), but one of them, by
// malice or a bug, must not take the others' share.

// smallBuffers gives a socket buffers of a few kilobytes (no autotuning),
// so that writes to a peer that reads nothing block soon and for good.
func smallBuffers(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		for _, opt := range []int{syscall.SO_RCVBUF, syscall.SO_SNDBUF} {
			if err := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 4096); err != nil {
				serr = err
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// dialNonReading opens a WebSocket with small socket buffers, for an
// application that reads nothing.
func dialNonReading(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{NetDialContext: (&net.Dialer{Control: smallBuffers}).DialContext}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// answersHeld returns the most answers any connection of s holds queued,
// and their bytes.
func (s *Server) answersHeld() (frames, bytes int) {
	for _, c := range s.connections() {
		c.q.mu.Lock()
		a := c.q.held[0]
		c.q.mu.Unlock()
		if a.frames > frames {
			frames, bytes = a.frames, a.bytes
		}
	}
	return frames, bytes
}

// An application that sends requests and reads nothing fills only its
// answers' share of its queue, whose bound counts the bytes of error texts
// (which repeat at most 64 bytes of a request), and holds back only its own
// requests: the messages for every connection still reach the others while
// it stays open. Before, its answers filled the queue it shares with
// messages, so every connection's messages waited until it was closed as
// too slow (SlowTimeout), and an answer repeated a request's unknown type
// whole, up to MaxFrameSize, without counting against QueueBytes.
func TestFloodingConnectionHoldsBackOnlyItself(t *testing.T) {
	const queueFrames, queueBytes = 8, 4 << 10
	ln, err := (&net.ListenConfig{Control: smallBuffers}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServerOn(t, Config{QueueFrames: queueFrames, QueueBytes: queueBytes, SlowTimeout: time.Minute}, ln)
	other := dialRaw(t, ts.url)
	flooder := dialNonReading(t, ts.url)
	pollUntil(t, "both connections are registered", func() bool { return ts.connCount() == 2 })

	// Requests of an unknown type of 4 KiB each, as fast as the server
	// reads them, until the connection ends; nothing is read.
	bad := []byte(`{"type":"` + strings.Repeat("x", 4<<10) + `"}`)
	go func() {
		for flooder.WriteMessage(websocket.TextMessage, bad) == nil {
		}
	}()
	pollUntil(t, "the flooder's answers to fill their share", func() bool {
		frames, bytes := ts.answersHeld()
		if bytes > queueBytes+wsapiErrorMax {
			t.Fatalf("%d answers of %d bytes queued, bound %d bytes", frames, bytes, queueBytes)
		}
		return frames == queueFrames || bytes+wsapiErrorMax > queueBytes
	})

	// As many messages as a connection's messages' share holds: each goes
	// to the flooder's queue too (behind its answers, which its writer is
	// stuck on), and a broadcast waits for a full share. Before, the
	// flooder's answers filled the one queue, so the first message already
	// waited there and the other connection got at most one.
	const n = queueFrames
	for i := range n {
		ts.fake.inbox <- client.Message{Data: fmt.Appendf(nil, "message %d", i)}
	}
	for i := range n {
		resp, ok := other.readBinary().(wsapi.Received)
		if !ok || string(resp.Data) != fmt.Sprintf("message %d", i) {
			t.Fatalf("message %d: got %#v", i, resp)
		}
	}
	if ts.connCount() != 2 {
		t.Fatal("the flooder was closed; the messages should have flowed while it stayed open")
	}
	// The flooder's own requests wait: its answers' share is still full.
	frames, bytes := ts.answersHeld()
	if frames > queueFrames || bytes > queueBytes+wsapiErrorMax {
		t.Fatalf("%d answers of %d bytes queued, bounds %d and %d bytes", frames, bytes, queueFrames, queueBytes)
	}
}

// wsapiErrorMax is more than any error answer to the flooder's requests:
// the error text, with 64 bytes of the unknown type.
const wsapiErrorMax = 512

// Connections that never finish their WebSocket handshake (or never start
// it) are closed after SlowTimeout, and do not keep an application from
// connecting meanwhile.
func TestSilentConnectionsTimeOut(t *testing.T) {
	ts := startServer(t, Config{MaxConnections: 4, SlowTimeout: 500 * time.Millisecond})
	addr := strings.TrimSuffix(strings.TrimPrefix(ts.url, "ws://"), "/")
	var silent []net.Conn
	for range 32 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		silent = append(silent, c)
	}
	app := dialRaw(t, ts.url)
	app.binary(wsapi.SelfAddress{})
	if _, ok := app.readBinary().(wsapi.SelfAddressResponse); !ok {
		t.Fatal("no answer while silent connections are open")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()
	for i, c := range silent {
		c.SetReadDeadline(deadline)
		if _, err := c.Read(make([]byte, 1)); err == nil || ctx.Err() != nil {
			t.Fatalf("silent connection %d still open 10 s after a SlowTimeout of 500 ms (%v)", i, err)
		}
	}
}
