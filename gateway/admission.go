package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Admission: the limits on client connections in their handshake. A
// connection holds a slot from its TCP accept until its gwproto handshake
// ends (or it closes); the listener refuses a connection past the limits at
// once, before reading anything from it, so a flood of half-open handshakes
// costs the gateway neither a goroutine nor a buffer per connection.

// source is where a client connects from, as the limits count it: an IPv4
// address (a /32), or the /64 an IPv6 address is in, since one IPv6 host
// commonly holds a whole /64. The zero source is unknown.
type source netip.Prefix

// sourceOf returns the source of a remote address.
func sourceOf(a net.Addr) source {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return sourceOfAddr(ap.Addr())
}

// sourceOfAddr returns the source of an IP address.
func sourceOfAddr(ip netip.Addr) source {
	ip = ip.Unmap().WithZone("")
	switch {
	case ip.IsUnspecified():
		return source{}
	case ip.Is4():
		return source(netip.PrefixFrom(ip, 32))
	case ip.Is6():
		p, _ := ip.Prefix(64)
		return source(p)
	}
	return source{}
}

func (s source) known() bool { return netip.Prefix(s).IsValid() }

func (s source) String() string {
	if !s.known() {
		return "unknown"
	}
	return netip.Prefix(s).String()
}

// sourceSize is the stored form of a source: its address in 16 bytes
// (IPv4 as IPv4-mapped IPv6), all zero when unknown.
const sourceSize = 16

func (s source) appendBinary(dst []byte) []byte {
	if !s.known() {
		return append(dst, make([]byte, sourceSize)...)
	}
	b := netip.Prefix(s).Addr().As16()
	return append(dst, b[:]...)
}

func parseSource(b []byte) source {
	ip := netip.AddrFrom16([16]byte(b))
	if ip.IsUnspecified() {
		return source{}
	}
	return sourceOfAddr(ip)
}

// refusalWriters bounds the goroutines that tell refused connections why;
// past it a refused connection is closed without a word.
const refusalWriters = 32

// refusalLinger bounds how long a refused connection is kept to let the
// client read the refusal.
const refusalLinger = time.Second

// admission counts the connections in their handshake, in total and per
// source.
type admission struct {
	maxTotal, maxPerSource int // maxPerSource < 0: no per-source limit
	timeout                time.Duration
	counters               *counters

	mu        sync.Mutex
	total     int
	perSource map[source]int

	writers chan struct{} // a token per refusal being written
}

func newAdmission(cfg *Config, c *counters) *admission {
	return &admission{
		maxTotal:     cfg.MaxHandshakes,
		maxPerSource: cfg.MaxHandshakesPerSource,
		timeout:      cfg.HandshakeTimeout,
		counters:     c,
		perSource:    make(map[source]int),
		writers:      make(chan struct{}, refusalWriters),
	}
}

// enter takes a slot for a connection from src, or says why it cannot.
func (a *admission) enter(src source) (RefusalReason, string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.total >= a.maxTotal {
		return RefusedHandshakes, fmt.Sprintf("gateway: too many clients in their handshake (limit of %d); retry later", a.maxTotal), false
	}
	if a.maxPerSource >= 0 && a.perSource[src] >= a.maxPerSource {
		return RefusedHandshakesPerSource, fmt.Sprintf("gateway: too many connections from your address in their handshake (limit of %d); retry later", a.maxPerSource), false
	}
	a.total++
	a.perSource[src]++
	return "", "", true
}

// leave gives back a slot of src.
func (a *admission) leave(src source) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if a.perSource[src]--; a.perSource[src] <= 0 {
		delete(a.perSource, src)
	}
}

// inProgress is the number of connections in their handshake.
func (a *admission) inProgress() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total
}

// admissionListener applies an admission to the connections it accepts.
type admissionListener struct {
	net.Listener
	a *admission
}

// Accept returns the next connection within the limits; it refuses the
// others itself.
func (l admissionListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceOf(c.RemoteAddr())
		reason, msg, ok := l.a.enter(src)
		if !ok {
			l.a.counters.refuse(reason)
			l.a.refuse(c, msg)
			continue
		}
		ac := &admittedConn{Conn: c, a: l.a, src: src, deadline: time.Now().Add(l.a.timeout)}
		// The whole handshake, HTTP request included, must end in time.
		// net/http and the handshake set deadlines of their own as they go,
		// so a timer moves the deadline to now when the time is up: the
		// read or write under way fails with a timeout.
		ac.timer = time.AfterFunc(l.a.timeout, func() {
			if ac.done.CompareAndSwap(false, true) {
				ac.a.leave(ac.src)
				ac.Conn.SetDeadline(time.Now())
			}
		})
		return ac, nil
	}
}

// refuse answers c with HTTP 503 and msg and closes it. The answer goes out
// before the client's request is read; the connection lingers a moment,
// reading what the client sends, so that closing it does not reset it
// before the client has read the answer.
func (a *admission) refuse(c net.Conn, msg string) {
	select {
	case a.writers <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-a.writers }()
		defer c.Close()
		body := msg + "\n"
		resp := fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"+
			"Content-Length: %d\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s", len(body), body)
		c.SetDeadline(time.Now().Add(refusalLinger))
		if _, err := c.Write([]byte(resp)); err != nil {
			return
		}
		if tc, ok := c.(interface{ CloseWrite() error }); ok {
			tc.CloseWrite()
		}
		var buf [512]byte
		for {
			if _, err := c.Read(buf[:]); err != nil {
				return
			}
		}
	}()
}

// admittedConn is a connection holding an admission slot until its
// handshake ends.
type admittedConn struct {
	net.Conn
	a        *admission
	src      source
	deadline time.Time // when the handshake must have ended
	timer    *time.Timer
	done     atomic.Bool // the slot was given back
}

// handshakeDone gives the slot back: the connection is an authenticated
// client now, or failed its handshake.
func (c *admittedConn) handshakeDone() {
	if c.done.CompareAndSwap(false, true) {
		c.timer.Stop()
		c.a.leave(c.src)
	}
}

func (c *admittedConn) Close() error {
	c.handshakeDone()
	return c.Conn.Close()
}

// connKey is the context key under which net/http's ConnContext keeps a
// request's *admittedConn.
type connKey struct{}

func withConn(ctx context.Context, c net.Conn) context.Context {
	if ac, ok := c.(*admittedConn); ok {
		return context.WithValue(ctx, connKey{}, ac)
	}
	return ctx
}

// admittedConnOf returns the connection of a request's context, or nil.
func admittedConnOf(ctx context.Context) *admittedConn {
	ac, _ := ctx.Value(connKey{}).(*admittedConn)
	return ac
}
