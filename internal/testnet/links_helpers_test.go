package testnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/wire"
)

// prevOf returns a node the topology lets send to to: a gateway before a
// layer-1 mixnode, a node of the layer before, a layer-3 mixnode before a
// gateway.
func (n *Network) prevOf(to *Node) *Node {
	switch {
	case to.Role == directory.RoleGateway:
		return n.Mixnode(Layers, 0)
	case to.Layer == 1:
		return n.Gateway(0)
	}
	return n.Mixnode(to.Layer-1, 0)
}

// dialAs opens a Noise link to to's real listener (past its relay, if it
// has one) as the node from, whose keys the harness holds: what a node, or
// whoever stole its key, can do. A node that has just started may not have
// fetched the topology yet and refuses the link: dialAs tries again for up
// to 20 seconds.
func dialAs(t testing.TB, from, to *Node) (net.Conn, *wire.NoiseConn) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, nc, err := tryDialAs(from, to)
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c, nc
		}
		if time.Now().After(deadline) {
			t.Fatalf("a Noise link from %s to %s: %v", from.Name(), to.Name(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tryDialAs makes one attempt at what dialAs does.
func tryDialAs(from, to *Node) (net.Conn, *wire.NoiseConn, error) {
	return dialNoise(to, from.NoiseKey(), nil)
}

// dialNoise makes a Noise link to to's real listener with key, and reports
// an error unless to keeps it open: the listener judges the key after the
// handshake, so a link is proved only by a read that does not end at
// once. With rec, every byte written on the connection is also kept there.
func dialNoise(to *Node, key wire.StaticKey, rec *recorder) (net.Conn, *wire.NoiseConn, error) {
	c, err := net.DialTimeout("tcp", to.Listen.String(), 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	var conn net.Conn = c
	if rec != nil {
		conn = &recordingConn{Conn: c, rec: rec}
	}
	nc, err := wire.Initiate(conn, key, to.NoiseKey().Public(), time.Now().Add(10*time.Second))
	if err == nil {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		c.SetReadDeadline(time.Time{})
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return c, nc, nil // still open: accepted
		}
		if err == nil {
			err = errors.New("the listener sent data")
		}
	}
	c.Close()
	return nil, nil, err
}

// recorder keeps every byte written through a recordingConn.
type recorder struct {
	mu  sync.Mutex
	buf []byte
}

func (r *recorder) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.buf)
}

type recordingConn struct {
	net.Conn
	rec *recorder
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.rec.mu.Lock()
	c.rec.buf = append(c.rec.buf, b...)
	c.rec.mu.Unlock()
	return c.Conn.Write(b)
}

// writeAs writes b to to over a Noise link from a node of the layer before,
// and closes the link.
func writeAs(t testing.TB, n *Network, to *Node, b []byte) {
	t.Helper()
	c, nc := dialAs(t, n.prevOf(to), to)
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// expectClosedAs writes b to to over a Noise link from a node of the layer
// before and expects to to close the link.
func expectClosedAs(t testing.TB, n *Network, to *Node, b []byte) {
	t.Helper()
	c, nc := dialAs(t, n.prevOf(to), to)
	nc.Write(b)
	expectEOF(t, c, to.Name())
}

// expectEOF expects c's peer, named name, to close c within 10 seconds.
func expectEOF(t testing.TB, c net.Conn, name string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("%s kept the connection open", name)
	}
}

// tcpCapture is a TCP forwarder that keeps every byte it passes, both
// ways: what an observer of the link sees. Its target is set once known
// (SetTarget), before the first connection arrives.
type tcpCapture struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
	conns  []*capturedConn
	wg     sync.WaitGroup
}

// capturedConn holds the bytes of one connection: up from the dialler,
// down from the target.
type capturedConn struct {
	mu       sync.Mutex
	up, down []byte
}

func newTCPCapture(t testing.TB) *tcpCapture {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &tcpCapture{ln: ln}
	c.wg.Add(1)
	go c.accept()
	t.Cleanup(func() { ln.Close(); c.wg.Wait() })
	return c
}

func (c *tcpCapture) Addr() string { return c.ln.Addr().String() }

func (c *tcpCapture) SetTarget(addr string) {
	c.mu.Lock()
	c.target = addr
	c.mu.Unlock()
}

func (c *tcpCapture) accept() {
	defer c.wg.Done()
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		target := c.target
		cc := &capturedConn{}
		c.conns = append(c.conns, cc)
		c.mu.Unlock()
		out, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		pump := func(from, to net.Conn, into *[]byte) {
			defer c.wg.Done()
			defer to.Close()
			buf := make([]byte, 32<<10)
			for {
				k, err := from.Read(buf)
				if k > 0 {
					cc.mu.Lock()
					*into = append(*into, buf[:k]...)
					cc.mu.Unlock()
					if _, err := to.Write(buf[:k]); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}
		c.wg.Add(2)
		go pump(in, out, &cc.up)
		go pump(out, in, &cc.down)
	}
}

// capturedBytes are one connection's bytes each way.
type capturedBytes struct{ up, down []byte }

// captured returns a copy of every connection's bytes so far.
func (c *tcpCapture) captured() []capturedBytes {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]capturedBytes, len(c.conns))
	for i, cc := range c.conns {
		cc.mu.Lock()
		out[i].up, out[i].down = bytes.Clone(cc.up), bytes.Clone(cc.down)
		cc.mu.Unlock()
	}
	return out
}

// wsPayloads reads one direction of a WebSocket connection: the HTTP
// upgrade head, then frames. It returns the payload of every whole frame,
// unmasked (a client masks what it sends, which hides nothing from an
// observer), and how many bytes the head and the frames took.
func wsPayloads(b []byte) (payloads [][]byte, used int) {
	head := bytes.Index(b, []byte("\r\n\r\n"))
	if head < 0 {
		return nil, 0
	}
	off := head + 4
	for {
		rest := b[off:]
		if len(rest) < 2 {
			return payloads, off
		}
		masked := rest[1]&0x80 != 0
		n, hdr := uint64(rest[1]&0x7f), 2
		switch n {
		case 126:
			if len(rest) < 4 {
				return payloads, off
			}
			n, hdr = uint64(binary.BigEndian.Uint16(rest[2:])), 4
		case 127:
			if len(rest) < 10 {
				return payloads, off
			}
			n, hdr = binary.BigEndian.Uint64(rest[2:]), 10
		}
		var key []byte
		if masked {
			if len(rest) < hdr+4 {
				return payloads, off
			}
			key, hdr = rest[hdr:hdr+4], hdr+4
		}
		if uint64(len(rest)-hdr) < n {
			return payloads, off
		}
		p := bytes.Clone(rest[hdr : hdr+int(n)])
		for i := range p {
			if key != nil {
				p[i] ^= key[i%4]
			}
		}
		payloads = append(payloads, p)
		off += hdr + int(n)
	}
}
