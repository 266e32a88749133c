package directory

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a request is refused: the values of the reason label of
// peapod_directory_requests_rejected_total.
const (
	reasonTooLarge  = "too_large" // body over MaxDescriptorSize
	reasonMalformed = "malformed" // not a descriptor: bad JSON, unknown or repeated field
	reasonInvalid   = "invalid"   // a field the descriptor rules refuse
	reasonSignature = "signature" // missing or invalid signature
	reasonClockSkew = "clock_skew"
	reasonReplay    = "replay" // timestamp not after the last accepted one
	reasonFull      = "full"   // MaxNodes reached
	// reasonRateLimited: over Config.RegisterRate or RegisterRateTotal.
	reasonRateLimited = "rate_limited"
	// reasonNotAdmitted: the identity is not on Config.AllowList.
	reasonNotAdmitted = "not_admitted"
)

var rejectReasons = []string{
	reasonTooLarge, reasonMalformed, reasonInvalid, reasonSignature,
	reasonClockSkew, reasonReplay, reasonFull, reasonRateLimited, reasonNotAdmitted,
}

// metrics are one server's Prometheus metrics, in a registry of their own so
// that several servers can share a process.
type metrics struct {
	registry *prometheus.Registry
	accepted *prometheus.CounterVec // by request: "register" or "deregister"
	rejected *prometheus.CounterVec // by reason
	// An authority's: its peers' votes by result, and the document it
	// serves.
	peerVotes          *prometheus.CounterVec
	documentEpoch      prometheus.Gauge
	documentSignatures prometheus.Gauge
}

// newMetrics registers the server's metrics; listed counts the nodes of a
// role that the topology lists now, tracked the identities held in memory.
func newMetrics(listed func(Role) int, tracked func() int) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peapod_directory_requests_accepted_total",
			Help: "Registrations and deregistrations accepted, by request.",
		}, []string{"request"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peapod_directory_requests_rejected_total",
			Help: "Registrations and deregistrations refused, by reason.",
		}, []string{"reason"}),
	}
	m.peerVotes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "peapod_directory_peer_votes_total",
		Help: "Peer authorities' votes fetched, by result: agree (signature kept), disagree (another topology), unreachable, bad_signature.",
	}, []string{"result"})
	m.documentEpoch = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "peapod_directory_document_epoch",
		Help: "Epoch of the signed topology document this authority serves.",
	})
	m.documentSignatures = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "peapod_directory_document_signatures",
		Help: "Authority signatures on the document this authority serves (0 before the first).",
	})
	m.registry.MustRegister(m.accepted, m.rejected, m.peerVotes, m.documentEpoch, m.documentSignatures)
	for _, res := range []string{"agree", "disagree", "unreachable", "bad_signature"} {
		m.peerVotes.WithLabelValues(res)
	}
	for _, req := range []string{"register", "deregister"} {
		m.accepted.WithLabelValues(req)
	}
	for _, reason := range rejectReasons {
		m.rejected.WithLabelValues(reason)
	}
	for _, role := range []Role{RoleMixnode, RoleGateway} {
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "peapod_directory_nodes",
			Help:        "Nodes listed in the topology now, by role.",
			ConstLabels: prometheus.Labels{"role": string(role)},
		}, func() float64 { return float64(listed(role)) }))
	}
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "peapod_directory_tracked_identities",
		Help: "Identities held, including stale and deregistered ones still guarding against replays; counted against MaxNodes.",
	}, func() float64 { return float64(tracked()) }))
	return m
}
