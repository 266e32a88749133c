package peers

import (
	"errors"
	"testing"

	sphinx "github.com/lightningnetwork/lightning-onion"
	peapod "github.com/peapod-mixnet/peapod/sphinx"
)

// The benchmarks measure a hop that accepts a fresh packet and would refuse
// it a second time. These tests check that the pools are built that way.

func TestPeapodPoolReplayProtected(t *testing.T) {
	r, err := peapodPackets()
	if err != nil {
		t.Fatal(err)
	}
	proc := peapod.NewProcessor(r.key, peapod.NewReplayFilter(1000, 1e-5))
	for i, pkt := range r.pkts[:2] {
		if len(pkt) != peapod.RegularPacket.Len() {
			t.Fatalf("packet %d is %d bytes, want %d", i, len(pkt), peapod.RegularPacket.Len())
		}
		res, err := proc.Process(nil, pkt)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if res.Final || len(res.Packet) != len(pkt) {
			t.Fatalf("packet %d: final=%v, %d bytes out", i, res.Final, len(res.Packet))
		}
	}
	if _, err := proc.Process(nil, r.pkts[0]); !errors.Is(err, peapod.ErrReplay) {
		t.Fatalf("replayed packet: got %v, want ErrReplay", err)
	}
}

func TestLightningPoolReplayProtected(t *testing.T) {
	r, err := lightningPackets()
	if err != nil {
		t.Fatal(err)
	}
	router := newLightningRouter(t, r.key)
	defer router.Stop()
	for i, pkt := range r.parsed[:2] {
		res, err := router.ProcessOnionPacket(pkt, nil, 1)
		if err != nil {
			t.Fatalf("onion %d: %v", i, err)
		}
		if res.Action != sphinx.MoreHops {
			t.Fatalf("onion %d: action %v, want MoreHops", i, res.Action)
		}
	}
	if _, err := router.ProcessOnionPacket(r.parsed[0], nil, 1); !errors.Is(err, sphinx.ErrReplayedPacket) {
		t.Fatalf("replayed onion: got %v, want ErrReplayedPacket", err)
	}
}
