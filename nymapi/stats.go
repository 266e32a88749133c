package nymapi

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peapod-mixnet/peapod/wsapi"
)

// RequestTypes are the keys of Stats.Requests, one per request of the API.
var RequestTypes = []string{"send", "send_anonymous", "reply", "self_address", "closed_connection", "get_lane_queue_length"}

// ErrorKinds are the keys of Stats.Errors: the kinds of the Error answers
// sent to applications (wsapi's request kinds, and "other" for a send that
// failed, at once or later).
var ErrorKinds = []string{"empty_request", "too_short_request", "unknown_request", "malformed_request", "other"}

// RefusedReasons are the keys of Stats.Refused: "full" (MaxConnections open,
// or the Server closing) and "handshake" (not a WebSocket handshake, a bad
// format parameter, an origin not allowed, or a failed upgrade).
var RefusedReasons = []string{"full", "handshake"}

// Indexes into RequestTypes, ErrorKinds and RefusedReasons.
const (
	reqSend = iota
	reqSendAnonymous
	reqReply
	reqSelfAddress
	reqClosedConnection
	reqLaneQueueLength
)

const (
	refusedFull = iota
	refusedHandshake
)

// Stats is a snapshot of a Server's counters.
type Stats struct {
	// Connections is the number of connections open now.
	Connections int
	// Accepted counts the connections upgraded to a WebSocket.
	Accepted uint64
	// Refused counts the connection attempts refused, by RefusedReasons.
	Refused map[string]uint64
	// OriginsRefused counts the handshakes from web pages of an origin not
	// allowed (Config.AllowedOrigins), included in Refused["handshake"].
	OriginsRefused uint64
	// Requests counts the well-formed requests served, by RequestTypes.
	Requests map[string]uint64
	// Errors counts the Error answers sent, by ErrorKinds.
	Errors map[string]uint64
}

// counters are a Server's counters, updated with atomics.
type counters struct {
	accepted       atomic.Uint64
	refused        [2]atomic.Uint64
	originsRefused atomic.Uint64
	requests       [6]atomic.Uint64
	errors         [5]atomic.Uint64
}

// requestIndex returns the index in RequestTypes of req.
func requestIndex(req wsapi.Request) int {
	switch req.(type) {
	case wsapi.Send:
		return reqSend
	case wsapi.SendAnonymous:
		return reqSendAnonymous
	case wsapi.Reply:
		return reqReply
	case wsapi.SelfAddress:
		return reqSelfAddress
	case wsapi.ClosedConnection:
		return reqClosedConnection
	case wsapi.GetLaneQueueLength:
		return reqLaneQueueLength
	}
	return -1
}

// countError counts an Error answer of kind k.
func (c *counters) countError(k wsapi.ErrorKind) {
	i := len(ErrorKinds) - 1 // other
	switch k {
	case wsapi.KindEmptyRequest:
		i = 0
	case wsapi.KindTooShortRequest:
		i = 1
	case wsapi.KindUnknownRequest:
		i = 2
	case wsapi.KindMalformedRequest:
		i = 3
	}
	c.errors[i].Add(1)
}

// Stats returns a snapshot of the Server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	open := len(s.conns)
	s.mu.Unlock()
	st := Stats{
		Connections:    open,
		Accepted:       s.stats.accepted.Load(),
		OriginsRefused: s.stats.originsRefused.Load(),
		Refused:        make(map[string]uint64, len(RefusedReasons)),
		Requests:       make(map[string]uint64, len(RequestTypes)),
		Errors:         make(map[string]uint64, len(ErrorKinds)),
	}
	for i, r := range RefusedReasons {
		st.Refused[r] = s.stats.refused[i].Load()
	}
	for i, r := range RequestTypes {
		st.Requests[r] = s.stats.requests[i].Load()
	}
	for i, k := range ErrorKinds {
		st.Errors[k] = s.stats.errors[i].Load()
	}
	return st
}

// collector exports a Server's Stats as Prometheus metrics.
type collector struct {
	s                                       *Server
	conns, accepted, refused, origins, reqs *prometheus.Desc
	errs                                    *prometheus.Desc
}

// NewCollector returns a Prometheus collector of s's Stats, read at scrape
// time:
//
//	peapod_client_api_connections                          WebSocket connections open
//	peapod_client_api_connections_accepted_total           connections upgraded
//	peapod_client_api_connections_refused_total{reason}    full, handshake
//	peapod_client_api_origins_refused_total                handshakes from origins not allowed
//	peapod_client_api_requests_total{type}                 well-formed requests, by RequestTypes
//	peapod_client_api_errors_total{kind}                   Error answers, by ErrorKinds
func NewCollector(s *Server) prometheus.Collector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("peapod_client_api_"+name, help, labels, nil)
	}
	return &collector{
		s:        s,
		conns:    desc("connections", "WebSocket connections of applications open now."),
		accepted: desc("connections_accepted_total", "Connections upgraded to a WebSocket."),
		refused:  desc("connections_refused_total", "Connection attempts refused, by reason: full, handshake.", "reason"),
		origins:  desc("origins_refused_total", "Handshakes refused from web pages of an origin not allowed (counted in handshake refusals too)."),
		reqs:     desc("requests_total", "Well-formed requests served, by type.", "type"),
		errs:     desc("errors_total", "Error answers sent to applications, by kind.", "kind"),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.accepted, c.refused, c.origins, c.reqs, c.errs} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.Connections))
	ch <- prometheus.MustNewConstMetric(c.accepted, prometheus.CounterValue, float64(st.Accepted))
	ch <- prometheus.MustNewConstMetric(c.origins, prometheus.CounterValue, float64(st.OriginsRefused))
	for _, r := range RefusedReasons {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(st.Refused[r]), r)
	}
	for _, t := range RequestTypes {
		ch <- prometheus.MustNewConstMetric(c.reqs, prometheus.CounterValue, float64(st.Requests[t]), t)
	}
	for _, k := range ErrorKinds {
		ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(st.Errors[k]), k)
	}
}
