package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines decodes the JSON log lines written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestChainOrder(t *testing.T) {
	var order []string
	mw := func(name string) Middleware {
		return func(next Handler) Handler {
			return HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
				order = append(order, name+">")
				reply, err := next.Handle(ctx, req)
				order = append(order, "<"+name)
				return reply, err
			})
		}
	}
	h := Chain(HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		order = append(order, "h")
		return nil, nil
	}), mw("a"), mw("b"))
	if _, err := h.Handle(context.Background(), &Request{}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(order, " "), "a> b> h <b <a"; got != want {
		t.Errorf("order = %q, want %q", got, want)
	}
	if Chain(constHandler("x")) == nil {
		t.Error("Chain without middleware returned nil")
	}
}

func panicky(ctx context.Context, req *Request) ([]byte, error) {
	panic("boom")
}

func TestRecover(t *testing.T) {
	var logs syncBuffer
	h := Chain(HandlerFunc(panicky), Logging(zerolog.New(&logs)), Recover())
	reply, err := h.Handle(context.Background(), &Request{Service: "svc", Data: []byte("x")})
	if reply != nil || CodeOf(err) != CodeHandlerFailed {
		t.Fatalf("Handle = %q, %v; want handler_failed", reply, err)
	}
	if strings.Contains(err.Error(), "boom") {
		t.Errorf("error %q leaks the panic value to the requester", err)
	}
	lines := logs.lines(t)
	if len(lines) != 2 {
		t.Fatalf("want a panic line and a request line, got %v", lines)
	}
	p := lines[0]
	if p["panic"] != "boom" || p["service"] != "svc" || p["level"] != "error" {
		t.Errorf("panic line = %v", p)
	}
	if stack, _ := p["stack"].(string); !strings.Contains(stack, "panicky") {
		t.Errorf("panic line has no stack of the handler: %q", stack)
	}
	if lines[1]["code"] != CodeHandlerFailed {
		t.Errorf("request line = %v", lines[1])
	}
}

func TestRecoverWithoutLoggerStillRecovers(t *testing.T) {
	_, err := Recover()(HandlerFunc(panicky)).Handle(context.Background(), &Request{})
	if CodeOf(err) != CodeHandlerFailed {
		t.Fatalf("err = %v", err)
	}
}

func TestLogging(t *testing.T) {
	var logs syncBuffer
	const secret = "SECRET-PAYLOAD"
	h := Chain(HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		zerolog.Ctx(ctx).Info().Msg("from handler")
		if string(req.Data) == "fail" {
			return nil, Errorf(CodeBadRequest, "no good")
		}
		return []byte(secret + "-reply"), nil
	}), Logging(zerolog.New(&logs)))

	req := &Request{Service: "kv", ID: "ID-" + secret, Requester: "REQ-" + secret, Data: []byte(secret)}
	if _, err := h.Handle(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	req.Data = []byte("fail")
	if _, err := h.Handle(context.Background(), req); CodeOf(err) != CodeBadRequest {
		t.Fatalf("err = %v", err)
	}
	if _, err := h.Handle(context.Background(), &Request{Service: strings.Repeat("Q", 500)}); err != nil {
		t.Fatal(err)
	}

	out := logs.String()
	if strings.Contains(out, secret) {
		t.Errorf("log contains request data, id or requester:\n%s", out)
	}
	if strings.Contains(out, "QQQQ") {
		t.Errorf("log contains an invalid service name:\n%s", out)
	}
	lines := logs.lines(t)
	if len(lines) != 6 {
		t.Fatalf("want 3 handler lines and 3 request lines, got %d:\n%s", len(lines), out)
	}
	if l := lines[0]; l["message"] != "from handler" || l["service"] != "kv" {
		t.Errorf("handler's line = %v, want the service field from the context logger", l)
	}
	ok, failed := lines[1], lines[3]
	if ok["code"] != "ok" || ok["service"] != "kv" || ok["level"] != "info" {
		t.Errorf("success line = %v", ok)
	}
	if _, has := ok["duration"]; !has {
		t.Errorf("success line has no duration: %v", ok)
	}
	if failed["code"] != CodeBadRequest || failed["error"] != "bad_request: no good" {
		t.Errorf("failure line = %v", failed)
	}
	if lines[5]["service"] != "(invalid)" {
		t.Errorf("invalid service logged as %v", lines[5]["service"])
	}
}

func TestLoggingLevels(t *testing.T) {
	var logs syncBuffer
	h := Logging(zerolog.New(&logs))(HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		return nil, errors.New("disk on fire")
	}))
	_, _ = h.Handle(context.Background(), &Request{Service: "x"})
	if l := logs.lines(t)[0]; l["level"] != "warn" || l["code"] != CodeHandlerFailed {
		t.Errorf("line = %v, want warn handler_failed", l)
	}
}

func TestTimeoutHangingHandler(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	const d = 50 * time.Millisecond
	h := Timeout(d)(HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		<-release // ignores ctx
		return []byte("late"), nil
	}))
	start := time.Now()
	reply, err := h.Handle(context.Background(), &Request{Service: "slow"})
	elapsed := time.Since(start)
	if reply != nil || CodeOf(err) != CodeTimeout {
		t.Fatalf("Handle = %q, %v; want timeout", reply, err)
	}
	if elapsed < d || elapsed > d+time.Second {
		t.Errorf("returned after %v, want about %v", elapsed, d)
	}
}

func TestTimeoutHandlerSeesDeadline(t *testing.T) {
	h := Timeout(20 * time.Millisecond)(HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("no deadline")
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	_, err := h.Handle(context.Background(), &Request{})
	if CodeOf(err) != CodeTimeout {
		t.Errorf("err = %v, want timeout", err)
	}
}

func TestTimeoutPassesResult(t *testing.T) {
	h := Timeout(time.Minute)(HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		if string(req.Data) == "err" {
			return nil, Errorf(CodeOverloaded, "busy")
		}
		return append([]byte("re:"), req.Data...), nil
	}))
	reply, err := h.Handle(context.Background(), &Request{Data: []byte("x")})
	if err != nil || string(reply) != "re:x" {
		t.Errorf("Handle = %q, %v", reply, err)
	}
	if _, err := h.Handle(context.Background(), &Request{Data: []byte("err")}); CodeOf(err) != CodeOverloaded {
		t.Errorf("err = %v, want overloaded", err)
	}
}

// TestTimeoutCopiesData: a handler left running after the timeout must not
// share the caller's buffer (under -race a shared buffer is reported).
func TestTimeoutCopiesData(t *testing.T) {
	release := make(chan struct{})
	seen := make(chan string, 1)
	h := Timeout(10 * time.Millisecond)(HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		<-release
		seen <- string(req.Data)
		return nil, nil
	}))
	data := []byte("original")
	if _, err := h.Handle(context.Background(), &Request{Data: data}); CodeOf(err) != CodeTimeout {
		t.Fatalf("err = %v", err)
	}
	copy(data, "XXXXXXXX") // the caller reuses its buffer
	close(release)
	if got := <-seen; got != "original" {
		t.Errorf("handler saw %q, want its own copy %q", got, "original")
	}
}

func TestTimeoutPanicReachesRecover(t *testing.T) {
	var logs syncBuffer
	h := Chain(HandlerFunc(panicky), Logging(zerolog.New(&logs)), Recover(), Timeout(time.Minute))
	_, err := h.Handle(context.Background(), &Request{Service: "p"})
	if CodeOf(err) != CodeHandlerFailed {
		t.Fatalf("err = %v", err)
	}
	p := logs.lines(t)[0]
	if p["panic"] != "boom" {
		t.Errorf("panic line = %v", p)
	}
	if stack, _ := p["stack"].(string); !strings.Contains(stack, "panicky") {
		t.Errorf("stack is not the original panic's: %q", stack)
	}
}

func TestTimeoutPanicAfterReturnIsLogged(t *testing.T) {
	var logs syncBuffer
	release := make(chan struct{})
	h := Timeout(10 * time.Millisecond)(HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		<-release
		panic("late boom")
	}))
	ctx := zerolog.New(&logs).WithContext(context.Background())
	if _, err := h.Handle(ctx, &Request{Service: "p"}); CodeOf(err) != CodeTimeout {
		t.Fatalf("err = %v", err)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "late boom") {
		if time.Now().After(deadline) {
			t.Fatal("late panic was not logged")
		}
		time.Sleep(5 * time.Millisecond) // no signal exists: the handler runs detached
	}
}

func TestTimeoutParentCancelled(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := Timeout(time.Minute)(HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
		<-release
		return nil, nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := h.Handle(ctx, &Request{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestTimeoutDisabled(t *testing.T) {
	h := constHandler("x")
	for _, d := range []time.Duration{0, -time.Second} {
		if got := Timeout(d)(h); got == nil {
			t.Fatal("nil handler")
		}
		reply, err := Timeout(d)(h).Handle(context.Background(), &Request{})
		if err != nil || string(reply) != "x" {
			t.Errorf("Timeout(%v): %q, %v", d, reply, err)
		}
	}
}
