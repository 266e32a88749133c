package client

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peapod-mixnet/peapod/directory"
)

// TestCollector: every series NewCollector describes is collected, with
// the type its name promises (counters end in _total, gauges do not), the
// topology refusals once per reason, the limits with their defaults, and a
// client not yet started shows its gateway link down.
func TestCollector(t *testing.T) {
	c, err := New(Config{DataDir: t.TempDir(), DirectoryURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(c))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		name := f.GetName()
		names = append(names, name)
		counter := f.GetType().String() == "COUNTER"
		if counter != strings.HasSuffix(name, "_total") {
			t.Errorf("%s is a %s", name, f.GetType())
		}
		switch name {
		case "peapod_topology_documents_refused_total":
			if len(f.GetMetric()) != len(directory.RefusedReasons) {
				t.Errorf("%s has %d series, want one per reason", name, len(f.GetMetric()))
			}
		case "peapod_client_limit":
			got := map[string]float64{}
			for _, m := range f.GetMetric() {
				got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			}
			if got["surb_senders"] != DefaultMaxSURBSenders || got["surbs_held"] != DefaultMaxSURBsHeld ||
				got["window"] != DefaultWindow || got["incomplete_bytes"] != DefaultMaxIncompleteBytes || len(got) != 7 {
				t.Errorf("%s: %v, want the defaults", name, got)
			}
		case "peapod_client_gateway_connected":
			if v := f.GetMetric()[0].GetGauge().GetValue(); v != 0 {
				t.Errorf("%s = %v before Start", name, v)
			}
		}
	}
	for _, want := range []string{"peapod_client_packets_sent_total", "peapod_client_acks_total", "peapod_client_delivered_total",
		"peapod_client_surbs_held", "peapod_client_inbox_full", "peapod_client_gateway_reconnects_total", "peapod_client_limit"} {
		if !slices.Contains(names, want) {
			t.Errorf("no %s in %v", want, names)
		}
	}
}
