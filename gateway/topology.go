package gateway

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/directory"
)

// Topology fetches.
const (
	// onDemandGap is the least time between two fetches made because an
	// unknown hop showed up, so that a flood of made-up hops costs the
	// directory at most one request a second.
	onDemandGap = time.Second
	// fetchTimeout bounds one fetch.
	fetchTimeout = 5 * time.Second
)

// layer1Set is the set of layer-1 mixnode addresses of one topology.
type layer1Set map[netip.AddrPort]struct{}

// topology keeps the layer-1 mixnodes of the directory's current topology:
// the only hops the gateway sends packets to. Its methods are safe for
// concurrent use.
type topology struct {
	client *directory.Client // nil without a directory: no hop is known
	log    zerolog.Logger

	layer1 atomic.Pointer[layer1Set]

	fetchMu   sync.Mutex // serialises fetches
	lastFetch time.Time  // guarded by fetchMu; wall clock, not Config.Now
	fetches   atomic.Uint64

	// kick asks the refresh loop for a fetch as soon as onDemandGap allows,
	// when the exit path met an unknown hop it could not wait for.
	kick chan struct{}
}

func newTopology(client *directory.Client, log zerolog.Logger) *topology {
	t := &topology{client: client, log: log, kick: make(chan struct{}, 1)}
	t.layer1.Store(&layer1Set{})
	return t
}

// known reports whether ap is a layer-1 mixnode of the topology held now.
func (t *topology) known(ap netip.AddrPort) bool {
	_, ok := (*t.layer1.Load())[unmap(ap)]
	return ok
}

// isLayer1 reports whether ap is a layer-1 mixnode. An address the topology
// held now does not list triggers a fetch, at most one per onDemandGap, so
// that a mixnode that joined since the last refresh is found. When the last
// fetch is more recent than that, wait says whether to wait for the gap to
// pass (a client's Forward: only that client waits) or to answer false at
// once (the exit path, where a made-up hop must not stall a mixnode's
// connection).
func (t *topology) isLayer1(ctx context.Context, ap netip.AddrPort, wait bool) bool {
	if t.known(ap) {
		return true
	}
	if t.client == nil {
		return false
	}
	if wait {
		t.fetchMu.Lock()
	} else if !t.fetchMu.TryLock() {
		t.kickRefresh() // a fetch or a waiting client holds it
		return false
	}
	defer t.fetchMu.Unlock()
	if t.known(ap) {
		return true // fetched while this call waited
	}
	if !wait && time.Since(t.lastFetch) < onDemandGap {
		t.kickRefresh()
		return false
	}
	t.fetchAfterGapLocked(ctx)
	return t.known(ap)
}

// kickRefresh asks the refresh loop for a fetch once onDemandGap allows.
func (t *topology) kickRefresh() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// refreshSoon fetches the topology once onDemandGap has passed since the
// last fetch.
func (t *topology) refreshSoon(ctx context.Context) {
	t.fetchMu.Lock()
	defer t.fetchMu.Unlock()
	t.fetchAfterGapLocked(ctx)
}

// fetchAfterGapLocked waits until onDemandGap has passed since the last
// fetch, then fetches, unless ctx ends first. The caller holds fetchMu.
func (t *topology) fetchAfterGapLocked(ctx context.Context) {
	if gap := onDemandGap - time.Since(t.lastFetch); gap > 0 {
		timer := time.NewTimer(gap)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
	t.fetchLocked(ctx)
}

// refresh fetches the topology now.
func (t *topology) refresh(ctx context.Context) error {
	if t.client == nil {
		return nil
	}
	t.fetchMu.Lock()
	defer t.fetchMu.Unlock()
	return t.fetchLocked(ctx)
}

// fetchLocked fetches the topology and replaces the layer-1 set. On failure
// it keeps the set it had. The caller holds fetchMu.
func (t *topology) fetchLocked(ctx context.Context) error {
	t.lastFetch = time.Now()
	t.fetches.Add(1)
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	top, err := t.client.Topology(ctx)
	if err != nil {
		t.log.Warn().Err(err).Msg("fetching the topology failed; keeping the previous one")
		return err
	}
	set := make(layer1Set)
	for _, m := range top.Layer(directory.MinLayer) {
		ap, err := m.AddrPort()
		if err != nil {
			continue // Topology validated it; unreachable
		}
		set[unmap(ap)] = struct{}{}
	}
	old := t.layer1.Swap(&set)
	if len(*old) != len(set) {
		t.log.Info().Int("layer1", len(set)).Int("mixnodes", len(top.Mixnodes)).Msg("topology updated")
	}
	return nil
}

// unmap normalises an IPv4-mapped IPv6 address to IPv4, as node addresses
// inside Sphinx headers are encoded.
func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
