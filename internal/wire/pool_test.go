package wire

import (
	"bytes"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/sphinx"
)

func newPool(t testing.TB, cfg PoolConfig) *Pool {
	t.Helper()
	p, err := NewPool(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPoolRoundTrip(t *testing.T) {
	s := newSink(t, ServerConfig{})
	p := newPool(t, PoolConfig{})
	var want [][]byte
	for i := range 50 {
		size := sphinx.PacketSizes[i%len(sphinx.PacketSizes)]
		packet := randomPacket(size)
		want = append(want, bytes.Clone(packet))
		if !p.Send(s.addr, mixHeader(size), packet) {
			t.Fatalf("Send %d refused", i)
		}
		// Send copied the packet: scribbling on it changes nothing.
		clear(packet)
	}
	for i, w := range want {
		if f := s.next(t); !bytes.Equal(f.packet, w) {
			t.Fatalf("frame %d differs", i)
		}
	}
	eventually(t, "the pool counts every frame sent", func() bool { return p.Stats().Sent == 50 })
	st := p.Stats()
	if st.Dials != 1 || st.Connected != 1 || st.Destinations != 1 || st.Queued != 0 || st.QueuedBytes != 0 {
		t.Fatalf("stats %+v", st)
	}
	if s.srv.Stats().Accepted != 1 {
		t.Fatal("the pool did not reuse its connection")
	}
}

func TestPoolInvalidSend(t *testing.T) {
	p := newPool(t, PoolConfig{})
	to := netip.MustParseAddrPort("127.0.0.1:9")
	if p.Send(to, mixHeader(sphinx.RegularPacket), make([]byte, 100)) {
		t.Fatal("Send accepted a packet of the wrong length")
	}
	if p.Send(to, Header{Size: 9}, make([]byte, 100)) {
		t.Fatal("Send accepted an invalid header")
	}
	if p.Send(netip.AddrPort{}, mixHeader(sphinx.AckPacket), randomPacket(sphinx.AckPacket)) {
		t.Fatal("Send accepted an invalid address")
	}
	if st := p.Stats(); st.DroppedInvalid != 3 || st.Destinations != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPoolReconnects restarts the peer: frames sent after the pool noticed
// arrive over a new connection.
func TestPoolReconnects(t *testing.T) {
	s := newSink(t, ServerConfig{})
	addr := s.addr
	p := newPool(t, PoolConfig{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	ack := randomPacket(sphinx.AckPacket)
	p.Send(addr, mixHeader(sphinx.AckPacket), ack)
	s.next(t)

	s.close(t)
	eventually(t, "the pool notices the peer left", func() bool { return p.Stats().Connected == 0 })
	s2 := newSinkOn(t, ServerConfig{}, addr.String())
	for range 3 {
		if !p.Send(addr, mixHeader(sphinx.AckPacket), ack) {
			t.Fatal("Send refused")
		}
	}
	for range 3 {
		if f := s2.next(t); !bytes.Equal(f.packet, ack) {
			t.Fatal("wrong packet after reconnecting")
		}
	}
	if st := p.Stats(); st.Dials != 2 || st.DroppedWriteError != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPoolQueuesWhileDisconnected sends to a port where nothing listens
// yet: frames wait in the queue, and arrive once a server starts there.
func TestPoolQueuesWhileDisconnected(t *testing.T) {
	addr := freePort(t)
	p := newPool(t, PoolConfig{MinBackoff: 20 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	var want [][]byte
	for range 5 {
		packet := randomPacket(sphinx.AckPacket)
		want = append(want, packet)
		if !p.Send(addr, mixHeader(sphinx.AckPacket), packet) {
			t.Fatal("Send refused")
		}
	}
	eventually(t, "a dial fails", func() bool { return p.Stats().DialFailures >= 1 })
	s := newSinkOn(t, ServerConfig{}, addr.String())
	for i, w := range want {
		if f := s.next(t); !bytes.Equal(f.packet, w) {
			t.Fatalf("frame %d differs or is out of order", i)
		}
	}
}

// TestPoolQueueBound fills the queue of a destination that refuses
// connections: Send drops and counts instead of blocking or growing.
func TestPoolQueueBound(t *testing.T) {
	const queueLen = 4
	addr := freePort(t)
	before := runtime.NumGoroutine()
	p := newPool(t, PoolConfig{QueueLen: queueLen, MinBackoff: time.Minute, MaxBackoff: time.Minute})
	packet := randomPacket(sphinx.RegularPacket)
	accepted := 0
	start := time.Now()
	for range 100 {
		if p.Send(addr, mixHeader(sphinx.RegularPacket), packet) {
			accepted++
		}
	}
	if time.Since(start) > time.Second {
		t.Fatal("Send blocked")
	}
	// The writer may hold one frame while it waits to reconnect.
	if accepted < queueLen || accepted > queueLen+1 {
		t.Fatalf("%d frames accepted with a queue of %d", accepted, queueLen)
	}
	st := p.Stats()
	if st.DroppedQueueFull != uint64(100-accepted) || st.Queued > queueLen {
		t.Fatalf("stats %+v", st)
	}
	// Close drops what never got through, and says so.
	p.Close()
	st = p.Stats()
	if st.DroppedClosed != uint64(accepted) || st.Sent != 0 {
		t.Fatalf("after Close: %+v", st)
	}
	eventually(t, "the writer ends", func() bool { return runtime.NumGoroutine() <= before })
	if p.Send(addr, mixHeader(sphinx.RegularPacket), packet) {
		t.Fatal("Send accepted a frame after Close")
	}
}

// TestPoolMaxQueuedBytes checks the budget shared by all destinations.
func TestPoolMaxQueuedBytes(t *testing.T) {
	frameLen := HeaderSize + sphinx.AckPacket.Len()
	p := newPool(t, PoolConfig{MaxQueuedBytes: 3 * frameLen, MinBackoff: time.Minute, MaxBackoff: time.Minute})
	packet := randomPacket(sphinx.AckPacket)
	accepted := 0
	for range 5 {
		for range 2 {
			if p.Send(freePort(t), mixHeader(sphinx.AckPacket), packet) {
				accepted++
			}
		}
	}
	if accepted != 3 {
		t.Fatalf("%d frames accepted within a budget of 3", accepted)
	}
	if st := p.Stats(); st.DroppedQueueFull != 7 || st.QueuedBytes != int64(3*frameLen) {
		t.Fatalf("stats %+v", st)
	}
	p.Close()
	if st := p.Stats(); st.QueuedBytes != 0 || st.DroppedClosed != 3 {
		t.Fatalf("after Close: %+v", st)
	}
}

func TestPoolMaxDestinations(t *testing.T) {
	p := newPool(t, PoolConfig{MaxDestinations: 2, MinBackoff: time.Minute, MaxBackoff: time.Minute})
	packet := randomPacket(sphinx.AckPacket)
	for port := uint16(1); port <= 3; port++ {
		ok := p.Send(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freePort(t).Port()), mixHeader(sphinx.AckPacket), packet)
		if ok != (port <= 2) {
			t.Fatalf("destination %d: Send = %v", port, ok)
		}
	}
	if st := p.Stats(); st.DroppedTooManyDestinations != 1 || st.Destinations != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPoolCloseDrains closes the pool right after sending: queued frames are
// still written.
func TestPoolCloseDrains(t *testing.T) {
	s := newSink(t, ServerConfig{})
	p := newPool(t, PoolConfig{QueueLen: 500})
	const n = 300
	for range n {
		if !p.Send(s.addr, mixHeader(sphinx.RegularPacket), randomPacket(sphinx.RegularPacket)) {
			t.Fatal("Send refused")
		}
	}
	p.Close()
	if st := p.Stats(); st.Sent != n || st.DroppedClosed != 0 {
		t.Fatalf("after Close: %+v", st)
	}
	for range n {
		s.next(t)
	}
}

// TestPoolIdleRetires checks that a destination with nothing to send gives
// up its connection and goroutine, and comes back on the next Send.
func TestPoolIdleRetires(t *testing.T) {
	s := newSink(t, ServerConfig{})
	p := newPool(t, PoolConfig{IdleTimeout: 50 * time.Millisecond})
	ack := randomPacket(sphinx.AckPacket)
	p.Send(s.addr, mixHeader(sphinx.AckPacket), ack)
	s.next(t)
	eventually(t, "the idle destination retires", func() bool {
		st := p.Stats()
		return st.Destinations == 0 && st.Connected == 0
	})
	p.Send(s.addr, mixHeader(sphinx.AckPacket), ack)
	s.next(t)
	if st := p.Stats(); st.Dials != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPoolConfigRefused(t *testing.T) {
	for _, cfg := range []PoolConfig{
		{QueueLen: -1},
		{DialTimeout: -time.Second},
		{MinBackoff: time.Second, MaxBackoff: time.Millisecond},
	} {
		if _, err := NewPool(cfg); err == nil || !strings.HasPrefix(err.Error(), "wire: ") {
			t.Errorf("NewPool(%+v) = %v", cfg, err)
		}
	}
}

// TestPoolRedirect queues frames for an address where nothing listens (a
// node that moved) with a backoff far longer than the test: OnDialFailure
// reports the failed attempt, and Redirect moves every frame, the one the
// writer holds for its next attempt included, to the node's new address at
// once. A frame sent to the old address afterwards stays there.
func TestPoolRedirect(t *testing.T) {
	old := freePort(t)
	failed := make(chan int, 16)
	p := newPool(t, PoolConfig{MinBackoff: time.Hour, MaxBackoff: time.Hour,
		OnDialFailure: func(to netip.AddrPort, failures int) {
			if to == old {
				failed <- failures
			}
		}})
	var want [][]byte
	for range 5 {
		packet := randomPacket(sphinx.AckPacket)
		want = append(want, packet)
		if !p.Send(old, mixHeader(sphinx.AckPacket), packet) {
			t.Fatal("Send refused")
		}
	}
	select {
	case n := <-failed:
		if n != 1 {
			t.Fatalf("the first failure reported as failure %d", n)
		}
	case <-time.After(waitTimeout):
		t.Fatal("OnDialFailure was not called")
	}
	s := newSink(t, ServerConfig{})
	if moved := p.Redirect(old, s.addr); moved != len(want)-1 {
		t.Fatalf("Redirect moved %d queued frames, want %d (one is held by the writer)", moved, len(want)-1)
	}
	got := make(map[string]bool)
	for range want {
		got[string(s.next(t).packet)] = true
	}
	for i, w := range want {
		if !got[string(w)] {
			t.Fatalf("frame %d did not follow the redirect", i)
		}
	}
	eventually(t, "the pool counts the held frame", func() bool { return p.Stats().Redirected == uint64(len(want)) })

	// The redirect was for what was queued: a later frame for the old
	// address waits there (its writer is in its hour-long backoff).
	p.Send(old, mixHeader(sphinx.AckPacket), randomPacket(sphinx.AckPacket))
	select {
	case f := <-s.frames:
		t.Fatalf("a frame sent to the old address after the redirect arrived at the new one (%d bytes)", len(f.packet))
	case <-time.After(100 * time.Millisecond):
	}
	if p.Redirect(old, old) != 0 || p.Redirect(freePort(t), s.addr) != 0 {
		t.Fatal("Redirect to itself, or of an unknown destination, moved frames")
	}
}

// TestPoolRetry: a destination the pool cannot reach (its Noise key is not
// listed: the node left the topology while it was down) puts its writer
// into its backoff (an hour here). Listing the destination again does not
// wake the writer; Retry does, once: while the destination stays unlisted
// the retry costs one attempt, reported as the first failure of a new
// series, and the writer waits again; once it is listed, Retry has the
// held frame delivered at once. Retry of a destination with no writer, or
// one that is not waiting, reports false.
func TestPoolRetry(t *testing.T) {
	l := newNoiseLink(t, ServerConfig{})
	dialPeers := newTestPeers() // the pool's view: no key for l yet
	failed := make(chan int, 16)
	p := newPool(t, PoolConfig{
		Noise:      &NoiseConfig{Key: l.sender, Peers: dialPeers},
		MinBackoff: time.Hour, MaxBackoff: time.Hour,
		OnDialFailure: func(to netip.AddrPort, failures int) {
			if to == l.addr {
				failed <- failures
			}
		}})
	if p.Retry(l.addr) {
		t.Fatal("Retry of a destination with no writer reported a waiting writer")
	}
	nextFailure := func(want int) {
		t.Helper()
		select {
		case n := <-failed:
			if n != want {
				t.Fatalf("failure reported as failure %d in a row, want %d", n, want)
			}
		case <-time.After(waitTimeout):
			t.Fatal("no failed attempt")
		}
	}
	// retry retries until the writer is in its backoff (it enters it just
	// after reporting the failure).
	retry := func() {
		t.Helper()
		eventually(t, "Retry finds the writer waiting", func() bool { return p.Retry(l.addr) })
	}
	packet := randomPacket(sphinx.AckPacket)
	if !p.Send(l.addr, mixHeader(sphinx.AckPacket), packet) {
		t.Fatal("Send refused")
	}
	nextFailure(1)

	// Still unlisted: one attempt, the first failure of a new series.
	retry()
	nextFailure(1)
	if st := p.Stats(); st.Dials != 2 || st.NoKey != 2 || st.Retried != 1 {
		t.Fatalf("after one retry: %d dials, %d without a key, %d retries; want 2, 2, 1", st.Dials, st.NoKey, st.Retried)
	}

	// Listed again: the writer still waits out its hour until Retry.
	dialPeers.set(func(tp *testPeers) { tp.keys[l.addr] = l.key.pub })
	select {
	case f := <-l.frames:
		t.Fatalf("a frame (%d bytes) arrived with the writer in its backoff", len(f.packet))
	case <-time.After(100 * time.Millisecond):
	}
	retry()
	if f := l.next(t); !bytes.Equal(f.packet, packet) {
		t.Fatal("the held frame arrived changed")
	}
	if st := p.Stats(); st.Dials != 3 || st.Retried != 2 || st.Connected != 1 {
		t.Fatalf("after the second retry: %d dials, %d retries, %d connected; want 3, 2, 1", st.Dials, st.Retried, st.Connected)
	}
	if p.Retry(l.addr) {
		t.Fatal("Retry of a connected destination reported a waiting writer")
	}
}
