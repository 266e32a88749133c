package measure

import (
	"slices"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/anonymity"
	"github.com/peapod-mixnet/peapod/directory"
)

// TestCanonicalTopology: the order the directory lists nodes in does not
// matter, nor the epoch; a key announced or rotated, a node gone or new
// parameters do.
func TestCanonicalTopology(t *testing.T) {
	a := directory.Mixnode{Layer: 1, Address: "127.0.0.1:1", Identity: "A", SphinxKeys: []directory.SphinxKey{{Rotation: 1, Key: "ka"}}}
	b := directory.Mixnode{Layer: 2, Address: "127.0.0.1:2", Identity: "B", SphinxKeys: []directory.SphinxKey{{Rotation: 1, Key: "kb"}}}
	g := directory.Gateway{Address: "127.0.0.1:3", Identity: "G", SphinxKeys: []directory.SphinxKey{{Rotation: 1, Key: "kg"}}}
	canon := func(tp directory.Topology) string {
		t.Helper()
		s, err := canonicalTopology(&tp)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := canon(directory.Topology{Mixnodes: []directory.Mixnode{a, b}, Gateways: []directory.Gateway{g}})
	if got := canon(directory.Topology{Mixnodes: []directory.Mixnode{b, a}, Gateways: []directory.Gateway{g}, Epoch: directory.EpochInfo{Number: 7}}); got != base {
		t.Errorf("the same nodes in another order, or in another epoch, print differently:\n%s\n%s", base, got)
	}
	rotated := a
	rotated.SphinxKeys = []directory.SphinxKey{{Rotation: 1, Key: "ka"}, {Rotation: 2, Key: "ka2"}}
	for name, tp := range map[string]directory.Topology{
		"rotated key": {Mixnodes: []directory.Mixnode{rotated, b}, Gateways: []directory.Gateway{g}},
		"node gone":   {Mixnodes: []directory.Mixnode{a}, Gateways: []directory.Gateway{g}},
		"parameters":  {Mixnodes: []directory.Mixnode{a, b}, Gateways: []directory.Gateway{g}, Params: &directory.Params{MeanMixDelay: 1}},
	} {
		if canon(tp) == base {
			t.Errorf("%s: prints as the topology before", name)
		}
	}
}

// The estimators see the trace from the end of the warm-up on: its events
// before are dropped, those from then on kept in order.
func TestAfterWarmup(t *testing.T) {
	tr := &anonymity.Trace{}
	for _, at := range []time.Duration{-3 * time.Second, -2 * time.Second, -time.Second, 0, time.Second} {
		tr.Events = append(tr.Events, anonymity.Event{At: at})
	}
	afterWarmup(tr, -time.Second)
	var got []time.Duration
	for _, e := range tr.Events {
		got = append(got, e.At)
	}
	if want := []time.Duration{-time.Second, 0, time.Second}; !slices.Equal(got, want) {
		t.Errorf("events at %v after the warm-up, want %v", got, want)
	}
}
