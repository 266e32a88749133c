package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/internal/httpstop"
	"github.com/peapod-mixnet/peapod/internal/promserve"
)

// checkMetricsAddr checks the value of --metrics: empty (no metrics
// server) or host:port, as net.Listen takes it.
func checkMetricsAddr(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("client: --metrics %q is not ip:port (for example 127.0.0.1:9103): %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("client: --metrics %q: the port must be a number from 0 to 65535", addr)
	}
	return nil
}

// metricsServer serves the client's Prometheus metrics at /metrics and its
// health at /healthz (200 while it runs, 503 once it shuts down), like the
// nodes' metrics servers.
type metricsServer struct {
	registry *prometheus.Registry
	ln       net.Listener
	srv      *httpstop.Server
	closing  atomic.Bool
}

// listenMetrics binds addr; the server has only the Go runtime's metrics
// until Register adds the client's.
func listenMetrics(addr string) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	m := &metricsServer{registry: prometheus.NewRegistry(), ln: ln}
	m.registry.MustRegister(collectors.NewGoCollector())
	m.srv = promserve.NewServer(m.registry, m.closing.Load)
	return m, nil
}

// URL is the address of the metrics page.
func (m *metricsServer) URL() string { return "http://" + m.ln.Addr().String() + "/metrics" }

// Register adds collectors to the served registry.
func (m *metricsServer) Register(cs ...prometheus.Collector) { m.registry.MustRegister(cs...) }

// Serve starts serving on a goroutine; log receives its failure.
func (m *metricsServer) Serve(log zerolog.Logger) {
	go func() {
		err := m.srv.Serve(m.ln)
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("the metrics server stopped")
		}
	}()
}

// Closing makes /healthz answer 503 from now on.
func (m *metricsServer) Closing() { m.closing.Store(true) }

// Close stops the server (the listener too, if Serve never ran).
func (m *metricsServer) Close() {
	m.closing.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), promserve.ShutdownTimeout)
	defer cancel()
	if err := m.srv.Shutdown(ctx); err != nil {
		m.srv.Close()
	}
	m.ln.Close()
}
