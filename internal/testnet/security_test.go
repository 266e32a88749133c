package testnet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/framework/descriptor"
	"github.com/peapod-mixnet/peapod/internal/gwproto"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// TestGatewayIsolation is part of scenario 9: a gateway client cannot read
// another client's messages. While client A is offline its messages wait
// at its gateway; a stranger registered with the same gateway gets none of
// them, and whoever claims A's identity without A's key is refused, whether
// it tries to authenticate or to register again. A then gets every
// message.
func TestGatewayIsolation(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	ctx := ctxFor(t, 2*time.Minute)
	a, b, gwA := twoClientsOn(t, ctx, n, 1, 0)
	epB := dialWS(t, b)
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	msgs := numbered("for-a", 0, 20)
	if err := sendAll(ctx, epB, a.Address(), msgs, 0); err != nil {
		t.Fatal(err)
	}
	waitStored(t, ctx, gwA, len(msgs))
	gwID := gatewayKey(t, gwA)

	// A stranger with its own identity: registered, but handed nothing.
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	ws := dialGateway(t, ctx, gwA)
	_, sess, err := gwproto.Register(ctx, ws, stranger, gwID, rand.Reader, time.Now())
	if err != nil {
		t.Fatalf("a stranger could not register: %v", err)
	}
	sess.SetReadDeadline(time.Now().Add(2 * time.Second))
	if m, err := sess.Receive(); err == nil {
		t.Errorf("the gateway handed a stranger %T", m)
	}
	sess.Close()

	// Someone who claims A's identity but signs with another key.
	aID := a.Address().Identity
	forged := forgeKey(aID[:])
	ws = dialGateway(t, ctx, gwA)
	_, err = gwproto.Authenticate(ctx, ws, forged, gwID, [gwproto.KeySize]byte{1}, rand.Reader, time.Now())
	if !errors.Is(err, gwproto.ErrAuthentication) {
		t.Errorf("authenticating as A with another key: %v, want %v", err, gwproto.ErrAuthentication)
	}
	ws = dialGateway(t, ctx, gwA)
	_, _, err = gwproto.Register(ctx, ws, forged, gwID, rand.Reader, time.Now())
	if !errors.Is(err, gwproto.ErrAuthentication) {
		t.Errorf("registering again as A with another key: %v, want %v", err, gwproto.ErrAuthentication)
	}
	if v, err := gwA.Metric(ctx, "peapod_gateway_stored_messages"); err != nil || v < float64(len(msgs)) {
		t.Errorf("A's messages left the store: %v stored (%v)", v, err)
	}

	// A comes back and gets them all.
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	in := newInbox(dialWS(t, a))
	defer in.stop()
	if err := in.waitCount(ctx, len(msgs)); err != nil {
		t.Fatal(err)
	}
	checkSequence(t, in.messages(), msgs)
}

// TestReplayedAuthentication is part of scenario 9: an authentication
// request captured and sent again is refused, also after the gateway was
// restarted and after it crashed, because the gateway keeps the last
// timestamp it accepted from each client on disk.
func TestReplayedAuthentication(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{Gateways: 1})
	ctx := ctxFor(t, 2*time.Minute)
	gw := n.Gateway(0)
	gwID := gatewayKey(t, gw)
	_, id, _ := ed25519.GenerateKey(rand.Reader)
	k, sess, err := gwproto.Register(ctx, dialGateway(t, ctx, gw), id, gwID, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sess.Close()

	// The same clock reading and the same randomness give the same request
	// (identity, nonce, timestamp), signed again for a new Noise channel:
	// what a client replaying its own request, or anyone who learnt it, can
	// send. (A recording of the sealed frames does not even decrypt in a
	// new channel: gwproto's TestReplayedAuthentication.)
	when := time.Now()
	nonce := bytes.Repeat([]byte{7}, 64)
	auth := func() error {
		s, err := gwproto.Authenticate(ctx, dialGateway(t, ctx, gw), id, gwID, k, bytes.NewReader(nonce), when)
		if err == nil {
			s.Close()
		}
		return err
	}
	if err := auth(); err != nil {
		t.Fatalf("the first authentication failed: %v", err)
	}
	if err := auth(); !errors.Is(err, gwproto.ErrStale) {
		t.Fatalf("a replayed authentication: %v, want %v", err, gwproto.ErrStale)
	}
	if err := gw.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := auth(); !errors.Is(err, gwproto.ErrStale) {
		t.Fatalf("a replayed authentication after a restart: %v, want %v", err, gwproto.ErrStale)
	}
	gw.Kill()
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := auth(); !errors.Is(err, gwproto.ErrStale) {
		t.Fatalf("a replayed authentication after a crash: %v, want %v", err, gwproto.ErrStale)
	}
	// A fresh authentication still works.
	s, err := gwproto.Authenticate(ctx, dialGateway(t, ctx, gw), id, gwID, k, rand.Reader, time.Now())
	if err != nil {
		t.Fatalf("a fresh authentication after the replays: %v", err)
	}
	s.Close()
	// A request from too far in the past is refused even if never seen.
	if _, err := gwproto.Authenticate(ctx, dialGateway(t, ctx, gw), id, gwID, k, rand.Reader, time.Now().Add(-10*time.Minute)); !errors.Is(err, gwproto.ErrStale) {
		t.Errorf("an authentication 10 minutes old: %v, want %v", err, gwproto.ErrStale)
	}
}

// TestReplayedPacket is part of scenario 9: a Sphinx packet captured on the
// wire and sent again is dropped by the first node that sees it again, a
// mixnode or a gateway, and the recipient gets the message once.
func TestReplayedPacket(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{Relays: true})
	ctx := ctxFor(t, 2*time.Minute)
	a, b, _ := twoClientsOn(t, ctx, n, 0, 1)
	gwB := n.Gateway(1)
	epA := dialWS(t, a)
	in := newInbox(dialWS(t, b))
	defer in.stop()

	// Tap every relay; keep the first frame each node receives.
	var mu sync.Mutex
	captured := make(map[*Node][]byte)
	for _, node := range n.Nodes() {
		node.Relay.SetTap(func(h wire.Header, p []byte) {
			mu.Lock()
			defer mu.Unlock()
			if _, ok := captured[node]; !ok {
				captured[node] = wire.AppendFrame(nil, h, p)
			}
		})
	}
	if err := sendAll(ctx, epA, b.Address(), []string{"only once"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := in.waitCount(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for _, node := range n.Nodes() {
		node.Relay.SetTap(nil)
	}
	mu.Lock()
	defer mu.Unlock()
	replayed := 0
	for node, frame := range captured {
		var before float64
		var err error
		metric, labels := "peapod_mixnode_packets_dropped_total", []string{"reason", "replay"}
		if node.Role == "gateway" {
			metric = "peapod_gateway_dropped_total"
		}
		if before, err = node.Metric(ctx, metric, labels...); err != nil {
			t.Fatal(err)
		}
		// Straight to the node's listener, twice, past the relay, from a
		// node that may send to it: an on-path attacker cannot get a
		// frame in (TestOnPathAttacker), a node of the previous layer
		// that lies can.
		writeAs(t, n, node, append(append([]byte(nil), frame...), frame...))
		err = pollUntil(ctx, 20*time.Millisecond, func() (bool, error) {
			v, err := node.Metric(ctx, metric, labels...)
			return v >= before+2, err
		})
		if err != nil {
			t.Errorf("%s did not drop the replayed packet as a replay: %v", node.Name(), err)
		}
		replayed++
	}
	if replayed < 4 || captured[gwB] == nil {
		t.Errorf("captured packets at %d nodes (b's gateway among them: %v), want a whole route", replayed, captured[gwB] != nil)
	}
	in.quiet(t, time.Second, 1)
}

// TestTamperedDescriptor is part of scenario 9: `client echo` refuses a
// provider descriptor altered between the provider and the client (a
// changed address, a changed signature, a changed service list), and,
// when the provider's key is pinned, one that an attacker signed anew with
// its own key. Through an honest proxy the same command works.
func TestTamperedDescriptor(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	ctx := ctxFor(t, 3*time.Minute)
	needProvider(t, n.cfg.Bin)
	p := startProvider(t, ctx, n, ProviderOptions{})
	doc := fetchDescriptor(t, p)

	_, attacker, _ := ed25519.GenerateKey(rand.Reader)
	var attackerAddr address.Address
	copy(attackerAddr.Identity[:], attacker.Public().(ed25519.PublicKey))
	attackerAddr.Encryption, attackerAddr.Gateway = p.Address().Encryption, p.Address().Gateway
	resigned, err := descriptor.Sign(attacker, descriptor.Info{
		Address:  attackerAddr,
		Services: []descriptor.Service{{Name: "echo", Description: "the attacker's"}},
		Network:  descriptor.Network{Type: descriptor.NetworkPeapod, Directory: n.DirectoryURL()},
	}, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	// Each run remembers keys in a file of its own (the default is in the
	// working folder's .peapod/client).
	echo := func(url string, extra ...string) RunResult {
		args := append([]string{"echo", "--provider", url, "--no-delay", "--no-cover", "--timeout", "60s",
			"--known-providers", filepath.Join(t.TempDir(), "known_providers.json")}, extra...)
		res, err := RunCommand(ctx, nil, n.cfg.Bin.Client, append(args, "hello through the mixnet")...)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, c := range []struct {
		name   string
		tamper func([]byte) []byte
		pin    bool
		want   string // in stderr; "" means success
	}{
		{"honest", func(b []byte) []byte { return b }, false, ""},
		{"honest pinned", func(b []byte) []byte { return b }, true, ""},
		{"address changed", func(b []byte) []byte {
			return editPayload(t, b, func(m map[string]any) { m["address"] = attackerAddr.String() })
		}, false, "invalid signature"},
		{"services changed", func(b []byte) []byte {
			return editPayload(t, b, func(m map[string]any) {
				m["services"] = []map[string]string{{"name": "echo", "description": "x"}}
			})
		}, false, "invalid signature"},
		{"signature changed", func(b []byte) []byte { return editSignature(t, b) }, false, "invalid signature"},
		{"re-signed, pinned", func([]byte) []byte { return resigned }, true, "another key than the pinned one"},
	} {
		t.Run(c.name, func(t *testing.T) {
			proxy := descriptorProxy(t, p.HTTP, func() []byte { return c.tamper(doc) })
			var extra []string
			if c.pin {
				extra = []string{"--provider-key", p.Key()}
			}
			res := echo(proxy, extra...)
			switch {
			case c.want == "" && (res.Code != 0 || res.Stdout != "hello through the mixnet\n"):
				t.Errorf("an honest descriptor: exit %d, stdout %q, stderr %q", res.Code, res.Stdout, res.Stderr)
			case c.want != "" && res.Code == 0:
				t.Errorf("a tampered descriptor was accepted: stdout %q", res.Stdout)
			case c.want != "" && !strings.Contains(res.Stderr, c.want):
				t.Errorf("stderr %q does not say %q", res.Stderr, c.want)
			}
		})
	}

	// The limit of what a descriptor proves: without a pin, an attacker's
	// own descriptor (self-certifying for the attacker's address) cannot be
	// told from the provider's. The tool accepts it and sends the request
	// to the attacker's address, where nothing answers (docs/threat-model.md).
	t.Run("re-signed, unpinned", func(t *testing.T) {
		proxy := descriptorProxy(t, p.HTTP, func() []byte { return resigned })
		res, err := RunCommand(ctx, nil, n.cfg.Bin.Client, "echo", "--provider", proxy, "--no-delay", "--no-cover",
			"--timeout", "3s", "--known-providers", filepath.Join(t.TempDir(), "known_providers.json"), "hello")
		if err != nil {
			t.Fatal(err)
		}
		if res.Code == 0 || strings.Contains(res.Stderr, "signature") || !strings.Contains(res.Stderr, "no reply") {
			t.Errorf("exit %d, stderr %q: want a timeout, the substitution unnoticed", res.Code, res.Stderr)
		}
		if !strings.Contains(res.Stderr, "first use of "+proxy+": its key is "+address.EncodeKey(attacker.Public().(ed25519.PublicKey))) ||
			!strings.Contains(res.Stderr, "is not https") {
			t.Errorf("stderr %q does not print the key on first use and warn about plain http", res.Stderr)
		}
	})

	// Trust on first use (issue 15): once the provider's key was seen
	// through an endpoint, the same substitution is refused, loudly, and
	// nothing is sent; a client that never saw the key would still fall
	// for it (the case above).
	t.Run("re-signed, key seen before", func(t *testing.T) {
		var served atomic.Value
		served.Store(doc)
		proxy := descriptorProxy(t, p.HTTP, func() []byte { return served.Load().([]byte) })
		known := filepath.Join(t.TempDir(), "client", "known_providers.json")
		run := func() RunResult {
			res, err := RunCommand(ctx, nil, n.cfg.Bin.Client, "echo", "--provider", proxy, "--no-delay", "--no-cover",
				"--timeout", "60s", "--known-providers", known, "hello")
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		first := run()
		if first.Code != 0 || !strings.Contains(first.Stderr, "first use of "+proxy+": its key is "+p.Key()) {
			t.Fatalf("first use: exit %d, stderr %q: want the reply and the provider's key printed", first.Code, first.Stderr)
		}
		if fi, err := os.Stat(known); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("the known-providers file: %v, %v", fi, err)
		}
		if again := run(); again.Code != 0 || strings.Contains(again.Stderr, "warning") {
			t.Fatalf("second use: exit %d, stderr %q: want the reply and no warning", again.Code, again.Stderr)
		}
		served.Store(resigned)
		res := run()
		if res.Code == 0 || !strings.Contains(res.Stderr, "THE PROVIDER'S KEY CHANGED") ||
			!strings.Contains(res.Stderr, p.Key()) || !strings.Contains(res.Stderr, known) {
			t.Errorf("substituted descriptor: exit %d, stderr %q: want a loud refusal naming the old key and the file", res.Code, res.Stderr)
		}
		if res.Elapsed > 30*time.Second {
			t.Errorf("the refusal took %v: it must come before any request is sent, not after waiting for a reply", res.Elapsed)
		}
	})
}

// twoClientsOn starts client-a on gateway ga and client-b on gateway gb
// and returns them with a's gateway.
func twoClientsOn(t *testing.T, ctx context.Context, n *Network, ga, gb int) (a, b *Client, gwA *Node) {
	t.Helper()
	a, err := n.StartClient(ctx, "client-a", ClientOptions{Gateway: n.Gateway(ga).Identity()})
	if err != nil {
		t.Fatal(err)
	}
	b, err = n.StartClient(ctx, "client-b", ClientOptions{Gateway: n.Gateway(gb).Identity()})
	if err != nil {
		t.Fatal(err)
	}
	return a, b, n.Gateway(ga)
}

// gatewayKey returns the keys a client knows a gateway by (identity and
// Noise static key).
func gatewayKey(t testing.TB, gw *Node) gwproto.GatewayKeys {
	t.Helper()
	k, err := address.DecodeKey(gw.Identity(), ed25519.PublicKeySize)
	if err != nil {
		t.Fatal(err)
	}
	return gwproto.GatewayKeys{Identity: k, Noise: gw.NoiseKey().Public()}
}

// dialGateway opens a WebSocket to a gateway's client listener.
func dialGateway(t testing.TB, ctx context.Context, gw *Node) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+gw.ClientListen.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// forgeKey returns a private key that claims the public key pub but signs
// with a random secret: what someone who knows a client's address, and not
// its key, can make.
func forgeKey(pub []byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	k := make(ed25519.PrivateKey, 0, ed25519.PrivateKeySize)
	return append(append(k, seed...), pub...)
}

// fetchDescriptor gets the provider's descriptor document.
func fetchDescriptor(t testing.TB, p *Provider) []byte {
	t.Helper()
	resp, err := http.Get(p.HTTP + descriptor.WellKnownPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("descriptor: %s %v", resp.Status, err)
	}
	return b
}

// descriptorProxy serves doc() at the well-known path and passes every
// other request to the provider's endpoint.
func descriptorProxy(t testing.TB, upstream string, doc func() []byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == descriptor.WellKnownPath {
			w.Header().Set("Content-Type", "application/json")
			w.Write(doc())
			return
		}
		resp, err := http.Get(upstream + r.URL.RequestURI())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// editPayload changes the payload of a descriptor document, keeping its
// signature.
func editPayload(t testing.TB, doc []byte, edit func(map[string]any)) []byte {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(d["payload"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var payload map[string]any
	if err := json.Unmarshal(raw, &payload); err != nil {
		t.Fatal(err)
	}
	edit(payload)
	raw, _ = json.Marshal(payload)
	d["payload"] = base64.StdEncoding.EncodeToString(raw)
	out, _ := json.Marshal(d)
	return out
}

// editSignature flips a bit of a descriptor document's signature.
func editSignature(t testing.TB, doc []byte) []byte {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(d["signature"].(string))
	if err != nil {
		t.Fatal(err)
	}
	sig[10] ^= 1
	d["signature"] = base64.StdEncoding.EncodeToString(sig)
	out, _ := json.Marshal(d)
	return out
}

// TestReplayAfterRestart checks that a mixnode's replay protection
// survives a restart: each layer-1 node is restarted after processing a
// packet, the packet is written to it again, and the node itself drops it as
// a replay, so the next hop never sees it. The restart is node.Restart: a
// graceful SIGTERM (Close saves the replay filter to the data folder; the
// new process loads it), not a kill. A crash is covered by the periodic
// save (mixnode.TestReplayDroppedAfterRestart/crashed); a node killed
// between two saves accepts the replays of that interval once.
func TestReplayAfterRestart(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{Relays: true})
	ctx := ctxFor(t, 2*time.Minute)
	a, b, _ := twoClientsOn(t, ctx, n, 0, 1)
	epA := dialWS(t, a)
	in := newInbox(dialWS(t, b))
	defer in.stop()
	var mu sync.Mutex
	captured := make(map[*Node][]byte)
	for _, node := range n.Mixnodes() {
		if node.Layer != 1 {
			continue
		}
		node.Relay.SetTap(func(h wire.Header, p []byte) {
			mu.Lock()
			defer mu.Unlock()
			if _, ok := captured[node]; !ok {
				captured[node] = wire.AppendFrame(nil, h, p)
			}
		})
	}
	if err := sendAll(ctx, epA, b.Address(), []string{"once"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := in.waitCount(ctx, 1); err != nil {
		t.Fatal(err)
	}
	metric := func(node *Node, name string, labels ...string) float64 {
		v, err := node.Metric(ctx, name, labels...)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	layer2Replays := func() float64 {
		sum := 0.0
		for _, m := range n.Mixnodes() {
			if m.Layer == 2 {
				sum += metric(m, "peapod_mixnode_packets_dropped_total", "reason", "replay")
			}
		}
		return sum
	}
	mu.Lock()
	defer mu.Unlock()
	if len(captured) == 0 {
		t.Fatal("no layer-1 node received a packet")
	}
	for node, frame := range captured {
		if err := node.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		writeAs(t, n, node, frame)
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := pollUntil(pctx, 20*time.Millisecond, func() (bool, error) {
			return metric(node, "peapod_mixnode_packets_dropped_total", "reason", "replay") > 0, nil
		})
		cancel()
		if err != nil {
			t.Errorf("%s, restarted, did not drop a packet it had processed before as a replay (forwarded %v since the restart): %v",
				node.Name(), metric(node, "peapod_mixnode_packets_forwarded_total"), err)
		}
	}
	// Each restarted node dropped its replay itself: none reached layer 2.
	if r := layer2Replays(); r != 0 {
		t.Errorf("layer-2 nodes dropped %v replays; the restarted layer-1 nodes forwarded them", r)
	}
	in.quiet(t, time.Second, 1)
}

// TestCoverTraffic checks what cover traffic hides from an observer of the
// links into the first layer: with cover on, a client emits data-size
// packets at the same steady rate whether it is idle or sending twenty
// messages a second (real packets take the place of cover packets in the
// Poisson stream), and every one of them has the same size. Without cover
// the same observer would see zero packets, then twenty a second.
func TestCoverTraffic(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{Relays: true, Gateways: 1})
	ctx := ctxFor(t, 2*time.Minute)
	c, err := n.StartClient(ctx, "client-cover", ClientOptions{Cover: true})
	if err != nil {
		t.Fatal(err)
	}
	ep := dialWS(t, c)
	in := newInbox(ep)
	defer in.stop()

	var mu sync.Mutex
	sizes := make(map[int]int)
	regular := 0
	for _, m := range n.Mixnodes() {
		if m.Layer != 1 {
			continue
		}
		m.Relay.SetTap(func(h wire.Header, p []byte) {
			mu.Lock()
			defer mu.Unlock()
			sizes[len(p)]++
			if h.Size == sphinx.RegularPacket {
				regular++
			}
		})
	}
	count := func(d time.Duration, during func()) float64 {
		mu.Lock()
		before := regular
		mu.Unlock()
		start := time.Now()
		during()
		if rest := d - time.Since(start); rest > 0 {
			time.Sleep(rest) // a rate is counted over a fixed time
		}
		mu.Lock()
		defer mu.Unlock()
		return float64(regular-before) / time.Since(start).Seconds()
	}
	const window = 5 * time.Second
	idle := count(window, func() {})
	msgs := numbered("real", 0, int(window/(50*time.Millisecond)))
	busy := count(window, func() {
		if err := sendAll(ctx, ep, c.Address(), msgs, 50*time.Millisecond); err != nil {
			t.Error(err)
		}
	})
	mu.Lock() // the taps still run
	seen := fmt.Sprint(sizes)
	mu.Unlock()
	t.Logf("data-size packets into layer 1: %.1f/s idle, %.1f/s while sending %d messages; sizes seen %s", idle, busy, len(msgs), seen)
	if idle < 30 {
		t.Errorf("an idle client with cover traffic sent %.1f packets a second, want the Poisson rate (about 55)", idle)
	}
	if busy > idle*1.3 || busy < idle*0.7 {
		t.Errorf("the packet rate went from %.1f/s idle to %.1f/s sending: sending shows", idle, busy)
	}
	mu.Lock()
	for size := range sizes {
		if size != sphinx.RegularPacket.Len() && size != sphinx.AckPacket.Len() {
			t.Errorf("a %d-byte packet on the wire: only the data and ack sizes should appear", size)
		}
	}
	mu.Unlock()
	if err := in.waitCount(ctx, len(msgs)); err != nil {
		t.Fatal(err)
	}
	checkSequence(t, in.messages(), msgs)
}
