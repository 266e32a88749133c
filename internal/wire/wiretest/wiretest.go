// Package wiretest has helpers for tests of code that uses package wire's
// Noise links: a Peers that accepts any node, for stand-in nodes.
package wiretest

import (
	"context"
	"net/netip"

	"github.com/peapod-mixnet/peapod/internal/wire"
)

// AnyPeers is a wire.Peers that accepts a link from any node and knows the
// key of no destination: the Peers of a test's stand-in node, which takes
// whatever it is sent.
type AnyPeers struct{}

var _ wire.Peers = AnyPeers{}

// PeerKey reports that no destination has a key.
func (AnyPeers) PeerKey(netip.AddrPort) ([wire.NoiseKeySize]byte, bool) {
	return [wire.NoiseKeySize]byte{}, false
}

// AcceptsAddr accepts every address.
func (AnyPeers) AcceptsAddr(netip.Addr) bool { return true }

// AcceptsPeer accepts every node.
func (AnyPeers) AcceptsPeer(netip.Addr, [wire.NoiseKeySize]byte) bool { return true }

// AwaitPeer accepts every node.
func (AnyPeers) AwaitPeer(context.Context, netip.Addr, [wire.NoiseKeySize]byte) bool { return true }
