package directory

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// event is a request the server finished, as seen by watch.
type event struct {
	path   string
	status int
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// watch wraps a handler to report every finished request on events; failFirst
// register requests are answered 503 without reaching the server.
func watch(events chan<- event, failFirst int32) func(http.Handler) http.Handler {
	var failed atomic.Int32
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			if r.URL.Path == PathRegister && failed.Add(1) <= failFirst {
				writeJSON(rec, http.StatusServiceUnavailable, errorBody{Error: "try later"})
			} else {
				next.ServeHTTP(rec, r)
			}
			select {
			case events <- event{r.URL.Path, rec.status}:
			default: // the test stopped reading
			}
		})
	}
}

// nextEvent returns the next finished request.
func nextEvent(t *testing.T, events <-chan event) event {
	t.Helper()
	select {
	case e := <-events:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached the server within 10s")
		return event{}
	}
}

// expectEvent fails the test unless the next finished request is want.
func expectEvent(t *testing.T, events <-chan event, want event) {
	t.Helper()
	if e := nextEvent(t, events); e != want {
		t.Fatalf("request %+v, want %+v", e, want)
	}
}

// startRegistrar runs r until the returned cancel function is called, which
// returns Run's result.
func startRegistrar(t *testing.T, r *Registrar) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop = func() error {
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Registrar.Run did not return within 10s of its context ending")
			return nil
		}
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	return stop
}

func TestRegistrarKeepsNodeListed(t *testing.T) {
	clock := newFakeClock()
	cfg := Config{DataDir: t.TempDir(), Now: clock.Now, TTL: 10 * time.Second, Schedule: testSchedule()}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan event, 1024)
	ts := serveOn(t, s, cfg, watch(events, 0))
	n := newGateway(t)
	stop := startRegistrar(t, &Registrar{Client: ts.client, Descriptor: n.desc, Key: n.key, Interval: 20 * time.Millisecond})

	expectEvent(t, events, event{PathRegister, http.StatusOK})
	for range 4 { // 24s of server time in all, more than twice the TTL
		clock.Advance(6 * time.Second)
		// The second registration after the step surely started after it.
		expectEvent(t, events, event{PathRegister, http.StatusOK})
		expectEvent(t, events, event{PathRegister, http.StatusOK})
		if topo := ts.Topology(); len(topo.Gateways) != 1 || topo.Gateways[0].Identity != n.desc.Identity {
			t.Fatalf("the registrar's node is not listed: %+v", topo)
		}
	}

	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for e := nextEvent(t, events); e.path != PathDeregister; e = nextEvent(t, events) {
	}
	if topo := ts.Topology(); len(topo.Gateways) != 0 {
		t.Fatalf("after cancel the node is still listed: %+v", topo)
	}
}

func TestRegistrarRetriesAfterFailures(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), Schedule: testSchedule()}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan event, 1024)
	const failures = 3
	ts := serveOn(t, s, cfg, watch(events, failures))
	n := newMixnode(t, 2)
	stop := startRegistrar(t, &Registrar{Client: ts.client, Descriptor: n.desc, Key: n.key,
		Interval: time.Minute, RetryBackoff: time.Millisecond})
	for range failures {
		expectEvent(t, events, event{PathRegister, http.StatusServiceUnavailable})
	}
	expectEvent(t, events, event{PathRegister, http.StatusOK})
	if topo := ts.Topology(); len(topo.Mixnodes) != 1 {
		t.Fatalf("after the retries the node is not listed: %+v", topo)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Cancelling ends the minute-long wait at once and deregisters.
	expectEvent(t, events, event{PathDeregister, http.StatusOK})
}

func TestRegistrarReportsFailedDeregistration(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), Schedule: testSchedule()}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan event, 1024)
	ts := serveOn(t, s, cfg, watch(events, 0))
	n := newMixnode(t, 3)
	stop := startRegistrar(t, &Registrar{Client: ts.client, Descriptor: n.desc, Key: n.key, Interval: time.Minute})
	expectEvent(t, events, event{PathRegister, http.StatusOK})
	if err := s.Close(); err != nil { // the database is gone; the handler still answers
		t.Fatal(err)
	}
	if err := stop(); err == nil || !strings.Contains(err.Error(), "deregistering") {
		t.Fatalf("Run after a failed deregistration returned %v", err)
	}
}

func TestRegistrarRefusesBadInput(t *testing.T) {
	n, other := newMixnode(t, 1), newMixnode(t, 1)
	c := &Client{BaseURL: "http://127.0.0.1:1"}
	bad := n.desc
	bad.Address = "localhost:1"
	for name, r := range map[string]*Registrar{
		"no client":        {Descriptor: n.desc, Key: n.key},
		"bad descriptor":   {Client: c, Descriptor: bad, Key: n.key},
		"another's key":    {Client: c, Descriptor: n.desc, Key: other.key},
		"no key":           {Client: c, Descriptor: n.desc},
		"empty descriptor": {Client: c, Key: n.key},
	} {
		if err := r.Run(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "directory: ") {
			t.Errorf("%s: Run() = %v, want an immediate directory error", name, err)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	const backoff, limit = time.Second, 30 * time.Second
	for failures := 1; failures <= 100; failures++ {
		full := min(backoff<<min(failures-1, 10), limit)
		for range 20 {
			d := retryDelay(backoff, limit, failures)
			if d < full/2 || d > full {
				t.Fatalf("retryDelay after %d failures = %s, want within [%s, %s]", failures, d, full/2, full)
			}
		}
	}
}
