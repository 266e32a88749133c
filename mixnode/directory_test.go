package mixnode

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/node"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// testSchedule is the schedule of the tests' directories: rotation 0 began
// a minute ago and lasts six hours.
var testSchedule = directory.Schedule{Genesis: time.Now().Add(-time.Minute), EpochLength: time.Hour, RotationEpochs: 6}

// newDirectory runs a directory server on a loopback port.
func newDirectory(t testing.TB) *directory.Client {
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
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return &directory.Client{BaseURL: "http://" + ln.Addr().String()}
}

// TestDirectoryRegistration runs a node against a real directory: it is
// listed with its layer, address and keys while it runs, and gone once
// Close returns.
func TestDirectoryRegistration(t *testing.T) {
	dir := newDirectory(t)
	n := newNode(t, 2, func(c *Config) { c.DirectoryURL = dir.BaseURL })

	var listed []directory.Mixnode
	eventually(t, "the node is listed", func() bool {
		topo, err := dir.Topology(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		listed = topo.Mixnodes
		return len(listed) == 1
	})
	m := listed[0]
	id, err := m.IdentityKey()
	if err != nil {
		t.Fatal(err)
	}
	key, ok := m.SphinxKeyFor(0)
	if !ok {
		t.Fatalf("listed without a key of rotation 0: %+v", m)
	}
	addr, err := m.AddrPort()
	if err != nil {
		t.Fatal(err)
	}
	if m.Layer != 2 || addr != n.AnnounceAddr() || !id.Equal(n.Identity()) || key != n.SphinxKey() {
		t.Fatalf("listed as %+v", m)
	}
	if noise, ok, err := m.NoisePublicKey(); err != nil || !ok || noise != n.NoiseKey().Public() {
		t.Fatalf("listed with Noise key %x, %v, %v; want %x", noise, ok, err, n.NoiseKey().Public())
	}

	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	topo, err := dir.Topology(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Mixnodes) != 0 {
		t.Fatalf("still listed after Close: %+v", topo.Mixnodes)
	}
}

// TestKeysPersist restarts a node on the same data folder: it keeps its
// identity, Noise key and Sphinx key, stored in files only its user can read.
func TestKeysPersist(t *testing.T) {
	data := t.TempDir()
	first := newNode(t, 1, func(c *Config) { c.DataDir = data })
	id, key, noise := first.Identity(), first.SphinxKey(), first.NoiseKey().Public()
	first.Close()

	second := newNode(t, 1, func(c *Config) { c.DataDir = data })
	if !bytes.Equal(second.Identity(), id) || second.SphinxKey() != key || second.NoiseKey().Public() != noise {
		t.Fatal("the keys changed across a restart")
	}
	for _, name := range []string{node.IdentityFile, node.NoiseKeyFile, node.StaticKeyFile} {
		info, err := os.Stat(filepath.Join(data, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Fatalf("%s has mode %04o, want 0600", name, perm)
		}
	}
	// Another folder, other keys.
	other := newNode(t, 1, nil)
	if bytes.Equal(other.Identity(), id) || other.SphinxKey() == key {
		t.Fatal("two data folders share keys")
	}
}

// TestKeysRefusedWhenReadable checks a key file readable by others stops
// the node from starting.
func TestKeysRefusedWhenReadable(t *testing.T) {
	data := t.TempDir()
	n, err := New(Config{ListenAddr: "127.0.0.1:0", Layer: 1, DataDir: data, ReplayCapacity: testReplayCapacity})
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	if err := os.Chmod(filepath.Join(data, node.StaticKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{ListenAddr: "127.0.0.1:0", Layer: 1, DataDir: data, ReplayCapacity: testReplayCapacity}); err == nil {
		t.Fatal("a world-readable key file was accepted")
	}
}

// TestNextHopsFromTopology runs a node of each layer against a directory
// listing a mixnode of every layer and a gateway: the node forwards only to
// the next layer (a gateway after layer 3) and drops, as DropUnknownHop, a
// packet for any other node of the topology or for an address outside it,
// which then receives nothing.
func TestNextHopsFromTopology(t *testing.T) {
	dir := newDirectory(t)
	sinks := map[int]*sink{} // by layer; 0 is the gateway
	for layer := range directory.MaxLayer + 1 {
		sinks[layer] = newNoiseSink(t)
		sinks[layer].register(t, dir, layer)
	}
	stranger := newNoiseSink(t)
	for layer := directory.MinLayer; layer <= directory.MaxLayer; layer++ {
		t.Run(fmt.Sprintf("layer%d", layer), func(t *testing.T) {
			n := newNode(t, layer, func(c *Config) { c.DirectoryURL = dir.BaseURL })
			next, prev := sinks[(layer+1)%(directory.MaxLayer+1)], sinks[layer-1]
			eventually(t, "the node fetches the topology", func() bool { return n.hops.Known(next.addr) })

			var refused []*sink
			for _, s := range sinks {
				if s != next {
					refused = append(refused, s)
				}
			}
			refused = append(refused, stranger)
			for _, s := range refused {
				sendFrom(t, n, prev.noise, packet(t, sphinx.AckPacket, nil, hop(t, n, 0), s.hop(t)))
			}
			st := settled(t, n, uint64(len(refused)))
			if st.Dropped[DropUnknownHop] != uint64(len(refused)) || st.Forwarded != 0 {
				t.Fatalf("%d packets for other nodes: forwarded %d, dropped %v", len(refused), st.Forwarded, st.Dropped)
			}

			sendFrom(t, n, prev.noise, packet(t, sphinx.RegularPacket, []byte("next"), hop(t, n, 0), next.hop(t)))
			if msg := next.open(t, next.next(t).packet); !bytes.HasPrefix(msg, []byte("next")) {
				t.Fatalf("the next hop got %q", msg)
			}
			for _, s := range refused {
				s.quiet(t)
			}
		})
	}
}

// TestUnknownHopLearned checks that a packet for a next hop that
// registered after the node's last fetch is held, without the worker
// waiting for the directory, until the node fetches the topology soon
// after (long before Config.TopologyRefresh), and then forwarded.
func TestUnknownHopLearned(t *testing.T) {
	dir := newDirectory(t)
	early, prev := newNoiseSink(t), newNoiseSink(t)
	early.register(t, dir, 3)
	prev.register(t, dir, 1)
	n := newNode(t, 2, func(c *Config) { c.DirectoryURL = dir.BaseURL; c.TopologyRefresh = time.Hour })
	eventually(t, "the node fetches the topology", func() bool { return n.hops.Known(early.addr) })
	fetches := n.hops.Fetches()

	late := newNoiseSink(t)
	late.register(t, dir, 3)
	sendFrom(t, n, prev.noise, packet(t, sphinx.RegularPacket, []byte("first"), hop(t, n, 0), late.hop(t)))
	sendFrom(t, n, prev.noise, packet(t, sphinx.RegularPacket, []byte("second"), hop(t, n, 0), early.hop(t)))
	// The packet for a known hop is not held back by the other.
	if msg := early.open(t, early.next(t).packet); !bytes.HasPrefix(msg, []byte("second")) {
		t.Fatalf("the known node got %q", msg)
	}
	if msg := late.open(t, late.next(t).packet); !bytes.HasPrefix(msg, []byte("first")) {
		t.Fatalf("the new node got %q", msg)
	}
	if st := settled(t, n, 2); st.Forwarded != 2 || st.DroppedTotal() != 0 {
		t.Fatalf("forwarded %d, dropped %v", st.Forwarded, st.Dropped)
	}
	if got := n.hops.Fetches() - fetches; got != 1 {
		t.Fatalf("%d fetches for the new hop, want 1", got)
	}
}

// TestNoDirectoryForwardsAnywhere checks that a node without a directory
// forwards to any next hop, as benchmarks and tests run it.
func TestNoDirectoryForwardsAnywhere(t *testing.T) {
	n := newNode(t, 1, nil)
	s := newSink(t)
	send(t, n, packet(t, sphinx.AckPacket, nil, hop(t, n, 0), s.hop(t)))
	s.next(t)
}

func TestTopologyRefreshConfig(t *testing.T) {
	cfg := Config{Layer: 1, DataDir: "x"}
	if err := cfg.applyDefaults(); err != nil || cfg.TopologyRefresh != DefaultTopologyRefresh {
		t.Fatalf("default TopologyRefresh %s, %v", cfg.TopologyRefresh, err)
	}
	cfg = Config{Layer: 1, DataDir: "x", TopologyRefresh: -time.Second}
	if err := cfg.applyDefaults(); err == nil || !strings.HasPrefix(err.Error(), "mixnode: Config.TopologyRefresh") {
		t.Fatalf("a negative TopologyRefresh: %v", err)
	}
}

// TestLinksFromTopology checks who may send to a node with a directory:
// only the nodes of the previous layer, over Noise, with the key the
// topology lists for them. A plain connection, an unlisted key and a key
// of another layer are refused before any packet is read; a listed sender
// delivers; once it leaves the topology its link is closed.
func TestLinksFromTopology(t *testing.T) {
	dir := newDirectory(t)
	prev, other, next := newNoiseSink(t), newNoiseSink(t), newNoiseSink(t)
	leave := prev.register(t, dir, 1)
	other.register(t, dir, 3)
	next.register(t, dir, 3)
	n := newNode(t, 2, func(c *Config) { c.DirectoryURL = dir.BaseURL; c.TopologyRefresh = time.Hour })
	eventually(t, "the node fetches the topology", func() bool { return n.hops.Known(next.addr) })
	pk := func() []byte { return packet(t, sphinx.AckPacket, nil, hop(t, n, 0), next.hop(t)) }

	stranger, err := node.GenerateNoiseKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	waitClosedByPeer(t, send(t, n, pk()))
	waitClosedByPeer(t, sendFrom(t, n, stranger, pk()))
	waitClosedByPeer(t, sendFrom(t, n, other.noise, pk()))
	ss := n.server.Stats()
	if ss.HandshakeFailures != 1 || ss.RefusedKey != 2 || n.Stats().Received != 0 {
		t.Fatalf("after three impostors: server %+v, received %d", ss, n.Stats().Received)
	}

	c := sendFrom(t, n, prev.noise, pk())
	next.next(t)
	if st := settled(t, n, 1); st.Forwarded != 1 {
		t.Fatalf("the listed sender's packet: %+v", st)
	}
	leave()
	if err := n.hops.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.topologyFetched()
	waitClosedByPeer(t, c)
	if ss := n.server.Stats(); ss.Unlisted != 1 {
		t.Fatalf("after the sender left: %+v", ss)
	}
}

// TestKeyRotationByteCounted checks that the frame's key-rotation byte
// selects the node's key: a packet framed with the parity of a rotation the
// node holds no key for (here odd: the node holds rotation 0's) is dropped
// and counted as DropExpiredKey, on a link that stays open, while the same
// packet framed even, or unknown, is peeled and forwarded.
func TestKeyRotationByteCounted(t *testing.T) {
	dir := newDirectory(t)
	prev, next := newNoiseSink(t), newNoiseSink(t)
	prev.register(t, dir, 0) // a gateway: layer 1's previous hop
	next.register(t, dir, 2)
	n := newNode(t, 1, func(c *Config) { c.DirectoryURL = dir.BaseURL })
	eventually(t, "the node fetches the topology", func() bool { return n.hops.Known(next.addr) })
	if held := n.SphinxKeys().Held(); len(held) != 1 || held[0] != 0 {
		t.Fatalf("the node holds the keys of rotations %v, want [0]", held)
	}
	route := []sphinx.Hop{hop(t, n, 0), next.hop(t)}
	framed := func(rot wire.KeyRotation, p []byte) []byte {
		h, err := wire.HeaderFor(p)
		if err != nil {
			t.Fatal(err)
		}
		h.KeyRotation = rot
		return wire.AppendFrame(nil, h, p)
	}
	c, err := wire.Initiate(dial(t, n), prev.noise, n.NoiseKey().Public(), time.Now().Add(waitTimeout))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(framed(wire.KeyRotationOdd, packet(t, sphinx.AckPacket, nil, route...))); err != nil {
		t.Fatal(err)
	}
	if st := settled(t, n, 1); st.Dropped[DropExpiredKey] != 1 || st.Forwarded != 0 {
		t.Fatalf("a packet framed for a key the node does not hold: forwarded %d, dropped %v", st.Forwarded, st.Dropped)
	}
	for i, rot := range []wire.KeyRotation{wire.KeyRotationEven, wire.KeyRotationUnknown} {
		if _, err := c.Write(framed(rot, packet(t, sphinx.AckPacket, nil, route...))); err != nil {
			t.Fatalf("the node closed the connection after the refused packet: %v", err)
		}
		next.next(t)
		if st := settled(t, n, uint64(2+i)); st.Forwarded != uint64(1+i) || st.DroppedTotal() != 1 {
			t.Fatalf("framed %s: forwarded %d, dropped %v", rot, st.Forwarded, st.Dropped)
		}
	}
}
