package hops

import "net/netip"

// A next hop that was down comes back at the same address: an operator
// restarted or upgraded it. While it was down, the connections to it
// failed and its peers' outbound pools backed off, up to
// wire.DefaultMaxBackoff between two attempts, with nothing to cut the wait
// short once it is back. The topology says when it is: a node stopped
// cleanly deregisters, and the topology stops listing it; once it runs
// again it registers, and the next topology lists it again. After every
// fetch the cache hands each next hop that the fetch lists and the one
// before did not (or listed with another Noise key) to the Retrier set
// with [Cache.RetryReturns] (a node's outbound pool), which tries it again
// at once if it was waiting to. A next hop that stays down stays unlisted,
// or listed as it was, and keeps its backoff: only news of it, one fetch
// that lists it anew, costs one more attempt.

// A Retrier tries to reach an address again at once if it was waiting to
// after failures, and reports whether it was: a node's outbound pool
// ([wire.Pool.Retry]).
type Retrier interface {
	Retry(to netip.AddrPort) bool
}

// RetryReturns makes the cache hand every next hop a fetch lists anew (not
// listed by the fetch before, or listed with another Noise key) to r.
// Call it before the first fetch.
func (c *Cache) RetryReturns(r Retrier) { c.returns = r }

// retryReturns hands the next hops v lists and old did not (or listed with
// another Noise key) to the Retrier. It runs after every fetch, with
// fetchMu held.
func (c *Cache) retryReturns(old, v *view) {
	if c.returns == nil {
		return
	}
	for addr, n := range v.next {
		if was, ok := old.next[addr]; ok && was == n {
			continue
		}
		if c.returns.Retry(addr) {
			c.log.Info().Stringer("peer", addr).Msg("a next hop is listed again: reconnecting at once")
		}
	}
}
