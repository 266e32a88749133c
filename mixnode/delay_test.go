package mixnode

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/internal/fairq"
	"github.com/peapod-mixnet/peapod/internal/wire"
)

// testPeer is an upstream peer for queue tests.
func testPeer(i int) *wire.Peer {
	return &wire.Peer{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 1789)}
}

// testPacket is a packet of size bytes from peer.
func testPacket(from *wire.Peer, size int) *packetBuf {
	return &packetBuf{b: make([]byte, size), from: from}
}

// bigQuota bounds nothing the tests reach but the packet count.
func bigQuota(packets int) fairq.Quota {
	return fairq.Quota{Packets: packets, Bytes: 1 << 30, PeerPackets: packets, PeerBytes: 1 << 30}
}

// TestDelayQueueMatchesReference drives the heap with random pushes and
// pops from one peer and checks every pop against a sorted slice, the
// obvious reference: when the queue is full, a packet due before the
// latest one takes its place, and a later one is refused.
func TestDelayQueueMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	from := testPeer(1)
	for round := range 200 {
		q := newDelayQueue(bigQuota(64))
		var ref []*packetBuf // sorted by (at, seq)
		now := time.Duration(0)
		for range 300 {
			if r.IntN(3) > 0 {
				at := now + time.Duration(r.IntN(50)) // many ties
				pb := testPacket(from, 0)
				evicted, ok := q.push(at, netip.AddrPort{}, pb)
				wantOK, wantEvicted := true, (*packetBuf)(nil)
				if len(ref) == 64 {
					if last := ref[len(ref)-1]; pb.before(last) {
						wantEvicted, ref = last, ref[:len(ref)-1]
					} else {
						wantOK = false
					}
				}
				if ok != wantOK || (wantEvicted == nil) != (len(evicted) == 0) || (wantEvicted != nil && evicted[0] != wantEvicted) {
					t.Fatalf("round %d: push = %v evicting %d with %d queued, want %v evicting %v", round, ok, len(evicted), len(ref), wantOK, wantEvicted != nil)
				}
				if ok {
					ref = append(ref, pb)
					slices.SortFunc(ref, func(a, b *packetBuf) int {
						if a.before(b) {
							return -1
						}
						return 1
					})
				}
			} else {
				now += time.Duration(r.IntN(30))
				got, next, pending := q.popDue(now, nil)
				i := 0
				for i < len(ref) && ref[i].at <= now {
					i++
				}
				want := ref[:i]
				ref = ref[i:]
				if !slices.Equal(got, want) {
					t.Fatalf("round %d: popped %d, want %d, or out of order", round, len(got), len(want))
				}
				if pending != (len(ref) > 0) || (pending && next != ref[0].at) {
					t.Fatalf("round %d: next %v %v, want %v", round, next, pending, ref)
				}
			}
			if q.len() != len(ref) {
				t.Fatalf("round %d: len %d, want %d", round, q.len(), len(ref))
			}
		}
		if rest := q.drain(); len(rest) != len(ref) {
			t.Fatalf("drain returned %d, want %d", len(rest), len(ref))
		}
		if packets, bytes := q.shares.Len(); q.shares.Peers() != 0 || packets != 0 || bytes != 0 {
			t.Fatalf("round %d: an empty queue still counts %d packets, %d bytes, %d peers", round, packets, bytes, q.shares.Peers())
		}
	}
}

// TestDelayQueueShares: a peer that fills the delay queue with packets
// asking for long delays gives way to another peer, latest packets first,
// and cannot take more than its own quota.
func TestDelayQueueShares(t *testing.T) {
	flooder, honest := testPeer(1), testPeer(2)
	q := newDelayQueue(fairq.Quota{Packets: 8, Bytes: 1 << 20, PeerPackets: 6, PeerBytes: 1 << 20})
	var flood []*packetBuf
	for i := range 10 {
		pb := testPacket(flooder, 100)
		_, ok := q.push(time.Second+time.Duration(i), netip.AddrPort{}, pb)
		if ok != (i < 6) {
			t.Fatalf("flood packet %d: push = %v, want true for the first 6 (the peer's quota)", i, ok)
		}
		if ok {
			flood = append(flood, pb)
		}
	}
	// The other peer fills the rest, then takes the flooder's latest.
	for i := range 4 {
		evicted, ok := q.push(time.Millisecond, netip.AddrPort{}, testPacket(honest, 100))
		if !ok {
			t.Fatalf("honest packet %d refused", i)
		}
		switch {
		case i < 2 && len(evicted) != 0:
			t.Fatalf("honest packet %d evicted %d packets from a queue with room", i, len(evicted))
		case i >= 2 && (len(evicted) != 1 || evicted[0] != flood[len(flood)-1]):
			t.Fatalf("honest packet %d evicted %d packets, want the flooder's latest", i, len(evicted))
		}
		if i >= 2 {
			flood = flood[:len(flood)-1]
		}
	}
	// Now both hold 4: another flood packet, due later than all of the
	// flooder's, is refused; one due sooner takes the flooder's latest.
	if _, ok := q.push(2*time.Second, netip.AddrPort{}, testPacket(flooder, 100)); ok {
		t.Fatal("a flood packet due last was let into a full queue")
	}
	evicted, ok := q.push(time.Millisecond, netip.AddrPort{}, testPacket(flooder, 100))
	if !ok || len(evicted) != 1 || evicted[0] != flood[len(flood)-1] {
		t.Fatalf("an earlier flood packet: push = %v evicting %d, want its peer's latest", ok, len(evicted))
	}
	if got := q.shares.Get(honest.ID()).Packets; got != 4 {
		t.Fatalf("the honest peer holds %d packets, want its 4", got)
	}

	// Bytes count as packets do: a peer's bytes are bounded too.
	q = newDelayQueue(fairq.Quota{Packets: 100, Bytes: 1000, PeerPackets: 100, PeerBytes: 600})
	if _, ok := q.push(time.Second, netip.AddrPort{}, testPacket(flooder, 500)); !ok {
		t.Fatal("first packet refused")
	}
	if _, ok := q.push(2*time.Second, netip.AddrPort{}, testPacket(flooder, 200)); ok {
		t.Fatal("a packet past the peer's byte quota was let in")
	}
	if _, ok := q.push(time.Second, netip.AddrPort{}, testPacket(honest, 500)); !ok {
		t.Fatal("the other peer's packet refused")
	}
}

// TestDelayQueueRun checks the goroutine sends packets when due, in order,
// including one pushed while it sleeps on a later one.
func TestDelayQueueRun(t *testing.T) {
	q := newDelayQueue(bigQuota(10))
	type sent struct {
		pb *packetBuf
		at time.Duration
	}
	out := make(chan sent, 10)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.run(stop, func(_ netip.AddrPort, pb *packetBuf) { out <- sent{pb, q.now()} })
	}()
	from := testPeer(1)
	a, b, c := testPacket(from, 0), testPacket(from, 0), testPacket(from, 0)
	now := q.now()
	q.push(now+150*time.Millisecond, netip.AddrPort{}, c)
	q.push(now+100*time.Millisecond, netip.AddrPort{}, b)
	q.push(now+20*time.Millisecond, netip.AddrPort{}, a) // wakes the sleeping goroutine
	for i, want := range []struct {
		pb *packetBuf
		at time.Duration
	}{{a, 20 * time.Millisecond}, {b, 100 * time.Millisecond}, {c, 150 * time.Millisecond}} {
		select {
		case s := <-out:
			if s.pb != want.pb {
				t.Fatalf("packet %d out of order", i)
			}
			if s.at < now+want.at {
				t.Fatalf("packet %d sent %v early", i, now+want.at-s.at)
			}
		case <-time.After(waitTimeout):
			t.Fatal("nothing sent")
		}
	}
	close(stop)
	<-done
}
