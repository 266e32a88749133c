package mixnode

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/node"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/internal/wire/wiretest"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// waitTimeout bounds every wait of the tests for something that should
// happen promptly (generously: the race detector slows Sphinx a lot).
const waitTimeout = 20 * time.Second

// testReplayCapacity keeps test nodes' replay filters small.
const testReplayCapacity = 10_000

// testPeakRate sizes the filters of the Sphinx keys of a node with a
// directory small (the smallest, node.MinReplayCapacity, with the tests'
// hour-long epochs).
const testPeakRate = 0.1

// newNode starts a node on a loopback port with the given changes to a
// test configuration, and closes it when the test ends.
func newNode(t testing.TB, layer int, change func(*Config)) *Node {
	t.Helper()
	cfg := Config{
		ListenAddr:     "127.0.0.1:0",
		Layer:          layer,
		DataDir:        t.TempDir(),
		ReplayCapacity: testReplayCapacity,
		PeakRate:       testPeakRate,
	}
	if change != nil {
		change(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// arrival is a packet that reached a sink, with its arrival time.
type arrival struct {
	packet []byte
	at     time.Time
}

// sink is the last hop of the tests' routes: a wire server on a loopback
// port with a Sphinx key, which reports every packet it receives.
type sink struct {
	srv      *wire.Server
	addr     netip.AddrPort
	key      *sphinx.PrivateKey
	noise    *node.NoiseKey // the Noise key of a Noise sink; nil for a plain one
	arrivals chan arrival
}

// newSink starts a sink with plain links, for nodes without a directory.
func newSink(t testing.TB) *sink { return startSink(t, false) }

// newNoiseSink starts a sink with Noise links that accepts every node, for
// nodes with a directory; its key also lets a test send as it.
func newNoiseSink(t testing.TB) *sink { return startSink(t, true) }

func startSink(t testing.TB, secure bool) *sink {
	t.Helper()
	key, err := sphinx.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{key: key, arrivals: make(chan arrival, 10000)}
	cfg := wire.ServerConfig{Handler: wire.HandlerFunc(func(_ *wire.Peer, _ wire.Header, packet []byte) {
		s.arrivals <- arrival{bytes.Clone(packet), time.Now()}
	})}
	if secure {
		if s.noise, err = node.GenerateNoiseKey(rand.Reader); err != nil {
			t.Fatal(err)
		}
		cfg.Noise = &wire.NoiseConfig{Key: s.noise, Peers: wiretest.AnyPeers{}}
	}
	s.srv, err = wire.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = boundAddr(ln)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		s.srv.Close()
		<-done
	})
	return s
}

// register lists the sink in dir: as a mixnode of the given layer, or as a
// gateway for layer 0. It returns a function that removes the listing.
func (s *sink) register(t testing.TB, dir *directory.Client, layer int) (deregister func()) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := []directory.SphinxKey{directory.NewSphinxKey(0, s.key.PublicKey())}
	d := directory.NewMixnodeDescriptor(layer, s.addr, pub, keys)
	if layer == 0 {
		d = directory.NewGatewayDescriptor(s.addr, "ws://"+s.addr.String(), pub, keys)
	}
	if s.noise != nil {
		k := s.noise.Public()
		d.NoiseKey = address.EncodeKey(k[:])
	}
	if err := dir.Register(context.Background(), d, priv); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := dir.Deregister(context.Background(), d, priv); err != nil {
			t.Fatal(err)
		}
	}
}

// quiet checks that the sink receives nothing for a moment.
func (s *sink) quiet(t testing.TB) {
	t.Helper()
	select {
	case <-s.arrivals:
		t.Fatal("a packet reached the sink")
	case <-time.After(200 * time.Millisecond):
	}
}

// next returns the next packet the sink received.
func (s *sink) next(t testing.TB) arrival {
	t.Helper()
	select {
	case a := <-s.arrivals:
		return a
	case <-time.After(waitTimeout):
		t.Fatal("no packet reached the sink")
		return arrival{}
	}
}

// open peels the sink's layer of a packet and returns its message.
func (s *sink) open(t testing.TB, packet []byte) []byte {
	t.Helper()
	res, err := sphinx.NewProcessor(s.key, nil).Process(nil, packet)
	if err != nil {
		t.Fatalf("the sink cannot open the packet: %v", err)
	}
	if !res.Final {
		t.Fatal("the packet does not end at the sink")
	}
	return res.Payload
}

// hop returns the route hop of a node, with the delay it should apply.
func hop(t testing.TB, n *Node, delay time.Duration) sphinx.Hop {
	t.Helper()
	addr, err := sphinx.NewNodeAddress(n.AnnounceAddr())
	if err != nil {
		t.Fatal(err)
	}
	return sphinx.Hop{Address: addr, PublicKey: n.SphinxKey(), Delay: delay}
}

// hop returns the sink as the last hop of a route.
func (s *sink) hop(t testing.TB) sphinx.Hop {
	t.Helper()
	addr, err := sphinx.NewNodeAddress(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	return sphinx.Hop{Address: addr, PublicKey: s.key.PublicKey()}
}

// packet builds a regular packet for route carrying msg.
func packet(t testing.TB, size sphinx.PacketSize, msg []byte, route ...sphinx.Hop) []byte {
	t.Helper()
	p, err := sphinx.NewPacket(rand.Reader, size, route, sphinx.Destination{1}, sphinx.SURBID{}, msg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// packets builds n packets in parallel (building costs as much as
// processing).
func packets(t testing.TB, n int, size sphinx.PacketSize, route ...sphinx.Hop) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	var wg sync.WaitGroup
	const workers = 4
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				p, err := sphinx.NewPacket(rand.Reader, size, route, sphinx.Destination{1}, sphinx.SURBID{}, []byte{byte(i)})
				if err != nil {
					errs <- err
					return
				}
				out[i] = p
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	return out
}

// frames encodes packets as one stream of frames.
func frames(t testing.TB, packets ...[]byte) []byte {
	t.Helper()
	var out []byte
	for _, p := range packets {
		h, err := wire.HeaderFor(p)
		if err != nil {
			t.Fatal(err)
		}
		out = wire.AppendFrame(out, h, p)
	}
	return out
}

// dial connects to a node.
func dial(t testing.TB, n *Node) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// send writes packets as frames to n over a new connection.
func send(t testing.TB, n *Node, packets ...[]byte) net.Conn {
	t.Helper()
	c := dial(t, n)
	if _, err := c.Write(frames(t, packets...)); err != nil {
		t.Fatal(err)
	}
	return c
}

// sendFrom writes packets as frames to n over a new Noise connection, as
// the node whose Noise key is from.
func sendFrom(t testing.TB, n *Node, from *node.NoiseKey, packets ...[]byte) net.Conn {
	t.Helper()
	c := dial(t, n)
	nc, err := wire.Initiate(c, from, n.NoiseKey().Public(), time.Now().Add(waitTimeout))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(frames(t, packets...)); err != nil {
		t.Fatal(err)
	}
	return c
}

// eventually polls cond until it holds or waitTimeout passes: for counters,
// which offer no signal to wait on.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settled waits until every packet n received is accounted for (forwarded
// or dropped) and returns the stats.
func settled(t testing.TB, n *Node, received uint64) Stats {
	t.Helper()
	var st Stats
	eventually(t, "the node accounts for every packet", func() bool {
		st = n.Stats()
		return st.Received == received && st.Forwarded+st.DroppedTotal() == received
	})
	return st
}

// waitClosedByPeer waits until the node closes c.
func waitClosedByPeer(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	var b [1]byte
	if _, err := c.Read(b[:]); err == nil {
		t.Fatal("the node sent data")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the node did not close the connection")
	}
}
