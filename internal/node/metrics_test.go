package node

import (
	"bytes"
	"maps"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// TestFillWarningAndMetrics fills a key's filter (the smallest, 100 tags)
// past FillWarning: the node logs one warning naming the rotation and the
// estimated false-positive rate, and /metrics shows the filter's tags,
// capacity, fill ratio and false-positive rate under its rotation.
func TestFillWarningAndMetrics(t *testing.T) {
	var logs bytes.Buffer
	k, err := OpenSphinxKeys(KeysConfig{DataDir: t.TempDir(), PeakRate: 0.1, SaveInterval: -1, Logger: zerolog.New(&logs)}, at(0))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if _, err := k.SetSchedule(testSched, at(1)); err != nil {
		t.Fatal(err)
	}
	if c := k.Filters()[0].Capacity; c != MinReplayCapacity {
		t.Fatalf("capacity %d, want the smallest, %d", c, MinReplayCapacity)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewKeysCollector(k))
	warnings := func() int { return strings.Count(logs.String(), "a replay filter is nearly full") }

	fill := int(FillWarning * MinReplayCapacity)
	buf := make([]byte, 0, 4096)
	for i := range fill + 10 {
		if i == fill-1 && warnings() != 0 {
			t.Fatalf("warned at %d tags of %d: %s", i, MinReplayCapacity, logs.String())
		}
		if _, _, err := k.Process(RotationByte(0), buf, packetFor(t, k, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if n := warnings(); n != 1 {
		t.Fatalf("%d warnings past %v of the filter, want 1: %s", n, FillWarning, logs.String())
	}
	if !strings.Contains(logs.String(), `"rotation":0`) || !strings.Contains(logs.String(), "false_positive_rate") {
		t.Fatalf("the warning does not name the rotation and rate: %s", logs.String())
	}
	f := k.Filters()[0]
	if f.Tags < fill || f.FalsePositiveRate <= 0 {
		t.Fatalf("filter %+v after %d fresh packets", f, fill+10)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()+"{rotation="+m.GetLabel()[0].GetValue()+"}"] = m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"peapod_replay_filter_tags{rotation=0}":                float64(f.Tags),
		"peapod_replay_filter_capacity{rotation=0}":            MinReplayCapacity,
		"peapod_replay_filter_fill_ratio{rotation=0}":          float64(f.Tags) / MinReplayCapacity,
		"peapod_replay_filter_false_positive_rate{rotation=0}": f.FalsePositiveRate,
	}
	if !maps.Equal(got, want) {
		t.Fatalf("metrics %v, want %v", got, want)
	}
}
