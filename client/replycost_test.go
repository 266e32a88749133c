package client

import (
	"crypto/rand"
	"testing"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client/internal/fragment"
	"github.com/peapod-mixnet/peapod/sphinx"
)

func TestReplyCostWithoutLoss(t *testing.T) {
	var r replyCost
	if got := r.perFragment(); got != 1 {
		t.Errorf("a new estimate is %v SURBs a fragment, want 1", got)
	}
	for range 100 {
		r.observe(1)
	}
	if got, want := r.need(7), 7; got != want {
		t.Errorf("need(7) = %d without loss, want %d", got, want)
	}
	if got := r.copies(); got != requestCopies {
		t.Errorf("%d copies of a request without loss, want %d", got, requestCopies)
	}
}

// With 20% loss on each of a reply's and its ack's four links, one attempt
// in six is acknowledged: the estimate follows, a request asks for six
// SURBs a waiting fragment, and goes out on more copies.
func TestReplyCostUnderLoss(t *testing.T) {
	var r replyCost
	for range 200 {
		r.observe(6)
	}
	if got := r.perFragment(); got < 5.9 || got > 6 {
		t.Errorf("estimate %v after fragments that each took 6 SURBs, want 6", got)
	}
	if got, want := r.need(10), 60; got != want {
		t.Errorf("need(10) = %d, want %d", got, want)
	}
	// A copy gets through 1/sqrt(6) = 41% of the time: 5 copies would
	// bring the loss of all under 10%; the bound is 4.
	if got := r.copies(); got != maxRequestCopies {
		t.Errorf("%d copies, want %d", got, maxRequestCopies)
	}
	// Moderate loss: a copy gets through 1/sqrt(2) = 71%; two copies are
	// all lost 8.6% of the time.
	var m replyCost
	for range 200 {
		m.observe(2)
	}
	if got := m.copies(); got != 2 {
		t.Errorf("%d copies at two SURBs a fragment, want 2", got)
	}
}

func TestReplyCostBounded(t *testing.T) {
	var r replyCost
	for range 500 {
		r.observe(1000)
	}
	if got := r.perFragment(); got != maxReplyCost {
		t.Errorf("estimate %v, want the bound %d", got, maxReplyCost)
	}
	// One expensive fragment moves the estimate by a sixteenth of the
	// difference, not to its own cost.
	var s replyCost
	s.observe(1)
	s.observe(17)
	if got := s.perFragment(); got != 2 {
		t.Errorf("estimate %v after costs 1 and 17, want 2", got)
	}
}

// An answer to a request for SURBs goes out in messages of
// surbAnswerChunk SURBs, each filling three fragments.
func TestSURBAnswerChunkFillsThreeFragments(t *testing.T) {
	var tag address.SenderTag
	surb, err := sphinx.NewSURB(rand.Reader, hops(testRoute(t, SURBHops)), sphinx.Destination{3}, sphinx.SURBID{})
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]int{surbAnswerChunk: 3, surbAnswerChunk + 1: 4} {
		surbs := make([]*sphinx.SURB, n)
		for i := range surbs {
			surbs[i] = surb
		}
		msg, err := surbsMessage(tag, surbBatch{surbs: surbs})
		if err != nil {
			t.Fatal(err)
		}
		frags, err := fragment.Split(msg, FragmentCapacity, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(frags) != want {
			t.Errorf("%d SURBs take %d fragments, want %d", n, len(frags), want)
		}
	}
}
