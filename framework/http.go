package framework

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/peapod-mixnet/peapod/framework/descriptor"
	"github.com/peapod-mixnet/peapod/internal/httpstop"
)

// Timeouts of the HTTP server. The endpoint serves small documents; slow
// clients are cut off.
const (
	httpReadHeaderTimeout = 5 * time.Second
	httpReadTimeout       = 10 * time.Second
	httpWriteTimeout      = 30 * time.Second
	httpIdleTimeout       = 60 * time.Second
	httpMaxHeaderBytes    = 16 << 10
)

// Paths of the HTTP endpoint.
const (
	PathAddress    = "/address"
	PathDescriptor = descriptor.WellKnownPath
	PathHealth     = "/healthz"
	PathMetrics    = "/metrics"
)

// Handler returns the HTTP endpoint's handler: GET / (the status page, for
// people), GET /address, GET /.well-known/peapod.json, GET /healthz and
// GET /metrics. The Host serves it on Config.HTTP.Addr; it is exposed for
// mounting elsewhere.
func (h *Host) Handler() http.Handler {
	r := chi.NewRouter()
	r.Get(PathStatus, h.serveStatus)
	r.Get(PathAddress, h.serveAddress)
	r.Get(PathDescriptor, h.serveDescriptor)
	r.Get(PathHealth, h.serveHealth)
	r.Method(http.MethodGet, PathMetrics, promhttp.HandlerFor(h.registry, promhttp.HandlerOpts{}))
	return r
}

func (h *Host) newHTTPServer() *httpstop.Server {
	return httpstop.Wrap(&http.Server{
		Handler:           h.Handler(),
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
	})
}

func (h *Host) serveHTTP() {
	defer close(h.httpDone)
	if err := h.httpServer.Serve(h.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
		h.log.Error().Err(err).Msg("HTTP endpoint stopped")
	}
}

// info returns what the provider publishes now, or an error while it has
// no address.
func (h *Host) info() (descriptor.Info, error) {
	h.mu.Lock()
	running := h.running
	h.mu.Unlock()
	addr := h.transport.Address()
	if !running || addr.IsZero() {
		return descriptor.Info{}, errors.New("the provider has no address yet")
	}
	services := h.Services()
	info := descriptor.Info{
		Address:  addr,
		Network:  h.network,
		Services: make([]descriptor.Service, len(services)),
		Limits: &descriptor.Limits{
			MaxRequestSize: h.cfg.Limits.MaxRequestSize,
			MaxReplySize:   h.cfg.Limits.MaxReplySize,
			RequestTimeout: h.cfg.Limits.RequestTimeout,
		},
	}
	for i, s := range services {
		info.Services[i] = descriptor.Service{Name: s.Name, Description: s.Description}
	}
	return info, nil
}

// serveAddress answers GET /address with the provider's Info as JSON.
func (h *Host) serveAddress(w http.ResponseWriter, r *http.Request) {
	info, err := h.info()
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	b, err := json.Marshal(info)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "encoding failed")
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, http.StatusOK, b)
}

// serveDescriptor answers GET /.well-known/peapod.json with the signed
// descriptor.
func (h *Host) serveDescriptor(w http.ResponseWriter, r *http.Request) {
	doc, err := h.Descriptor()
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.Header().Set("Cache-Control", "max-age=60")
	// Any web page may read it: it is public, signed, and carries no
	// credentials (the SDK's browser example fetches it from its own origin).
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, http.StatusOK, doc)
}

// Descriptor returns the provider's signed descriptor (see package
// descriptor). It signs a new one when the content has changed (an address
// or a service) or half of the last one's validity has passed.
func (h *Host) Descriptor() ([]byte, error) {
	info, err := h.info()
	if err != nil {
		return nil, fmt.Errorf("framework: %w", err)
	}
	content, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("framework: %w", err)
	}
	h.mu.Lock()
	signer := h.signer
	h.mu.Unlock()
	now := h.cfg.Now()
	h.descMu.Lock()
	defer h.descMu.Unlock()
	if h.desc.doc != nil && h.desc.content == string(content) && now.Before(h.desc.renewAt) {
		return h.desc.doc, nil
	}
	doc, err := descriptor.Sign(signer, info, now, now.Add(h.cfg.DescriptorTTL))
	if err != nil {
		return nil, fmt.Errorf("framework: %w", err)
	}
	h.desc = signedDescriptor{doc: doc, content: string(content), renewAt: now.Add(h.cfg.DescriptorTTL / 2)}
	return doc, nil
}

// Health is the body of GET /healthz.
type Health struct {
	// OK is true when the transport is connected and every plugin that
	// was started is up.
	OK bool `json:"ok"`
	// Transport is "connected" or "disconnected".
	Transport string `json:"transport"`
	// Plugins lists the plugins, sorted by name.
	Plugins []PluginHealth `json:"plugins"`
}

// PluginHealth is one plugin's state in Health.
type PluginHealth struct {
	Name     string   `json:"name"`
	Up       bool     `json:"up"`
	Skipped  bool     `json:"skipped,omitempty"`
	Restarts int      `json:"restarts"`
	Services []string `json:"services"`
	// Error says why a plugin is down or was skipped at start (its exit
	// status and last words, for one that died before its handshake);
	// empty while it is up.
	Error string `json:"error,omitempty"`
}

// Health reports whether the provider can serve requests now. A plugin
// the supervisor gave up on at start (skipped) is listed but does not make
// the provider unhealthy: restarting the provider would not bring it back.
func (h *Host) Health() Health {
	h.mu.Lock()
	running := h.running
	h.mu.Unlock()
	out := Health{OK: running && h.transport.Connected(), Transport: "disconnected", Plugins: []PluginHealth{}}
	if h.transport.Connected() {
		out.Transport = "connected"
	}
	for _, p := range h.supervisor.Status() {
		services := p.Services
		if services == nil {
			services = []string{}
		}
		ph := PluginHealth{Name: p.Name, Up: p.Up, Skipped: p.Skipped, Restarts: p.Restarts, Services: services}
		if !p.Up {
			ph.Error = p.LastError
		}
		out.Plugins = append(out.Plugins, ph)
		if !p.Up && !p.Skipped {
			out.OK = false
		}
	}
	return out
}

// serveHealth answers GET /healthz: 200 when healthy, 503 otherwise, with
// Health as JSON either way.
func (h *Host) serveHealth(w http.ResponseWriter, r *http.Request) {
	health := h.Health()
	b, err := json.Marshal(health)
	if err != nil {
		httpError(w, http.StatusInternalServerError, "encoding failed")
		return
	}
	status := http.StatusOK
	if !health.OK {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	_, _ = w.Write([]byte("\n"))
}

// httpError writes {"error":"..."} with status.
func httpError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	writeJSON(w, status, b)
}
