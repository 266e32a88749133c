// Package hops keeps the set of next hops a node may send packets to, taken
// from the directory's current topology, so that a node is not an open
// relay: a gateway sends only to layer-1 mixnodes, a layer-L mixnode only to
// the mixnodes of layer L+1, and a layer-3 mixnode only to gateways.
//
// A [Cache] holds the set. It is refreshed by [Cache.Refresh] (at start),
// by [Cache.Run] (periodically, and on demand), and, for callers that may
// wait, by [Cache.Allowed] itself. A fetch made because an unknown address
// showed up happens at most once every second, so that a flood of made-up
// hops costs the directory at most one request a second.
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
)

// Topology fetches.
const (
	// OnDemandGap is the least time between two fetches made because an
	// unknown hop showed up.
	OnDemandGap = time.Second
	// fetchTimeout bounds one fetch.
	fetchTimeout = 5 * time.Second
)

// A Selector picks the allowed next hops of a topology. It is called with a
// topology that passed [directory.Topology.Validate].
type Selector func(*directory.Topology) []netip.AddrPort

// Mixnodes returns a Selector of the mixnodes of the given layer.
func Mixnodes(layer int) Selector {
	return func(t *directory.Topology) []netip.AddrPort {
		var out []netip.AddrPort
		for _, m := range t.Layer(layer) {
			if ap, err := m.AddrPort(); err == nil { // Validate checked it
				out = append(out, ap)
			}
		}
		return out
	}
}

// Gateways is a Selector of the gateways.
func Gateways(t *directory.Topology) []netip.AddrPort {
	out := make([]netip.AddrPort, 0, len(t.Gateways))
	for _, g := range t.Gateways {
		if ap, err := g.AddrPort(); err == nil { // Validate checked it
			out = append(out, ap)
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

// set is a set of addresses, normalised by unmap.
type set map[netip.AddrPort]struct{}

// Cache is the set of allowed next hops of the directory's current
// topology. Create it with [New]. Its methods are safe for concurrent use.
type Cache struct {
	client *directory.Client // nil without a directory: no hop is allowed
	sel    Selector
	log    zerolog.Logger

	hops atomic.Pointer[set]

	fetchMu   sync.Mutex // serialises fetches
	lastFetch time.Time  // guarded by fetchMu
	fetches   atomic.Uint64

	// kick asks Run for a fetch as soon as OnDemandGap allows, when a
	// lookup met an unknown hop it could not wait for.
	kick chan struct{}
}

// New returns a cache of the hops sel picks from the topologies client
// serves. It holds no hop until the first fetch. A nil client makes a
// cache that never fetches and allows no hop.
func New(client *directory.Client, sel Selector, log zerolog.Logger) *Cache {
	c := &Cache{client: client, sel: sel, log: log, kick: make(chan struct{}, 1)}
	c.hops.Store(&set{})
	return c
}

// Known reports whether ap is in the set held now. It never fetches.
func (c *Cache) Known(ap netip.AddrPort) bool {
	_, ok := (*c.hops.Load())[unmap(ap)]
	return ok
}

// Len is the number of hops in the set held now.
func (c *Cache) Len() int { return len(*c.hops.Load()) }

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
	if p != Wait && time.Since(c.lastFetch) < OnDemandGap {
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
// fetch, then fetches, unless ctx ends first. The caller holds fetchMu.
func (c *Cache) fetchAfterGapLocked(ctx context.Context) {
	if gap := OnDemandGap - time.Since(c.lastFetch); gap > 0 {
		timer := time.NewTimer(gap)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
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
	selected := c.sel(top)
	s := make(set, len(selected))
	for _, ap := range selected {
		s[unmap(ap)] = struct{}{}
	}
	old := c.hops.Swap(&s)
	if len(*old) != len(s) {
		c.log.Info().Int("next_hops", len(s)).Int("mixnodes", len(top.Mixnodes)).
			Int("gateways", len(top.Gateways)).Msg("topology updated")
	}
	return nil
}

// unmap normalises an IPv4-mapped IPv6 address to IPv4, as node addresses
// inside Sphinx headers are encoded.
func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
