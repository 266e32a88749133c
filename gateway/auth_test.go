package gateway

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/internal/gwproto"
)

// authenticateAs runs an authentication as the client whose private key
// is signer (possibly a forgery: another identity's public half with a
// seed of one's own), at timestamp ts, with the shared key k, drawing its
// randomness from random.
func authenticateAs(t *testing.T, g *Gateway, signer ed25519.PrivateKey, k [gwproto.KeySize]byte, ts time.Time, random io.Reader) error {
	t.Helper()
	s, err := gwproto.Authenticate(testContext(t), dialGateway(t, g), signer, clientKeys(g), k, random, ts)
	if err == nil {
		s.Close()
	}
	return err
}

// forgeKey returns a private key that claims the public key pub but signs
// with a random secret.
func forgeKey(pub ed25519.PublicKey) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	return append(append(ed25519.PrivateKey{}, seed...), pub...)
}

// fixedRandom returns a reader of the same bytes each time: a handshake
// drawing from it sends the same Noise ephemeral key and the same nonce.
func fixedRandom() io.Reader { return bytes.NewReader(bytes.Repeat([]byte{7}, 64)) }

func TestAuthentication(t *testing.T) {
	g := startGateway(t, testConfig(t, t.TempDir(), nil, nil))
	victim := newTestClient()
	victim.register(t, g)
	victim.disconnect()
	attacker := newTestClient()
	attacker.register(t, g)
	victimID := victim.id.Public().(ed25519.PublicKey)

	t.Run("another client's identity", func(t *testing.T) {
		err := authenticateAs(t, g, forgeKey(victimID), attacker.key, time.Now(), rand.Reader)
		if !errors.Is(err, gwproto.ErrAuthentication) {
			t.Fatalf("got %v, want %v", err, gwproto.ErrAuthentication)
		}
	})
	t.Run("stale timestamp", func(t *testing.T) {
		stale := &testClient{id: victim.id, key: victim.key, now: func() time.Time { return time.Now().Add(-5 * time.Minute) }}
		if err := stale.tryConnect(t, g); !errors.Is(err, gwproto.ErrStale) {
			t.Fatalf("got %v, want stale", err)
		}
	})
	t.Run("replayed request", func(t *testing.T) {
		// The same identity, nonce and timestamp, signed for a new channel.
		ts := time.Now()
		if err := authenticateAs(t, g, victim.id, victim.key, ts, fixedRandom()); err != nil {
			t.Fatalf("first use: %v", err)
		}
		if err := authenticateAs(t, g, victim.id, victim.key, ts, fixedRandom()); !errors.Is(err, gwproto.ErrStale) {
			t.Fatalf("second use: got %v, want %v", err, gwproto.ErrStale)
		}
	})
	t.Run("timestamp not after the last accepted", func(t *testing.T) {
		if err := authenticateAs(t, g, victim.id, victim.key, victim.lastTS, rand.Reader); !errors.Is(err, gwproto.ErrStale) {
			t.Fatalf("got %v, want %v", err, gwproto.ErrStale)
		}
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
	ts := time.Now()
	if err := authenticateAs(t, g, c.id, c.key, ts, fixedRandom()); err != nil {
		t.Fatal(err)
	}
	g.Close()
	g = startGateway(t, cfg)
	if err := authenticateAs(t, g, c.id, c.key, ts, fixedRandom()); !errors.Is(err, gwproto.ErrStale) {
		t.Fatalf("the same request after a restart: got %v, want %v", err, gwproto.ErrStale)
	}
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
