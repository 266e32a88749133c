package wire

import "github.com/prometheus/client_golang/prometheus"

// serverCollector exports a Server's stats as Prometheus metrics, read at
// scrape time.
type serverCollector struct {
	s                              *Server
	conns, handshaking, peers      *prometheus.Desc
	closed, refused, faults, noise *prometheus.Desc
}

// NewCollector returns a Prometheus collector of s's stats, with every
// metric name starting with prefix:
//
//	inbound_connections                          open connections
//	inbound_handshakes                           connections in their Noise handshake
//	inbound_peers                                peers with an authenticated connection
//	inbound_connections_closed_total{reason}     closed because of the peer: malformed,
//	    truncated, frame_timeout, idle_timeout, handshake_failed, handshake_timeout,
//	    auth_failed (a Noise message that failed authentication), faults
//	inbound_connections_refused_total{reason}    turned away or closed by the server's
//	    bounds: max_conns, address, key, evicted, replaced, unlisted
//	inbound_frame_faults_total                   frames reported with Peer.Fault
func NewCollector(prefix string, s *Server) prometheus.Collector {
	return &serverCollector{
		s:           s,
		conns:       prometheus.NewDesc(prefix+"inbound_connections", "Open inbound connections.", nil, nil),
		handshaking: prometheus.NewDesc(prefix+"inbound_handshakes", "Inbound connections in their Noise handshake.", nil, nil),
		peers:       prometheus.NewDesc(prefix+"inbound_peers", "Peers with an authenticated inbound connection.", nil, nil),
		closed: prometheus.NewDesc(prefix+"inbound_connections_closed_total",
			"Inbound connections closed because of the peer, by reason.", []string{"reason"}, nil),
		refused: prometheus.NewDesc(prefix+"inbound_connections_refused_total",
			"Inbound connections refused or closed by the server's bounds and the topology, by reason.", []string{"reason"}, nil),
		faults: prometheus.NewDesc(prefix+"inbound_frame_faults_total",
			"Frames that failed authentication past the link (a Sphinx header).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.handshaking, c.peers, c.closed, c.refused, c.faults} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	count := func(d *prometheus.Desc, v uint64, label ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label...)
	}
	gauge(c.conns, st.Active)
	gauge(c.handshaking, st.Handshaking)
	gauge(c.peers, st.Peers)
	for _, r := range []struct {
		reason string
		v      uint64
	}{
		{"malformed", st.Malformed}, {"truncated", st.Truncated}, {"frame_timeout", st.FrameTimeouts},
		{"idle_timeout", st.IdleTimeouts}, {"handshake_failed", st.HandshakeFailures},
		{"handshake_timeout", st.HandshakeTimeouts}, {"auth_failed", st.AuthFailures}, {"faults", st.FaultCloses},
	} {
		count(c.closed, r.v, r.reason)
	}
	for _, r := range []struct {
		reason string
		v      uint64
	}{
		{"max_conns", st.Refused}, {"address", st.RefusedAddr}, {"key", st.RefusedKey},
		{"evicted", st.Evicted}, {"replaced", st.Replaced}, {"unlisted", st.Unlisted},
	} {
		count(c.refused, r.v, r.reason)
	}
	count(c.faults, st.Faults)
}

// poolCollector exports a Pool's connection counters as Prometheus
// metrics, read at scrape time.
type poolCollector struct {
	p                               *Pool
	dials, failures, retries, conns *prometheus.Desc
}

// NewPoolCollector returns a Prometheus collector of p's connection
// counters, with every metric name starting with prefix:
//
//	outbound_dials_total           connection attempts to next hops
//	outbound_dial_failures_total   failed ones (refused, timed out, no key, failed handshake)
//	outbound_retries_total         waits to reconnect cut short by Pool.Retry
//	    (the topology listed the peer again)
//	outbound_connections           open connections
func NewPoolCollector(prefix string, p *Pool) prometheus.Collector {
	return &poolCollector{
		p:        p,
		dials:    prometheus.NewDesc(prefix+"outbound_dials_total", "Connection attempts to next hops.", nil, nil),
		failures: prometheus.NewDesc(prefix+"outbound_dial_failures_total", "Connection attempts to next hops that failed.", nil, nil),
		retries: prometheus.NewDesc(prefix+"outbound_retries_total",
			"Waits to reconnect to a next hop cut short because the topology listed it again.", nil, nil),
		conns: prometheus.NewDesc(prefix+"outbound_connections", "Open connections to next hops.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.dials, c.failures, c.retries, c.conns} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.Stats()
	ch <- prometheus.MustNewConstMetric(c.dials, prometheus.CounterValue, float64(st.Dials))
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(st.DialFailures))
	ch <- prometheus.MustNewConstMetric(c.retries, prometheus.CounterValue, float64(st.Retried))
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.Connected))
}
