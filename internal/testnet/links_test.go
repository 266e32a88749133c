package testnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/internal/gwproto"
	"github.com/peapod-mixnet/peapod/internal/node"
	"github.com/peapod-mixnet/peapod/internal/wire"
)

// TestOnPathAttacker: an attacker on the path between the layer-1 and the
// layer-2 mixnodes (the layer-2 nodes' relays, whose raw hooks see and
// change the bytes on the wire as such an attacker would; the relays'
// own Noise keys stand for the two ends) cannot read the frames, cannot
// inject one, and cannot connect to a layer-2 node as a node it is not.
// Every message sent meanwhile arrives exactly once.
//
// What it tries, and what it gets:
//   - read: every byte the layer-1 nodes send holds none of the Sphinx
//     packets the relays' frame taps see inside the links;
//   - inject: a flipped bit, an earlier Noise message sent again and a
//     plain frame added to a link each close that link at the layer-2 node
//     (a Noise message that fails authentication, or a malformed one), and
//     no injected packet is processed (no replay counted);
//   - impersonate: a handshake that claims a layer-1 node's key without its
//     private half fails; a key the topology does not list is refused after
//     its handshake; a recording of a real node's link played again fails
//     its handshake.
func TestOnPathAttacker(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{Relays: true})
	ctx := ctxFor(t, 2*time.Minute)
	a, b, _ := twoClientsOn(t, ctx, n, 0, 1)
	epA := dialWS(t, a)
	in := newInbox(dialWS(t, b))
	defer in.stop()
	l2 := []*Node{n.Mixnode(2, 0), n.Mixnode(2, 1)}
	var sent []string
	send := func(t *testing.T, msgs ...string) {
		t.Helper()
		if err := sendAll(ctx, epA, b.Address(), msgs, 0); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, msgs...)
	}

	t.Run("read", func(t *testing.T) {
		var mu sync.Mutex
		var raw []byte
		var packets [][]byte
		for _, nd := range l2 {
			nd.Relay.SetRawTap(func(b []byte) { mu.Lock(); raw = append(raw, b...); mu.Unlock() })
			nd.Relay.SetTap(func(_ wire.Header, p []byte) { mu.Lock(); packets = append(packets, bytes.Clone(p)); mu.Unlock() })
		}
		send(t, numbered("read", 0, 10)...)
		if err := in.waitCount(ctx, len(sent)); err != nil {
			t.Fatal(err)
		}
		for _, nd := range l2 {
			nd.Relay.SetRawTap(nil)
			nd.Relay.SetTap(nil)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(packets) < 10 || len(raw) < len(packets)*wire.HeaderSize {
			t.Fatalf("the taps saw %d packets in %d bytes on the wire, want 10 or more", len(packets), len(raw))
		}
		for i, p := range packets {
			for _, off := range []int{0, len(p) / 2, len(p) - 32} {
				if bytes.Contains(raw, p[off:off+32]) {
					t.Errorf("packet %d: its bytes %d..%d are on the wire in the clear", i, off, off+32)
				}
			}
		}
		t.Logf("%d packets crossed in %d bytes of ciphertext, none of them readable", len(packets), len(raw))
	})

	t.Run("inject", func(t *testing.T) {
		var captured []byte // a whole frame from a link, to send as a plain one
		var mu sync.Mutex
		l2[0].Relay.SetTap(func(h wire.Header, p []byte) {
			mu.Lock()
			if captured == nil {
				captured = wire.AppendFrame(nil, h, p)
			}
			mu.Unlock()
		})
		send(t, "inject-capture")
		if err := pollUntil(ctx, 50*time.Millisecond, func() (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			if captured == nil {
				send(t, fmt.Sprintf("inject-capture-%d", len(sent)))
			}
			return captured != nil, nil
		}); err != nil {
			t.Fatal("no frame crossed layer 2's first node")
		}
		l2[0].Relay.SetTap(nil)
		replays := metricSum(t, ctx, l2, "peapod_mixnode_packets_dropped_total", "reason", "replay")

		var last []byte // the Noise message written before, for the replay
		for _, attack := range []struct {
			name string
			do   func(b []byte) []byte
		}{
			{"flipped bit", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
			{"earlier message again", func(b []byte) []byte { return append(b, last...) }},
			{"plain frame", func(b []byte) []byte { return append(b, captured...) }},
		} {
			closed := linkClosures(t, ctx, l2)
			var fired atomic.Bool
			for _, nd := range l2 {
				nd.Relay.SetRawTamper(func(b []byte) []byte {
					mu.Lock()
					defer mu.Unlock()
					if last == nil || !fired.CompareAndSwap(false, true) {
						last = bytes.Clone(b)
						return b
					}
					return attack.do(b)
				})
			}
			i := 0
			err := pollUntil(ctx, 100*time.Millisecond, func() (bool, error) {
				send(t, fmt.Sprintf("inject-%s-%d", attack.name, i))
				i++
				return linkClosures(t, ctx, l2) > closed, nil
			})
			for _, nd := range l2 {
				nd.Relay.SetRawTamper(nil)
			}
			if err != nil {
				t.Errorf("%s: no layer-2 node closed the link it came on (tampered with: %v): %v", attack.name, fired.Load(), err)
			}
		}
		if got := metricSum(t, ctx, l2, "peapod_mixnode_packets_dropped_total", "reason", "replay"); got != replays {
			t.Errorf("layer 2 counted %v replayed packets during the injections, want none: an injected packet was processed", got-replays)
		}
	})

	t.Run("impersonate", func(t *testing.T) {
		victim, target := n.Mixnode(1, 0), l2[0]
		failed := func() float64 {
			return metricOf(t, ctx, target, "peapod_mixnode_inbound_connections_closed_total", "reason", "handshake_failed")
		}
		refusedKey := func() float64 {
			return metricOf(t, ctx, target, "peapod_mixnode_inbound_connections_refused_total", "reason", "key")
		}

		// The victim's public key with another private key.
		before := failed()
		liar := &lyingKey{pub: victim.NoiseKey().Public(), priv: mustNoiseKey(t)}
		expectRefused(t, target, liar)
		waitMetricAbove(t, ctx, "a failed handshake counted", failed, before)

		// A key of its own, which the topology does not list.
		before = refusedKey()
		expectRefused(t, target, mustNoiseKey(t))
		waitMetricAbove(t, ctx, "a refused key counted", refusedKey, before)

		// A real node's link, recorded, then played again.
		rec := &recorder{}
		c, nc, err := dialNoise(target, victim.NoiseKey(), rec)
		if err != nil {
			t.Fatalf("%s's own link: %v", victim.Name(), err)
		}
		if _, err := nc.Write(wire.AppendFrame(nil, wire.Header{Size: 1, Type: wire.PacketTypeMix}, make([]byte, 2048))); err != nil {
			t.Fatal(err)
		}
		c.Close()
		before = failed()
		replay, err := net.DialTimeout("tcp", target.Listen.String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer replay.Close()
		replay.Write(rec.bytes())
		expectEOF(t, replay, target.Name())
		waitMetricAbove(t, ctx, "the replayed handshake counted as failed", failed, before)
	})

	// Every message arrived, once, after the links came back.
	send(t, numbered("after", 0, 10)...)
	if err := in.waitCount(ctx, len(sent)); err != nil {
		t.Fatal(err)
	}
	in.quiet(t, time.Second, len(sent))
	got := make(map[string]int)
	for _, m := range in.messages() {
		got[m]++
	}
	for _, m := range sent {
		if got[m] != 1 {
			t.Errorf("%s arrived %d times", m, got[m])
		}
	}
}

// expectRefused makes a Noise handshake with to's real listener as key and
// expects to to close the connection.
func expectRefused(t testing.TB, to *Node, key wire.StaticKey) {
	t.Helper()
	c, err := net.DialTimeout("tcp", to.Listen.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The initiator's side ends with its last message, whatever the
	// responder makes of it.
	if _, err := wire.Initiate(c, key, to.NoiseKey().Public(), time.Now().Add(10*time.Second)); err != nil {
		t.Fatalf("handshake with %s: %v", to.Name(), err)
	}
	expectEOF(t, c, to.Name())
}

// linkClosures is how many links the nodes closed because a Noise message
// failed authentication or a frame was malformed.
func linkClosures(t testing.TB, ctx context.Context, nodes []*Node) float64 {
	return metricSum(t, ctx, nodes, "peapod_mixnode_inbound_connections_closed_total", "reason", "auth_failed") +
		metricSum(t, ctx, nodes, "peapod_mixnode_inbound_connections_closed_total", "reason", "malformed")
}

// metricSum sums a metric over nodes.
func metricSum(t testing.TB, ctx context.Context, nodes []*Node, name string, labels ...string) float64 {
	t.Helper()
	var sum float64
	for _, nd := range nodes {
		v, err := nd.Metric(ctx, name, labels...)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	return sum
}

// waitMetricAbove polls get until it is above before.
func waitMetricAbove(t testing.TB, ctx context.Context, what string, get func() float64, before float64) {
	t.Helper()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pollUntil(pctx, 20*time.Millisecond, func() (bool, error) { return get() > before, nil }); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// lyingKey claims the public key pub while holding another private key.
type lyingKey struct {
	pub  [wire.NoiseKeySize]byte
	priv *node.NoiseKey
}

func (k *lyingKey) Public() [wire.NoiseKeySize]byte { return k.pub }
func (k *lyingKey) Private() []byte                 { return k.priv.Private() }

func mustNoiseKey(t testing.TB) *node.NoiseKey {
	t.Helper()
	k, err := node.GenerateNoiseKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// metricOf reads a metric of nd, failing t when it cannot.
func metricOf(t testing.TB, ctx context.Context, nd *Node, name string, labels ...string) float64 {
	t.Helper()
	v, err := nd.Metric(ctx, name, labels...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestClientLinkCapture: an observer of the link between a client and its
// gateway (a TCP forwarder the gateway announces as its client URL, which
// keeps every byte both ways) learns neither the client's identity key
// nor its address, in any form (raw, base58, hex, base64; in the bytes on
// the wire and in the WebSocket payloads, unmasked), through a
// registration, a session carrying messages both ways, a restart and the
// authentication after it; and the registration's handshake frames have
// the sizes of the authentication's, so the observer cannot tell a first
// contact from a return.
func TestClientLinkCapture(t *testing.T) {
	t.Parallel()
	capture := newTCPCapture(t)
	n := startNet(t, Config{GatewayArgs: func(i int) []string {
		if i == 0 {
			return []string{"--client-announce", "ws://" + capture.Addr()}
		}
		return nil
	}})
	capture.SetTarget(n.Gateway(0).ClientListen.String())
	ctx := ctxFor(t, 2*time.Minute)
	a, b, _ := twoClientsOn(t, ctx, n, 0, 1)
	exchange := func(tag string) {
		t.Helper()
		epA, epB := dialWS(t, a), dialWS(t, b)
		inA, inB := newInbox(epA), newInbox(epB)
		defer inA.stop()
		defer inB.stop()
		if err := sendAll(ctx, epA, b.Address(), numbered(tag+"-a", 0, 5), 0); err != nil {
			t.Fatal(err)
		}
		if err := sendAll(ctx, epB, a.Address(), numbered(tag+"-b", 0, 5), 0); err != nil {
			t.Fatal(err)
		}
		if err := inB.waitCount(ctx, 5); err != nil {
			t.Fatal(err)
		}
		if err := inA.waitCount(ctx, 5); err != nil {
			t.Fatal(err)
		}
	}
	exchange("registered")
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	exchange("authenticated")

	addr := a.Address()
	var forms [][]byte
	for _, k := range [][]byte{addr.Identity[:], addr.Encryption[:]} {
		forms = append(forms, k, []byte(address.EncodeKey(k)),
			[]byte(hex.EncodeToString(k)), []byte(strings.ToUpper(hex.EncodeToString(k))),
			[]byte(base64.StdEncoding.EncodeToString(k)), []byte(base64.RawURLEncoding.EncodeToString(k)))
	}
	forms = append(forms, []byte(addr.String()))

	conns := capture.captured()
	if len(conns) < 2 {
		t.Fatalf("captured %d connections, want the registration's and the authentication's", len(conns))
	}
	var hsSizes [][4]int
	for i, c := range conns {
		up, _ := wsPayloads(c.up)
		down, _ := wsPayloads(c.down)
		if len(up) < 2 || len(down) < 2 {
			t.Fatalf("connection %d: %d frames up, %d down, want a handshake", i, len(up), len(down))
		}
		// The parser reads what the client really sent: its hello.
		if h := up[0]; len(h) < 2 || h[0] != 0x06 || h[1] != gwproto.Version {
			t.Fatalf("connection %d: the first frame up starts %x, want a hello", i, h[:min(len(h), 2)])
		}
		hsSizes = append(hsSizes, [4]int{len(up[0]), len(up[1]), len(down[0]), len(down[1])})
		streams := map[string][]byte{"up": c.up, "down": c.down, "up payloads": bytes.Join(up, nil), "down payloads": bytes.Join(down, nil)}
		for name, s := range streams {
			for _, f := range forms {
				if bytes.Contains(s, f) {
					t.Errorf("connection %d, %s: the client's key or address is there as %q", i, name, f)
				}
			}
		}
		t.Logf("connection %d: %d bytes up, %d down, none naming the client", i, len(c.up), len(c.down))
	}
	for i, s := range hsSizes[1:] {
		if s != hsSizes[0] {
			t.Errorf("connection %d's handshake frames are %v bytes, connection 0's %v: an observer tells them apart", i+1, s, hsSizes[0])
		}
	}
}
