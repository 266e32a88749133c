package wire

import (
	"bytes"
	"crypto/rand"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/sphinx"
)

func TestServerRoundTrip(t *testing.T) {
	s := newSink(t, ServerConfig{})
	c := dial(t, s.addr)
	var stream []byte
	var want [][]byte
	for _, size := range sphinx.PacketSizes {
		p := randomPacket(size)
		want = append(want, p)
		stream = AppendFrame(stream, Header{Size: size, Type: PacketTypeMix, KeyRotation: KeyRotationOdd}, p)
	}
	// One write for all frames, then the same again byte by byte in a
	// few chunks: framing must not depend on how TCP splits the stream.
	write(t, c, stream)
	for i := 0; i < len(stream); i += 1000 {
		write(t, c, stream[i:min(i+1000, len(stream))])
	}
	for round := range 2 {
		for i, p := range want {
			f := s.next(t)
			if f.h.Size != sphinx.PacketSizes[i] || f.h.KeyRotation != KeyRotationOdd || !bytes.Equal(f.packet, p) {
				t.Fatalf("round %d frame %d: got %+v", round, i, f.h)
			}
			if f.from != c.LocalAddr().(*net.TCPAddr).AddrPort() {
				t.Fatalf("frame from %v, want %v", f.from, c.LocalAddr())
			}
		}
	}
	if st := s.srv.Stats(); st.Frames != uint64(2*len(want)) || st.Accepted != 1 || st.Active != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestServerMalformedClosesOnlyThatConnection sends every kind of bad
// stream on one connection while another connection keeps working.
func TestServerMalformedClosesOnlyThatConnection(t *testing.T) {
	garbage := make([]byte, 3000)
	rand.Read(garbage)
	garbage[0] = 0x47 // not Version
	regular := AppendFrame(nil, mixHeader(sphinx.RegularPacket), randomPacket(sphinx.RegularPacket))

	type badCase struct {
		name  string
		bytes []byte
		// halfClose ends the stream after the bytes (a truncated frame).
		halfClose bool
		stat      func(ServerStats) uint64
		log       string
	}
	malformed := func(st ServerStats) uint64 { return st.Malformed }
	truncated := func(st ServerStats) uint64 { return st.Truncated }
	cases := []badCase{
		{name: "garbage", bytes: garbage, stat: malformed, log: "unknown version 71"},
		{name: "truncated frame then close", bytes: regular[:1000], halfClose: true, stat: truncated, log: "in the middle of a frame"},
		{name: "truncated header then close", bytes: regular[:2], halfClose: true, stat: truncated, log: "in the middle of a frame"},
		// A good frame followed by a bad header: the good one is delivered.
		{name: "bad after good", bytes: append(bytes.Clone(regular), 8, 9, 0, 0), stat: malformed, log: "unknown size tag 9"},
	}
	for _, bh := range badHeaders {
		cases = append(cases, badCase{name: bh.name, bytes: append(bytes.Clone(bh.header), regular...), stat: malformed, log: bh.msg[len("wire: "):]})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			s := newSink(t, ServerConfig{Logger: zerolog.New(&logs)})
			good := dial(t, s.addr)
			bad := dial(t, s.addr)
			write(t, good, regular)
			s.next(t)

			write(t, bad, tc.bytes)
			if tc.halfClose {
				bad.CloseWrite()
			}
			waitClosedByPeer(t, bad)
			if tc.name == "bad after good" {
				s.next(t)
			}
			// The other connection is still served.
			write(t, good, regular)
			s.next(t)

			st := s.srv.Stats()
			if tc.stat(st) != 1 {
				t.Fatalf("stats %+v", st)
			}
			if !strings.Contains(logs.String(), tc.log) || !strings.Contains(logs.String(), `"peer":"`+bad.LocalAddr().String()) {
				t.Fatalf("log does not name the reason %q and the peer:\n%s", tc.log, logs.String())
			}
			select {
			case f := <-s.frames:
				t.Fatalf("unexpected frame %+v", f.h)
			default:
			}
		})
	}
}

// TestServerSlowLoris dribbles a frame one byte at a time: the frame
// deadline runs from the frame's first byte, so steady dribbling does not
// keep the connection alive.
func TestServerSlowLoris(t *testing.T) {
	const frameTimeout = 300 * time.Millisecond
	s := newSink(t, ServerConfig{FrameTimeout: frameTimeout, IdleTimeout: time.Minute})
	c := dial(t, s.addr)
	regular := AppendFrame(nil, mixHeader(sphinx.RegularPacket), randomPacket(sphinx.RegularPacket))
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			if _, err := c.Write(regular[i : i+1]); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	waitClosedByPeer(t, c)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	if elapsed < frameTimeout {
		t.Fatalf("closed after %v, before the frame timeout", elapsed)
	}
	if st := s.srv.Stats(); st.FrameTimeouts != 1 {
		t.Fatalf("stats %+v", st)
	}
	eventually(t, "the connection is released", func() bool { return s.srv.Stats().Active == 0 })
}

func TestServerHalfOpenPartialFrame(t *testing.T) {
	s := newSink(t, ServerConfig{FrameTimeout: 200 * time.Millisecond, IdleTimeout: time.Minute})
	c := dial(t, s.addr)
	write(t, c, []byte{Version, 1}) // half a header, then silence
	waitClosedByPeer(t, c)
	if st := s.srv.Stats(); st.FrameTimeouts != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServerIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	s := newSink(t, ServerConfig{IdleTimeout: idle, FrameTimeout: time.Minute})
	silent := dial(t, s.addr)
	afterFrame := dial(t, s.addr)
	// The server reads the frame after sentAt, so its idle time ends no
	// sooner than sentAt+idle (once measured after s.next, the time the
	// sink took to hand the frame over counted against the timeout).
	sentAt := time.Now()
	write(t, afterFrame, AppendFrame(nil, mixHeader(sphinx.AckPacket), randomPacket(sphinx.AckPacket)))
	s.next(t)
	waitClosedByPeer(t, silent)
	waitClosedByPeer(t, afterFrame)
	if time.Since(sentAt) < idle {
		t.Fatal("closed before the idle timeout")
	}
	if st := s.srv.Stats(); st.IdleTimeouts != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServerMaxConns(t *testing.T) {
	s := newSink(t, ServerConfig{MaxConns: 2})
	a, b := dial(t, s.addr), dial(t, s.addr)
	ack := AppendFrame(nil, mixHeader(sphinx.AckPacket), randomPacket(sphinx.AckPacket))
	write(t, a, ack)
	write(t, b, ack)
	s.next(t)
	s.next(t)
	third := dial(t, s.addr)
	waitClosedByPeer(t, third)
	if st := s.srv.Stats(); st.Refused != 1 || st.Active != 2 {
		t.Fatalf("stats %+v", st)
	}
	// A slot frees when a connection closes.
	a.Close()
	eventually(t, "the closed connection is released", func() bool { return s.srv.Stats().Active == 1 })
	fourth := dial(t, s.addr)
	write(t, fourth, ack)
	s.next(t)
}

// TestServerCloseWaitsForHandlers closes a server while a handler is busy:
// Close returns only after the handler has returned.
func TestServerCloseWaitsForHandlers(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var returned bool
	var mu sync.Mutex
	srv, err := NewServer(ServerConfig{Handler: HandlerFunc(func(*Peer, Header, []byte) {
		close(entered)
		<-release
		mu.Lock()
		returned = true
		mu.Unlock()
	})})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	c := dial(t, ln.Addr().(*net.TCPAddr).AddrPort())
	write(t, c, AppendFrame(nil, mixHeader(sphinx.AckPacket), randomPacket(sphinx.AckPacket)))
	<-entered
	go func() {
		time.Sleep(50 * time.Millisecond)
		close(release)
	}()
	srv.Close()
	mu.Lock()
	defer mu.Unlock()
	if !returned {
		t.Fatal("Close returned while a handler was running")
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if err := srv.Serve(ln); err != ErrServerClosed {
		t.Fatalf("Serve after Close: %v", err)
	}
}

func TestServerConfigRefused(t *testing.T) {
	h := HandlerFunc(func(*Peer, Header, []byte) {})
	for _, cfg := range []ServerConfig{
		{},
		{Handler: h, MaxConns: -1},
		{Handler: h, IdleTimeout: -1},
		{Handler: h, FrameTimeout: -1},
	} {
		if _, err := NewServer(cfg); err == nil || !strings.HasPrefix(err.Error(), "wire: ") {
			t.Errorf("NewServer(%+v) = %v", cfg, err)
		}
	}
}
