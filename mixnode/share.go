package mixnode

import "github.com/peapod-mixnet/peapod/internal/fairq"

// PeerQueue is what one upstream peer holds in a node's queues now.
type PeerQueue struct {
	// Peer is the peer's Noise key (base58) on a Noise link, its address
	// on a plain one.
	Peer string
	// Work and Delayed are its packets waiting to be peeled and waiting
	// for their delay to pass; DelayedBytes the bytes of the latter.
	Work, Delayed, DelayedBytes int
}

// OtherPeers names, in Stats.PeerDrops, the drops of the peers beyond the
// first 256 that had any.
const OtherPeers = fairq.OtherPeers
