package promserve

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "peapod_test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	var closing atomic.Bool
	srv := httptest.NewServer(Handler(reg, closing.Load))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(PathMetrics); code != http.StatusOK || !strings.Contains(body, "peapod_test_things_total 3") {
		t.Errorf("metrics: %d %q", code, body)
	}
	if code, body := get(PathHealth); code != http.StatusOK || body != "{\"status\":\"ok\"}\n" {
		t.Errorf("health while running: %d %q", code, body)
	}
	closing.Store(true)
	if code, body := get(PathHealth); code != http.StatusServiceUnavailable || body != "{\"status\":\"closing\"}\n" {
		t.Errorf("health while closing: %d %q", code, body)
	}
	resp, err := http.Post(srv.URL+PathMetrics, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: %d, want 405", PathMetrics, resp.StatusCode)
	}
}

func TestHandlerWithoutClosing(t *testing.T) {
	srv := httptest.NewServer(Handler(prometheus.NewRegistry(), nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + PathHealth)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("health: %d, want 200", resp.StatusCode)
	}
}
