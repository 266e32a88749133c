package framework

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/handlers"
)

// TestShutdownDrains: Shutdown stops the HTTP endpoint and the intake,
// lets requests in flight and queued finish and send their replies, and
// closes the transport last.
func TestShutdownDrains(t *testing.T) {
	tr := newMemTransport(t)
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	started := make(chan struct{}, 10)
	var (
		mu     sync.Mutex
		events []string
	)
	record := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	tr.onClose = func() { record("transport closed") }
	h := startHost(t, tr, Config{
		Services: []Service{{
			ServiceInfo: handlers.ServiceInfo{Name: "block"},
			Handler: handlers.HandlerFunc(func(ctx context.Context, req *handlers.Request) ([]byte, error) {
				started <- struct{}{}
				<-release
				record("handled " + string(req.Data))
				return req.Data, nil
			}),
		}},
		Limits: Limits{MaxConcurrent: 1},
	})
	httpAddr := h.HTTPAddr()
	tag := newTag(t)
	tr.push(t, request(t, "1", "block", []byte("first")), &tag)
	<-started
	tr.push(t, request(t, "2", "block", []byte("second")), &tag)
	eventually(t, "the second request to be queued", func() bool { return h.queue.len() == 1 })

	done := make(chan error)
	go func() { done <- h.Shutdown(context.Background()) }()
	// The intake stops: the transport is no longer read.
	select {
	case <-h.recvDone:
	case <-time.After(testTimeout):
		t.Fatal("the intake did not stop")
	}
	if resp, err := http.Get("http://" + httpAddr + PathHealth); err == nil {
		resp.Body.Close()
		t.Error("the HTTP endpoint still answers after the intake stopped")
	}
	select {
	case tr.in <- Message{Data: request(t, "3", "block", nil), SenderTag: &tag}:
		t.Fatal("the host read a message after Shutdown began")
	case <-time.After(50 * time.Millisecond):
	}
	releaseOnce.Do(func() { close(release) })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for range 2 {
		rep := tr.parsedReply(t, tag)
		got[rep.ID] = string(rep.Data)
	}
	if got["1"] != "first" || got["2"] != "second" {
		t.Errorf("replies during the drain: %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(events, ", ") != "handled first, handled second, transport closed" {
		t.Errorf("order: %v", events)
	}
}

// TestShutdownDeadline: a handler that never returns does not hold
// Shutdown beyond its deadline.
func TestShutdownDeadline(t *testing.T) {
	tr := newMemTransport(t)
	started := make(chan struct{}, 1)
	hang := make(chan struct{})
	defer close(hang)
	h := startHost(t, tr, Config{
		Services: []Service{{
			ServiceInfo: handlers.ServiceInfo{Name: "hang"},
			Handler: handlers.HandlerFunc(func(ctx context.Context, req *handlers.Request) ([]byte, error) {
				started <- struct{}{}
				<-hang // ignores ctx
				return nil, nil
			}),
		}},
		Limits: Limits{MaxConcurrent: 1, RequestTimeout: time.Hour},
	})
	tag := newTag(t)
	tr.push(t, request(t, "1", "hang", nil), &tag)
	<-started
	tr.push(t, request(t, "2", "hang", nil), &tag) // queued behind it
	eventually(t, "the second request to be queued", func() bool { return h.queue.len() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Shutdown took %v with a 200ms deadline", d)
	}
	// The running request was cancelled, the queued one refused.
	for _, want := range []struct{ id, code string }{{"1", handlers.CodeHandlerFailed}, {"2", handlers.CodeOverloaded}} {
		rep := tr.parsedReply(t, tag)
		if rep.ID != want.id {
			t.Fatalf("reply to %q, want %q", rep.ID, want.id)
		}
		wantError(t, rep, want.code)
		if !strings.Contains(rep.Err.Message, "shutting down") {
			t.Errorf("message %q", rep.Err.Message)
		}
	}
}

// TestShutdownWithoutStart and twice.
func TestShutdownIdempotent(t *testing.T) {
	h, err := New(Config{DataDir: t.TempDir(), Transport: newMemTransport(t), Network: testNetwork})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err == nil {
		t.Error("Start after Close succeeded")
	}
}

// TestStartFailsCleanly: a port in use makes Start fail, and nothing keeps
// running.
func TestStartFailsCleanly(t *testing.T) {
	tr := newMemTransport(t)
	busy := startHost(t, newMemTransport(t), Config{})
	h, err := New(Config{DataDir: t.TempDir(), Transport: tr, Network: testNetwork, HTTP: HTTPConfig{Addr: busy.HTTPAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err == nil {
		t.Fatal("Start succeeded on a busy port")
	}
	select {
	case <-tr.closed:
	default:
		t.Error("the transport was not closed after a failed Start")
	}
}
