package framework

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/handlers"
)

// Label values for requests that name no usable service, so that
// requester-chosen strings never become label values.
const (
	serviceNone    = "(none)"    // the request could not be read
	serviceUnknown = "(unknown)" // the provider offers no such service
	outcomeOK      = "ok"
	outcomeOther   = "other" // a service-specific error code
)

// durationBuckets spans a fast in-process handler to a request that hits
// the timeout.
var durationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// metrics are the Host's Prometheus metrics, on a registry of its own.
type metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	duplicates  prometheus.Counter
	dropped     *prometheus.CounterVec
	replyFailed prometheus.Counter
	inFlight    prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry, h *Host) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peapod_provider_requests_total",
			Help: "Requests answered, by service and outcome (ok, or the error code).",
		}, []string{"service", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "peapod_provider_request_duration_seconds",
			Help:    "Time from a request's arrival to its reply being handed to the transport.",
			Buckets: durationBuckets,
		}, []string{"service"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "peapod_provider_duplicate_requests_total",
			Help: "Repeated requests (same sender and id) answered without running them again.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "peapod_provider_dropped_messages_total",
			Help: "Messages dropped without a reply, by reason.",
		}, []string{"reason"}),
		replyFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "peapod_provider_reply_failures_total",
			Help: "Replies the transport did not accept.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "peapod_provider_requests_in_flight",
			Help: "Requests being handled now.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.duplicates, m.dropped, m.replyFailed, m.inFlight,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "peapod_provider_queue_length",
			Help: "Requests waiting for a free handler slot.",
		}, func() float64 { return float64(h.queue.len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "peapod_provider_queue_requesters",
			Help: "Requesters (sender tags) with requests waiting; workers serve them in turn.",
		}, func() float64 { return float64(h.queue.stats().requesters) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "peapod_provider_queue_pushed_out_total",
			Help: "Queued requests answered overloaded to make room for a requester with fewer queued.",
		}, func() float64 { return float64(h.queue.stats().pushedOut) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "peapod_provider_transport_connected",
			Help: "1 when the transport is connected to the mixnet, else 0.",
		}, func() float64 { return boolFloat(h.transport.Connected()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "peapod_provider_idempotence_entries",
			Help: "Replies remembered for repeated requests.",
		}, func() float64 { n, _ := h.cache.len(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "peapod_provider_idempotence_bytes",
			Help: "Bytes of the replies remembered for repeated requests.",
		}, func() float64 { _, b := h.cache.len(); return float64(b) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "peapod_provider_idempotence_evictions_total",
			Help:        "Replies forgotten before their window ended: past their requester's quota, or past the total budget.",
			ConstLabels: prometheus.Labels{"reason": "quota"},
		}, func() float64 { return float64(h.cache.stats().evictedQuota) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "peapod_provider_idempotence_evictions_total",
			Help:        "Replies forgotten before their window ended: past their requester's quota, or past the total budget.",
			ConstLabels: prometheus.Labels{"reason": "budget"},
		}, func() float64 { return float64(h.cache.stats().evictedBudget) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if sc, ok := h.transport.(SURBCounter); ok {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "peapod_provider_surbs_held",
			Help: "Reply SURBs held for the requesters heard from recently.",
		}, func() float64 { return float64(sc.SURBStats().Held) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "peapod_provider_surb_senders",
				Help: "Requesters (sender tags) whose reply SURBs are held.",
			}, func() float64 { return float64(sc.SURBStats().Senders) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "peapod_provider_surb_senders_evicted_total",
				Help: "Requesters whose reply SURBs were dropped whole to stay within max_surb_senders and max_surbs_held, least recently heard from first.",
			}, func() float64 { return float64(sc.SURBStats().SendersEvicted) }))
	}
	limits := map[string]func() int{
		"concurrent":                        func() int { return h.cfg.Limits.MaxConcurrent },
		"queue":                             func() int { return h.cfg.Limits.QueueSize },
		"idempotence_entries":               func() int { return h.cfg.Idempotence.MaxEntries },
		"idempotence_bytes":                 func() int { return h.cfg.Idempotence.MaxBytes },
		"idempotence_entries_per_requester": func() int { return h.cfg.Idempotence.MaxEntriesPerRequester },
		"idempotence_bytes_per_requester":   func() int { return h.cfg.Idempotence.MaxBytesPerRequester },
	}
	if sc, ok := h.transport.(SURBCounter); ok {
		limits["surb_senders"] = func() int { return sc.SURBStats().MaxSenders }
		limits["surbs_held"] = func() int { return sc.SURBStats().MaxHeld }
	}
	for name, v := range limits {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "peapod_provider_limit",
			Help:        "The provider's bounds on what requesters make it hold, by name (0: unknown).",
			ConstLabels: prometheus.Labels{"limit": name},
		}, func() float64 { return float64(v()) }))
	}
	if tg, ok := h.transport.(topologyGuard); ok {
		for _, why := range directory.RefusedReasons {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "peapod_topology_documents_refused_total",
				Help:        "Topology documents from the directory authorities refused, by reason.",
				ConstLabels: prometheus.Labels{"reason": why},
			}, func() float64 { return float64(tg.TopologyRefused()[why]) }))
		}
	}
	return m
}

// outcomeLabel maps an error code to a bounded set of label values.
func outcomeLabel(code string) string {
	switch code {
	case "":
		return outcomeOK
	case handlers.CodeBadRequest, handlers.CodeUnknownService, handlers.CodeHandlerFailed,
		handlers.CodeTimeout, handlers.CodeOverloaded, handlers.CodeTooLarge:
		return code
	}
	return outcomeOther
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
