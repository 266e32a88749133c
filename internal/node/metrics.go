package node

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of a node's keys, the same for mixnodes and gateways:
//
//	peapod_replay_filter_tags{rotation}            fresh tags a key's filter holds
//	peapod_replay_filter_capacity{rotation}        tags it was sized for
//	peapod_replay_filter_fill_ratio{rotation}      tags / capacity
//	peapod_replay_filter_false_positive_rate{rotation}  estimated share of fresh packets refused now
//
// Only the keys held at scrape time appear; rotation is "static" for a node
// without a directory.
type keysCollector struct {
	keys                                 *SphinxKeys
	tags, capacity, fill, falsePositives *prometheus.Desc
}

// NewKeysCollector returns a Prometheus collector of k's replay filters.
func NewKeysCollector(k *SphinxKeys) prometheus.Collector {
	label := []string{"rotation"}
	return &keysCollector{
		keys:           k,
		tags:           prometheus.NewDesc("peapod_replay_filter_tags", "Fresh replay tags a Sphinx key's filter holds.", label, nil),
		capacity:       prometheus.NewDesc("peapod_replay_filter_capacity", "Replay tags the filter was sized for.", label, nil),
		fill:           prometheus.NewDesc("peapod_replay_filter_fill_ratio", "Replay tags held over the capacity; past 1 the false-positive rate exceeds its target.", label, nil),
		falsePositives: prometheus.NewDesc("peapod_replay_filter_false_positive_rate", "Estimated share of fresh packets the filter refuses now.", label, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *keysCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.tags
	ch <- c.capacity
	ch <- c.fill
	ch <- c.falsePositives
}

// Collect implements prometheus.Collector.
func (c *keysCollector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.keys.Filters() {
		r := "static"
		if f.Rotation != StaticRotation {
			r = strconv.FormatUint(uint64(f.Rotation), 10)
		}
		ch <- prometheus.MustNewConstMetric(c.tags, prometheus.GaugeValue, float64(f.Tags), r)
		ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(f.Capacity), r)
		ch <- prometheus.MustNewConstMetric(c.fill, prometheus.GaugeValue, float64(f.Tags)/float64(max(f.Capacity, 1)), r)
		ch <- prometheus.MustNewConstMetric(c.falsePositives, prometheus.GaugeValue, f.FalsePositiveRate, r)
	}
}
