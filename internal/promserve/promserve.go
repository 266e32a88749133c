// Package promserve serves a process's Prometheus metrics and its health on
// a listener of their own, as mixnodes, gateways and `client run` do:
// GET /metrics is the registry's text page, GET /healthz answers
// {"status":"ok"} with 200 while the process runs and {"status":"closing"}
// with 503 once it shuts down, so that a load balancer or supervisor stops
// sending it work before it is gone.
package promserve

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/peapod-mixnet/peapod/internal/httpstop"
)

// HTTP paths of the metrics server.
const (
	PathMetrics = "/metrics"
	PathHealth  = "/healthz"
)

// Limits of the server NewServer makes; ShutdownTimeout is what its users
// give Shutdown before they close it outright.
const (
	ReadHeaderTimeout = 5 * time.Second
	WriteTimeout      = 30 * time.Second
	ShutdownTimeout   = 2 * time.Second
)

// Handler serves reg at PathMetrics and the process's health at
// PathHealth; closing reports that the process is shutting down (nil:
// never).
func Handler(reg prometheus.Gatherer, closing func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+PathMetrics, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET "+PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		status, body := http.StatusOK, "ok"
		if closing != nil && closing() {
			status, body = http.StatusServiceUnavailable, "closing"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"status": body})
	})
	return mux
}

// NewServer returns a server of Handler(reg, closing) with
// ReadHeaderTimeout and WriteTimeout.
func NewServer(reg prometheus.Gatherer, closing func() bool) *httpstop.Server {
	return httpstop.Wrap(&http.Server{
		Handler:           Handler(reg, closing),
		ReadHeaderTimeout: ReadHeaderTimeout,
		WriteTimeout:      WriteTimeout,
	})
}
