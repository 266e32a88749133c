package gwproto

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// memRegistry is an in-memory Registry for tests.
type memRegistry struct {
	mu     sync.Mutex
	keys   map[string][KeySize]byte
	last   map[string]time.Time
	refuse error // returned by Register when set
}

func newMemRegistry() *memRegistry {
	return &memRegistry{keys: map[string][KeySize]byte{}, last: map[string]time.Time{}}
}

func (r *memRegistry) check(id string, ts time.Time) error {
	if last, ok := r.last[id]; ok && !ts.After(last) {
		return ErrStale
	}
	r.last[id] = ts
	return nil
}

func (r *memRegistry) Register(c ed25519.PublicKey, k [KeySize]byte, ts time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse != nil {
		return r.refuse
	}
	if err := r.check(string(c), ts); err != nil {
		return err
	}
	r.keys[string(c)] = k
	return nil
}

func (r *memRegistry) Authenticate(c ed25519.PublicKey, ts time.Time) ([KeySize]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok := r.keys[string(c)]
	if !ok {
		return k, ErrNotRegistered
	}
	return k, r.check(string(c), ts)
}

// testGateway accepts handshakes over real loopback WebSockets and echoes
// Ping as Pong and Forward as Deliver.
type testGateway struct {
	id       ed25519.PrivateKey
	noise    *testNoiseKey
	reg      *memRegistry
	srv      *httptest.Server
	now      func() time.Time
	accepted chan ed25519.PublicKey
}

func newTestGateway(t testing.TB) *testGateway {
	t.Helper()
	_, id, _ := ed25519.GenerateKey(rand.Reader)
	g := &testGateway{id: id, noise: newTestNoiseKey(t), reg: newMemRegistry(), now: time.Now, accepted: make(chan ed25519.PublicKey, 10)}
	up := websocket.Upgrader{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		client, s, err := Accept(ctx, ws, AcceptConfig{Identity: g.id, Noise: g.noise, Registry: g.reg, Rand: rand.Reader, Now: g.now})
		if err != nil {
			return
		}
		g.accepted <- client
		for {
			m, err := s.Receive()
			if err != nil {
				return
			}
			switch m := m.(type) {
			case *Ping:
				s.Send(&Pong{Value: m.Value})
			case *Forward:
				s.Send(&Deliver{ID: 7, Kind: KindMessage, Payload: m.Packet})
			}
		}
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *testGateway) dial(t testing.TB) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(g.srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// recorder holds the frames that went through a recording proxy.
type recorder struct {
	mu       sync.Mutex
	up, down [][]byte // client to gateway, gateway to client
}

// sent returns the frames the client sent so far.
func (r *recorder) sent() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.up)
}

// all returns every frame either side sent so far.
func (r *recorder) all() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append(slices.Clone(r.up), r.down...)
}

// dialRecorded connects to the gateway through a proxy that records every
// frame both ways, as a link observer would see them.
func (g *testGateway) dialRecorded(t *testing.T) (*websocket.Conn, *recorder) {
	t.Helper()
	rec := &recorder{}
	up := websocket.Upgrader{}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer client.Close()
		gw := g.dial(t)
		pump := func(from, to *websocket.Conn, log *[][]byte) {
			defer to.Close()
			for {
				kind, b, err := from.ReadMessage()
				if err != nil {
					return
				}
				rec.mu.Lock()
				*log = append(*log, b)
				rec.mu.Unlock()
				if to.WriteMessage(kind, b) != nil {
					return
				}
			}
		}
		go pump(gw, client, &rec.down)
		pump(client, gw, &rec.up)
	}))
	t.Cleanup(proxy.Close)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(proxy.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws, rec
}

// public is what a client knows of the gateway from the topology.
func (g *testGateway) public() GatewayKeys {
	return GatewayKeys{Identity: g.id.Public().(ed25519.PublicKey), Noise: g.noise.Public()}
}

// testNoiseKey is a Noise static key pair.
type testNoiseKey struct {
	priv []byte
	pub  [NoiseKeySize]byte
}

func newTestNoiseKey(t testing.TB) *testNoiseKey {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nk := &testNoiseKey{priv: k.Bytes()}
	copy(nk.pub[:], k.PublicKey().Bytes())
	return nk
}

func (k *testNoiseKey) Public() [NoiseKeySize]byte { return k.pub }
func (k *testNoiseKey) Private() []byte            { return bytes.Clone(k.priv) }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func newClient(t *testing.T) ed25519.PrivateKey {
	_, id, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestRegisterThenAuthenticate(t *testing.T) {
	g := newTestGateway(t)
	id := newClient(t)
	k, s, err := Register(ctx(t), g.dial(t), id, g.public(), rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := <-g.accepted; !bytes.Equal(got, id.Public().(ed25519.PublicKey)) {
		t.Fatal("gateway accepted another identity")
	}
	if g.reg.keys[string(id.Public().(ed25519.PublicKey))] != k {
		t.Fatal("gateway and client derived different shared keys")
	}
	roundTrip(t, s)

	s2, err := Authenticate(ctx(t), g.dial(t), id, g.public(), k, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	<-g.accepted
	roundTrip(t, s2)
}

// A link observer between client and gateway sees neither the client's
// identity key (raw or base58) nor whether it registers or authenticates:
// every handshake frame of a registration has the size of its counterpart
// in an authentication.
func TestHandshakeHidesClient(t *testing.T) {
	g := newTestGateway(t)
	id := newClient(t)
	pub := id.Public().(ed25519.PublicKey)
	ws, regRec := g.dialRecorded(t)
	k, s, err := Register(ctx(t), ws, id, g.public(), rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	<-g.accepted
	roundTrip(t, s)
	ws, authRec := g.dialRecorded(t)
	s, err = Authenticate(ctx(t), ws, id, g.public(), k, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	<-g.accepted
	roundTrip(t, s)

	for name, rec := range map[string]*recorder{"registration": regRec, "authentication": authRec} {
		frames := rec.all()
		if len(frames) < 4 {
			t.Fatalf("%s: recorded %d frames, want the handshake and a round trip", name, len(frames))
		}
		for i, f := range frames {
			if bytes.Contains(f, pub) || bytes.Contains(f, []byte(address.EncodeKey(pub))) {
				t.Fatalf("%s: frame %d (%d bytes) holds the client's identity key", name, i, len(f))
			}
		}
	}
	// The first two frames each way (hello, request; hello reply, answer).
	for i := range 2 {
		if r, a := len(regRec.sent()[i]), len(authRec.sent()[i]); r != a {
			t.Errorf("client frame %d: registration %d bytes, authentication %d", i, r, a)
		}
		regRec.mu.Lock()
		authRec.mu.Lock()
		r, a := len(regRec.down[i]), len(authRec.down[i])
		authRec.mu.Unlock()
		regRec.mu.Unlock()
		if r != a {
			t.Errorf("gateway frame %d: registration %d bytes, authentication %d", i, r, a)
		}
	}
}

func roundTrip(t *testing.T, s *Session) {
	t.Helper()
	if err := s.Send(&Ping{Value: 42}); err != nil {
		t.Fatal(err)
	}
	m, err := s.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := m.(*Pong); !ok || p.Value != 42 {
		t.Fatalf("got %#v, want Pong 42", m)
	}
	pkt := make([]byte, sphinx.AckPacket.Len())
	rand.Read(pkt)
	hop, _ := sphinx.ParseNodeAddress("127.0.0.1:1789")
	if err := s.Send(&Forward{FirstHop: hop, Packet: pkt}); err != nil {
		t.Fatal(err)
	}
	m, err = s.Receive()
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := m.(*Deliver); !ok || !bytes.Equal(d.Payload, pkt) {
		t.Fatalf("got %#v, want the packet back", m)
	}
}

func TestAuthenticationFailures(t *testing.T) {
	g := newTestGateway(t)
	id := newClient(t)
	k, _, err := Register(ctx(t), g.dial(t), id, g.public(), rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	<-g.accepted

	// An unknown client is told to register.
	if _, err := Authenticate(ctx(t), g.dial(t), newClient(t), g.public(), k, rand.Reader, time.Now()); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("unknown client: err = %v, want ErrNotRegistered", err)
	}
	// A stale timestamp is refused.
	if _, err := Authenticate(ctx(t), g.dial(t), id, g.public(), k, rand.Reader, time.Now().Add(-3*time.Minute)); !errors.Is(err, ErrStale) {
		t.Fatalf("stale timestamp: err = %v, want ErrStale", err)
	}
	// A future timestamp too.
	if _, err := Authenticate(ctx(t), g.dial(t), id, g.public(), k, rand.Reader, time.Now().Add(3*time.Minute)); !errors.Is(err, ErrStale) {
		t.Fatalf("future timestamp: err = %v, want ErrStale", err)
	}
	// A client holding the wrong key does not get through: the gateway's
	// confirmation does not verify.
	var wrong [KeySize]byte
	if _, err := Authenticate(ctx(t), g.dial(t), id, g.public(), wrong, rand.Reader, time.Now()); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("wrong key: err = %v, want ErrAuthentication", err)
	}
	// A gateway impostor (another identity) fails the client's check.
	other := g.public()
	other.Identity = make([]byte, 32)
	if _, _, err := Register(ctx(t), g.dial(t), newClient(t), other, rand.Reader, time.Now()); err == nil {
		t.Fatal("registration with the wrong gateway identity succeeded")
	}
	// So does one that does not hold the Noise key the client expects:
	// the hello reply does not decrypt (and the gateway cannot read the
	// hello).
	other = g.public()
	other.Noise = newTestNoiseKey(t).Public()
	if _, _, err := Register(ctx(t), g.dial(t), newClient(t), other, rand.Reader, time.Now()); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("registration with the wrong gateway Noise key: err = %v, want ErrAuthentication", err)
	}
}

// A registration the registry refuses reaches the client as ErrRefused with
// the registry's reason; any other registry failure as an internal error
// that says nothing more.
func TestRegistrationRefused(t *testing.T) {
	g := newTestGateway(t)
	g.reg.mu.Lock()
	g.reg.refuse = fmt.Errorf("%w: registrations from your address are at the limit of 3", ErrRefused)
	g.reg.mu.Unlock()
	_, _, err := Register(ctx(t), g.dial(t), newClient(t), g.public(), rand.Reader, time.Now())
	var remote *RemoteError
	if !errors.Is(err, ErrRefused) || !errors.As(err, &remote) || remote.Code != CodeRefused ||
		!strings.Contains(remote.Message, "at the limit of 3") {
		t.Fatalf("refused registration: err = %v, want ErrRefused with the reason", err)
	}

	g.reg.mu.Lock()
	g.reg.refuse = errors.New("disk on fire at /secret/path")
	g.reg.mu.Unlock()
	_, _, err = Register(ctx(t), g.dial(t), newClient(t), g.public(), rand.Reader, time.Now())
	if !errors.As(err, &remote) || remote.Code != CodeInternal || remote.Message != "" {
		t.Fatalf("failed registration: err = %v, want a bare internal error", err)
	}
}

// A captured authentication request replayed on a new connection is refused.
func TestReplayedAuthentication(t *testing.T) {
	g := newTestGateway(t)
	id := newClient(t)
	k, _, err := Register(ctx(t), g.dial(t), id, g.public(), rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	<-g.accepted
	// Capture what the client sends by authenticating through a recording
	// connection.
	now := time.Now()
	nonce := bytes.Repeat([]byte{9}, NonceSize)
	random := func() io.Reader {
		return io.MultiReader(io.LimitReader(rand.Reader, NoiseKeySize), bytes.NewReader(nonce))
	}
	ws, rec := g.dialRecorded(t)
	if _, err := Authenticate(ctx(t), ws, id, g.public(), k, random(), now); err != nil {
		t.Fatal(err)
	}
	<-g.accepted
	// The same bytes again: the hello is answered, but the sealed request
	// belongs to the old channel.
	frames := rec.sent()
	ws = g.dial(t)
	ws.WriteMessage(websocket.BinaryMessage, frames[0])
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatalf("the hello again: %v", err)
	}
	ws.WriteMessage(websocket.BinaryMessage, frames[1])
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, b, err := ws.ReadMessage(); err == nil {
		t.Fatalf("a replayed request was answered (%d bytes)", len(b))
	}
	// The same request, timestamp and nonce, signed again by the client in
	// a new channel: stale.
	if _, err := Authenticate(ctx(t), g.dial(t), id, g.public(), k, random(), now); !errors.Is(err, ErrStale) {
		t.Fatalf("replayed request: err = %v, want ErrStale", err)
	}
}

// Another client's identity cannot be claimed: the signature check fails.
func TestImpersonation(t *testing.T) {
	g := newTestGateway(t)
	victim := newClient(t)
	if _, _, err := Register(ctx(t), g.dial(t), victim, g.public(), rand.Reader, time.Now()); err != nil {
		t.Fatal(err)
	}
	<-g.accepted
	ch, err := openChannel(g.dial(t), g.noise.Public(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	attacker := newClient(t)
	req := []byte{tagAuthRequest, Version}
	req = append(req, victim.Public().(ed25519.PublicKey)...)
	req = append(req, make([]byte, NonceSize)...)
	req = binary.BigEndian.AppendUint64(req, uint64(time.Now().UnixNano())) // only the signature is wrong
	req = append(req, ed25519.Sign(attacker, signedPayload(ctxAuthRequest, g.public().Identity, ch.binding, req))...)
	ch.write(req)
	_, err = readHandshakeReply(ch, tagAuthResponse, authResponseSize)
	if !errors.Is(err, ErrAuthentication) {
		t.Fatalf("impersonation: err = %v, want ErrAuthentication", err)
	}
}

func TestTamperedFrameRefused(t *testing.T) {
	g := newTestGateway(t)
	id := newClient(t)
	ws := g.dial(t)
	_, s, err := Register(ctx(t), ws, id, g.public(), rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	<-g.accepted
	// Write a sealed Ping with one bit flipped straight onto the socket.
	plain := AppendMessage(nil, &Ping{Value: 1})
	nonce := seqNonce(0)
	frame := s.send.Seal(nil, nonce[:], plain, nil)
	frame[0] ^= 1
	ws.WriteMessage(websocket.BinaryMessage, frame)
	// The gateway drops the connection: the next read fails.
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Fatal("gateway answered a tampered frame")
	}
}

func TestMessagesRoundTrip(t *testing.T) {
	hop, _ := sphinx.ParseNodeAddress("10.1.2.3:1789")
	msgs := []Message{
		&Forward{FirstHop: hop, Packet: make([]byte, sphinx.RegularPacket.Len())},
		&Received{IDs: []uint64{1, 2, 1 << 60}},
		&Received{IDs: []uint64{}},
		&Ping{Value: 5}, &Pong{Value: 6},
		&Deliver{ID: 9, Kind: KindAck, Payload: []byte("x")},
		&Deliver{ID: 10, Kind: KindMessage, Payload: []byte{}},
		&Error{Code: CodeRefused, Message: "no"},
	}
	for _, m := range msgs {
		enc := AppendMessage(nil, m)
		got, err := ParseMessage(enc)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !bytes.Equal(AppendMessage(nil, got), enc) {
			t.Fatalf("%T did not round-trip", m)
		}
	}
	bad := [][]byte{
		{},
		{0x99},
		{tagForward, 1, 2},
		append(append([]byte{tagForward}, hop[:]...), make([]byte, 100)...),
		{tagReceived, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1},
		{tagPing, 1},
		{tagDeliver, 0, 0, 0, 0, 0, 0, 0, 1, 9},
		{tagError, 1, 0, 5, 'a'},
	}
	for _, b := range bad {
		if _, err := ParseMessage(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%x: err = %v, want ErrMalformed", b, err)
		}
	}
}

func FuzzParseMessage(f *testing.F) {
	hop, _ := sphinx.ParseNodeAddress("10.1.2.3:1789")
	f.Add(AppendMessage(nil, &Forward{FirstHop: hop, Packet: make([]byte, sphinx.AckPacket.Len())}))
	f.Add(AppendMessage(nil, &Received{IDs: []uint64{1, 2}}))
	f.Add(AppendMessage(nil, &Deliver{ID: 1, Kind: KindMessage, Payload: []byte("p")}))
	f.Add(AppendMessage(nil, &Error{Code: 1, Message: "m"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		if !bytes.Equal(AppendMessage(nil, m), b) {
			t.Fatal("re-encoding differs from the input")
		}
	})
}
