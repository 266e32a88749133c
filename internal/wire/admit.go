package wire

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
)

// Peer is the node at the other end of an inbound connection, as a
// [Handler] sees it. One Peer lives as long as its connection.
type Peer struct {
	// Addr is the connection's remote address.
	Addr netip.AddrPort
	// Key is the peer's Noise static key, which its handshake proved it
	// holds; zero on a plain link.
	Key [NoiseKeySize]byte
	// Secure reports whether the link is secured with Noise.
	Secure bool

	sc *serverConn // nil for a Peer made outside a Server
}

// PeerID names a peer for per-peer accounting: its Noise key on a Noise
// link, its address (ip:port, so one connection) on a plain one. It is
// comparable.
type PeerID struct {
	key    [NoiseKeySize]byte
	addr   netip.AddrPort
	secure bool
}

// ID is the peer's PeerID.
func (p *Peer) ID() PeerID {
	if p.Secure {
		return PeerID{key: p.Key, secure: true}
	}
	return PeerID{addr: p.Addr}
}

// String is the base58 Noise key, or the address of a plain peer.
func (id PeerID) String() string {
	if id.secure {
		return address.EncodeKey(id.key[:])
	}
	return id.addr.String()
}

// Fault reports that a frame from the peer failed authentication past the
// link: its Sphinx header did not verify, for example. Frames on a Noise
// link were authenticated as the peer's, but the peer is a listed node
// relaying packets other senders built, so a bad one is the sender's doing
// and does not close the link (a client could otherwise reset its
// gateway's links at will): Fault only counts it. On a plain link the
// peer is whoever connected, and its MaxFaults-th fault closes the
// connection. Fault may be called from any goroutine, after HandleFrame
// has returned.
func (p *Peer) Fault() {
	sc := p.sc
	if sc == nil {
		return
	}
	s := sc.srv
	s.faults.Add(1)
	if p.Secure || int(sc.faults.Add(1)) != s.cfg.MaxFaults {
		return
	}
	s.mu.Lock()
	_, open := s.table.all[sc]
	if open {
		s.table.remove(sc)
		sc.closedBy = closedFaults
	}
	s.mu.Unlock()
	if open {
		s.faultCloses.Add(1)
		s.limited.event(s.log, zerolog.WarnLevel, "faults").Stringer("peer", p.Addr).Int("faults", s.cfg.MaxFaults).
			Msg("closing the connection: too many frames failed authentication")
		sc.c.Close()
	}
}

// closeReason says why the server itself closed a connection.
type closeReason uint8

const (
	notClosed closeReason = iota
	closedEvicted
	closedReplaced
	closedUnlisted
	closedFaults
)

// serverConn is one accepted connection.
type serverConn struct {
	c      net.Conn
	src    netip.Addr
	srv    *Server
	listed bool               // from an address Peers.AcceptsAddr accepts
	key    [NoiseKeySize]byte // once authenticated
	secure bool               // authenticated with Noise
	faults atomic.Int32       // Peer.Fault calls
	// closedBy is set, under the server's mu, when the server closes the
	// connection for a reason of its own.
	closedBy closeReason
}

// connTable is the bookkeeping of a server's open connections, guarded by
// the server's mu.
type connTable struct {
	all      map[*serverConn]struct{}
	pending  []*serverConn                        // in their handshake, oldest first
	from     map[netip.Addr]int                   // pending ones by source address
	unlisted int                                  // pending ones from unlisted addresses
	byKey    map[[NoiseKeySize]byte][]*serverConn // authenticated ones by peer, oldest first
}

func newConnTable() connTable {
	return connTable{
		all:   make(map[*serverConn]struct{}),
		from:  make(map[netip.Addr]int),
		byKey: make(map[[NoiseKeySize]byte][]*serverConn),
	}
}

// remove forgets sc, wherever it is; it does nothing when sc is not open.
func (t *connTable) remove(sc *serverConn) {
	if _, ok := t.all[sc]; !ok {
		return
	}
	delete(t.all, sc)
	if sc.secure {
		list := slices.DeleteFunc(t.byKey[sc.key], func(o *serverConn) bool { return o == sc })
		if len(list) == 0 {
			delete(t.byKey, sc.key)
		} else {
			t.byKey[sc.key] = list
		}
		return
	}
	if i := slices.Index(t.pending, sc); i >= 0 {
		t.pending = slices.Delete(t.pending, i, i+1)
		if t.from[sc.src]--; t.from[sc.src] <= 0 {
			delete(t.from, sc.src)
		}
		if !sc.listed {
			t.unlisted--
		}
	}
}

// admit decides c's fate before anything is read from it or allocated for
// it: refused (MaxConns authenticated connections open), or served, having
// closed the oldest connections in their handshake that it displaces. It
// reports false when the server is closed.
func (s *Server) admit(c net.Conn) bool {
	from := remoteAddrPort(c)
	sc := &serverConn{c: c, src: from.Addr(), srv: s, listed: true}
	if s.noise != nil {
		sc.listed = s.noise.Peers.AcceptsAddr(sc.src)
	}
	var victims []*serverConn
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return false
	}
	t := &s.table
	if s.noise != nil {
		if !sc.listed && t.unlisted >= s.cfg.MaxUnlistedHandshakes {
			victims = s.evictLocked(victims, func(o *serverConn) bool { return !o.listed })
		}
		if t.from[sc.src] >= s.cfg.MaxHandshakesPerSource {
			victims = s.evictLocked(victims, func(o *serverConn) bool { return o.src == sc.src && (sc.listed || !o.listed) })
		}
		if len(t.pending) >= s.cfg.MaxHandshakes || len(t.all) >= s.cfg.MaxConns {
			// Unlisted connections go first; a listed one is closed only
			// for another listed one.
			if victims = s.evictLocked(victims, func(o *serverConn) bool { return !o.listed }); sc.listed && len(victims) == 0 {
				victims = s.evictLocked(victims, func(*serverConn) bool { return true })
			}
		}
	}
	full := len(t.all) >= s.cfg.MaxConns || (s.noise != nil && len(t.pending) >= s.cfg.MaxHandshakes)
	if !full {
		t.all[sc] = struct{}{}
		if s.noise != nil {
			t.pending = append(t.pending, sc)
			t.from[sc.src]++
			if !sc.listed {
				t.unlisted++
			}
		}
		s.wg.Add(1)
	}
	s.mu.Unlock()
	for _, v := range victims {
		v.c.Close()
	}
	if full {
		s.refused.Add(1)
		s.limited.event(s.log, zerolog.WarnLevel, "refused").Stringer("peer", from).Int("max_conns", s.cfg.MaxConns).
			Msg("refusing a connection: too many open")
		c.Close()
		return true
	}
	s.accepted.Add(1)
	go s.serveConn(sc)
	return true
}

// evictLocked closes, to make room, the oldest connection in its
// handshake that match picks, appending it to victims for the caller to
// close once s.mu is released.
func (s *Server) evictLocked(victims []*serverConn, match func(*serverConn) bool) []*serverConn {
	for _, sc := range s.table.pending {
		if match(sc) {
			s.table.remove(sc)
			sc.closedBy = closedEvicted
			s.evicted.Add(1)
			return append(victims, sc)
		}
	}
	return victims
}

// establish moves sc, whose handshake proved key, from the handshaking
// connections to key's, closing key's oldest if it then has more than
// MaxConnsPerPeer. It reports false when sc was closed meanwhile.
func (s *Server) establish(sc *serverConn, key [NoiseKeySize]byte) bool {
	var victim *serverConn
	s.mu.Lock()
	if s.closed || sc.closedBy != notClosed {
		s.mu.Unlock()
		return false
	}
	t := &s.table
	t.remove(sc)
	t.all[sc] = struct{}{}
	sc.key, sc.secure = key, true
	t.byKey[key] = append(t.byKey[key], sc)
	if list := t.byKey[key]; len(list) > s.cfg.MaxConnsPerPeer {
		victim = list[0]
		t.remove(victim)
		victim.closedBy = closedReplaced
	}
	s.mu.Unlock()
	if victim != nil {
		s.replaced.Add(1)
		s.log.Debug().Stringer("peer", remoteAddrPort(victim.c)).Msg("closing a peer's oldest connection for its newest")
		victim.c.Close()
	}
	return true
}

// forget removes sc from the table, if it is still there, and closes it.
func (s *Server) forget(sc *serverConn) {
	s.mu.Lock()
	s.table.remove(sc)
	s.mu.Unlock()
	sc.c.Close()
}

// gone reports whether the server closed sc itself: on Close, or for a
// reason of its own that it has counted.
func (s *Server) gone(sc *serverConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed || sc.closedBy != notClosed
}

// Recheck closes the authenticated connections of the peers that
// NoiseConfig.Peers no longer accepts, and returns how many it closed:
// call it when the topology changes, so that a node removed from the
// previous layer loses the links it had. It calls Peers.AcceptsPeer with
// the server's lock held. On a plain server it does nothing.
func (s *Server) Recheck() int {
	if s.noise == nil {
		return 0
	}
	var victims []*serverConn
	s.mu.Lock()
	for key, list := range s.table.byKey {
		for _, sc := range list {
			if !s.noise.Peers.AcceptsPeer(sc.src, key) {
				victims = append(victims, sc)
			}
		}
	}
	for _, sc := range victims {
		s.table.remove(sc)
		sc.closedBy = closedUnlisted
	}
	s.mu.Unlock()
	for _, sc := range victims {
		s.unlisted.Add(1)
		s.log.Info().Stringer("peer", remoteAddrPort(sc.c)).Stringer("key", PeerID{key: sc.key, secure: true}).
			Msg("closing a connection: its peer left the topology's previous layer")
		sc.c.Close()
	}
	return len(victims)
}

// logLimiter lets through at most one line a second of each kind at its
// level and sends the rest to debug level, so that a flood of bad
// connections cannot flood the log.
type logLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// event returns an event at level, or at debug level when a line of this
// kind went out less than a second ago.
func (l *logLimiter) event(log zerolog.Logger, level zerolog.Level, kind string) *zerolog.Event {
	now := time.Now()
	l.mu.Lock()
	ok := now.Sub(l.last[kind]) >= time.Second
	if ok {
		if l.last == nil {
			l.last = make(map[string]time.Time)
		}
		l.last[kind] = now
	}
	l.mu.Unlock()
	if ok {
		return log.WithLevel(level)
	}
	return log.Debug()
}
