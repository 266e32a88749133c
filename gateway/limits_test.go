package gateway

import (
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/peapod-mixnet/peapod/internal/gwproto"
)

// Tests of the gateway's limits against floods of handshakes and
// registrations, over real sockets from several loopback source addresses
// (127.0.0.1, 127.0.0.2, ...: Linux routes the whole of 127/8 to lo).

// dialerFrom dials from the loopback address src.
func dialerFrom(src string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: waitTimeout}
}

// dialGatewayFrom opens a WebSocket to g from src. On a refused upgrade it
// returns the error and the HTTP response's status and body.
func dialGatewayFrom(t *testing.T, g *Gateway, src string) (*websocket.Conn, int, string, error) {
	t.Helper()
	d := websocket.Dialer{NetDialContext: dialerFrom(src).DialContext, HandshakeTimeout: waitTimeout}
	ws, resp, err := d.Dial("ws://"+g.ClientAddr().String(), nil)
	if err != nil {
		if resp == nil {
			return nil, 0, "", err
		}
		body, _ := io.ReadAll(resp.Body)
		return nil, resp.StatusCode, string(body), err
	}
	t.Cleanup(func() { ws.Close() })
	return ws, 0, "", nil
}

// holdHandshake opens a TCP connection to g's client listener from src and
// sends nothing: a handshake that never progresses.
func holdHandshake(t *testing.T, g *Gateway, src string) net.Conn {
	t.Helper()
	c, err := dialerFrom(src).Dial("tcp", g.ClientAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// registerFrom registers c with g over a new connection from src.
func (c *testClient) registerFrom(t *testing.T, g *Gateway, src string) error {
	t.Helper()
	ws, status, body, err := dialGatewayFrom(t, g, src)
	if err != nil {
		t.Fatalf("dialing from %s: %v (status %d, %q)", src, err, status, body)
	}
	k, sess, err := gwproto.Register(testContext(t), ws, c.id, clientKeys(g), rand.Reader, c.timestamp())
	if err != nil {
		return err
	}
	c.ws, c.key, c.sess = ws, k, sess
	return nil
}

// registeredFrom registers a new client with g from src, and disconnects it.
func registeredFrom(t *testing.T, g *Gateway, src string) *testClient {
	t.Helper()
	c := newTestClient()
	if err := c.registerFrom(t, g, src); err != nil {
		t.Fatal(err)
	}
	c.disconnect()
	return c
}

// scrape returns g's /metrics page, read over HTTP.
func scrape(t *testing.T, g *Gateway) string {
	t.Helper()
	resp, err := http.Get("http://" + g.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantMetrics(t *testing.T, g *Gateway, lines ...string) {
	t.Helper()
	page := scrape(t, g)
	for _, l := range lines {
		if !strings.Contains(page, l+"\n") {
			t.Errorf("/metrics lacks %q", l)
		}
	}
}

// Connections that never finish their handshake hold a slot each; past the
// per-source limit, and past the total, a new connection is refused with
// HTTP 503 and a message before its upgrade, and counted. Other sources are
// served meanwhile, and the slots come back when the connections close or
// finish their handshake.
func TestHandshakeLimits(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), nil, nil)
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.MaxHandshakes = 3
	cfg.MaxHandshakesPerSource = 2
	cfg.HandshakeTimeout = time.Minute // the held connections must outlast the test
	g := startGateway(t, cfg)

	held := []net.Conn{holdHandshake(t, g, "127.0.0.1"), holdHandshake(t, g, "127.0.0.1")}
	waitStats(t, g, "two handshakes in progress", func(s Stats) bool { return s.Handshakes == 2 })

	_, status, body, err := dialGatewayFrom(t, g, "127.0.0.1")
	if err == nil || status != http.StatusServiceUnavailable || !strings.Contains(body, "your address") || !strings.Contains(body, "limit of 2") {
		t.Fatalf("third handshake from one address: err %v, status %d, body %q; want 503 naming the per-source limit", err, status, body)
	}

	// Another source still gets in, up to the total.
	held = append(held, holdHandshake(t, g, "127.0.0.2"))
	waitStats(t, g, "three handshakes in progress", func(s Stats) bool { return s.Handshakes == 3 })
	_, status, body, err = dialGatewayFrom(t, g, "127.0.0.3")
	if err == nil || status != http.StatusServiceUnavailable || !strings.Contains(body, "limit of 3") {
		t.Fatalf("handshake past the total: err %v, status %d, body %q; want 503 naming the total limit", err, status, body)
	}
	s := g.Stats()
	if s.Refused[RefusedHandshakesPerSource] != 1 || s.Refused[RefusedHandshakes] != 1 {
		t.Fatalf("refusals counted %v, want one of each handshake limit", s.Refused)
	}
	wantMetrics(t, g,
		`peapod_gateway_refused_total{reason="handshakes_per_source"} 1`,
		`peapod_gateway_refused_total{reason="handshakes"} 1`,
		`peapod_gateway_handshakes_in_progress 3`,
		`peapod_gateway_limit{limit="handshakes"} 3`,
		`peapod_gateway_limit{limit="handshakes_per_source"} 2`,
	)

	// Closed connections give their slots back, and a finished handshake
	// holds none.
	for _, c := range held {
		c.Close()
	}
	waitStats(t, g, "no handshake in progress", func(s Stats) bool { return s.Handshakes == 0 })
	clients := []*testClient{newTestClient(), newTestClient(), newTestClient()}
	for _, c := range clients {
		if err := c.registerFrom(t, g, "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
	}
	waitStats(t, g, "three clients connected, none in a handshake", func(s Stats) bool {
		return s.Handshakes == 0 && s.ConnectedClients == 3
	})
}

// A connection held in its handshake ends at HandshakeTimeout even if it
// never sends its HTTP request (not at net/http's 10 s header timeout), and
// gives its slot back.
func TestHeldHandshakeTimesOut(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), nil, nil)
	cfg.HandshakeTimeout = 200 * time.Millisecond
	cfg.MaxHandshakesPerSource = 1
	g := startGateway(t, cfg)
	c := holdHandshake(t, g, "127.0.0.1")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("a silent connection was not closed within 5 s of a 200 ms handshake timeout: %v", err)
	}
	waitStats(t, g, "the slot to come back", func(s Stats) bool { return s.Handshakes == 0 })
	if err := newTestClient().registerFrom(t, g, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
}

// Registrations past the per-source limit, and past the total, are refused
// with gwproto.ErrRefused and a reason, and counted; registered clients
// still authenticate; the counts survive a restart.
func TestRegistrationLimits(t *testing.T) {
	dataDir := t.TempDir()
	cfg := testConfig(t, dataDir, nil, nil)
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.MaxClients = 3
	cfg.MaxClientsPerSource = 2
	cfg.MaxStoredPerClient = 7
	cfg.ClientTTL = 90 * time.Second
	g := startGateway(t, cfg)

	a := registeredFrom(t, g, "127.0.0.1")
	registeredFrom(t, g, "127.0.0.1")
	err := newTestClient().registerFrom(t, g, "127.0.0.1")
	if !errors.Is(err, gwproto.ErrRefused) || !strings.Contains(err.Error(), "your address") || !strings.Contains(err.Error(), "limit of 2") {
		t.Fatalf("third registration from one address: %v; want ErrRefused naming the per-source limit", err)
	}
	// A registered client authenticates from anywhere, and registers again
	// (new keys) from its own address.
	a.connect(t, g)
	a.disconnect()
	if err := a.registerFrom(t, g, "127.0.0.1"); err != nil {
		t.Fatalf("re-registration of a registered client: %v", err)
	}
	a.disconnect()

	if err := newTestClient().registerFrom(t, g, "127.0.0.2"); err != nil {
		t.Fatal(err)
	}
	err = newTestClient().registerFrom(t, g, "127.0.0.3")
	if !errors.Is(err, gwproto.ErrRefused) || !strings.Contains(err.Error(), "limit of 3") {
		t.Fatalf("registration past the total: %v; want ErrRefused naming the total limit", err)
	}
	s := g.Stats()
	if s.RegisteredClients != 3 || s.Refused[RefusedRegistrationsPerSource] != 1 || s.Refused[RefusedRegistrations] != 1 {
		t.Fatalf("registered %d, refused %v; want 3 registered and one refusal of each kind", s.RegisteredClients, s.Refused)
	}
	wantMetrics(t, g,
		`peapod_gateway_refused_total{reason="registrations_per_source"} 1`,
		`peapod_gateway_refused_total{reason="registrations"} 1`,
		`peapod_gateway_registered_clients 3`,
		`peapod_gateway_limit{limit="registrations"} 3`,
		`peapod_gateway_limit{limit="registrations_per_source"} 2`,
		`peapod_gateway_limit{limit="stored_per_client"} 7`,
		`peapod_gateway_limit{limit="client_ttl_seconds"} 90`,
	)

	// After a restart the gateway still knows where each client registered
	// from.
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.MaxClients = 10
	g = startGateway(t, cfg)
	err = newTestClient().registerFrom(t, g, "127.0.0.1")
	if !errors.Is(err, gwproto.ErrRefused) || !strings.Contains(err.Error(), "your address") {
		t.Fatalf("after a restart, a third registration from one address: %v; want ErrRefused", err)
	}
	if err := newTestClient().registerFrom(t, g, "127.0.0.3"); err != nil {
		t.Fatalf("after a restart with a higher total: %v", err)
	}
}

// A registered client that registers again from another address stays
// counted against the address it first registered from, after a restart
// too: moving it would let an attacker with two addresses empty the count
// of one by registering its identities again from the other, and register
// as many again.
func TestReregistrationKeepsItsSource(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), nil, nil)
	cfg.MaxClientsPerSource = 2
	g := startGateway(t, cfg)
	a := registeredFrom(t, g, "127.0.0.1")
	registeredFrom(t, g, "127.0.0.1")
	if err := a.registerFrom(t, g, "127.0.0.2"); err != nil {
		t.Fatalf("a registered client registering again from another address: %v", err)
	}
	a.disconnect()
	refusedAt := func(src string) {
		t.Helper()
		err := newTestClient().registerFrom(t, g, src)
		if !errors.Is(err, gwproto.ErrRefused) || !strings.Contains(err.Error(), "your address") {
			t.Fatalf("a third new client from %s: %v; want ErrRefused naming the per-source limit", src, err)
		}
	}
	refusedAt("127.0.0.1")
	// 127.0.0.2 has registered none of its own yet: two fit.
	for range 2 {
		if err := newTestClient().registerFrom(t, g, "127.0.0.2"); err != nil {
			t.Fatal(err)
		}
	}
	refusedAt("127.0.0.2")

	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	g = startGateway(t, cfg)
	refusedAt("127.0.0.1")
	refusedAt("127.0.0.2")
	if s := g.Stats(); s.RegisteredClients != 4 {
		t.Fatalf("%d clients registered, want 4", s.RegisteredClients)
	}
}

// A client that has not authenticated for ClientTTL is forgotten at the
// next purge, but not while it is connected; packets for it are then
// dropped, its stored messages stay until their own TTL, and it can
// register again (and gets them).
func TestIdleClientsExpire(t *testing.T) {
	clock := &testClock{now: time.Now()}
	dir := startDirectory(t)
	l1 := startSink(t, dir)
	cfg := testConfig(t, t.TempDir(), dir, nil)
	cfg.Now = clock.Now
	cfg.ClientTTL = time.Hour
	cfg.MessageTTL = 2 * time.Hour
	g := startGateway(t, cfg)
	mix := dialMix(t, g)

	idle, busy := newTestClient(), newTestClient()
	idle.now, busy.now = clock.Now, clock.Now
	idle.register(t, g)
	idle.disconnect()
	busy.register(t, g)
	waitStats(t, g, "one client connected", func(s Stats) bool { return s.ConnectedClients == 1 })
	mix.send(t, dataPacket(t, g, idle.identity(), l1.addr, fakeAck(1), []byte("kept")))
	waitStats(t, g, "the message to be stored", func(s Stats) bool { return s.StoredMessages == 1 })

	clock.Advance(time.Hour + time.Minute)
	if _, err := g.purge(); err != nil {
		t.Fatal(err)
	}
	s := g.Stats()
	if s.ExpiredClients != 1 || s.RegisteredClients != 1 || s.StoredMessages != 1 {
		t.Fatalf("after the TTL: %d expired, %d registered, %d stored; want 1, 1 (the connected one), 1", s.ExpiredClients, s.RegisteredClients, s.StoredMessages)
	}
	if err := idle.tryConnect(t, g); !errors.Is(err, gwproto.ErrNotRegistered) {
		t.Fatalf("an expired client authenticating: %v, want ErrNotRegistered", err)
	}
	mix.send(t, dataPacket(t, g, idle.identity(), l1.addr, fakeAck(2), []byte("dropped")))
	waitStats(t, g, "the packet for the expired client to be dropped", func(s Stats) bool { return s.Dropped[DropUnknownClient] == 1 })

	// Registering again within the message TTL gets the stored message.
	idle.register(t, g)
	if d := idle.deliver(t); string(d.Payload) != "kept" {
		t.Fatalf("stored message after registering again: %q", d.Payload)
	}
}

// An expired client's stored messages go at their own TTL.
func TestExpiredClientsMessagesArePurged(t *testing.T) {
	clock := &testClock{now: time.Now()}
	dir := startDirectory(t)
	l1 := startSink(t, dir)
	cfg := testConfig(t, t.TempDir(), dir, nil)
	cfg.Now = clock.Now
	cfg.ClientTTL = time.Hour
	cfg.MessageTTL = 2 * time.Hour
	g := startGateway(t, cfg)
	c := newTestClient()
	c.now = clock.Now
	c.register(t, g)
	c.disconnect()
	waitStats(t, g, "the client to leave", func(s Stats) bool { return s.ConnectedClients == 0 })
	clock.Advance(30 * time.Minute)
	dialMix(t, g).send(t, dataPacket(t, g, c.identity(), l1.addr, fakeAck(1), []byte("m")))
	waitStats(t, g, "the message to be stored", func(s Stats) bool { return s.StoredMessages == 1 })
	clock.Advance(time.Hour)
	g.purge()
	if s := g.Stats(); s.ExpiredClients != 1 || s.StoredMessages != 1 {
		t.Fatalf("at the client's TTL: %d expired, %d stored; want 1, 1", s.ExpiredClients, s.StoredMessages)
	}
	clock.Advance(2 * time.Hour)
	g.purge()
	if s := g.Stats(); s.StoredMessages != 0 {
		t.Fatalf("at the message's TTL: %d stored, want 0", s.StoredMessages)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
