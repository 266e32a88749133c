package directory

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testNode is a node with fresh keys.
type testNode struct {
	key  ed25519.PrivateKey
	desc Descriptor
}

var nextPort struct {
	sync.Mutex
	n uint16
}

func testAddr() netip.AddrPort {
	nextPort.Lock()
	defer nextPort.Unlock()
	nextPort.n++
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 20000+nextPort.n)
}

func newKeys(t testing.TB) (ed25519.PrivateKey, []SphinxKey) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var sphinx [KeySize]byte
	rand.Read(sphinx[:])
	return key, []SphinxKey{NewSphinxKey(testRotation, sphinx)}
}

// testRotation is the key rotation under way, for hours, on a server with
// testSchedule.
const testRotation = 0

// testSchedule is the schedule of test servers: rotation 0 began a minute
// ago and lasts six hours, so a test node's key of rotation 0 is the
// current one whatever the test does with the clock in seconds or minutes.
func testSchedule() Schedule {
	return Schedule{Genesis: testGenesis, EpochLength: time.Hour, RotationEpochs: 6}
}

// testGenesis is the genesis of testSchedule, the same for every server of
// the test run (a restarted server serves the same epochs).
var testGenesis = time.Now().Add(-time.Minute)

// newNoiseKey returns a random Noise key in base58: the directory checks
// only its length.
func newNoiseKey() string {
	var k [KeySize]byte
	rand.Read(k[:])
	return address.EncodeKey(k[:])
}

func newMixnode(t testing.TB, layer int) testNode {
	key, sphinx := newKeys(t)
	d := NewMixnodeDescriptor(layer, testAddr(), key.Public().(ed25519.PublicKey), sphinx)
	d.NoiseKey = newNoiseKey()
	return testNode{key: key, desc: d}
}

func newGateway(t testing.TB) testNode {
	key, sphinx := newKeys(t)
	addr := testAddr()
	d := NewGatewayDescriptor(addr, fmt.Sprintf("ws://%s", addr), key.Public().(ed25519.PublicKey), sphinx)
	d.NoiseKey = newNoiseKey()
	return testNode{key: key, desc: d}
}

// testServer is a Server listening on a loopback port.
type testServer struct {
	*Server
	cfg    Config
	url    string
	client *Client
}

// startServer starts a server with cfg (DataDir defaults to a temporary
// folder) and closes it when the test ends.
func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Schedule == (Schedule{}) {
		cfg.Schedule = testSchedule()
	}
	if cfg.RegisterRate == 0 {
		cfg.RegisterRate = unlimitedRate // tests register many nodes from 127.0.0.1
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, s, cfg, nil)
}

// unlimitedRate is a registration rate no test reaches.
const unlimitedRate = 1e6

// serveOn serves s on a loopback listener: with s.Serve when wrap is nil,
// else with an http.Server of its own around wrap(s.Handler()). When the
// test ends it closes s and checks that Serve returned nil.
func serveOn(t testing.TB, s *Server, cfg Config, wrap func(http.Handler) http.Handler) *testServer {
	t.Helper()
	return serveOnListener(t, s, cfg, wrap, listen(t))
}

// listen returns a loopback listener on a free port.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveOnListener is serveOn on a listener of the caller's.
func serveOnListener(t testing.TB, s *Server, cfg Config, wrap func(http.Handler) http.Handler, ln net.Listener) *testServer {
	t.Helper()
	served := make(chan error, 1)
	stopOwn := func() {}
	if wrap == nil {
		go func() { served <- s.Serve(ln) }()
	} else {
		hs := &http.Server{Handler: wrap(s.Handler())}
		go func() { served <- hs.Serve(ln) }()
		stopOwn = func() { hs.Close() }
	}
	t.Cleanup(func() {
		stopOwn()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; err != nil && err != http.ErrServerClosed {
			t.Errorf("Serve: %v", err)
		}
	})
	url := "http://" + ln.Addr().String()
	return &testServer{Server: s, cfg: cfg, url: url, client: &Client{BaseURL: url}}
}

// signed returns the body and signature header of a request to path for d,
// with the given timestamp, signed by key.
func signed(t testing.TB, key ed25519.PrivateKey, path string, d Descriptor, ts time.Time) ([]byte, string) {
	t.Helper()
	d.Timestamp = ts.UnixNano()
	body, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return body, sign(key, path, body)
}

// post sends body to path with the given signature headers and returns the
// status and the error message of the response, if any.
func (ts *testServer) post(t testing.TB, path string, body []byte, sigs ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, ts.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range sigs {
		req.Header.Add(SignatureHeader, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("POST %s: Content-Type %q, want application/json", path, ct)
	}
	var eb errorBody
	if err := json.Unmarshal(raw, &eb); err != nil {
		t.Errorf("POST %s: response %q is not JSON: %v", path, raw, err)
	}
	if resp.StatusCode >= 400 && eb.Error == "" {
		t.Errorf("POST %s: status %d without an error message: %q", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, eb.Error
}

// register registers n through the server's own client, failing the test
// on error.
func (ts *testServer) register(t testing.TB, n testNode) {
	t.Helper()
	if err := ts.client.Register(context.Background(), n.desc, n.key); err != nil {
		t.Fatalf("Register %s: %v", n.desc.Identity, err)
	}
}

// registerAt registers n with a request made at time at, for a server
// whose clock is not the real one.
func (ts *testServer) registerAt(t testing.TB, n testNode, at time.Time) {
	t.Helper()
	body, sig := signed(t, n.key, PathRegister, n.desc, at)
	if status, msg := ts.post(t, PathRegister, body, sig); status != http.StatusOK {
		t.Fatalf("register %s at %s: %d %s", n.desc.Identity, at, status, msg)
	}
}

// get fetches path and returns the status and body.
func (ts *testServer) get(t testing.TB, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(ts.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// identities returns the identities listed in t, mixnodes first.
func identities(t *Topology) []string {
	var ids []string
	for _, m := range t.Mixnodes {
		ids = append(ids, m.Identity)
	}
	for _, g := range t.Gateways {
		ids = append(ids, g.Identity)
	}
	return ids
}
