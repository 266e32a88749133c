package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/gwproto"
	"github.com/peapod-mixnet/peapod/internal/node"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/internal/wire/wiretest"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// waitTimeout bounds every wait of the tests.
const waitTimeout = 10 * time.Second

// logBuffer collects log lines from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls until the log holds s: log lines have no other signal.
func (b *logBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	waitUntil(t, "log line "+s, func() bool { return strings.Contains(b.String(), s) })
}

// waitUntil polls cond until it holds, for state that signals nothing.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testDirectory is a real directory server on loopback.
type testDirectory struct {
	srv *directory.Server
	url string
}

func startDirectory(t testing.TB) *testDirectory {
	t.Helper()
	srv, err := directory.New(directory.Config{DataDir: t.TempDir(), Schedule: testSchedule})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return &testDirectory{srv: srv, url: "http://" + ln.Addr().String()}
}

// sink is a stand-in layer-1 mixnode: it registers with the directory and
// hands every frame it receives to the test. With a directory its links
// are Noise links, as a real mixnode's.
type sink struct {
	addr   netip.AddrPort
	frames chan []byte
}

func startSink(t testing.TB, dir *testDirectory) *sink {
	t.Helper()
	s := &sink{frames: make(chan []byte, 1024)}
	cfg := wire.ServerConfig{Handler: wire.HandlerFunc(func(_ *wire.Peer, _ wire.Header, p []byte) {
		s.frames <- append([]byte(nil), p...)
	})}
	var noise *node.NoiseKey
	if dir != nil {
		var err error
		if noise, err = node.GenerateNoiseKey(rand.Reader); err != nil {
			t.Fatal(err)
		}
		cfg.Noise = &wire.NoiseConfig{Key: noise, Peers: wiretest.AnyPeers{}}
	}
	srv, err := wire.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().(*net.TCPAddr).AddrPort()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	if dir != nil {
		registerNode(t, dir.url, 1, s.addr, noise)
	}
	return s
}

// registerNode lists a mixnode of the given layer at addr with the Noise
// key noise in the directory at url.
func registerNode(t testing.TB, url string, layer int, addr netip.AddrPort, noise *node.NoiseKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := sphinx.GenerateKey(rand.Reader)
	d := directory.NewMixnodeDescriptor(layer, addr, pub, []directory.SphinxKey{directory.NewSphinxKey(0, key.PublicKey())})
	nk := noise.Public()
	d.NoiseKey = address.EncodeKey(nk[:])
	c := &directory.Client{BaseURL: url}
	if err := c.Register(context.Background(), d, priv); err != nil {
		t.Fatal(err)
	}
}

// next returns the next frame's packet.
func (s *sink) next(t testing.TB) []byte {
	t.Helper()
	select {
	case p := <-s.frames:
		return p
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for a frame at the sink")
		return nil
	}
}

// testClock is an adjustable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// gatewayOptions adjusts a test gateway's config.
type gatewayOptions func(*Config)

// testConfig is a gateway config on loopback ports for tests.
// testSchedule is the schedule of the tests' directories: rotation 0 began
// a minute ago and lasts six hours.
var testSchedule = directory.Schedule{Genesis: time.Now().Add(-time.Minute), EpochLength: time.Hour, RotationEpochs: 6}

func testConfig(t testing.TB, dataDir string, dir *testDirectory, log *logBuffer) Config {
	cfg := Config{
		MixListenAddr:    "127.0.0.1:0",
		ClientListenAddr: "127.0.0.1:0",
		DataDir:          dataDir,
		ReplayCapacity:   10000,
		PeakRate:         0.1, // the smallest filters with the tests' hour-long epochs
		HandshakeTimeout: 2 * time.Second,
	}
	if dir != nil {
		cfg.DirectoryURL = dir.url
	}
	if log != nil {
		cfg.Logger = zerolog.New(log)
	}
	return cfg
}

// startGateway starts a gateway with cfg and closes it at the end of the
// test.
func startGateway(t testing.TB, cfg Config) *Gateway {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// testClient is a client of a test gateway.
type testClient struct {
	id     ed25519.PrivateKey
	key    [gwproto.KeySize]byte
	now    func() time.Time
	lastTS time.Time
	ws     *websocket.Conn
	sess   *gwproto.Session
}

func newTestClient() *testClient {
	_, id, _ := ed25519.GenerateKey(rand.Reader)
	return &testClient{id: id, now: time.Now}
}

func (c *testClient) identity() clientID { return clientID(c.id.Public().(ed25519.PublicKey)) }

// timestamp returns a handshake timestamp later than every earlier one.
func (c *testClient) timestamp() time.Time {
	ts := c.now()
	if !ts.After(c.lastTS) {
		ts = c.lastTS.Add(time.Nanosecond)
	}
	c.lastTS = ts
	return ts
}

func dialGateway(t testing.TB, g *Gateway) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+g.ClientAddr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// register registers c with g over a new connection and keeps it open.
func (c *testClient) register(t testing.TB, g *Gateway) {
	t.Helper()
	c.ws = dialGateway(t, g)
	k, sess, err := gwproto.Register(testContext(t), c.ws, c.id, clientKeys(g), rand.Reader, c.timestamp())
	if err != nil {
		t.Fatal(err)
	}
	c.key, c.sess = k, sess
}

// connect authenticates c with g over a new connection.
func (c *testClient) connect(t testing.TB, g *Gateway) {
	t.Helper()
	if err := c.tryConnect(t, g); err != nil {
		t.Fatal(err)
	}
}

func (c *testClient) tryConnect(t testing.TB, g *Gateway) error {
	t.Helper()
	c.ws = dialGateway(t, g)
	sess, err := gwproto.Authenticate(testContext(t), c.ws, c.id, clientKeys(g), c.key, rand.Reader, c.timestamp())
	if err != nil {
		return err
	}
	c.sess = sess
	return nil
}

// disconnect closes c's connection.
func (c *testClient) disconnect() { c.sess.Close() }

// receive returns the next message, with its payload copied.
func (c *testClient) receive(t testing.TB) gwproto.Message {
	t.Helper()
	c.sess.SetReadDeadline(time.Now().Add(waitTimeout))
	m, err := c.sess.Receive()
	if err != nil {
		t.Fatalf("receiving: %v", err)
	}
	if d, ok := m.(*gwproto.Deliver); ok {
		d.Payload = append([]byte(nil), d.Payload...)
	}
	return m
}

// deliver returns the next message, which must be a Deliver.
func (c *testClient) deliver(t testing.TB) *gwproto.Deliver {
	t.Helper()
	m := c.receive(t)
	d, ok := m.(*gwproto.Deliver)
	if !ok {
		t.Fatalf("got %T %+v, want a Deliver", m, m)
	}
	return d
}

// sync sends a Ping and waits for its Pong; every Deliver received before
// is returned.
func (c *testClient) sync(t testing.TB) []*gwproto.Deliver {
	t.Helper()
	v := uint64(time.Now().UnixNano())
	if err := c.sess.Send(&gwproto.Ping{Value: v}); err != nil {
		t.Fatal(err)
	}
	var got []*gwproto.Deliver
	for {
		switch m := c.receive(t).(type) {
		case *gwproto.Pong:
			if m.Value == v {
				return got
			}
		case *gwproto.Deliver:
			got = append(got, m)
		default:
			t.Fatalf("unexpected %T %+v", m, m)
		}
	}
}

func (c *testClient) confirm(t testing.TB, ids ...uint64) {
	t.Helper()
	if err := c.sess.Send(&gwproto.Received{IDs: ids}); err != nil {
		t.Fatal(err)
	}
}

// nodeAddr encodes ap as a Sphinx node address.
func nodeAddr(t testing.TB, ap netip.AddrPort) sphinx.NodeAddress {
	t.Helper()
	a, err := sphinx.NewNodeAddress(ap)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// gatewayHop is g as the last hop of a route.
func gatewayHop(t testing.TB, g *Gateway) sphinx.Hop {
	return sphinx.Hop{Address: nodeAddr(t, g.MixAddr()), PublicKey: g.SphinxPublicKey()}
}

// fakeAck is a made-up SURB-ack: the gateway never looks inside one.
func fakeAck(seed byte) []byte {
	return bytes.Repeat([]byte{seed}, SURBAckSize)
}

// dataPacket is a regular packet whose only hop is g, for client to, with
// a SURB-ack for ackHop and the message msg.
func dataPacket(t testing.TB, g *Gateway, to clientID, ackHop netip.AddrPort, ack, msg []byte) []byte {
	t.Helper()
	payload, err := appendPayload(nil, ackHop, ack, msg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := sphinx.NewPacket(rand.Reader, sphinx.RegularPacket, []sphinx.Hop{gatewayHop(t, g)}, sphinx.Destination(to), sphinx.SURBID{}, payload)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ackPacket is an ack-size packet whose only hop is g, for client to.
func ackPacket(t testing.TB, g *Gateway, to clientID, body []byte) []byte {
	t.Helper()
	p, err := sphinx.NewPacket(rand.Reader, sphinx.AckPacket, []sphinx.Hop{gatewayHop(t, g)}, sphinx.Destination(to), sphinx.SURBID{}, body)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// mixConn is a connection to a gateway's mix listener, as a mixnode makes:
// with a directory, a Noise link as a layer-3 mixnode the directory lists.
type mixConn struct {
	c net.Conn
	w io.Writer
}

// exitNodes are the stand-in layer-3 mixnodes of the gateways under test,
// registered once per gateway.
var exitNodes sync.Map // *Gateway → *node.NoiseKey

// exitNode returns the Noise key of a layer-3 mixnode listed in g's
// directory, registering one and making g fetch the topology the first
// time.
func exitNode(t testing.TB, g *Gateway) *node.NoiseKey {
	t.Helper()
	if k, ok := exitNodes.Load(g); ok {
		return k.(*node.NoiseKey)
	}
	key, err := node.GenerateNoiseKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // an address no one else lists
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	registerNode(t, g.cfg.DirectoryURL, directory.MaxLayer, addr, key)
	if err := g.topo.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	exitNodes.Store(g, key)
	t.Cleanup(func() { exitNodes.Delete(g) })
	return key
}

func dialMix(t testing.TB, g *Gateway) *mixConn {
	t.Helper()
	var key *node.NoiseKey
	if g.cfg.DirectoryURL != "" {
		key = exitNode(t, g) // listed before the connection is
	}
	c, err := net.Dial("tcp", g.MixAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if key == nil {
		return &mixConn{c: c, w: c}
	}
	nc, err := wire.Initiate(c, key, g.NoiseKey().Public(), time.Now().Add(waitTimeout))
	if err != nil {
		t.Fatal(err)
	}
	return &mixConn{c: c, w: nc}
}

func (m *mixConn) send(t testing.TB, packets ...[]byte) {
	t.Helper()
	var b []byte
	for _, p := range packets {
		h, err := wire.HeaderFor(p)
		if err != nil {
			t.Fatal(err)
		}
		b = wire.AppendFrame(b, h, p)
	}
	if _, err := m.w.Write(b); err != nil {
		t.Fatal(err)
	}
}

// waitStats polls g's stats until cond holds: stats signal nothing.
func waitStats(t *testing.T, g *Gateway, what string, cond func(Stats) bool) Stats {
	t.Helper()
	var s Stats
	waitUntil(t, what, func() bool { s = g.Stats(); return cond(s) })
	return s
}

// isClosed reports whether c's peer has closed it, waiting for at most
// waitTimeout.
func isClosed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	var b [4096]byte
	for {
		_, err := c.Read(b[:])
		if err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// checkNoGoroutines fails if a goroutine runs code whose stack names one
// of the given symbols, once every one started for the test should have
// ended. Goroutines of other tests' gateways may still be ending, so it
// polls for a while.
func checkNoGoroutines(t *testing.T, symbols ...string) {
	t.Helper()
	var leaked string
	ok := func() bool {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, g := range strings.Split(string(buf), "\n\n") {
			for _, s := range symbols {
				if strings.Contains(g, s) {
					leaked = g
					return false
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(2 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("goroutine left behind:\n%s", leaked)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clientKeys are the keys a client knows g by, as the topology lists them.
func clientKeys(g *Gateway) gwproto.GatewayKeys {
	return gwproto.GatewayKeys{Identity: g.Identity(), Noise: g.NoiseKey().Public()}
}
