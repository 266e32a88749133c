package gateway

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/gwproto"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// checkStillServing shows that a well-behaved mixnode and client still
// get through.
func checkStillServing(t *testing.T, g *Gateway, c *testClient, body string) {
	t.Helper()
	body = body[:min(len(body), AckPlaintextLen)]
	dialMix(t, g).send(t, ackPacket(t, g, c.identity(), []byte(body)))
	if d := c.deliver(t); string(d.Payload) != body {
		t.Fatalf("got %q, want %q", d.Payload, body)
	}
	if got := c.sync(t); len(got) != 0 {
		t.Fatalf("%d unexpected messages", len(got))
	}
}

// Garbage, bad headers and half-open frames on the mix listener close that
// connection with a log line; the others carry on.
func TestMixListenerMisbehaviour(t *testing.T) {
	logs := &logBuffer{}
	g, err := New(testConfig(t, t.TempDir(), nil, logs))
	if err != nil {
		t.Fatal(err)
	}
	g.mixFrameTimeout = 200 * time.Millisecond
	if err := g.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	c := newTestClient()
	c.register(t, g)

	cases := []struct {
		name, log string
		bytes     []byte
	}{
		{"garbage", "malformed frame", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"unknown size tag", "malformed frame", []byte{wire.Version, 9, 0, 0}},
		{"unsupported packet type", "malformed frame", []byte{wire.Version, byte(sphinx.AckPacket), byte(wire.PacketTypeOutfox), 0}},
		{"half a frame", "frame not completed in time", append([]byte{wire.Version, byte(sphinx.AckPacket), 0, 0}, make([]byte, 100)...)},
		{"half a header", "frame not completed in time", []byte{wire.Version, byte(sphinx.AckPacket)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mc := dialMix(t, g)
			if _, err := mc.c.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			if !isClosed(mc.c) {
				t.Fatal("the gateway kept the connection open")
			}
			logs.waitFor(t, tc.log)
			checkStillServing(t, g, c, tc.name)
		})
	}
}

// Misbehaving WebSocket peers, before and after the handshake, are closed
// with a log line; a well-behaved client carries on.
func TestClientListenerMisbehaviour(t *testing.T) {
	logs := &logBuffer{}
	cfg := testConfig(t, t.TempDir(), nil, logs)
	cfg.HandshakeTimeout = 300 * time.Millisecond
	g := startGateway(t, cfg)
	good := newTestClient()
	good.register(t, g)

	t.Run("garbage instead of HTTP", func(t *testing.T) {
		conn, err := net.Dial("tcp", g.ClientAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write(bytes.Repeat([]byte{0xff, 0x00, 0x13}, 100))
		conn.Write([]byte("\r\n\r\n"))
		if !isClosed(conn) {
			t.Fatal("connection left open")
		}
		checkStillServing(t, g, good, "after garbage")
	})
	t.Run("plain HTTP request", func(t *testing.T) {
		resp, err := http.Get("http://" + g.ClientAddr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", resp.StatusCode)
		}
		logs.waitFor(t, "not a WebSocket upgrade")
	})

	before := []struct {
		name, log string
		send      func(ws *websocket.Conn)
	}{
		{"garbage before the handshake", "handshake failed", func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.BinaryMessage, []byte("not a handshake"))
		}},
		{"text frame before the handshake", "text frame", func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"hello"}`))
		}},
		{"oversized frame before the handshake", "read limit", func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.BinaryMessage, make([]byte, gwproto.MaxFrameSize+1))
		}},
		{"stalled handshake", "handshake not completed in time", func(*websocket.Conn) {}},
	}
	for _, tc := range before {
		t.Run(tc.name, func(t *testing.T) {
			ws := dialGateway(t, g)
			tc.send(ws)
			ws.SetReadDeadline(time.Now().Add(waitTimeout))
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatal("the gateway kept the connection open")
					}
					break
				}
			}
			logs.waitFor(t, tc.log)
			checkStillServing(t, g, good, tc.name)
		})
	}

	after := []struct {
		name, log string
		send      func(ws *websocket.Conn)
	}{
		{"frame that does not open", "failed to open", func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.BinaryMessage, bytes.Repeat([]byte{7}, 64))
		}},
		{"text frame in the session", "text frame", func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.TextMessage, []byte("hello"))
		}},
		{"oversized frame in the session", "read limit", func(ws *websocket.Conn) {
			ws.WriteMessage(websocket.BinaryMessage, make([]byte, gwproto.MaxFrameSize+1))
		}},
	}
	for _, tc := range after {
		t.Run(tc.name, func(t *testing.T) {
			bad := newTestClient()
			bad.register(t, g)
			tc.send(bad.ws)
			bad.sess.SetReadDeadline(time.Now().Add(waitTimeout))
			if _, err := bad.sess.Receive(); err == nil || strings.Contains(err.Error(), "timeout") {
				t.Fatalf("the gateway kept the connection open (%v)", err)
			}
			logs.waitFor(t, tc.log)
			checkStillServing(t, g, good, tc.name)
		})
	}
	t.Run("gateway-to-client message from a client", func(t *testing.T) {
		bad := newTestClient()
		bad.register(t, g)
		bad.sess.Send(&gwproto.Deliver{ID: 1, Kind: gwproto.KindAck})
		bad.sess.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := bad.sess.Receive(); err == nil {
			t.Fatal("the gateway kept the connection open")
		}
		logs.waitFor(t, "gateway-to-client message")
	})
	if s := g.Stats(); s.HandshakeFailures < 5 || s.ClientErrors != 4 {
		t.Fatalf("handshake failures %d (want at least 5), client errors %d (want 4)", s.HandshakeFailures, s.ClientErrors)
	}
	for _, secret := range []string{"after garbage", "not a handshake"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds payload bytes %q", secret)
		}
	}
}

// /metrics and /healthz answer on MetricsAddr, with the gateway's own
// registry.
func TestMetricsEndpoint(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), nil, nil)
	cfg.MetricsAddr = "127.0.0.1:0"
	g := startGateway(t, cfg)
	c := newTestClient()
	c.register(t, g)
	dialMix(t, g).send(t, ackPacket(t, g, c.identity(), []byte("m")))
	c.deliver(t)

	get := func(path string) string {
		resp, err := http.Get("http://" + g.MetricsAddr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
		return string(b)
	}
	if body := get("/healthz"); !strings.Contains(body, "ok") {
		t.Fatalf("healthz: %q", body)
	}
	body := get("/metrics")
	for _, want := range []string{
		"peapod_gateway_packets_from_mixes_total 1",
		"peapod_gateway_delivered_live_total 1",
		"peapod_gateway_connected_clients 1",
		"peapod_gateway_stored_messages 0",
		`peapod_gateway_dropped_total{reason="replay"} 0`,
		"peapod_gateway_acks_sent_total 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// A gateway whose directory is down when it starts serves anyway, and is
// listed once the directory comes up.
func TestStartsWhileTheDirectoryIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there: the directory is down
	logs := &logBuffer{}
	cfg := testConfig(t, t.TempDir(), &testDirectory{url: "http://" + addr}, logs)
	g := startGateway(t, cfg)
	if !strings.Contains(logs.String(), "the network's schedule is not known yet") {
		t.Fatalf("the missing schedule is not logged: %s", logs.String())
	}

	srv, err := directory.New(directory.Config{DataDir: t.TempDir(), Schedule: testSchedule})
	if err != nil {
		t.Fatal(err)
	}
	if ln, err = net.Listen("tcp", addr); err != nil {
		t.Skipf("the directory's port was taken meanwhile: %v", err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	id := address.EncodeKey(g.Identity())
	noise := g.NoiseKey().Public()
	waitUntil(t, "the gateway to be listed, with its Noise key", func() bool {
		for _, gw := range srv.Topology().Gateways {
			if gw.Identity == id {
				return gw.NoiseKey == address.EncodeKey(noise[:])
			}
		}
		return false
	})
}
