package wire

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/sphinx"
)

// waitTimeout bounds every wait of the tests for something that should
// happen promptly.
const waitTimeout = 10 * time.Second

// frame is a frame as a handler received it.
type frame struct {
	from   netip.AddrPort
	peer   *Peer
	h      Header
	packet []byte
}

// sink is a Server on a loopback port that passes copies of the frames it
// receives to a channel.
type sink struct {
	srv    *Server
	addr   netip.AddrPort
	frames chan frame
	served chan error // Serve's result
}

func newSink(t testing.TB, cfg ServerConfig) *sink {
	t.Helper()
	return newSinkOn(t, cfg, "127.0.0.1:0")
}

func newSinkOn(t testing.TB, cfg ServerConfig, addr string) *sink {
	t.Helper()
	s := &sink{frames: make(chan frame, 4096), served: make(chan error, 1)}
	cfg.Handler = HandlerFunc(func(from *Peer, h Header, packet []byte) {
		s.frames <- frame{from.Addr, from, h, bytes.Clone(packet)}
	})
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.srv = srv
	s.addr = ln.Addr().(*net.TCPAddr).AddrPort()
	go func() { s.served <- srv.Serve(ln) }()
	t.Cleanup(func() { s.close(t) })
	return s
}

// close closes the server and checks that Serve returned nil.
func (s *sink) close(t testing.TB) {
	t.Helper()
	if s.srv == nil {
		return
	}
	s.srv.Close()
	s.srv = nil
	select {
	case err := <-s.served:
		if err != nil {
			t.Errorf("Serve returned %v after Close", err)
		}
	case <-time.After(waitTimeout):
		t.Error("Serve did not return after Close")
	}
}

// next returns the next frame the sink received.
func (s *sink) next(t testing.TB) frame {
	t.Helper()
	select {
	case f := <-s.frames:
		return f
	case <-time.After(waitTimeout):
		t.Fatal("no frame arrived")
		return frame{}
	}
}

// randomPacket returns random bytes of a packet of the given size: the wire
// layer does not look inside packets.
func randomPacket(size sphinx.PacketSize) []byte {
	p := make([]byte, size.Len())
	rand.Read(p)
	return p
}

func mixHeader(size sphinx.PacketSize) Header {
	return Header{Size: size, Type: PacketTypeMix, KeyRotation: KeyRotationUnknown}
}

// dial connects to addr.
func dial(t testing.TB, addr netip.AddrPort) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// write writes b to c.
func write(t testing.TB, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("writing %d bytes: %v", len(b), err)
	}
}

// waitClosedByPeer waits until the server closes c, and returns how long
// that took.
func waitClosedByPeer(t testing.TB, c net.Conn) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(waitTimeout))
	var b [1]byte
	_, err := c.Read(b[:])
	if errors.Is(err, io.EOF) || isReset(err) {
		return time.Since(start)
	}
	t.Fatalf("connection not closed by the server: read returned %v", err)
	return 0
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// eventually polls cond until it holds or waitTimeout passes. It is for
// counters, which offer no signal to wait on.
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

// freePort returns a loopback address that was free a moment ago.
func freePort(t testing.TB) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// syncBuffer is a goroutine-safe bytes.Buffer for capturing logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
