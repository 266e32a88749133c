package testnet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	bolt "go.etcd.io/bbolt"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/internal/gwproto"
)

// Attacks on a gateway process's admission limits (issue 14), from other
// source addresses on the loopback network than the clients it serves
// (127.0.0.1): the attacker holds handshakes open and registers identities
// in bulk, as anyone who can reach the gateway can.

// attackerDialer dials from the loopback address src.
func attackerDialer(src string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
}

// holdHandshakes opens n TCP connections to gw's client listener from src
// and sends nothing on them: half-open handshakes. They close with the test
// or with the returned func.
func holdHandshakes(t *testing.T, gw *Node, src string, n int) (release func()) {
	t.Helper()
	var conns []net.Conn
	release = func() {
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	t.Cleanup(release)
	for range n {
		c, err := attackerDialer(src).Dial("tcp", gw.ClientListen.String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	return release
}

// dialFrom opens a WebSocket to gw's client listener from src; on a
// refusal it returns the HTTP status and the first line of the body.
func dialFrom(ctx context.Context, gw *Node, src string) (ws *websocket.Conn, status int, body string, err error) {
	d := websocket.Dialer{NetDialContext: attackerDialer(src).DialContext, HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.DialContext(ctx, "ws://"+gw.ClientListen.String(), nil)
	if resp != nil && err != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		status, body = resp.StatusCode, strings.TrimSpace(string(b))
	}
	return ws, status, body, err
}

// waitMetric polls a node's metric until it reaches at least want.
func waitMetric(t *testing.T, ctx context.Context, node *Node, want float64, name string, labels ...string) {
	t.Helper()
	var last float64
	err := pollUntil(ctx, 50*time.Millisecond, func() (bool, error) {
		v, err := node.Metric(ctx, name, labels...)
		last = v
		return err == nil && v >= want, err
	})
	if err != nil {
		t.Fatalf("%s %v: %v, want at least %v: %v", name, labels, last, want, err)
	}
}

// TestGatewayHandshakeFlood: an attacker that holds half-open handshakes
// from one address takes only that address's slots: its next connection is
// answered HTTP 503 naming the per-source limit, and the gateway's clients
// reconnect and exchange messages meanwhile. Attackers on several addresses
// take every slot: then a new client process is refused too, logs the
// gateway's reason, and connects once the attack ends. Every refusal is
// counted in /metrics.
func TestGatewayHandshakeFlood(t *testing.T) {
	t.Parallel()
	const perSource, total = 6, 12
	n := startNet(t, Config{Gateways: 1, GatewayArgs: func(int) []string {
		return []string{"--max-handshakes", strconv.Itoa(total), "--max-handshakes-per-source", strconv.Itoa(perSource)}
	}})
	ctx := ctxFor(t, 2*time.Minute)
	gw := n.Gateway(0)
	a, b, _ := twoClientsOn(t, ctx, n, 0, 0)

	releaseA := holdHandshakes(t, gw, "127.0.0.2", perSource)
	waitMetric(t, ctx, gw, perSource, "peapod_gateway_handshakes_in_progress")
	_, status, body, err := dialFrom(ctx, gw, "127.0.0.2")
	if err == nil || status != http.StatusServiceUnavailable || !strings.Contains(body, "limit of 6") {
		t.Fatalf("a handshake past the per-source limit: err %v, status %d, body %q; want 503 naming the limit", err, status, body)
	}
	waitMetric(t, ctx, gw, 1, "peapod_gateway_refused_total", "reason", "handshakes_per_source")

	// The clients on 127.0.0.1 are not held back: a restart reconnects
	// (its handshake needs a slot) and messages flow.
	if err := a.Restart(ctx); err != nil {
		t.Fatalf("a client restarting during the flood: %v", err)
	}
	in := newInbox(dialWS(t, b))
	defer in.stop()
	msgs := numbered("during-flood", 0, 5)
	if err := sendAll(ctx, dialWS(t, a), b.Address(), msgs, 0); err != nil {
		t.Fatal(err)
	}
	if err := in.waitCount(ctx, len(msgs)); err != nil {
		t.Fatal(err)
	}
	checkSequence(t, in.messages(), msgs)

	// A second address takes the other half: every slot is held.
	releaseB := holdHandshakes(t, gw, "127.0.0.3", perSource)
	waitMetric(t, ctx, gw, total, "peapod_gateway_handshakes_in_progress")
	started := make(chan error, 1)
	go func() {
		_, err := n.StartClient(ctx, "client-c", ClientOptions{Gateway: gw.Identity()})
		started <- err
	}()
	var refused string
	logPath := filepath.Join(n.LogDir(), "client-c.log")
	err = pollUntil(ctx, 50*time.Millisecond, func() (bool, error) {
		b, err := os.ReadFile(logPath)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "gateway connection failed") {
				refused = l
				return true, nil
			}
		}
		return false, err
	})
	if err != nil {
		t.Fatalf("the client started while every slot was held logged no failure: %v", err)
	}
	if !strings.Contains(refused, "503") || !strings.Contains(refused, "limit of 12") {
		t.Errorf("the refused client logs %s; want the gateway's 503 and its reason", refused)
	}
	waitMetric(t, ctx, gw, 1, "peapod_gateway_refused_total", "reason", "handshakes")

	releaseA()
	releaseB()
	if err := <-started; err != nil {
		t.Fatalf("the refused client after the flood: %v", err)
	}
}

// TestGatewayRegistrationFlood: an attacker registering fresh identities
// from one address is refused past the per-source cap, with the reason,
// and counted; the gateway's clients (registered from another address)
// carry on, and a new client from another address still registers.
func TestGatewayRegistrationFlood(t *testing.T) {
	t.Parallel()
	const perSource = 3
	n := startNet(t, Config{Gateways: 1, GatewayArgs: func(int) []string {
		return []string{"--max-clients-per-source", strconv.Itoa(perSource)}
	}})
	ctx := ctxFor(t, 2*time.Minute)
	gw := n.Gateway(0)
	gwID := gatewayKey(t, gw)
	a, b, _ := twoClientsOn(t, ctx, n, 0, 0)

	register := func() error {
		_, id, _ := ed25519.GenerateKey(rand.Reader)
		ws, status, body, err := dialFrom(ctx, gw, "127.0.0.2")
		if err != nil {
			t.Fatalf("dialing the gateway: %v (%d %q)", err, status, body)
		}
		defer ws.Close()
		_, sess, err := gwproto.Register(ctx, ws, id, gwID, rand.Reader, time.Now())
		if err == nil {
			sess.Close()
		}
		return err
	}
	for i := range perSource {
		if err := register(); err != nil {
			t.Fatalf("registration %d of %d allowed: %v", i+1, perSource, err)
		}
	}
	for range 3 {
		err := register()
		if !errors.Is(err, gwproto.ErrRefused) || !strings.Contains(err.Error(), "limit of 3") {
			t.Fatalf("a registration past the per-source cap: %v; want ErrRefused naming the limit", err)
		}
	}
	waitMetric(t, ctx, gw, 3, "peapod_gateway_refused_total", "reason", "registrations_per_source")
	if v, err := gw.Metric(ctx, "peapod_gateway_registered_clients"); err != nil || v != 2+perSource {
		t.Errorf("registered clients: %v (%v), want %d: the refused ones must not be kept", v, err, 2+perSource)
	}

	// The clients registered from 127.0.0.1 carry on, also after a
	// restart, and a new one registers.
	if err := a.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := n.StartClient(ctx, "client-c", ClientOptions{Gateway: gw.Identity()})
	if err != nil {
		t.Fatalf("a new client from another address: %v", err)
	}
	in := newInbox(dialWS(t, b))
	defer in.stop()
	msgs := numbered("after-flood", 0, 5)
	if err := sendAll(ctx, dialWS(t, a), b.Address(), msgs[:3], 0); err != nil {
		t.Fatal(err)
	}
	if err := sendAll(ctx, dialWS(t, c), b.Address(), msgs[3:], 0); err != nil {
		t.Fatal(err)
	}
	if err := in.waitCount(ctx, len(msgs)); err != nil {
		t.Fatal(err)
	}
}

// TestProviderSenderTagFlood: a flood of requests, each from a fresh
// sender tag (here a fresh client, which is what a tag costs) with 50
// SURBs, leaves the provider process holding at most max_surb_senders
// requesters' SURBs and max_surbs_held SURBs, in memory (its /metrics) and
// in its data folder; a regular requester writing between the attack
// messages keeps its SURBs and gets every reply.
func TestProviderSenderTagFlood(t *testing.T) {
	t.Parallel()
	const maxSenders, maxHeld, attackers, attackSURBs = 4, 200, 12, 50
	n := startNet(t, Config{})
	ctx := ctxFor(t, 3*time.Minute)
	conf := filepath.Join(t.TempDir(), "provider.toml")
	err := os.WriteFile(conf, fmt.Appendf(nil, "[client]\nmax_surb_senders = %d\nmax_surbs_held = %d\n", maxSenders, maxHeld), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p := startProvider(t, ctx, n, ProviderOptions{Args: []string{"--config", conf}})
	tr := NewTracker()
	regular := newRequester(t, ctx, n, "regular", p, tr, ClientOptions{})

	within := func(when string) {
		t.Helper()
		held, err1 := p.Metric(ctx, "peapod_provider_surbs_held")
		senders, err2 := p.Metric(ctx, "peapod_provider_surb_senders")
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if held > maxHeld || senders > maxSenders {
			t.Fatalf("%s: the provider holds %v SURBs of %v requesters; bounds %d and %d", when, held, senders, maxHeld, maxSenders)
		}
	}
	for limit, want := range map[string]float64{"surb_senders": maxSenders, "surbs_held": maxHeld} {
		if v, err := p.Metric(ctx, "peapod_provider_limit", "limit", limit); err != nil || v != want {
			t.Fatalf("peapod_provider_limit{limit=%q}: %v (%v), want %v", limit, v, err, want)
		}
	}
	for i := range attackers {
		cfg := client.Config{DataDir: filepath.Join(t.TempDir(), fmt.Sprintf("attacker-%d", i)), DirectoryURL: n.DirectoryURL(),
			NoDelay: true, Cover: client.CoverConfig{Disabled: true}}
		c, err := client.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		attacker := NewRequester(&LibEndpoint{Client: c}, p.Address(), NewTracker(), RequesterOptions{SURBs: attackSURBs})
		rep, err := attacker.Call(ctx, fmt.Sprintf("attack-%d", i), "echo", []byte("x"))
		if err != nil || rep.Err != nil {
			t.Fatalf("attack request %d: %v %v", i, err, rep)
		}
		attacker.Close()
		within(fmt.Sprintf("after attacker %d", i))
		if i%2 == 1 {
			id := fmt.Sprintf("regular-%d", i)
			if rep, err := regular.Call(ctx, id, "echo", []byte(id)); err != nil || rep.Err != nil || string(rep.Data) != id {
				t.Fatalf("the regular requester during the flood: %v %+v", err, rep)
			}
			within(fmt.Sprintf("after the regular request %d", i))
		}
	}
	if v, err := p.Metric(ctx, "peapod_provider_surb_senders_evicted_total"); err != nil || v < attackers+1-maxSenders {
		t.Errorf("requesters evicted: %v (%v), want at least %d", v, err, attackers+1-maxSenders)
	}

	// On disk too: count the SURBs in the provider's client state.
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	surbs, tags := storedSURBs(t, p.Data)
	if surbs > maxHeld || tags > maxSenders {
		t.Errorf("the provider's data folder holds %d SURBs of %d requesters; bounds %d and %d", surbs, tags, maxHeld, maxSenders)
	}
	if tags == 0 {
		t.Error("no SURBs on disk at all: the regular requester's should be there")
	}
}

// storedSURBs counts the reply SURBs in the client state (state.db, bucket
// "surbs", keys sender tag ‖ sequence) under dir, and their sender tags.
func storedSURBs(t *testing.T, dir string) (surbs, tags int) {
	t.Helper()
	var dbs []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "state.db" {
			dbs = append(dbs, path)
		}
		return nil
	})
	if len(dbs) != 1 {
		t.Fatalf("client states under %s: %v, want one", dir, dbs)
	}
	db, err := bolt.Open(dbs[0], 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	seen := map[string]bool{}
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("surbs"))
		if b == nil {
			return errors.New("no surbs bucket")
		}
		return b.ForEach(func(k, _ []byte) error {
			surbs++
			seen[string(k[:address.SenderTagSize])] = true
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return surbs, len(seen)
}
