// Package hops keeps, from the directory's current topology, the nodes a
// node may exchange packets with, so that a node is not an open relay and
// takes packets only from where its layer's packets come from.
//
// Next hops: a gateway sends only to layer-1 mixnodes, a layer-L mixnode
// only to the mixnodes of layer L+1, and a layer-3 mixnode only to
// gateways. Previous hops (with [Cache.AcceptFrom]): a layer-1 mixnode
// takes packets from gateways, a layer-L mixnode from layer L-1, and a
// gateway's mix listener from layer 3. With the nodes' Noise static keys
// (noise_key in the topology) a [Cache] is the [wire.Peers] of a node's
// Noise links: which key to expect at a next hop's address, which
// addresses and keys may connect.
//
// A [Cache] holds the sets. It is refreshed by [Cache.Refresh] (at start),
// by [Cache.Run] (periodically, and on demand), and, for callers that may
// wait, by [Cache.Allowed] itself. A fetch made because an unknown address
// or key showed up happens at most once every second, so that a flood of
// made-up hops or peers costs the directory at most one request a second.
package hops

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/wire"
)

// Topology fetches.
const (
	// OnDemandGap is the least time between two fetches made because an
	// unknown hop showed up.
	OnDemandGap = time.Second
	// fetchTimeout bounds one fetch.
	fetchTimeout = 5 * time.Second
)

// Node is a node a Selector picks: where it receives packets, and its
// Noise static key when it publishes one.
type Node struct {
	Addr        netip.AddrPort
	NoiseKey    [wire.NoiseKeySize]byte
	HasNoiseKey bool
}

// A Selector picks nodes of a topology. It is called with a topology that
// passed [directory.Topology.Validate].
type Selector func(*directory.Topology) []Node

// Mixnodes returns a Selector of the mixnodes of the given layer.
func Mixnodes(layer int) Selector {
	return func(t *directory.Topology) []Node {
		var out []Node
		for _, m := range t.Layer(layer) {
			ap, err := m.AddrPort()
			key, ok, kerr := m.NoisePublicKey()
			if err == nil && kerr == nil { // Validate checked them
				out = append(out, Node{Addr: ap, NoiseKey: key, HasNoiseKey: ok})
			}
		}
		return out
	}
}

// Gateways is a Selector of the gateways.
func Gateways(t *directory.Topology) []Node {
	out := make([]Node, 0, len(t.Gateways))
	for _, g := range t.Gateways {
		ap, err := g.AddrPort()
		key, ok, kerr := g.NoisePublicKey()
		if err == nil && kerr == nil { // Validate checked them
			out = append(out, Node{Addr: ap, NoiseKey: key, HasNoiseKey: ok})
		}
	}
	return out
}

// After returns the Selector of the hops that follow a mixnode of the given
// layer: the mixnodes of the next layer, or the gateways after the last.
func After(layer int) Selector {
	if layer >= directory.MaxLayer {
		return Gateways
	}
	return Mixnodes(layer + 1)
}

// Before returns the Selector of the nodes that send to a mixnode of the
// given layer: the gateways before the first layer, or the mixnodes of the
// layer before. A gateway's senders are Mixnodes(directory.MaxLayer).
func Before(layer int) Selector {
	if layer <= directory.MinLayer {
		return Gateways
	}
	return Mixnodes(layer - 1)
}

// Policy says what [Cache.Allowed] does with an address the set held now
// does not list.
type Policy int

const (
	// NoFetch answers false at once and asks Run for a fetch as soon as
	// OnDemandGap allows. It never blocks: for a packet pipeline.
	NoFetch Policy = iota
	// FetchIfDue fetches at once when OnDemandGap has passed since the last
	// fetch and no other fetch is in progress; otherwise it acts as
	// NoFetch. It blocks for at most one fetch.
	FetchIfDue
	// Wait waits until OnDemandGap has passed since the last fetch (and for
	// any fetch in progress), then fetches, unless ctx ends first: for a
	// caller that only delays itself by waiting.
	Wait
)

// view is what a Cache holds of one topology. Addresses are normalised by
// unmap.
type view struct {
	// next maps the allowed next hops to their Noise keys (the zero key
	// when a hop has none).
	next map[netip.AddrPort]Node
	// byKey maps the Noise keys of the next hops that publish one to
	// their addresses.
	byKey map[[wire.NoiseKeySize]byte]netip.AddrPort
	// prevAddrs and prevKeys are the addresses and the Noise keys of the
	// nodes that send to this one; prevKeys maps each key to the
	// addresses of the nodes that hold it.
	prevAddrs map[netip.Addr]struct{}
	prevKeys  map[[wire.NoiseKeySize]byte][]netip.Addr
	// params are the topology's network parameters; nil when it has none.
	params *directory.Params
}

// Cache is the set of allowed next hops of the directory's current
// topology, and, with AcceptFrom, of the nodes allowed to send to this
// one. Create it with [New]. Its methods are safe for concurrent use.
type Cache struct {
	client *directory.Client // nil without a directory: no hop is allowed
	sel    Selector
	prev   Selector // nil: no previous hops are kept
	log    zerolog.Logger

	view atomic.Pointer[view]

	fetchMu   sync.Mutex // serialises fetches
	lastFetch time.Time  // guarded by fetchMu
	// lastOnDemand is when the last fetch made because of an unknown hop
	// began (guarded by fetchMu). OnDemandGap counts from it, not from the
	// scheduled fetches: a node that fetched at its start and meets a node
	// that registered a moment later fetches at once, not a second later.
	lastOnDemand time.Time
	fetches      atomic.Uint64

	// kick asks Run for a fetch as soon as OnDemandGap allows, when a
	// lookup met an unknown hop it could not wait for.
	kick chan struct{}

	// onFetch, when set, is given every topology fetched.
	onFetch func(*directory.Topology)

	// moves follows the next hops that moved (see moved.go).
	moves moves
	// returns, when set, retries the next hops listed anew (see
	// returned.go).
	returns Retrier
}

// OnFetch makes the cache hand every topology it fetches to f, on the
// fetching goroutine, before the set is replaced (so that a hop is known
// only once f has seen the topology that lists it): the node's other users
// of the topology (its key schedule) follow the same fetches. Call it
// before the first fetch.
func (c *Cache) OnFetch(f func(*directory.Topology)) { c.onFetch = f }

// New returns a cache of the hops sel picks from the topologies client
// serves. It holds no hop until the first fetch. A nil client makes a
// cache that never fetches and allows no hop.
func New(client *directory.Client, sel Selector, log zerolog.Logger) *Cache {
	c := &Cache{client: client, sel: sel, log: log, kick: make(chan struct{}, 1)}
	c.view.Store(&view{})
	return c
}

// AcceptFrom makes the cache keep, from every topology it fetches, the
// nodes sel picks as the ones allowed to send to this node (see Before).
// Call it before the first fetch.
func (c *Cache) AcceptFrom(sel Selector) { c.prev = sel }

// Known reports whether ap is in the set held now. It never fetches.
func (c *Cache) Known(ap netip.AddrPort) bool {
	_, ok := c.view.Load().next[unmap(ap)]
	return ok
}

// Len is the number of hops in the set held now.
func (c *Cache) Len() int { return len(c.view.Load().next) }

// Params are the network parameters of the topology held now; nil when it
// advertises none (or none was fetched yet).
func (c *Cache) Params() *directory.Params { return c.view.Load().params }

// The cache is the Peers of a node's Noise links.
var _ wire.Peers = (*Cache)(nil)

// PeerKey returns the Noise key of the next hop at addr; false when addr
// is no next hop of the topology held now, or publishes no key. It never
// fetches.
func (c *Cache) PeerKey(addr netip.AddrPort) ([wire.NoiseKeySize]byte, bool) {
	n, ok := c.view.Load().next[unmap(addr)]
	return n.NoiseKey, ok && n.HasNoiseKey
}

// AcceptsAddr reports whether ip is the address of a node allowed to send
// to this one (see AcceptFrom). An address the topology held now does not
// list asks Run for a fetch (at most one per OnDemandGap), so that a node
// that joined since is let in at its next attempt.
func (c *Cache) AcceptsAddr(ip netip.Addr) bool {
	if _, ok := c.view.Load().prevAddrs[ip.Unmap()]; ok {
		return true
	}
	c.kickRefresh()
	return false
}

// AcceptsPeer reports whether a node allowed to send to this one has the
// Noise key key and the address ip. Like AcceptsAddr, a miss asks for a
// fetch.
func (c *Cache) AcceptsPeer(ip netip.Addr, key [wire.NoiseKeySize]byte) bool {
	if c.acceptsPeer(ip, key) {
		return true
	}
	c.kickRefresh()
	return false
}

func (c *Cache) acceptsPeer(ip netip.Addr, key [wire.NoiseKeySize]byte) bool {
	for _, a := range c.view.Load().prevKeys[key] {
		if a == ip.Unmap() {
			return true
		}
	}
	return false
}

// AwaitPeer answers as AcceptsPeer, except that on a miss it first fetches
// the topology, unless a fetch has begun since the call did, waiting until
// OnDemandGap has passed since the last fetch, for at most as long as ctx
// allows: so a node that joined a moment ago is let in on its first
// attempt, and a flood of strangers costs at most a fetch a second.
func (c *Cache) AwaitPeer(ctx context.Context, ip netip.Addr, key [wire.NoiseKeySize]byte) bool {
	if c.acceptsPeer(ip, key) {
		return true
	}
	if c.client == nil {
		return false
	}
	began := time.Now()
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	if c.lastFetch.Before(began) {
		c.fetchAfterGapLocked(ctx)
	}
	return c.acceptsPeer(ip, key)
}

// Fetches is the number of fetches attempted so far, failed ones included.
func (c *Cache) Fetches() uint64 { return c.fetches.Load() }

// Allowed reports whether ap is an allowed next hop. When the set held now
// does not list it, p says whether to fetch the topology, so that a node
// that joined since the last fetch is found; see [Policy]. ctx bounds the
// wait and the fetch.
func (c *Cache) Allowed(ctx context.Context, ap netip.AddrPort, p Policy) bool {
	if c.Known(ap) {
		return true
	}
	if c.client == nil {
		return false
	}
	switch {
	case p == Wait:
		c.fetchMu.Lock()
	case p == NoFetch || !c.fetchMu.TryLock():
		c.kickRefresh() // for FetchIfDue: a fetch or a waiting caller holds it
		return false
	}
	defer c.fetchMu.Unlock()
	if c.Known(ap) {
		return true // fetched while this call waited
	}
	if p != Wait && time.Since(c.lastOnDemand) < OnDemandGap {
		c.kickRefresh()
		return false
	}
	c.fetchAfterGapLocked(ctx)
	return c.Known(ap)
}

// kickRefresh asks Run for a fetch once OnDemandGap allows.
func (c *Cache) kickRefresh() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run fetches the topology every interval, and soon after a lookup meets a
// hop it does not know, until ctx ends. It does not fetch at once: call
// Refresh first for that. fetched, when not nil, is called on Run's
// goroutine after each fetch Run makes, successful or not. Without a
// directory Run returns at once.
func (c *Cache) Run(ctx context.Context, interval time.Duration, fetched func()) {
	if c.client == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Refresh(ctx)
		case <-c.kick:
			c.refreshSoon(ctx)
		}
		if fetched != nil && ctx.Err() == nil {
			fetched()
		}
	}
}

// refreshSoon fetches the topology once OnDemandGap has passed since the
// last fetch.
func (c *Cache) refreshSoon(ctx context.Context) {
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	c.fetchAfterGapLocked(ctx)
}

// fetchAfterGapLocked waits until OnDemandGap has passed since the last
// on-demand fetch, then fetches, unless ctx ends first. The caller holds
// fetchMu.
func (c *Cache) fetchAfterGapLocked(ctx context.Context) {
	if gap := OnDemandGap - time.Since(c.lastOnDemand); gap > 0 {
		timer := time.NewTimer(gap)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
	c.lastOnDemand = time.Now()
	c.fetchLocked(ctx)
}

// Refresh fetches the topology now and replaces the set. On failure it
// keeps the set it had, logs a warning and returns the error. Without a
// directory it does nothing.
func (c *Cache) Refresh(ctx context.Context) error {
	if c.client == nil {
		return nil
	}
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	return c.fetchLocked(ctx)
}

// fetchLocked fetches the topology and replaces the set. On failure it
// keeps the set it had. The caller holds fetchMu.
func (c *Cache) fetchLocked(ctx context.Context) error {
	c.lastFetch = time.Now()
	c.fetches.Add(1)
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	top, err := c.client.Topology(ctx)
	if err != nil {
		c.log.Warn().Err(err).Msg("fetching the topology failed; keeping the previous one")
		return fmt.Errorf("hops: %w", err)
	}
	v := c.viewOf(top)
	if c.onFetch != nil {
		c.onFetch(top)
	}
	old := c.view.Swap(v)
	if len(old.next) != len(v.next) || len(old.prevKeys) != len(v.prevKeys) {
		c.log.Info().Int("next_hops", len(v.next)).Int("previous_hops", len(v.prevKeys)).
			Int("mixnodes", len(top.Mixnodes)).Int("gateways", len(top.Gateways)).Msg("topology updated")
	}
	c.followMoves(old, v)
	c.retryReturns(old, v)
	return nil
}

// viewOf picks the cache's view of top.
func (c *Cache) viewOf(top *directory.Topology) *view {
	v := &view{next: make(map[netip.AddrPort]Node), byKey: make(map[[wire.NoiseKeySize]byte]netip.AddrPort), params: top.Params}
	for _, n := range c.sel(top) {
		n.Addr = unmap(n.Addr)
		v.next[n.Addr] = n
		if n.HasNoiseKey {
			v.byKey[n.NoiseKey] = n.Addr
		}
	}
	if c.prev != nil {
		v.prevAddrs = make(map[netip.Addr]struct{})
		v.prevKeys = make(map[[wire.NoiseKeySize]byte][]netip.Addr)
		for _, n := range c.prev(top) {
			ip := n.Addr.Addr().Unmap()
			v.prevAddrs[ip] = struct{}{}
			if n.HasNoiseKey {
				v.prevKeys[n.NoiseKey] = append(v.prevKeys[n.NoiseKey], ip)
			}
		}
	}
	return v
}

// unmap normalises an IPv4-mapped IPv6 address to IPv4, as node addresses
// inside Sphinx headers are encoded.
func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
