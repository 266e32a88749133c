package fairq

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/internal/wire"
)

// peer is a test peer: a plain link from 10.0.0.i.
func peer(i int) wire.PeerID {
	p := &wire.Peer{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 1789)}
	return p.ID()
}

// item is a test packet: its peer and its number.
type item struct {
	peer wire.PeerID
	n    int
}

func (it item) String() string { return fmt.Sprintf("%v#%d", it.peer, it.n) }

// TestQueueFair: workers take the peers' packets in turn, and a peer that
// fills the queue gives up its newest packets to another peer.
func TestQueueFair(t *testing.T) {
	a, b := peer(1), peer(2)
	w := New[item](Quota{Packets: 6, Bytes: 1 << 20, PeerPackets: 6, PeerBytes: 1 << 20})
	var fromA []item
	for i := range 8 {
		it := item{a, i}
		_, ok := w.Push(a, it, 100)
		if ok != (i < 6) {
			t.Fatalf("packet %d of a: Push = %v with %d queued", i, ok, w.Len())
		}
		if ok {
			fromA = append(fromA, it)
		}
	}
	var fromB []item
	for i := range 2 {
		it := item{b, i}
		evicted, ok := w.Push(b, it, 100)
		if !ok || len(evicted) != 1 || evicted[0] != fromA[len(fromA)-1] {
			t.Fatalf("packet %d of b: Push = %v evicting %v, want a's newest", i, ok, evicted)
		}
		fromA = fromA[:len(fromA)-1]
		fromB = append(fromB, it)
	}
	// a is served first (it was first), then the two take turns.
	want := []item{fromA[0], fromB[0], fromA[1], fromB[1], fromA[2], fromA[3]}
	for i, it := range want {
		if got, _, ok := w.Pop(); !ok || got != it {
			t.Fatalf("Pop %d: %v, want %v", i, got, it)
		}
	}
	if w.Len() != 0 || len(w.active) != 0 || w.shares.Peers() != 0 {
		t.Fatalf("an empty queue holds %d packets, %d active peers", w.Len(), len(w.active))
	}

	// A peer that joins while others wait is served after them.
	c := peer(3)
	w.Push(a, item{a, 10}, 1)
	w.Push(b, item{b, 10}, 1)
	w.Pop() // a's
	w.Push(a, item{a, 11}, 1)
	w.Push(c, item{c, 10}, 1)
	for i, wantFrom := range []wire.PeerID{b, a, c} {
		if got, _, _ := w.Pop(); got.peer != wantFrom {
			t.Fatalf("Pop %d is %v, want %v's", i, got, wantFrom)
		}
	}

	done := make(chan bool)
	go func() {
		_, _, ok := w.Pop()
		done <- ok
	}()
	w.Close()
	if <-done {
		t.Fatal("Pop after Close returned a packet")
	}
}

// TestQueueBytes: a peer's bytes are bounded as its packets are, and the
// queue's too; a peer over its byte quota is refused, not another evicted.
func TestQueueBytes(t *testing.T) {
	a, b := peer(1), peer(2)
	w := New[item](Quota{Packets: 100, Bytes: 1000, PeerPackets: 100, PeerBytes: 600})
	if _, ok := w.Push(a, item{a, 0}, 500); !ok {
		t.Fatal("first packet refused")
	}
	if _, ok := w.Push(a, item{a, 1}, 200); ok {
		t.Fatal("a packet past the peer's byte quota was let in")
	}
	if _, ok := w.Push(b, item{b, 0}, 500); !ok {
		t.Fatal("the other peer's packet refused")
	}
	// Full at 1000 bytes: b's next evicts nothing of its own (a and b hold
	// as much), so it is refused.
	if ev, ok := w.Push(b, item{b, 1}, 100); ok || len(ev) != 0 {
		t.Fatalf("Push into a full queue with equal shares = %v evicting %v, want refused", ok, ev)
	}
	// A third peer holding nothing takes from the largest holder.
	c := peer(3)
	ev, ok := w.Push(c, item{c, 0}, 100)
	if !ok || len(ev) != 1 {
		t.Fatalf("a new peer's packet: Push = %v evicting %v, want one evicted", ok, ev)
	}
	var packets, bytes int
	w.PerPeer(func(_ wire.PeerID, p, b int) { packets += p; bytes += b })
	if packets != 2 || bytes != 600 {
		t.Fatalf("PerPeer sums to %d packets, %d bytes; want 2, 600", packets, bytes)
	}
	if got := w.Drain(); len(got) != 2 || w.Len() != 0 {
		t.Fatalf("Drain returned %d packets and left %d", len(got), w.Len())
	}
}

// TestQueueOrdered: an ordered queue hands out one packet of a peer at a
// time, so that workers peel each peer's packets in order; the peer's
// next packet goes out after Done, last in the round.
func TestQueueOrdered(t *testing.T) {
	a, b := peer(1), peer(2)
	w := NewOrdered[item](Quota{Packets: 10, Bytes: 1 << 20, PeerPackets: 10, PeerBytes: 1 << 20})
	for i := range 3 {
		w.Push(a, item{a, i}, 1)
	}
	w.Push(b, item{b, 0}, 1)
	if got, p, _ := w.Pop(); got != (item{a, 0}) || p != a {
		t.Fatalf("first Pop: %v of %v, want a#0", got, p)
	}
	if got, _, _ := w.Pop(); got != (item{b, 0}) {
		t.Fatalf("second Pop: %v, want b#0 (a is busy)", got)
	}
	// Both busy: a third worker waits for Done.
	popped := make(chan item)
	go func() {
		got, _, _ := w.Pop()
		popped <- got
	}()
	select {
	case got := <-popped:
		t.Fatalf("Pop returned %v while every peer with packets was busy", got)
	case <-time.After(50 * time.Millisecond):
	}
	w.Done(b) // b has nothing left: nothing to hand out
	w.Push(b, item{b, 1}, 1)
	if got := <-popped; got != (item{b, 1}) {
		t.Fatalf("Pop after Done(b) and a push of b's: %v, want b#1", got)
	}
	w.Done(a)
	if got, _, _ := w.Pop(); got != (item{a, 1}) {
		t.Fatalf("Pop after Done(a): %v, want a#1", got)
	}
	// Drain takes the packets of busy peers too.
	if got := w.Drain(); len(got) != 1 || got[0] != (item{a, 2}) || w.Len() != 0 {
		t.Fatalf("Drain: %v, leaving %d; want a#2", got, w.Len())
	}
}
