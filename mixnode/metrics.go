package mixnode

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/httpstop"
	"github.com/peapod-mixnet/peapod/internal/node"
	"github.com/peapod-mixnet/peapod/internal/promserve"
	"github.com/peapod-mixnet/peapod/internal/wire"
)

// HTTP paths of the metrics server.
const (
	PathMetrics = promserve.PathMetrics
	PathHealth  = promserve.PathHealth
)

// metricPrefix begins the name of every metric a mixnode exports of its
// own (the replay-filter and topology series it shares with other nodes
// have theirs).
const metricPrefix = "peapod_mixnode_"

// collector exports a node's Stats as Prometheus metrics. It reads the
// counters at scrape time, so the packet path updates only atomics.
type collector struct {
	n                            *Node
	received, forwarded, dropped *prometheus.Desc
	queueDepth                   *prometheus.Desc
	clamped, maxDelay            *prometheus.Desc
	peerQueue, peerDropped       *prometheus.Desc
}

func newCollector(n *Node) *collector {
	return &collector{
		n:         n,
		received:  prometheus.NewDesc(metricPrefix+"packets_received_total", "Packets received from other nodes in well-formed frames.", nil, nil),
		forwarded: prometheus.NewDesc(metricPrefix+"packets_forwarded_total", "Packets written to the connection of their next hop.", nil, nil),
		dropped:   prometheus.NewDesc(metricPrefix+"packets_dropped_total", "Packets dropped, by reason.", []string{"reason"}, nil),
		queueDepth: prometheus.NewDesc(metricPrefix+"queue_depth", "Packets waiting: to be peeled (work), for their delay to pass (delay), "+
			"to be written to their next hop (outbound).", []string{"queue"}, nil),
		clamped:  prometheus.NewDesc(metricPrefix+"delays_clamped_total", "Packets that asked for a longer delay than the node's bound and were held for the bound.", nil, nil),
		maxDelay: prometheus.NewDesc(metricPrefix+"max_delay_seconds", "The longest delay the node honours now.", nil, nil),
		peerQueue: prometheus.NewDesc(metricPrefix+"peer_queue_depth", "Packets an upstream peer holds in the work or delay queue now; "+
			"peers holding none are absent.", []string{"peer", "queue"}, nil),
		peerDropped: prometheus.NewDesc(metricPrefix+"peer_packets_dropped_total", "Packets dropped, by the upstream peer that sent them "+
			"(the first 256 peers with drops; the rest under peer=\"other\").", []string{"peer"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.received, c.forwarded, c.dropped, c.queueDepth, c.clamped, c.maxDelay, c.peerQueue, c.peerDropped} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.Stats()
	ch <- prometheus.MustNewConstMetric(c.received, prometheus.CounterValue, float64(st.Received))
	ch <- prometheus.MustNewConstMetric(c.forwarded, prometheus.CounterValue, float64(st.Forwarded))
	for _, r := range DropReasons {
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(st.Dropped[r]), string(r))
	}
	ch <- prometheus.MustNewConstMetric(c.queueDepth, prometheus.GaugeValue, float64(st.WorkQueue), "work")
	ch <- prometheus.MustNewConstMetric(c.queueDepth, prometheus.GaugeValue, float64(st.DelayQueue), "delay")
	ch <- prometheus.MustNewConstMetric(c.queueDepth, prometheus.GaugeValue, float64(st.OutboundQueue), "outbound")
	ch <- prometheus.MustNewConstMetric(c.clamped, prometheus.CounterValue, float64(st.DelaysClamped))
	ch <- prometheus.MustNewConstMetric(c.maxDelay, prometheus.GaugeValue, st.MaxDelay.Seconds())
	for _, pq := range st.PeerQueues {
		ch <- prometheus.MustNewConstMetric(c.peerQueue, prometheus.GaugeValue, float64(pq.Work), pq.Peer, "work")
		ch <- prometheus.MustNewConstMetric(c.peerQueue, prometheus.GaugeValue, float64(pq.Delayed), pq.Peer, "delay")
	}
	for peer, v := range st.PeerDrops {
		ch <- prometheus.MustNewConstMetric(c.peerDropped, prometheus.CounterValue, float64(v), peer)
	}
}

// newRegistry returns the node's private registry: its own metrics, its
// inbound and outbound connections' (package wire's collectors) and the Go
// runtime's.
// Each node has its own, so several run in one process.
func newRegistry(n *Node) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(n), wire.NewCollector(metricPrefix, n.server), wire.NewPoolCollector(metricPrefix, n.pool),
		node.NewKeysCollector(n.sphinx), collectors.NewGoCollector())
	if n.dir != nil {
		reg.MustRegister(directory.NewRefusedCollector(n.dir))
	}
	return reg
}

// newMetricsServer serves PathMetrics and PathHealth (503 once the node
// is closing).
func (n *Node) newMetricsServer() *httpstop.Server {
	return promserve.NewServer(n.registry, n.closing.Load)
}
