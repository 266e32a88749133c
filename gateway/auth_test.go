package gateway

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/peapod-mixnet/peapod/internal/gwproto"
)

// authRequest builds an authentication request by hand (the layout of
// internal/gwproto's handshake): 0x03 ‖ version ‖ identity ‖ nonce ‖
// timestamp ‖ signature, the signature made by signer over context ‖
// gateway identity ‖ the request before it. It lets a test claim an
// identity it does not hold, and replay a request byte for byte.
func authRequest(identity ed25519.PublicKey, signer ed25519.PrivateKey, gateway ed25519.PublicKey, ts time.Time) []byte {
	req := []byte{0x03, gwproto.Version}
	req = append(req, identity...)
	var nonce [gwproto.NonceSize]byte
	rand.Read(nonce[:])
	req = append(req, nonce[:]...)
	req = binary.BigEndian.AppendUint64(req, uint64(ts.UnixNano()))
	signed := append(append([]byte("peapod-gateway-auth-v1"), gateway...), req...)
	return append(req, ed25519.Sign(signer, signed)...)
}

// rawHandshake sends req on a new connection and returns the reply frame.
func rawHandshake(t *testing.T, g *Gateway, req []byte) []byte {
	t.Helper()
	ws := dialGateway(t, g)
	if err := ws.WriteMessage(websocket.BinaryMessage, req); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(waitTimeout))
	_, reply, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

// wantHandshakeError checks that reply is a handshake error with code.
func wantHandshakeError(t *testing.T, reply []byte, code gwproto.ErrorCode) {
	t.Helper()
	if len(reply) < 2 || reply[0] != 0x05 || gwproto.ErrorCode(reply[1]) != code {
		t.Fatalf("reply %x, want handshake error %v", reply, code)
	}
}

func TestAuthentication(t *testing.T) {
	g := startGateway(t, testConfig(t, t.TempDir(), nil, nil))
	victim := newTestClient()
	victim.register(t, g)
	victim.disconnect()
	attacker := newTestClient()
	attacker.register(t, g)
	victimID := victim.id.Public().(ed25519.PublicKey)

	t.Run("another client's identity", func(t *testing.T) {
		req := authRequest(victimID, attacker.id, g.Identity(), time.Now())
		wantHandshakeError(t, rawHandshake(t, g, req), gwproto.CodeAuthentication)
	})
	t.Run("stale timestamp", func(t *testing.T) {
		stale := &testClient{id: victim.id, key: victim.key, now: func() time.Time { return time.Now().Add(-5 * time.Minute) }}
		if err := stale.tryConnect(t, g); !errors.Is(err, gwproto.ErrStale) {
			t.Fatalf("got %v, want stale", err)
		}
	})
	t.Run("replayed request", func(t *testing.T) {
		req := authRequest(victimID, victim.id, g.Identity(), time.Now())
		if reply := rawHandshake(t, g, req); len(reply) == 0 || reply[0] != 0x04 {
			t.Fatalf("first use: reply %x, want an auth response", reply)
		}
		wantHandshakeError(t, rawHandshake(t, g, req), gwproto.CodeStale)
	})
	t.Run("timestamp not after the last accepted", func(t *testing.T) {
		req := authRequest(victimID, victim.id, g.Identity(), victim.lastTS)
		wantHandshakeError(t, rawHandshake(t, g, req), gwproto.CodeStale)
	})
	t.Run("unregistered", func(t *testing.T) {
		stranger := newTestClient()
		if err := stranger.tryConnect(t, g); !errors.Is(err, gwproto.ErrNotRegistered) {
			t.Fatalf("got %v, want not registered", err)
		}
	})
	waitStats(t, g, "5 handshake failures", func(s Stats) bool { return s.HandshakeFailures == 5 })
}

// The last accepted timestamp survives a restart: a request captured
// before it cannot be replayed after it.
func TestReplayAfterRestart(t *testing.T) {
	data := t.TempDir()
	cfg := testConfig(t, data, nil, nil)
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	c := newTestClient()
	c.register(t, g)
	req := authRequest(c.id.Public().(ed25519.PublicKey), c.id, g.Identity(), time.Now())
	if reply := rawHandshake(t, g, req); reply[0] != 0x04 {
		t.Fatalf("reply %x", reply)
	}
	g.Close()
	g = startGateway(t, cfg)
	wantHandshakeError(t, rawHandshake(t, g, req), gwproto.CodeStale)
	c.connect(t, g) // a fresh request still works
}

// A client never receives, nor confirms away, another client's messages.
func TestClientsAreIsolated(t *testing.T) {
	g := startGateway(t, testConfig(t, t.TempDir(), nil, nil))
	a, b := newTestClient(), newTestClient()
	a.register(t, g)
	b.register(t, g)
	b.disconnect()
	waitStats(t, g, "b to leave", func(s Stats) bool { return s.ConnectedClients == 1 })

	mc := dialMix(t, g)
	for range 3 {
		mc.send(t, ackPacket(t, g, b.identity(), []byte("for b")))
	}
	waitStats(t, g, "b's messages to be stored", func(s Stats) bool { return s.StoredMessages == 3 })
	// a guesses ids and confirms them: nothing of b's goes away.
	ids := make([]uint64, 1000)
	for i := range ids {
		ids[i] = uint64(i)
	}
	a.confirm(t, ids...)
	if got := a.sync(t); len(got) != 0 {
		t.Fatalf("a received %d of b's messages", len(got))
	}
	if s := g.Stats(); s.StoredMessages != 3 || s.Confirmed != 0 {
		t.Fatalf("stats %+v", s)
	}
	b.connect(t, g)
	for range 3 {
		if d := b.deliver(t); string(d.Payload) != "for b" {
			t.Fatalf("b got %q", d.Payload)
		}
	}
}
