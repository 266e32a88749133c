package wire

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/sphinx"
)

// testKey is a Noise static key pair; publicOverride, when set, is the
// public key it claims instead of its own (an impersonator's).
type testKey struct {
	priv           []byte
	pub            [NoiseKeySize]byte
	publicOverride *[NoiseKeySize]byte
}

func newTestKey(t testing.TB) *testKey {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tk := &testKey{priv: k.Bytes()}
	copy(tk.pub[:], k.PublicKey().Bytes())
	return tk
}

func (k *testKey) Public() [NoiseKeySize]byte {
	if k.publicOverride != nil {
		return *k.publicOverride
	}
	return k.pub
}

func (k *testKey) Private() []byte { return bytes.Clone(k.priv) }

// testPeers is a Peers made of maps a test changes as it goes.
type testPeers struct {
	mu     sync.Mutex
	keys   map[netip.AddrPort][NoiseKeySize]byte // destinations
	accept map[[NoiseKeySize]byte]bool           // senders
	addrs  map[netip.Addr]bool                   // their addresses
	// joined are addresses that AcceptsAddr does not list but the peer's
	// key is accepted from: a node that has just joined the topology.
	joined  map[netip.Addr]bool
	awaited int // AwaitPeer calls
}

func newTestPeers() *testPeers {
	return &testPeers{
		keys:   make(map[netip.AddrPort][NoiseKeySize]byte),
		accept: make(map[[NoiseKeySize]byte]bool),
		addrs:  map[netip.Addr]bool{netip.MustParseAddr("127.0.0.1"): true},
		joined: map[netip.Addr]bool{},
	}
}

func (p *testPeers) PeerKey(addr netip.AddrPort) ([NoiseKeySize]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, ok := p.keys[addr]
	return k, ok
}

func (p *testPeers) AcceptsAddr(ip netip.Addr) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[ip]
}

func (p *testPeers) AcceptsPeer(ip netip.Addr, key [NoiseKeySize]byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accept[key] && p.addrs[ip]
}

func (p *testPeers) AwaitPeer(_ context.Context, ip netip.Addr, key [NoiseKeySize]byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.awaited++
	return p.accept[key] && (p.addrs[ip] || p.joined[ip])
}

func (p *testPeers) set(f func(*testPeers)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

// noiseLink is a Noise sink and the keys around it.
type noiseLink struct {
	*sink
	key    *testKey   // the sink's
	peers  *testPeers // the sink's view: whom it accepts
	sender *testKey   // a key the sink accepts
}

func newNoiseLink(t testing.TB, cfg ServerConfig) *noiseLink {
	t.Helper()
	l := &noiseLink{key: newTestKey(t), peers: newTestPeers(), sender: newTestKey(t)}
	l.peers.accept[l.sender.pub] = true
	cfg.Noise = &NoiseConfig{Key: l.key, Peers: l.peers, HandshakeTimeout: cfg.IdleTimeout}
	if cfg.Noise.HandshakeTimeout == 0 {
		cfg.Noise.HandshakeTimeout = waitTimeout
	}
	l.sink = newSink(t, cfg)
	return l
}

// initiate dials the sink and runs the handshake as key, expecting the
// sink's key to be want.
func (l *noiseLink) initiate(t testing.TB, key StaticKey, want [NoiseKeySize]byte) (*net.TCPConn, *NoiseConn, error) {
	t.Helper()
	c := dial(t, l.addr)
	nc, err := Initiate(c, key, want, time.Now().Add(waitTimeout))
	return c, nc, err
}

// TestNoiseRoundTrip sends every packet size through a Noise link made by
// a Pool: they arrive whole, from a Peer that carries the sender's key,
// and none of their bytes crossed the wire in the clear.
func TestNoiseRoundTrip(t *testing.T) {
	l := newNoiseLink(t, ServerConfig{})
	tap := newTapProxy(t, l.addr)
	senderPeers := newTestPeers()
	senderPeers.keys[tap.addr] = l.key.pub
	p, err := NewPool(PoolConfig{Noise: &NoiseConfig{Key: l.sender, Peers: senderPeers}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var sent [][]byte
	for _, size := range sphinx.PacketSizes {
		pk := randomPacket(size)
		sent = append(sent, pk)
		if !p.Send(tap.addr, mixHeader(size), pk) {
			t.Fatal("Send refused a frame")
		}
	}
	for i, want := range sent {
		f := l.next(t)
		if !bytes.Equal(f.packet, want) || f.h.Size != sphinx.PacketSizes[i] {
			t.Fatalf("frame %d differs", i)
		}
		if !f.peer.Secure || f.peer.Key != l.sender.pub || f.peer.ID().String() == "" {
			t.Fatalf("frame %d from %+v, want the sender's key", i, f.peer)
		}
	}
	captured := tap.bytes()
	for i, pk := range sent {
		for _, chunk := range [][]byte{pk[:32], pk[len(pk)/2 : len(pk)/2+32], pk[len(pk)-32:]} {
			if bytes.Contains(captured, chunk) {
				t.Fatalf("32 bytes of packet %d crossed the wire in the clear", i)
			}
		}
	}
	total := 0
	for _, pk := range sent {
		total += HeaderSize + len(pk)
	}
	if len(captured) < total {
		t.Fatalf("the capture holds %d bytes, fewer than the %d of the frames: it missed the traffic", len(captured), total)
	}
	if st := l.srv.Stats(); st.Peers != 1 || st.Handshaking != 0 || st.Active != 1 {
		t.Fatalf("server stats %+v", st)
	}
}

// TestNoiseResponderKey: a pool that expects another key than the one the
// listener holds never sends it a frame, and counts the failed handshakes.
func TestNoiseResponderKey(t *testing.T) {
	l := newNoiseLink(t, ServerConfig{})
	senderPeers := newTestPeers()
	senderPeers.keys[l.addr] = newTestKey(t).pub // not the sink's
	p, err := NewPool(PoolConfig{Noise: &NoiseConfig{Key: l.sender, Peers: senderPeers}, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Send(l.addr, mixHeader(sphinx.AckPacket), randomPacket(sphinx.AckPacket))
	eventually(t, "the pool counts failed handshakes", func() bool { return p.Stats().HandshakeFailures >= 2 })
	eventually(t, "the listener counts them", func() bool { return l.srv.Stats().HandshakeFailures >= 2 })
	p.Close()
	// No key at all for a destination: no connection is even made.
	q, err := NewPool(PoolConfig{Noise: &NoiseConfig{Key: l.sender, Peers: newTestPeers()}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	accepted := l.srv.Stats().Accepted
	q.Send(l.addr, mixHeader(sphinx.AckPacket), randomPacket(sphinx.AckPacket))
	eventually(t, "the pool counts a destination without a key", func() bool { return q.Stats().NoKey >= 1 })
	select {
	case f := <-l.frames:
		t.Fatalf("a frame arrived: %+v", f.h)
	default:
	}
	if got := l.srv.Stats().Accepted; got != accepted {
		t.Fatalf("a pool with no key for the destination connected to it anyway (%d → %d)", accepted, got)
	}
}

// TestNoiseInitiatorRefused covers the three ways of connecting as a node
// one is not: a key the listener does not accept, a listed key claimed
// without its private half, and an address no accepted peer has.
func TestNoiseInitiatorRefused(t *testing.T) {
	l := newNoiseLink(t, ServerConfig{})
	frame := AppendFrame(nil, mixHeader(sphinx.AckPacket), randomPacket(sphinx.AckPacket))

	t.Run("unlisted key", func(t *testing.T) {
		c, nc, err := l.initiate(t, newTestKey(t), l.key.pub)
		if err != nil {
			t.Fatalf("handshake: %v (the listener learns the key only at its end)", err)
		}
		nc.Write(frame)
		waitClosedByPeer(t, c)
		eventually(t, "the refusal is counted", func() bool { return l.srv.Stats().RefusedKey == 1 })
	})
	t.Run("listed key without its private half", func(t *testing.T) {
		impostor := newTestKey(t)
		impostor.publicOverride = &l.sender.pub
		c, nc, err := l.initiate(t, impostor, l.key.pub)
		if err == nil {
			nc.Write(frame)
		}
		waitClosedByPeer(t, c)
		eventually(t, "the failed handshake is counted", func() bool { return l.srv.Stats().HandshakeFailures == 1 })
	})
	t.Run("address", func(t *testing.T) {
		// The sender's key from an address the topology does not give it:
		// refused once the handshake is done, after a look at a newer
		// topology.
		l.peers.set(func(p *testPeers) { p.addrs = map[netip.Addr]bool{} })
		c, nc, err := l.initiate(t, l.sender, l.key.pub)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(frame)
		waitClosedByPeer(t, c)
		eventually(t, "the refusal is counted", func() bool { return l.srv.Stats().RefusedAddr == 1 })
		// A node that joined a moment ago: the newer topology lists it.
		l.peers.set(func(p *testPeers) { p.joined[netip.MustParseAddr("127.0.0.1")] = true; p.awaited = 0 })
		_, nc, err = l.initiate(t, l.sender, l.key.pub)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(frame)
		l.next(t)
		l.peers.set(func(p *testPeers) {
			if p.awaited != 1 {
				t.Errorf("AwaitPeer asked %d times, want 1", p.awaited)
			}
			p.addrs[netip.MustParseAddr("127.0.0.1")] = true
			p.joined = map[netip.Addr]bool{}
		})
	})
	t.Run("plain frames", func(t *testing.T) {
		c := dial(t, l.addr)
		write(t, c, frame)
		waitClosedByPeer(t, c)
		eventually(t, "the malformed handshake is counted", func() bool { return l.srv.Stats().HandshakeFailures == 2 })
	})
	select {
	case f := <-l.frames:
		t.Fatalf("a frame from an impostor arrived: %+v", f.h)
	default:
	}
	// The real sender still gets through.
	_, nc, err := l.initiate(t, l.sender, l.key.pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write(frame); err != nil {
		t.Fatal(err)
	}
	l.next(t)
}

// TestNoiseTampering alters an authenticated stream the ways an on-path
// attacker can: a flipped bit, a message replayed, plain frames injected.
// Each closes the connection before the altered data reaches the handler;
// what came before arrives.
func TestNoiseTampering(t *testing.T) {
	frame := AppendFrame(nil, mixHeader(sphinx.AckPacket), randomPacket(sphinx.AckPacket))
	cases := []struct {
		name   string
		tamper func(msg []byte) []byte // the second message as it goes out
		stat   func(ServerStats) uint64
	}{
		{"flipped bit", func(m []byte) []byte { m[len(m)-20] ^= 1; return m }, func(s ServerStats) uint64 { return s.AuthFailures }},
		{"replayed message", nil, func(s ServerStats) uint64 { return s.AuthFailures }},
		{"plain frame injected", func([]byte) []byte { return frame }, func(s ServerStats) uint64 { return s.Malformed }},
		{"noise header altered", func(m []byte) []byte { m[1] = 2; return m }, func(s ServerStats) uint64 { return s.Malformed }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newNoiseLink(t, ServerConfig{})
			c := dial(t, l.addr)
			rec := &recordConn{Conn: c}
			nc, err := Initiate(rec, l.sender, l.key.pub, time.Now().Add(waitTimeout))
			if err != nil {
				t.Fatal(err)
			}
			rec.reset()
			if _, err := nc.Write(frame); err != nil {
				t.Fatal(err)
			}
			first := rec.reset()
			l.next(t)
			var second []byte
			if tc.tamper == nil {
				second = first // the first message again
			} else {
				cw := &captureWriter{} // encrypts without sending
				nc.Conn = cw
				nc.Write(frame)
				second = tc.tamper(cw.b)
			}
			write(t, c, second)
			waitClosedByPeer(t, c)
			eventually(t, "the tampering is counted", func() bool { return tc.stat(l.srv.Stats()) == 1 })
			select {
			case f := <-l.frames:
				t.Fatalf("a tampered frame arrived: %+v", f.h)
			default:
			}
		})
	}
}

// TestNoiseHandshakeFlood fills the handshake bounds with connections that
// never finish a handshake, from the peer's own address: the peer still
// connects, every time, because the oldest idle ones make room.
func TestNoiseHandshakeFlood(t *testing.T) {
	l := newNoiseLink(t, ServerConfig{MaxHandshakes: 16, MaxHandshakesPerSource: 4, MaxConns: 20})
	var idle []*net.TCPConn
	for range 50 {
		idle = append(idle, dial(t, l.addr))
	}
	eventually(t, "the flood is admitted", func() bool { return l.srv.Stats().Accepted == 50 })
	frame := AppendFrame(nil, mixHeader(sphinx.AckPacket), randomPacket(sphinx.AckPacket))
	for range 3 {
		_, nc, err := l.initiate(t, l.sender, l.key.pub)
		if err != nil {
			t.Fatalf("a listed peer could not connect during the flood: %v", err)
		}
		if _, err := nc.Write(frame); err != nil {
			t.Fatal(err)
		}
		l.next(t)
		idle = append(idle, dial(t, l.addr))
	}
	st := l.srv.Stats()
	if st.Handshaking > 4 || st.Evicted < 46 || st.Refused != 0 {
		t.Fatalf("stats %+v: want at most 4 in their handshake, the rest evicted", st)
	}
}

// TestNoiseUnlistedFlood floods a listener from an address outside the
// topology (127.0.0.2) with connections that never finish a handshake: they
// churn among the few slots for unlisted addresses, and never close the
// handshakes of a listed address.
func TestNoiseUnlistedFlood(t *testing.T) {
	l := newNoiseLink(t, ServerConfig{MaxHandshakes: 16, MaxHandshakesPerSource: 8, MaxUnlistedHandshakes: 2})
	var listed []*net.TCPConn
	for range 3 {
		listed = append(listed, dial(t, l.addr))
	}
	stranger := net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.2:0"))
	for range 40 {
		c, err := net.DialTCP("tcp", stranger, net.TCPAddrFromAddrPort(l.addr))
		if err != nil {
			t.Skipf("cannot connect from 127.0.0.2: %v", err)
		}
		t.Cleanup(func() { c.Close() })
	}
	eventually(t, "the flood is admitted", func() bool { return l.srv.Stats().Accepted == 43 })
	st := l.srv.Stats()
	if st.Handshaking != 5 || st.Evicted != 38 {
		t.Fatalf("stats %+v: want 3 listed and 2 unlisted handshakes, 38 evicted", st)
	}
	for i, c := range listed {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
			t.Fatalf("listed connection %d was closed by the flood: %v", i, err)
		}
	}
}

// TestNoiseConnsPerPeer: a peer's newest connection closes its oldest
// beyond MaxConnsPerPeer.
func TestNoiseConnsPerPeer(t *testing.T) {
	l := newNoiseLink(t, ServerConfig{MaxConnsPerPeer: 2})
	frame := AppendFrame(nil, mixHeader(sphinx.AckPacket), randomPacket(sphinx.AckPacket))
	var conns []*net.TCPConn
	for range 3 {
		c, nc, err := l.initiate(t, l.sender, l.key.pub)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(frame)
		l.next(t)
		conns = append(conns, c)
	}
	waitClosedByPeer(t, conns[0])
	if st := l.srv.Stats(); st.Replaced != 1 || st.Active != 2 || st.Peers != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestNoiseRecheck: a peer that leaves the topology loses its links.
func TestNoiseRecheck(t *testing.T) {
	l := newNoiseLink(t, ServerConfig{})
	c, nc, err := l.initiate(t, l.sender, l.key.pub)
	if err != nil {
		t.Fatal(err)
	}
	nc.Write(AppendFrame(nil, mixHeader(sphinx.AckPacket), randomPacket(sphinx.AckPacket)))
	l.next(t)
	if n := l.srv.Recheck(); n != 0 {
		t.Fatalf("Recheck closed %d connections of a listed peer", n)
	}
	l.peers.set(func(p *testPeers) { delete(p.accept, l.sender.pub) })
	if n := l.srv.Recheck(); n != 1 {
		t.Fatalf("Recheck closed %d connections, want 1", n)
	}
	waitClosedByPeer(t, c)
	if st := l.srv.Stats(); st.Unlisted != 1 || st.Active != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestNoiseHandshakeTimeout: a connection that starts no handshake is
// closed after the handshake timeout.
func TestNoiseHandshakeTimeout(t *testing.T) {
	l := newNoiseLink(t, ServerConfig{IdleTimeout: 200 * time.Millisecond})
	c := dial(t, l.addr)
	if d := waitClosedByPeer(t, c); d < 150*time.Millisecond {
		t.Fatalf("closed after %v, before the timeout", d)
	}
	eventually(t, "the timeout is counted", func() bool { return l.srv.Stats().HandshakeTimeouts == 1 })
}

// TestPeerFault: a plain connection is closed at its MaxFaults-th fault; a
// Noise one only counts them.
func TestPeerFault(t *testing.T) {
	frame := AppendFrame(nil, mixHeader(sphinx.AckPacket), randomPacket(sphinx.AckPacket))
	plain := newSink(t, ServerConfig{MaxFaults: 2})
	c := dial(t, plain.addr)
	write(t, c, frame)
	f := plain.next(t)
	f.peer.Fault()
	write(t, c, frame)
	plain.next(t)
	f.peer.Fault()
	waitClosedByPeer(t, c)
	if st := plain.srv.Stats(); st.FaultCloses != 1 || st.Faults != 2 || st.Active != 0 {
		t.Fatalf("plain stats %+v", st)
	}

	l := newNoiseLink(t, ServerConfig{MaxFaults: 2})
	_, nc, err := l.initiate(t, l.sender, l.key.pub)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		nc.Write(frame)
		l.next(t).peer.Fault()
	}
	if st := l.srv.Stats(); st.FaultCloses != 0 || st.Faults != 5 || st.Active != 1 {
		t.Fatalf("noise stats %+v", st)
	}
}

// recordConn records what is written through it.
type recordConn struct {
	net.Conn
	mu sync.Mutex
	b  []byte
}

func (r *recordConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.b = append(r.b, p...)
	r.mu.Unlock()
	return r.Conn.Write(p)
}

// reset returns what was recorded and starts again.
func (r *recordConn) reset() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.b
	r.b = nil
	return b
}

// captureWriter is a net.Conn that keeps what is written and sends
// nothing.
type captureWriter struct {
	net.Conn
	b []byte
}

func (w *captureWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// tapProxy forwards one direction of TCP connections to a target and keeps
// a copy of every byte: an on-path observer.
type tapProxy struct {
	addr netip.AddrPort
	mu   sync.Mutex
	b    []byte
}

func newTapProxy(t testing.TB, target netip.AddrPort) *tapProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tapProxy{addr: ln.Addr().(*net.TCPAddr).AddrPort()}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target.String())
			if err != nil {
				in.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(in, out); in.Close() }()
			go func() {
				defer wg.Done()
				// Recorded before it is forwarded: whatever the target
				// has read, the capture holds.
				io.Copy(io.MultiWriter(tp, out), in)
				out.Close()
			}()
			t.Cleanup(func() { in.Close(); out.Close() })
		}
	}()
	return tp
}

func (tp *tapProxy) Write(p []byte) (int, error) {
	tp.mu.Lock()
	tp.b = append(tp.b, p...)
	tp.mu.Unlock()
	return len(p), nil
}

func (tp *tapProxy) bytes() []byte {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return bytes.Clone(tp.b)
}
