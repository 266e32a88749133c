package framework

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/framework/descriptor"
)

func TestAddressEndpoint(t *testing.T) {
	tr := newMemTransport(t)
	h := startHost(t, tr, Config{Services: []Service{echoService}, Limits: Limits{MaxRequestSize: 5000, RequestTimeout: 1500 * time.Millisecond}})
	status, body := get(t, h, PathAddress)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var got struct {
		Address  string `json:"address"`
		Services []struct {
			Name        string `json:"name"`
			Description string `json:"description"`
		} `json:"services"`
		Network map[string]string `json:"network"`
		Limits  map[string]int64  `json:"limits"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Address != tr.addr.String() {
		t.Errorf("address %q, want %q", got.Address, tr.addr)
	}
	if len(got.Services) != 1 || got.Services[0].Name != "echo" || got.Services[0].Description != "echo" {
		t.Errorf("services %+v", got.Services)
	}
	if got.Network["type"] != "peapod" {
		t.Errorf("network %v", got.Network)
	}
	want := map[string]int64{"max_request_size": 5000, "max_reply_size": DefaultMaxReplySize, "request_timeout_ms": 1500}
	if len(got.Limits) != len(want) {
		t.Errorf("limits %v, want %v", got.Limits, want)
	}
	for k, v := range want {
		if got.Limits[k] != v {
			t.Errorf("limits %v, want %v", got.Limits, want)
		}
	}
	if status, _ := get(t, h, "/nope"); status != http.StatusNotFound {
		t.Errorf("unknown path: status %d", status)
	}
	resp, err := http.Post("http://"+h.HTTPAddr()+PathAddress, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /address: status %d", resp.StatusCode)
	}
}

// TestDescriptorEndpoint: the descriptor holds what /address says, is
// signed by Host.Key, and is self-certifying when the transport lends its
// address key.
func TestDescriptorEndpoint(t *testing.T) {
	for _, signing := range []bool{false, true} {
		var tr Transport
		var mem *memTransport
		if signing {
			st := newMemSigningTransport(t)
			tr, mem = st, st.memTransport
		} else {
			mem = newMemTransport(t)
			tr = mem
		}
		h := startHost(t, tr, Config{Services: []Service{echoService}})
		status, doc := get(t, h, PathDescriptor)
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, doc)
		}
		d, err := descriptor.Verify(doc, descriptor.VerifyOptions{Key: h.Key()})
		if err != nil {
			t.Fatal(err)
		}
		if d.Address != mem.addr || len(d.Services) != 1 || d.Services[0].Name != "echo" {
			t.Errorf("descriptor content %+v", d.Info)
		}
		want := descriptor.Limits{MaxRequestSize: DefaultMaxRequestSize, MaxReplySize: DefaultMaxReplySize, RequestTimeout: DefaultRequestTimeout}
		if d.Limits == nil || *d.Limits != want {
			t.Errorf("published limits %+v, want the provider's %+v", d.Limits, want)
		}
		if d.SelfCertifying != signing {
			t.Errorf("signing transport %v: self-certifying %v", signing, d.SelfCertifying)
		}
		if signing && !bytes.Equal(h.Key(), mem.addr.Identity[:]) {
			t.Error("Key is not the address's identity key")
		}
		if time.Until(d.ExpiresAt) < DefaultDescriptorTTL-time.Minute {
			t.Errorf("expires at %v", d.ExpiresAt)
		}
	}
}

// TestDescriptorRenewal: the descriptor is cached, and signed again when
// half its validity has passed or its content changes.
func TestDescriptorRenewal(t *testing.T) {
	tr := newMemTransport(t)
	clock := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h := startHost(t, tr, Config{Now: clock.Now, DescriptorTTL: time.Hour})
	first, err := h.Descriptor()
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(29 * time.Minute)
	if again, _ := h.Descriptor(); !bytes.Equal(again, first) {
		t.Error("signed again before half the validity passed")
	}
	clock.Add(2 * time.Minute)
	renewed, _ := h.Descriptor()
	if bytes.Equal(renewed, first) {
		t.Fatal("not renewed after half the validity")
	}
	d, err := descriptor.Verify(renewed, descriptor.VerifyOptions{Now: clock.Now(), Key: h.Key()})
	if err != nil {
		t.Fatal(err)
	}
	if !d.IssuedAt.Equal(clock.Now()) {
		t.Errorf("issued at %v, want %v", d.IssuedAt, clock.Now())
	}
	tr.addr, _ = newAddress(t) // not concurrent: no request is in flight
	changed, _ := h.Descriptor()
	if d, _ := descriptor.Verify(changed, descriptor.VerifyOptions{Now: clock.Now()}); d == nil || d.Address != tr.addr {
		t.Error("a new address did not make a new descriptor")
	}
}

// TestProviderKeyPersists: without an address key, the descriptor is signed
// with the provider's own key, which survives restarts.
func TestProviderKeyPersists(t *testing.T) {
	dir := t.TempDir()
	h1 := startHost(t, newMemTransport(t), Config{DataDir: dir})
	k1 := append(ed25519.PublicKey(nil), h1.Key()...)
	h1.Close()
	h2 := startHost(t, newMemTransport(t), Config{DataDir: dir})
	if !bytes.Equal(k1, h2.Key()) {
		t.Error("the provider key changed across restarts")
	}
	h3 := startHost(t, newMemTransport(t), Config{})
	if bytes.Equal(k1, h3.Key()) {
		t.Error("two data folders share a key")
	}
}

func TestHealth(t *testing.T) {
	tr := newMemTransport(t)
	h := startHost(t, tr, Config{})
	status, body := get(t, h, PathHealth)
	if status != http.StatusOK || !strings.Contains(string(body), `"transport":"connected"`) {
		t.Errorf("healthy: %d %s", status, body)
	}
	tr.connected.Store(false)
	status, body = get(t, h, PathHealth)
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), `"ok":false`) {
		t.Errorf("disconnected: %d %s", status, body)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	tr := newMemTransport(t)
	h := startHost(t, tr, Config{Services: []Service{echoService}})
	tag := newTag(t)
	wantOK(t, tr.do(t, tag, "1", "echo", []byte("x")), "x")
	tr.do(t, tag, "2", "nope", nil)
	// A request is counted just after its reply is handed to the transport,
	// so the requester can have the reply a moment before the count.
	var body []byte
	for deadline := time.Now().Add(5 * time.Second); ; {
		var status int
		status, body = get(t, h, PathMetrics)
		if status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
		if strings.Contains(string(body), `peapod_provider_request_duration_seconds_count{service="echo"} 1`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range []string{
		`peapod_provider_requests_total{outcome="ok",service="echo"} 1`,
		`peapod_provider_requests_total{outcome="unknown_service",service="(unknown)"} 1`,
		`peapod_provider_request_duration_seconds_count{service="echo"} 1`,
		`peapod_provider_transport_connected 1`,
		`peapod_provider_queue_length 0`,
		`peapod_provider_limit{limit="queue"} 256`,
		`peapod_provider_limit{limit="concurrent"} 32`,
		`peapod_provider_limit{limit="idempotence_entries"} 10000`,
		`peapod_provider_limit{limit="idempotence_entries_per_requester"} 1000`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(string(body), "peapod_provider_surbs_held") || strings.Contains(string(body), `limit="surbs_held"`) {
		t.Error("SURBs held reported for a transport that does not count them")
	}
}

// TestAddressUnavailableBeforeStart: a Host's handler answers 503 while it
// has no address.
func TestAddressUnavailableBeforeStart(t *testing.T) {
	h, err := New(Config{DataDir: t.TempDir(), Transport: newMemTransport(t), Network: testNetwork})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, p := range []string{PathAddress, PathDescriptor, PathHealth} {
		rec := &recorder{header: http.Header{}}
		req, _ := http.NewRequest(http.MethodGet, p, nil)
		h.Handler().ServeHTTP(rec, req)
		if rec.status != http.StatusServiceUnavailable {
			t.Errorf("%s before Start: status %d", p, rec.status)
		}
	}
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(s int)           { r.status = s }

// TestCrossOrigin: a web page of any origin may read the public, signed
// descriptor and /address (the SDK's browser example does), but not the
// health or metrics.
func TestCrossOrigin(t *testing.T) {
	h := startHost(t, newMemTransport(t), Config{Services: []Service{echoService}})
	for path, want := range map[string]string{PathDescriptor: "*", PathAddress: "*", PathHealth: "", PathMetrics: ""} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+h.HTTPAddr()+path, nil)
		req.Header.Set("Origin", "http://app.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want %q", path, got, want)
		}
	}
}
