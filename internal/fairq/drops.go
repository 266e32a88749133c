package fairq

import (
	"sync"

	"github.com/peapod-mixnet/peapod/internal/wire"
)

// maxPeerDrops bounds the peers whose drops are counted apart; the drops
// of any further peer count under OtherPeers.
const maxPeerDrops = 256

// OtherPeers names, in a Drops snapshot, the drops of the peers beyond the
// first 256 that had any.
const OtherPeers = "other"

// Drops counts dropped packets by the upstream peer that sent them, for
// metrics. The zero value is ready; it is safe for concurrent use.
type Drops struct {
	mu    sync.Mutex
	n     map[wire.PeerID]uint64
	other uint64
}

// Add counts a packet of from's; a nil from counts nothing.
func (d *Drops) Add(from *wire.Peer) {
	if from == nil {
		return
	}
	id := from.ID()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == nil {
		d.n = make(map[wire.PeerID]uint64)
	}
	if _, ok := d.n[id]; ok || len(d.n) < maxPeerDrops {
		d.n[id]++
	} else {
		d.other++
	}
}

// Snapshot returns the counts by peer name (wire.PeerID.String), and
// OtherPeers.
func (d *Drops) Snapshot() map[string]uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]uint64, len(d.n)+1)
	for id, v := range d.n {
		out[id.String()] += v
	}
	if d.other > 0 {
		out[OtherPeers] += d.other
	}
	return out
}
