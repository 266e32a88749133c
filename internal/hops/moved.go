package hops

import (
	"net/netip"
	"sync"
	"time"

	"github.com/peapod-mixnet/peapod/internal/wire"
)

// A next hop that moves (the same node, known by its Noise key, listed at
// another address) leaves packets behind: those a node queued for the old
// address before it learnt of the move, and those that senders with an
// older topology still route there. The cache remembers, for FormerTTL,
// the Noise key each next hop had at an address the topology no longer
// lists for it. [Cache.MovedTo] then names where that node is now, and
// after every fetch the cache hands each move to the Redirector set with
// [Cache.FollowMoves] (a node's outbound pool), so that what waits for the
// old address goes to the new one at once. Only the node that proves it
// holds the same Noise key can take the packets there, and it holds the
// Sphinx keys they were made for: nothing goes anywhere the sender did
// not mean it to.
//
// A node learns of a move by fetching the topology: on schedule, on a hop
// it does not know, and, with [Cache.DialFailed], as soon as a connection
// to a next hop fails (at most once every OnDemandGap).

// FormerTTL is how long a next hop's former address is followed after the
// topology stopped listing it there: longer than a client waits between
// two fetches of the topology (5 minutes by default), so that a sender
// that routed on the old address before its next fetch is still followed.
const FormerTTL = 10 * time.Minute

// maxFormer bounds the former addresses remembered.
const maxFormer = 1024

// A Redirector moves what waits for one address to another: a node's
// outbound pool ([wire.Pool.Redirect]).
type Redirector interface {
	Redirect(from, to netip.AddrPort) int
}

// moves is a Cache's memory of former addresses.
type moves struct {
	mu     sync.Mutex
	former map[netip.AddrPort]formerHop
	to     Redirector // nil: moves are only looked up
}

// formerHop is the node a next hop address listed until.
type formerHop struct {
	key   [wire.NoiseKeySize]byte
	until time.Time // when it is forgotten
	// logged is the address the move was last logged to.
	logged netip.AddrPort
}

// FollowMoves makes the cache hand every move of a next hop it learns of
// to r, after each fetch: r.Redirect(old address, new address). Call it
// before the first fetch.
func (c *Cache) FollowMoves(r Redirector) { c.moves.to = r }

// DialFailed tells the cache that a connection to the next hop at ap
// failed: the node may have moved, or left, so the topology is fetched
// again as soon as OnDemandGap allows, without waiting for the next
// scheduled fetch. It never blocks. Its signature fits
// wire.PoolConfig.OnDialFailure.
func (c *Cache) DialFailed(ap netip.AddrPort, failures int) {
	c.kickRefresh()
}

// MovedTo returns where the next hop that the topology listed at ap until
// recently (at most FormerTTL ago) is listed now, by its Noise key; false
// when ap is listed now (for that node or another), or its node is not
// listed anywhere.
func (c *Cache) MovedTo(ap netip.AddrPort) (netip.AddrPort, bool) {
	ap = unmap(ap)
	c.moves.mu.Lock()
	f, ok := c.moves.former[ap]
	c.moves.mu.Unlock()
	if !ok || time.Now().After(f.until) {
		return netip.AddrPort{}, false
	}
	v := c.view.Load()
	if _, listed := v.next[ap]; listed {
		return netip.AddrPort{}, false
	}
	to, ok := v.byKey[f.key]
	return to, ok
}

// followMoves records the next hops of old that v no longer lists at
// their address, and hands every recorded move whose node v lists at
// another address to the Redirector. It runs after every fetch, with
// fetchMu held.
func (c *Cache) followMoves(old, v *view) {
	now := time.Now()
	type move struct{ from, to netip.AddrPort }
	var found []move
	m := &c.moves
	m.mu.Lock()
	if m.former == nil {
		m.former = make(map[netip.AddrPort]formerHop)
	}
	for addr, n := range old.next {
		if !n.HasNoiseKey || len(m.former) >= maxFormer {
			continue
		}
		if cur, ok := v.next[addr]; ok && cur.HasNoiseKey && cur.NoiseKey == n.NoiseKey {
			continue
		}
		m.former[addr] = formerHop{key: n.NoiseKey, until: now.Add(FormerTTL)}
	}
	for addr, f := range m.former {
		if _, listed := v.next[addr]; listed || now.After(f.until) {
			// Forgotten, or listed again (its node back where it was, or
			// another node there now): packets for it are for that node.
			delete(m.former, addr)
			continue
		}
		to, ok := v.byKey[f.key]
		if !ok {
			continue
		}
		found = append(found, move{addr, to})
		if f.logged != to {
			f.logged = to
			m.former[addr] = f
			c.log.Info().Stringer("from", addr).Stringer("to", to).Msg("a next hop moved: following it")
		}
	}
	r := m.to
	m.mu.Unlock()
	if r == nil {
		return
	}
	for _, mv := range found {
		if n := r.Redirect(mv.from, mv.to); n > 0 {
			c.log.Debug().Stringer("from", mv.from).Stringer("to", mv.to).Int("packets", n).Msg("sent on what waited for a next hop that moved")
		}
	}
}
