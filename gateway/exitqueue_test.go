package gateway

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/peapod-mixnet/peapod/internal/wire"
)

// TestExitQueueShares: a mixnode link that floods the exit path with more
// packets than the gateway peels loses its own packets, counted under its
// name, while another link's packets, sent during the flood, are all
// delivered: the exit queue is shared per peer (plain links without a
// directory: one peer per connection).
func TestExitQueueShares(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), nil, nil)
	cfg.MaxExitQueue, cfg.MaxExitQueuePerPeer, cfg.ExitWorkers = 16, 16, 1
	g := startGateway(t, cfg)
	c := newTestClient()
	c.register(t, g)
	stranger := newTestClient() // not registered: each packet costs a peel

	// The other link sends no more than half the queue at once: two peers
	// contending for a full queue hold half of it each.
	const floodLen, honestLen = 2000, 6
	flood := make([][]byte, floodLen)
	for i := range flood {
		flood[i] = ackPacket(t, g, stranger.identity(), []byte("flood"))
	}
	honest := make([][]byte, honestLen)
	for i := range honest {
		honest[i] = ackPacket(t, g, c.identity(), fmt.Appendf(nil, "honest-%d", i))
	}
	flooder, other := dialMix(t, g), dialMix(t, g)
	flooder.send(t, flood...)
	// The honest packets arrive while the flood fills the queue.
	waitStats(t, g, "the exit queue to fill", func(s Stats) bool { return s.ExitQueue >= 8 || s.Dropped[DropExitQueueFull] > 0 })
	other.send(t, honest...)

	s := waitStats(t, g, "every packet to be peeled or dropped", func(s Stats) bool {
		return s.PacketsFromMixes == floodLen+honestLen && s.ExitQueue == 0 &&
			s.Dropped[DropUnknownClient]+s.Dropped[DropExitQueueFull]+s.Dropped[DropExitQueueEvicted] == floodLen
	})
	flooderName, otherName := flooder.c.LocalAddr().String(), other.c.LocalAddr().String()
	if s.PeerDrops[otherName] != 0 {
		t.Errorf("%d of the other link's packets were dropped (drops by peer: %v)", s.PeerDrops[otherName], s.PeerDrops)
	}
	queueDrops := s.Dropped[DropExitQueueFull] + s.Dropped[DropExitQueueEvicted]
	if queueDrops == 0 || s.PeerDrops[flooderName] != floodLen {
		t.Errorf("the flooder had %d packets dropped (%d at the exit queue), want all %d, some at the queue (drops by peer: %v)",
			s.PeerDrops[flooderName], queueDrops, floodLen, s.PeerDrops)
	}
	t.Logf("flood: %d peeled, %d refused at the exit queue, %d evicted", s.Dropped[DropUnknownClient],
		s.Dropped[DropExitQueueFull], s.Dropped[DropExitQueueEvicted])
	c.connect(t, g)
	got := map[string]bool{}
	for _, d := range c.sync(t) {
		got[string(d.Payload)] = true
	}
	for i := range honestLen {
		if !got[fmt.Sprintf("honest-%d", i)] {
			t.Errorf("honest-%d was not delivered", i)
		}
	}
}

// TestStoreShare: one mixnode's messages on their way to the store are
// bounded to a quarter of the store queue, so that a mixnode delivering
// faster than the store commits leaves room in the queue for the others';
// its share comes back as its messages are committed.
func TestStoreShare(t *testing.T) {
	g := startGateway(t, testConfig(t, t.TempDir(), nil, nil))
	peerA := (&wire.Peer{Addr: netip.MustParseAddrPort("10.0.0.1:1789")}).ID()
	peerB := (&wire.Peer{Addr: netip.MustParseAddrPort("10.0.0.2:1789")}).ID()
	client := newTestClient().identity()
	var fromA []*message
	for i := range storeQueuePerPeer {
		m := &message{client: client, peer: peerA}
		if r := g.admit(m); r != "" {
			t.Fatalf("message %d of a: refused (%s) within its share", i, r)
		}
		fromA = append(fromA, m)
	}
	if r := g.admit(&message{client: client, peer: peerA}); r != DropStoreShare {
		t.Fatalf("a message past a's share: %q, want %q", r, DropStoreShare)
	}
	if r := g.admit(&message{client: client, peer: peerB}); r != "" {
		t.Fatalf("b's message refused (%s) while a's share is full", r)
	}
	g.settle(fromA[:1])
	if r := g.admit(&message{client: client, peer: peerA}); r != "" {
		t.Fatalf("a's message refused (%s) after one of its messages was committed", r)
	}
}
