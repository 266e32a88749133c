package framework

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/framework/requester"
	"github.com/peapod-mixnet/peapod/handlers"
	"github.com/peapod-mixnet/peapod/localnet"
)

// fastClient is a client configuration for tests: no mixing delays and no
// cover traffic, so that round trips take milliseconds.
func fastClient(tb testing.TB) client.Config {
	return client.Config{NoDelay: true, Cover: client.CoverConfig{Disabled: true}, Logger: testLogger(tb)}
}

// testLogger logs warnings and worse to the test's output, or everything
// to stderr with PEAPOD_TEST_LOG set.
func testLogger(tb testing.TB) zerolog.Logger {
	if os.Getenv("PEAPOD_TEST_LOG") != "" {
		return zerolog.New(zerolog.NewConsoleWriter(func(w *zerolog.ConsoleWriter) { w.Out = os.Stderr }))
	}
	return zerolog.New(zerolog.NewTestWriter(tb)).Level(zerolog.WarnLevel)
}

// startLocalnet starts a local mixnet on free loopback ports.
func startLocalnet(tb testing.TB, dataDir string) *localnet.Network {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	n, err := localnet.Start(ctx, localnet.Config{DataDir: dataDir, DirectoryAddr: "127.0.0.1:0", Logger: testLogger(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Close() })
	return n
}

// startNetworkHost starts a Host with the embedded client on n.
func startNetworkHost(tb testing.TB, n *localnet.Network, dataDir string, cfg Config) *Host {
	tb.Helper()
	cfg.DataDir = dataDir
	cfg.DirectoryURL = n.DirectoryURL()
	cfg.Client = fastClient(tb)
	if cfg.HTTP.Addr == "" {
		cfg.HTTP.Addr = "127.0.0.1:0"
	}
	cfg.Logger = testLogger(tb)
	h, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

func connect(tb testing.TB, h *Host) *requester.Session {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	s, err := requester.Connect(ctx, requester.Config{
		ProviderURL: "http://" + h.HTTPAddr(),
		ProviderKey: h.Key(),
		Client:      fastClient(tb),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// TestEndToEnd: a requester discovers the provider over HTTP, checks its
// self-certifying descriptor, and gets echo and kv replies through a real
// local mixnet; errors come back as codes; the provider's SURB count shows
// in its metrics.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a local mixnet")
	}
	n := startLocalnet(t, t.TempDir())
	h := startNetworkHost(t, n, t.TempDir(), Config{
		Plugins: PluginsConfig{Dir: pluginDir(t, pluginEcho, pluginKV)},
		Services: []Service{{
			ServiceInfo: handlers.ServiceInfo{Name: "who"},
			Handler: handlers.HandlerFunc(func(ctx context.Context, req *handlers.Request) ([]byte, error) {
				return []byte(req.Requester), nil
			}),
		}},
	})
	s := connect(t, h)
	if !s.Descriptor.SelfCertifying || s.Descriptor.Network.Directory != n.DirectoryURL() {
		t.Errorf("descriptor: self-certifying %v, network %+v", s.Descriptor.SelfCertifying, s.Descriptor.Network)
	}
	if s.Descriptor.Address != h.Address() {
		t.Fatalf("descriptor address %s, host %s", s.Descriptor.Address, h.Address())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	reply, err := s.Do(ctx, "echo", []byte("hello"))
	if err != nil || string(reply) != "hello" {
		t.Fatalf("echo: %q, %v", reply, err)
	}
	if _, err := s.Do(ctx, "kv", []byte(`{"op":"put","key":"greeting","value":"hi there"}`)); err != nil {
		t.Fatal(err)
	}
	reply, err = s.Do(ctx, "kv", []byte(`{"op":"get","key":"greeting"}`))
	if err != nil || string(reply) != `{"value":"hi there"}` {
		t.Fatalf("kv get: %q, %v", reply, err)
	}
	_, err = s.Do(ctx, "kv", []byte(`{"op":"get","key":"nothing"}`))
	if e, ok := requester.AsError(err); !ok || e.Code != "not_found" {
		t.Fatalf("kv get of a missing key: %v", err)
	}
	_, err = s.Do(ctx, "nope", nil)
	if e, ok := requester.AsError(err); !ok || e.Code != handlers.CodeUnknownService {
		t.Fatalf("unknown service: %v", err)
	}
	// A reply of several packets.
	big := strings.Repeat("0123456789", 3000)
	reply, err = s.Do(ctx, "echo", []byte(big))
	if err != nil || string(reply) != big {
		t.Fatalf("big echo: %d bytes, %v", len(reply), err)
	}
	// Concurrent requests over one client.
	errs := make(chan error, 10)
	for i := range 10 {
		go func() {
			want := fmt.Sprintf("concurrent %d", i)
			got, err := s.Do(ctx, "echo", []byte(want))
			if err == nil && string(got) != want {
				err = fmt.Errorf("got %q, want %q", got, want)
			}
			errs <- err
		}()
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	// The requester id is opaque and stable.
	id1, err1 := s.Do(ctx, "who", nil)
	id2, err2 := s.Do(ctx, "who", nil)
	if err := errors.Join(err1, err2); err != nil || string(id1) != string(id2) || len(id1) != 22 {
		t.Errorf("requester ids %q %q, %v", id1, id2, err)
	}

	_, body := get(t, h, PathMetrics)
	if !strings.Contains(string(body), "peapod_provider_surbs_held") {
		t.Error("no SURB gauge in the metrics")
	}
	if !strings.Contains(string(body), `peapod_provider_requests_total{outcome="ok",service="echo"}`) {
		t.Errorf("metrics:\n%s", grepLines(string(body), "requests_total"))
	}
}

// TestRestartKeepsAddress: the provider's address and its kv data survive
// a restart of the provider (same data folder).
func TestRestartKeepsAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a local mixnet")
	}
	n := startLocalnet(t, t.TempDir())
	dataDir := t.TempDir()
	plugins := PluginsConfig{Dir: pluginDir(t, pluginKV)}
	h := startNetworkHost(t, n, dataDir, Config{Plugins: plugins})
	addr, key := h.Address(), append([]byte(nil), h.Key()...)
	s := connect(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Do(ctx, "kv", []byte(`{"op":"put","key":"k","value":"kept"}`)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	h2 := startNetworkHost(t, n, dataDir, Config{Plugins: plugins})
	if h2.Address() != addr || string(h2.Key()) != string(key) {
		t.Fatalf("after a restart: address %s (was %s)", h2.Address(), addr)
	}
	s2 := connect(t, h2)
	reply, err := s2.Do(ctx, "kv", []byte(`{"op":"get","key":"k"}`))
	if err != nil || string(reply) != `{"value":"kept"}` {
		t.Fatalf("kv after a restart: %q, %v", reply, err)
	}
}

// TestTooLargeFailsFast: a request over the provider's published size limit
// fails at once on the requester's side, without being sent; a requester
// that does not check (an older one) gets the provider's too_large answer
// with its request's id, well before any resend, instead of waiting.
func TestTooLargeFailsFast(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a local mixnet")
	}
	n := startLocalnet(t, t.TempDir())
	h := startNetworkHost(t, n, t.TempDir(), Config{
		Services: []Service{echoService},
		Limits:   Limits{MaxRequestSize: 2000},
	})
	s := connect(t, h)
	if l := s.Descriptor.Limits; l == nil || l.MaxRequestSize != 2000 {
		t.Fatalf("published limits %+v", l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	big := make([]byte, 3000)
	_, err := s.Do(ctx, "echo", big)
	var tooLarge *requester.TooLargeError
	if e, ok := requester.AsError(err); !ok || e.Code != handlers.CodeTooLarge || !errors.As(err, &tooLarge) || tooLarge.Limit != 2000 {
		t.Fatalf("checked requester: %v", err)
	}
	// What TooLargeError says fits does fit, and one byte more does not.
	fits := tooLarge.MaxData()
	if _, err := s.Do(ctx, "echo", big[:fits+1]); !errors.As(err, &tooLarge) {
		t.Fatalf("%d bytes of data: %v, want TooLargeError", fits+1, err)
	}
	if reply, err := s.Do(ctx, "echo", big[:fits]); err != nil || len(reply) != fits {
		t.Fatalf("a request of %d bytes, within the limit: %d bytes back, %v", fits, len(reply), err)
	}

	// Without the check, the provider's answer reaches the caller before
	// the first resend (DefaultResend) would.
	uctx, ucancel := context.WithTimeout(context.Background(), testTimeout)
	defer ucancel()
	unchecked, err := requester.Connect(uctx, requester.Config{
		ProviderURL: "http://" + h.HTTPAddr(),
		ProviderKey: h.Key(),
		Client:      fastClient(t),
		Options:     requester.Options{MaxRequestSize: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unchecked.Close()
	fctx, fcancel := context.WithTimeout(ctx, requester.DefaultResend-time.Second)
	defer fcancel()
	_, err = unchecked.Do(fctx, "echo", big)
	if e, ok := requester.AsError(err); !ok || e.Code != handlers.CodeTooLarge || !strings.Contains(e.Message, "the limit is 2000") ||
		errors.As(err, &tooLarge) {
		t.Fatalf("unchecked requester: %v", err)
	}
}
