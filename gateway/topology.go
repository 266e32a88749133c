package gateway

import (
	"context"
	"net/netip"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/hops"
)

// topology keeps the layer-1 mixnodes of the directory's current topology,
// the only hops the gateway sends packets to, and its layer-3 mixnodes, the
// only nodes it takes packets from: it is the wire.Peers of the gateway's
// Noise links. Its methods are safe for concurrent use.
type topology struct {
	*hops.Cache
}

// newTopology returns the topology of the directory client serves; a nil
// client knows no hop.
func newTopology(client *directory.Client, log zerolog.Logger) *topology {
	c := hops.New(client, hops.Mixnodes(directory.MinLayer), log)
	c.AcceptFrom(hops.Mixnodes(directory.MaxLayer))
	return &topology{c}
}

// known reports whether ap is a layer-1 mixnode of the topology held now.
func (t *topology) known(ap netip.AddrPort) bool { return t.Known(ap) }

// isLayer1 reports whether ap is a layer-1 mixnode. An address the topology
// held now does not list triggers a fetch, at most one per
// hops.OnDemandGap, so that a mixnode that joined since the last refresh is
// found. When the last fetch is more recent than that, wait says whether to
// wait for the gap to pass (a client's Forward: only that client waits) or
// to answer false at once (the exit path, where a made-up hop must not
// stall a mixnode's connection).
func (t *topology) isLayer1(ctx context.Context, ap netip.AddrPort, wait bool) bool {
	p := hops.FetchIfDue
	if wait {
		p = hops.Wait
	}
	return t.Allowed(ctx, ap, p)
}

// layer1 returns where to send a SURB-ack whose first hop is ap, which
// must be a layer-1 mixnode: ap itself, or, when the mixnode the topology
// listed at ap until recently is listed elsewhere now, its new address
// (hops.Cache.MovedTo: the ack's maker routed it before the move). An
// address it does not know makes it fetch the topology as isLayer1 does,
// wait saying the same. A client's own first hop is not followed: the
// gateway refuses it, and the client fetches the topology and routes
// again (client/watch.go).
func (t *topology) layer1(ctx context.Context, ap netip.AddrPort, wait bool) (netip.AddrPort, bool) {
	if t.Known(ap) {
		return ap, true
	}
	if to, ok := t.MovedTo(ap); ok {
		return to, true
	}
	if t.isLayer1(ctx, ap, wait) {
		return ap, true
	}
	return t.MovedTo(ap)
}

// unmap normalises an IPv4-mapped IPv6 address to IPv4, as node addresses
// inside Sphinx headers are encoded.
func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
