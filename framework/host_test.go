package framework

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/framework/envelope"
	"github.com/peapod-mixnet/peapod/handlers"
)

func TestEcho(t *testing.T) {
	tr := newMemTransport(t)
	startHost(t, tr, Config{Services: []Service{echoService}})
	tag := newTag(t)
	wantOK(t, tr.do(t, tag, "1", "echo", []byte("hello")), "hello")
	wantOK(t, tr.do(t, tag, "2", "echo", nil), "")
}

// TestBadRequests: every kind of bad request gets the right error code,
// with the request's id when one could be read.
func TestBadRequests(t *testing.T) {
	tr := newMemTransport(t)
	slow := Service{
		ServiceInfo: handlers.ServiceInfo{Name: "slow"},
		Handler: handlers.HandlerFunc(func(ctx context.Context, req *handlers.Request) ([]byte, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}),
	}
	failing := Service{
		ServiceInfo: handlers.ServiceInfo{Name: "fail"},
		Handler: handlers.HandlerFunc(func(ctx context.Context, req *handlers.Request) ([]byte, error) {
			switch string(req.Data) {
			case "plain":
				return nil, errors.New("secret internal detail")
			case "panic":
				panic("boom")
			case "code":
				return nil, handlers.Errorf("not_found", "no such thing")
			case "bad code":
				return nil, &handlers.Error{Code: "Not A Code", Message: "x"}
			case "big":
				return make([]byte, 101), nil
			}
			return nil, nil
		}),
	}
	startHost(t, tr, Config{
		Services: []Service{echoService, slow, failing},
		Limits:   Limits{RequestTimeout: 100 * time.Millisecond, MaxRequestSize: 1000, MaxReplySize: 100},
	})
	tag := newTag(t)
	raw := func(body string) *envelope.Reply {
		t.Helper()
		tr.push(t, []byte(body), &tag)
		return tr.parsedReply(t, tag)
	}

	tests := []struct {
		name, body, code, id, msg string
	}{
		{"not json", `hello`, handlers.CodeBadRequest, "", "not JSON"},
		{"not utf-8", "\xff\xfe", handlers.CodeBadRequest, "", "UTF-8"},
		{"missing id", `{"v":1,"service":"echo","data":""}`, handlers.CodeBadRequest, "", `"id"`},
		{"id too long", `{"v":1,"id":"` + strings.Repeat("i", 65) + `","service":"echo","data":""}`, handlers.CodeBadRequest, "", "64"},
		{"missing service", `{"v":1,"id":"a","data":""}`, handlers.CodeBadRequest, "a", `"service"`},
		{"missing data", `{"v":1,"id":"b","service":"echo"}`, handlers.CodeBadRequest, "b", `"data"`},
		{"bad base64", `{"v":1,"id":"c","service":"echo","data":"***"}`, handlers.CodeBadRequest, "c", "base64"},
		{"version", `{"v":7,"id":"d","service":"echo","data":""}`, handlers.CodeBadRequest, "d", "version"},
		{"trailing data", `{"v":1,"id":"e","service":"echo","data":""}x`, handlers.CodeBadRequest, "", "after"},
		{"too large", `{"v":1,"id":"f","service":"echo","data":"` + strings.Repeat("A", 1000) + `"}`, handlers.CodeTooLarge, "f", "limit"},
		{"too large, id after data", `{"v":1,"service":"echo","data":"` + strings.Repeat("A", 1000) + `","id":"f2"}`, handlers.CodeTooLarge, "", "limit"},
		{"unknown service", `{"v":1,"id":"g","service":"nope","data":""}`, handlers.CodeUnknownService, "g", "nope"},
		{"invalid service", `{"v":1,"id":"h","service":"NO PE","data":""}`, handlers.CodeUnknownService, "h", "invalid"},
		{"timeout", `{"v":1,"id":"i","service":"slow","data":""}`, handlers.CodeTimeout, "i", ""},
		{"handler error", `{"v":1,"id":"j","service":"fail","data":"cGxhaW4="}`, handlers.CodeHandlerFailed, "j", "handler failed"},
		{"handler panic", `{"v":1,"id":"k","service":"fail","data":"cGFuaWM="}`, handlers.CodeHandlerFailed, "k", ""},
		{"service code", `{"v":1,"id":"l","service":"fail","data":"Y29kZQ=="}`, "not_found", "l", "no such thing"},
		{"invalid code", `{"v":1,"id":"m","service":"fail","data":"YmFkIGNvZGU="}`, handlers.CodeHandlerFailed, "m", ""},
		{"reply too large", `{"v":1,"id":"n","service":"fail","data":"Ymln"}`, handlers.CodeTooLarge, "n", "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := raw(tt.body)
			wantError(t, rep, tt.code)
			if rep.ID != tt.id {
				t.Errorf("id %q, want %q", rep.ID, tt.id)
			}
			if !strings.Contains(rep.Err.Message, tt.msg) {
				t.Errorf("message %q does not mention %q", rep.Err.Message, tt.msg)
			}
			if strings.Contains(rep.Err.Message, "secret") {
				t.Errorf("message %q leaks an internal error", rep.Err.Message)
			}
		})
	}
	// The host is still serving.
	wantOK(t, tr.do(t, tag, "z", "echo", []byte("still here")), "still here")
}

// TestNoSenderTag: a request without reply SURBs cannot be answered; it is
// dropped, and the host goes on.
func TestNoSenderTag(t *testing.T) {
	tr := newMemTransport(t)
	var calls atomic.Int32
	h := startHost(t, tr, Config{Services: []Service{{
		ServiceInfo: handlers.ServiceInfo{Name: "count"},
		Handler: handlers.HandlerFunc(func(ctx context.Context, req *handlers.Request) ([]byte, error) {
			calls.Add(1)
			return nil, nil
		}),
	}}})
	tr.push(t, request(t, "1", "count", nil), nil)
	tr.push(t, []byte("garbage"), nil)
	tag := newTag(t)
	wantOK(t, tr.do(t, tag, "2", "count", nil), "")
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want once (only the request with a tag)", n)
	}
	_, body := get(t, h, PathMetrics)
	if !strings.Contains(string(body), `peapod_provider_dropped_messages_total{reason="no_reply_surbs"} 2`) {
		t.Errorf("metrics do not count 2 dropped messages:\n%s", grepLines(string(body), "dropped"))
	}
}

// TestIdempotence: a repeated request gets the first reply and does not
// run again, also while the first is still running; another sender's
// request with the same id runs; the memory ends with the window.
func TestIdempotence(t *testing.T) {
	tr := newMemTransport(t)
	var (
		calls   atomic.Int32
		release = make(chan struct{})
		started = make(chan struct{}, 10)
	)
	clock := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	startHost(t, tr, Config{
		Now: clock.Now,
		Services: []Service{{
			ServiceInfo: handlers.ServiceInfo{Name: "count"},
			Handler: handlers.HandlerFunc(func(ctx context.Context, req *handlers.Request) ([]byte, error) {
				n := calls.Add(1)
				if string(req.Data) == "wait" {
					started <- struct{}{}
					<-release
				}
				return fmt.Appendf(nil, "call %d", n), nil
			}),
		}},
		Idempotence: IdempotenceConfig{Window: time.Minute},
	})
	a, b := newTag(t), newTag(t)

	wantOK(t, tr.do(t, a, "x", "count", nil), "call 1")
	wantOK(t, tr.do(t, a, "x", "count", []byte("different data, same id")), "call 1")
	wantOK(t, tr.do(t, b, "x", "count", nil), "call 2") // another sender
	wantOK(t, tr.do(t, a, "y", "count", nil), "call 3") // another id

	// A duplicate of a running request waits for it.
	tr.push(t, request(t, "w", "count", []byte("wait")), &a)
	<-started
	tr.push(t, request(t, "w", "count", []byte("wait")), &a)
	tr.push(t, request(t, "w", "count", []byte("wait")), &a)
	tr.noReply(t, 50*time.Millisecond)
	close(release)
	for range 3 {
		wantOK(t, tr.parsedReply(t, a), "call 4")
	}
	if n := calls.Load(); n != 4 {
		t.Fatalf("handler ran %d times, want 4", n)
	}

	// After the window, the same id runs again.
	clock.Add(time.Minute + time.Second)
	wantOK(t, tr.do(t, a, "x", "count", nil), "call 5")
}

// TestIdempotenceOfErrors: a request refused before it ran (overloaded) is
// forgotten, so that a retry runs; one that ran and failed is remembered.
func TestIdempotenceOfErrors(t *testing.T) {
	tr := newMemTransport(t)
	var calls atomic.Int32
	startHost(t, tr, Config{Services: []Service{{
		ServiceInfo: handlers.ServiceInfo{Name: "flaky"},
		Handler: handlers.HandlerFunc(func(ctx context.Context, req *handlers.Request) ([]byte, error) {
			if calls.Add(1) == 1 {
				return nil, handlers.Errorf("not_ready", "first call fails")
			}
			return []byte("ok"), nil
		}),
	}}})
	tag := newTag(t)
	wantError(t, tr.do(t, tag, "1", "flaky", nil), "not_ready")
	wantError(t, tr.do(t, tag, "1", "flaky", nil), "not_ready") // remembered, not run
	wantOK(t, tr.do(t, tag, "2", "flaky", nil), "ok")
	if n := calls.Load(); n != 2 {
		t.Errorf("handler ran %d times, want 2", n)
	}
}

// TestOverloaded: with every slot busy and the queue full, a request is
// answered "overloaded" at once, and a retry of it runs once there is room.
func TestOverloaded(t *testing.T) {
	tr := newMemTransport(t)
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	h := startHost(t, tr, Config{
		Services: []Service{{
			ServiceInfo: handlers.ServiceInfo{Name: "block"},
			Handler: handlers.HandlerFunc(func(ctx context.Context, req *handlers.Request) ([]byte, error) {
				started <- struct{}{}
				<-release
				return req.Data, nil
			}),
		}},
		Limits: Limits{MaxConcurrent: 1, QueueSize: 1},
	})
	tag := newTag(t)
	tr.push(t, request(t, "running", "block", []byte("1")), &tag)
	<-started
	tr.push(t, request(t, "queued", "block", []byte("2")), &tag)
	// Wait until the second sits in the queue (it is taken off the
	// transport before it is queued; the queue length is the signal).
	eventually(t, "the request to be queued", func() bool { return h.queue.len() == 1 })
	start := time.Now()
	rep := tr.do(t, tag, "refused", "block", []byte("3"))
	wantError(t, rep, handlers.CodeOverloaded)
	if rep.ID != "refused" {
		t.Errorf("id %q", rep.ID)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("overloaded reply took %v; it must come at once", d)
	}
	close(release)
	got := map[string]string{}
	for range 2 {
		rep := tr.parsedReply(t, tag)
		got[rep.ID] = string(rep.Data)
	}
	if got["running"] != "1" || got["queued"] != "2" {
		t.Errorf("replies %v", got)
	}
	// The refused request was not remembered: a retry runs.
	wantOK(t, tr.do(t, tag, "refused", "block", []byte("3")), "3")
	_, body := get(t, h, PathMetrics)
	if !strings.Contains(string(body), `peapod_provider_requests_total{outcome="overloaded",service="block"} 1`) {
		t.Errorf("metrics:\n%s", grepLines(string(body), "requests_total"))
	}
}

// TestRequesterID: handlers see an opaque id, stable for a sender tag
// across restarts, different for other tags and other providers.
func TestRequesterID(t *testing.T) {
	who := Service{
		ServiceInfo: handlers.ServiceInfo{Name: "who"},
		Handler: handlers.HandlerFunc(func(ctx context.Context, req *handlers.Request) ([]byte, error) {
			return []byte(req.Requester), nil
		}),
	}
	dir := t.TempDir()
	a, b := newTag(t), newTag(t)
	ask := func(dataDir string, tag address.SenderTag) string {
		tr := newMemTransport(t)
		h := startHost(t, tr, Config{DataDir: dataDir, Services: []Service{who}})
		defer h.Close()
		rep := tr.do(t, tag, "1", "who", nil)
		if rep.Err != nil {
			t.Fatalf("error %v", rep.Err)
		}
		return string(rep.Data)
	}
	first := ask(dir, a)
	if len(first) != 22 || strings.Contains(first, a.String()) {
		t.Errorf("requester id %q: want 22 opaque characters", first)
	}
	if again := ask(dir, a); again != first {
		t.Errorf("after a restart the id changed: %q, then %q", first, again)
	}
	if other := ask(dir, b); other == first {
		t.Error("two tags share an id")
	}
	if elsewhere := ask(t.TempDir(), a); elsewhere == first {
		t.Error("two providers derive the same id for a tag")
	}
}

// TestConcurrentRequests runs many requests from many senders at once.
func TestConcurrentRequests(t *testing.T) {
	tr := newMemTransport(t)
	startHost(t, tr, Config{Services: []Service{echoService}, Limits: Limits{MaxConcurrent: 4, QueueSize: 1000}})
	const senders, each = 8, 25
	tags := make([]address.SenderTag, senders)
	for i := range tags {
		tags[i] = newTag(t)
	}
	var wg sync.WaitGroup
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				tag := tags[i]
				tr.in <- Message{Data: request(t, fmt.Sprint(j), "echo", fmt.Appendf(nil, "%d-%d", i, j)), SenderTag: &tag}
			}
		}()
	}
	got := make(map[string]bool)
	for range senders * each {
		r := tr.reply(t)
		rep, err := envelope.ParseReply(r.data)
		if err != nil || rep.Err != nil {
			t.Fatalf("reply %s: %v", r.data, err)
		}
		got[string(rep.Data)] = true
	}
	wg.Wait()
	if len(got) != senders*each {
		t.Errorf("%d distinct replies, want %d", len(got), senders*each)
	}
}

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
