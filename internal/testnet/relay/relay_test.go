package relay

import (
	"bufio"
	"bytes"
	"crypto/ecdh"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/internal/wire/wiretest"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// target is a listener that reads frames the way a node does and hands
// each packet's sequence number (its first 8 bytes) to the test.
type target struct {
	ln     net.Listener
	frames chan uint64
	conns  chan net.Conn // every accepted connection
	wg     sync.WaitGroup
}

func newTarget(t *testing.T) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{ln: ln, frames: make(chan uint64, 100000), conns: make(chan net.Conn, 100)}
	tg.wg.Add(1)
	go func() {
		defer tg.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tg.conns <- c
			tg.wg.Add(1)
			go func() {
				defer tg.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				buf := make([]byte, wire.MaxPacketLen)
				for {
					_, p, err := wire.ReadFrame(br, buf)
					if err != nil {
						return
					}
					tg.frames <- binary.BigEndian.Uint64(p)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
	drain:
		for {
			select {
			case c := <-tg.conns:
				c.Close()
			default:
				break drain
			}
		}
		tg.wg.Wait()
	})
	return tg
}

func (tg *target) addr() string { return tg.ln.Addr().String() }

// next returns the next frame's sequence number, failing after a second.
func (tg *target) next(t *testing.T) uint64 {
	t.Helper()
	select {
	case n := <-tg.frames:
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("no frame arrived")
		return 0
	}
}

// none checks that no frame arrives within d.
func (tg *target) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case n := <-tg.frames:
		t.Fatalf("unexpected frame %d", n)
	case <-time.After(d):
	}
}

func newRelay(t *testing.T, tg *target, f Faults) *Relay {
	t.Helper()
	r, err := New(Config{Listen: "127.0.0.1:0", Target: tg.addr(), Faults: f, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// frame returns the frame of an ack-sized packet carrying seq.
func frame(seq uint64) []byte {
	p := make([]byte, sphinx.AckPacket.Len())
	binary.BigEndian.PutUint64(p, seq)
	h, _ := wire.HeaderFor(p)
	return wire.AppendFrame(nil, h, p)
}

func dial(t *testing.T, r *Relay) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c net.Conn, from, to uint64) {
	t.Helper()
	var b []byte
	for i := from; i < to; i++ {
		b = append(b, frame(i)...)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// waitClosed waits until the peer closes c.
func waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the relay did not close the connection")
	}
}

func TestPassThroughInOrder(t *testing.T) {
	tg := newTarget(t)
	r := newRelay(t, tg, Faults{})
	c := dial(t, r)
	const n = 500
	send(t, c, 0, n)
	for i := range uint64(n) {
		if got := tg.next(t); got != i {
			t.Fatalf("frame %d arrived as %d", i, got)
		}
	}
	st := r.Stats()
	if st.Read != n || st.Written != n || st.Accepted != 1 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDropRate(t *testing.T) {
	tg := newTarget(t)
	r := newRelay(t, tg, Faults{DropRate: 0.3})
	c := dial(t, r)
	const n = 2000
	send(t, c, 0, n)
	// A marker frame with no drops tells the test everything has passed.
	waitStats(t, r, func(s Stats) bool { return s.Read == n })
	if err := r.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	send(t, c, n, n+1)
	got, last := 0, uint64(0)
	for {
		seq := tg.next(t)
		if seq < last {
			t.Fatalf("frame %d after %d: drops must not reorder", seq, last)
		}
		last = seq
		if seq == n {
			break
		}
		got++
	}
	st := r.Stats()
	if got+int(st.Dropped) != n {
		t.Fatalf("%d arrived + %d dropped != %d", got, st.Dropped, n)
	}
	if rate := float64(st.Dropped) / n; rate < 0.25 || rate > 0.35 {
		t.Fatalf("drop rate %.3f, want about 0.3", rate)
	}
}

func TestDropAll(t *testing.T) {
	tg := newTarget(t)
	r := newRelay(t, tg, Faults{DropRate: 1})
	c := dial(t, r)
	send(t, c, 0, 50)
	waitStats(t, r, func(s Stats) bool { return s.Dropped == 50 })
	tg.none(t, 100*time.Millisecond)
}

func TestDuplicate(t *testing.T) {
	tg := newTarget(t)
	r := newRelay(t, tg, Faults{DuplicateRate: 1})
	c := dial(t, r)
	send(t, c, 0, 20)
	for i := range uint64(20) {
		if a, b := tg.next(t), tg.next(t); a != i || b != i {
			t.Fatalf("frame %d arrived as %d, %d", i, a, b)
		}
	}
	if st := r.Stats(); st.Duplicated != 20 || st.Written != 40 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDelay(t *testing.T) {
	tg := newTarget(t)
	const d = 150 * time.Millisecond
	r := newRelay(t, tg, Faults{Delay: d, Jitter: 20 * time.Millisecond})
	c := dial(t, r)
	start := time.Now()
	send(t, c, 0, 10)
	for i := range uint64(10) {
		if got := tg.next(t); got != i {
			t.Fatalf("frame %d arrived as %d: a delay must not reorder", i, got)
		}
	}
	if el := time.Since(start); el < d {
		t.Fatalf("frames arrived after %v, want at least %v", el, d)
	}
}

func TestReorderSwapsPairs(t *testing.T) {
	tg := newTarget(t)
	r := newRelay(t, tg, Faults{ReorderRate: 1})
	c := dial(t, r)
	send(t, c, 0, 10)
	want := []uint64{1, 0, 3, 2, 5, 4, 7, 6, 9, 8}
	for i, w := range want {
		if got := tg.next(t); got != w {
			t.Fatalf("arrival %d is frame %d, want %d", i, got, w)
		}
	}
	if st := r.Stats(); st.Reordered != 5 {
		t.Fatalf("reordered %d, want 5", st.Reordered)
	}
}

func TestReorderHoldEnds(t *testing.T) {
	tg := newTarget(t)
	r, err := New(Config{Listen: "127.0.0.1:0", Target: tg.addr(), Faults: Faults{ReorderRate: 1}, ReorderHold: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c := dial(t, r)
	send(t, c, 0, 1)
	// No frame follows: the held one goes out after the hold.
	if got := tg.next(t); got != 0 {
		t.Fatalf("got %d", got)
	}
}

func TestSetFaultsAtRuntime(t *testing.T) {
	tg := newTarget(t)
	r := newRelay(t, tg, Faults{})
	c := dial(t, r)
	send(t, c, 0, 5)
	for range 5 {
		tg.next(t)
	}
	if err := r.SetFaults(Faults{DropRate: 1}); err != nil {
		t.Fatal(err)
	}
	send(t, c, 5, 10)
	waitStats(t, r, func(s Stats) bool { return s.Dropped == 5 })
	tg.none(t, 50*time.Millisecond)
	if err := r.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	send(t, c, 10, 11)
	if got := tg.next(t); got != 10 {
		t.Fatalf("got %d", got)
	}
	if err := r.SetFaults(Faults{DropRate: 2}); err == nil {
		t.Fatal("a drop rate of 2 was accepted")
	}
	if err := r.SetFaults(Faults{Delay: -1}); err == nil {
		t.Fatal("a negative delay was accepted")
	}
}

func TestCutAndRestore(t *testing.T) {
	tg := newTarget(t)
	r := newRelay(t, tg, Faults{})
	c := dial(t, r)
	send(t, c, 0, 1)
	tg.next(t)

	r.Cut()
	waitClosed(t, c)
	// New connections are refused while cut.
	if c2, err := net.Dial("tcp", r.Addr().String()); err == nil { // or reset at once
		c2.Write(frame(1))
		waitClosed(t, c2)
		c2.Close()
	}
	tg.none(t, 50*time.Millisecond)
	if st := r.Stats(); st.Refused == 0 || st.Cuts != 1 {
		t.Fatalf("stats %+v", st)
	}

	r.Restore()
	c3 := dial(t, r)
	send(t, c3, 2, 3)
	if got := tg.next(t); got != 2 {
		t.Fatalf("got %d after restore", got)
	}
}

func TestBadFrameClosesConnection(t *testing.T) {
	tg := newTarget(t)
	r := newRelay(t, tg, Faults{})
	c := dial(t, r)
	c.Write([]byte{7, 1, 0, 0}) // version 7
	waitClosed(t, c)
	if st := r.Stats(); st.BadFrames != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Other connections are unaffected.
	c2 := dial(t, r)
	send(t, c2, 0, 1)
	tg.next(t)
}

func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r, err := New(Config{Listen: "127.0.0.1:0", Target: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// The relay resets the connection at once: the dial itself may see it.
	if c, err := net.Dial("tcp", r.Addr().String()); err == nil {
		waitClosed(t, c)
		c.Close()
	}
	waitStats(t, r, func(s Stats) bool { return s.Refused == 1 })
	if st := r.Stats(); st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTargetCloses(t *testing.T) {
	tg := newTarget(t)
	r := newRelay(t, tg, Faults{})
	c := dial(t, r)
	send(t, c, 0, 1)
	tg.next(t)
	(<-tg.conns).Close() // the node goes away
	waitClosed(t, c)
}

func TestTap(t *testing.T) {
	tg := newTarget(t)
	r := newRelay(t, tg, Faults{DropRate: 1})
	var mu sync.Mutex
	var seen []uint64
	r.SetTap(func(h wire.Header, p []byte) {
		mu.Lock()
		seen = append(seen, binary.BigEndian.Uint64(p))
		mu.Unlock()
	})
	c := dial(t, r)
	send(t, c, 0, 3)
	waitStats(t, r, func(s Stats) bool { return s.Dropped == 3 })
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || seen[2] != 2 {
		t.Fatalf("tap saw %v", seen)
	}
}

func TestCloseEndsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	tg := newTarget(t)
	r, err := New(Config{Listen: "127.0.0.1:0", Target: tg.addr(), Faults: Faults{Delay: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for i := range 5 {
		c := dial(t, r)
		send(t, c, uint64(i), uint64(i)+1)
		conns = append(conns, c)
	}
	waitStats(t, r, func(s Stats) bool { return s.Read == 5 })
	done := make(chan error)
	go func() { done <- r.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on delayed frames")
	}
	for _, c := range conns {
		waitClosed(t, c)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", r.Addr().String(), time.Second); err == nil {
		t.Fatal("the relay still accepts after Close")
	}
	// The target's goroutines end with its connections; allow for them.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+4 {
		t.Fatalf("%d goroutines after Close, %d before", n, before)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Target: "127.0.0.1:1"},
		{Listen: "127.0.0.1:0"},
		{Listen: "127.0.0.1:0", Target: "127.0.0.1:1", Faults: Faults{DuplicateRate: -0.1}},
		{Listen: "127.0.0.1:0", Target: "127.0.0.1:1", QueueLen: -1},
	} {
		if r, err := New(cfg); err == nil {
			r.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// waitStats polls the relay's counters (which signal nothing) until ok.
func waitStats(t *testing.T, r *Relay, ok func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok(r.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("stats never reached the condition: %+v", r.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// noiseKey is a Noise static key pair for the relay's tests.
type noiseKey struct {
	priv []byte
	pub  [wire.NoiseKeySize]byte
}

func newNoiseKey(t *testing.T) *noiseKey {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nk := &noiseKey{priv: k.Bytes()}
	copy(nk.pub[:], k.PublicKey().Bytes())
	return nk
}

func (k *noiseKey) Public() [wire.NoiseKeySize]byte { return k.pub }
func (k *noiseKey) Private() []byte                 { return bytes.Clone(k.priv) }

// TestNoise runs a relay with the keys between a Noise sender and a Noise
// target: frames pass and the tap sees them, the raw tap sees none of their
// bytes, a sender whose key the relay does not know is refused, and a raw
// tamper reaches the target, which closes the link.
func TestNoise(t *testing.T) {
	targetKey, sender := newNoiseKey(t), newNoiseKey(t)
	got := make(chan []byte, 16)
	srv, err := wire.NewServer(wire.ServerConfig{
		Handler: wire.HandlerFunc(func(p *wire.Peer, _ wire.Header, packet []byte) {
			if p.Key != sender.pub {
				t.Errorf("the target got a frame from key %x, want the sender's", p.Key)
			}
			got <- bytes.Clone(packet)
		}),
		Noise: &wire.NoiseConfig{Key: targetKey, Peers: wiretest.AnyPeers{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	r, err := New(Config{Listen: "127.0.0.1:0", Target: ln.Addr().String(), Noise: &NoiseKeys{
		Target: targetKey,
		Lookup: func(pub [wire.NoiseKeySize]byte) wire.StaticKey {
			if pub == sender.pub {
				return sender
			}
			return nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	var mu sync.Mutex
	var raw []byte
	var tapped int
	r.SetRawTap(func(b []byte) { mu.Lock(); raw = append(raw, b...); mu.Unlock() })
	r.SetTap(func(wire.Header, []byte) { mu.Lock(); tapped++; mu.Unlock() })

	dialAs := func(k *noiseKey) (net.Conn, *wire.NoiseConn) {
		c, err := net.Dial("tcp", r.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		nc, err := wire.Initiate(c, k, targetKey.pub, time.Now().Add(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return c, nc
	}
	c, nc := dialAs(sender)
	packet := make([]byte, sphinx.AckPacket.Len())
	crand.Read(packet)
	h, _ := wire.HeaderFor(packet)
	if _, err := nc.Write(wire.AppendFrame(nil, h, packet)); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if !bytes.Equal(p, packet) {
			t.Fatal("the target got another packet")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no frame reached the target")
	}
	mu.Lock()
	if tapped != 1 || bytes.Contains(raw, packet[:32]) || len(raw) < len(packet) {
		t.Fatalf("tap saw %d frames; raw tap %d bytes, holding the packet: %v", tapped, len(raw), bytes.Contains(raw, packet[:32]))
	}
	mu.Unlock()

	// A bit flipped on the way to the target: the target closes the link.
	r.SetRawTamper(func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
	nc.Write(wire.AppendFrame(nil, h, packet))
	deadline := time.Now().Add(5 * time.Second)
	for srv.Stats().AuthFailures != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("target stats %+v: the tampered message was not refused", srv.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the relay kept the sender's connection after the target closed its own")
	}
	r.SetRawTamper(nil)

	// A stranger's key: refused by the relay.
	stranger, err := net.Dial("tcp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	wire.Initiate(stranger, newNoiseKey(t), targetKey.pub, time.Now().Add(5*time.Second))
	stranger.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := stranger.Read(make([]byte, 1)); err == nil {
		t.Fatal("the relay kept a stranger's connection")
	}
	if st := r.Stats(); st.HandshakeFailures != 1 {
		t.Fatalf("relay stats %+v", st)
	}
}
