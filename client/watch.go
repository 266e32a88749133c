package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// The client keeps its view of the topology fresh: every
// Config.TopologyRefresh, soon after every epoch boundary (the keys of a new
// rotation, and the nodes that come and go), and at once (at most once every
// topologyGap) when
// something suggests it is out of date: its gateway cannot be reached (it
// may have moved), the gateway refuses a packet's first hop (a layer-1
// mixnode that left or moved), or a fragment has gone unacknowledged twice.
// After such a fetch, fragments in flight whose first hop the new topology
// does not list are sent again at once on a fresh route, rather than after
// their retransmission timeout.

// topologyGap is the least time between two fetches of the topology.
const topologyGap = time.Second

// A topology that cannot route (it lists no mixnode with live keys in some
// layer, or not the client's own gateway) while the view held can (its
// keys are still held by the nodes) is, most likely, a
// network restarting: its directory answers before its nodes have
// registered again (a provider's embedded network, `mixnet local`, a
// gateway that left the directory while it stopped). The client keeps the
// view it holds, so that what it sends meanwhile is built and waits for its
// gateway rather than failing, and fetches again soon: after topologyGap,
// doubling up to maxUnroutableWait while the answer stays the same. A
// gateway that is gone for good leaves the client no worse off than before:
// it could not send without it either.
const maxUnroutableWait = 30 * time.Second

// errUnroutable is refreshTopology's error for a topology it did not take
// because it cannot route.
var errUnroutable = errors.New("client: the topology fetched cannot route (a layer without mixnodes, or no own gateway): the view held is kept")

// firstTopology reads the topology, retrying until ctx ends.
func (c *Client) firstTopology(ctx context.Context) error {
	backoff := minBackoff
	for {
		err := c.refreshTopology(ctx)
		if err == nil {
			return nil
		}
		c.log.Warn().Err(err).Msg("reading the topology")
		select {
		case <-ctx.Done():
			return fmt.Errorf("client: reading the topology: %w", err)
		case <-time.After(jitter(backoff)):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// refreshTopology reads the directory again, unless it was tried less than
// topologyGap ago (successfully or not) and a view is held.
func (c *Client) refreshTopology(ctx context.Context) error {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	if time.Since(c.fetchAt) < topologyGap && c.view.Load() != nil {
		return nil
	}
	c.fetchAt = time.Now()
	v, skipped, err := fetchTopology(ctx, c.dir)
	if err != nil {
		return err
	}
	for _, e := range skipped {
		c.log.Warn().Err(e).Msg("skipping a topology entry")
	}
	now := time.Now()
	if held := c.view.Load(); held != nil && !v.routable(c.addr.Gateway[:], now) && held.routable(c.addr.Gateway[:], now) {
		if c.unroutable == 0 {
			c.log.Info().Msg("the topology fetched cannot route (the network restarting?): keeping the one held until it can")
		}
		c.unroutable++
		return errUnroutable
	}
	c.unroutable = 0
	c.view.Store(v)
	c.viewAt = time.Now()
	return nil
}

// topology returns the current view, fetching one if none is held.
func (c *Client) topology(ctx context.Context) (*netView, error) {
	if v := c.view.Load(); v != nil {
		return v, nil
	}
	if err := c.refreshTopology(ctx); err != nil {
		return nil, err
	}
	return c.view.Load(), nil
}

// staleGap is the least time between two fetches asked for because
// fragments went unacknowledged: under loss that happens all the time, and
// the topology is rarely the cause.
const staleGap = 10 * time.Second

// suspectTopology asks for a fetch because a fragment went unacknowledged
// staleAfterAttempts times, at most once every staleGap.
func (c *Client) suspectTopology(now time.Time) {
	last := c.staleKick.Load()
	if now.UnixNano()-last < int64(staleGap) || !c.staleKick.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	c.kickTopology()
}

// kickTopology asks watchTopology for a fetch as soon as topologyGap
// allows, followed by a resend of the fragments the new topology cannot
// route. It never blocks.
func (c *Client) kickTopology() {
	select {
	case c.topoKick <- struct{}{}:
	default:
	}
}

// After an epoch boundary the client waits a settling time (the nodes
// register the keys they announce at the boundary) and a random jitter
// (which spreads the clients' fetches) before it fetches: each a twentieth
// of an epoch, at most maxEpochSettle and maxEpochJitter.
const (
	maxEpochSettle = time.Second
	maxEpochJitter = 2 * time.Second
)

// nextRefresh is how long to wait before the next scheduled fetch: until
// Config.TopologyRefresh after the last one, or until a little after the
// next epoch boundary of the view held now, whichever comes first.
func (c *Client) nextRefresh(now time.Time) time.Duration {
	c.viewMu.Lock()
	wait := c.cfg.TopologyRefresh - now.Sub(c.fetchAt)
	if c.unroutable > 0 {
		wait = min(wait, topologyGap<<min(c.unroutable-1, 5), maxUnroutableWait)
	}
	c.viewMu.Unlock()
	if v := c.view.Load(); v != nil {
		settle := min(v.sched.EpochLength/20, maxEpochSettle)
		jitter := time.Duration(rand.Int64N(int64(min(v.sched.EpochLength/20, maxEpochJitter)) + 1))
		wait = min(wait, v.epoch.Next().Sub(now)+settle+jitter)
	}
	return max(wait, topologyGap)
}

// watchTopology fetches the topology on schedule (see nextRefresh) and when
// kicked, until the client closes.
func (c *Client) watchTopology() {
	timer := time.NewTimer(c.nextRefresh(time.Now()))
	defer timer.Stop()
	for {
		kicked := false
		select {
		case <-c.ctx.Done():
			return
		case <-timer.C:
		case <-c.topoKick:
			kicked = true
			c.viewMu.Lock()
			wait := topologyGap - time.Since(c.fetchAt)
			c.viewMu.Unlock()
			if wait > 0 {
				select {
				case <-c.ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		err := c.refreshTopology(c.ctx)
		timer.Stop()
		timer.Reset(c.nextRefresh(time.Now()))
		if errors.Is(err, errUnroutable) {
			continue
		}
		if err != nil {
			c.log.Warn().Err(err).Msg("refreshing the topology")
			continue
		}
		if kicked {
			c.resendUnroutable()
		}
	}
}

// resendUnroutable sends again, at once and without blaming their routes,
// the fragments in flight whose first hop is not a layer-1 mixnode of the
// topology held now: the gateway refused them, or will.
func (c *Client) resendUnroutable() {
	v := c.view.Load()
	if v == nil {
		return
	}
	var stale []*pendingFragment
	c.mu.Lock()
	for _, pf := range c.pending {
		if pf.done || pf.timer == nil || v.isLayer1(pf.firstHop) {
			continue
		}
		if pf.timer.Stop() { // not already on its way to a retransmission
			stale = append(stale, pf)
		}
	}
	c.mu.Unlock()
	if len(stale) > 0 {
		c.log.Info().Int("fragments", len(stale)).Msg("sending again the fragments whose first hop left the topology")
	}
	for _, pf := range stale {
		c.resend(pf, false)
	}
}
