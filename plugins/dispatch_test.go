package plugins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/peapod-mixnet/peapod/handlers"
	pluginpb "github.com/peapod-mixnet/peapod/plugins/proto"
)

// serveLoopback serves srv under desc on a real loopback TCP socket, and
// returns the server and a client connection to it.
func serveLoopback(t *testing.T, desc *grpc.ServiceDesc, srv pluginpb.HandlerServer) (*grpc.Server, pluginpb.HandlerClient) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	gs.RegisterService(desc, srv)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return gs, pluginpb.NewHandlerClient(conn)
}

// counting wraps a HandlerServer and counts the Handle calls and Dispatch
// streams it serves.
type counting struct {
	pluginpb.HandlerServer
	handles, streams atomic.Int32
}

func (c *counting) Handle(ctx context.Context, in *pluginpb.HandleRequest) (*pluginpb.HandleResponse, error) {
	c.handles.Add(1)
	return c.HandlerServer.Handle(ctx, in)
}

func (c *counting) Dispatch(stream pluginpb.Handler_DispatchServer) error {
	c.streams.Add(1)
	return c.HandlerServer.Dispatch(stream)
}

// blocker is a service whose requests wait until release is closed or
// their context ends; it reports each start on started and the end of
// each context on ended.
type blocker struct {
	started chan string // the request data, as each request starts
	ended   chan error  // the context's error, for a request whose context ended
	release chan struct{}
	// deadlines receives, for a request that has a deadline, the time left.
	deadlines chan time.Duration
}

func newBlocker(n int) *blocker {
	return &blocker{
		started:   make(chan string, n),
		ended:     make(chan error, n),
		release:   make(chan struct{}),
		deadlines: make(chan time.Duration, n),
	}
}

func (b *blocker) Handle(ctx context.Context, req *handlers.Request) ([]byte, error) {
	if d, ok := ctx.Deadline(); ok {
		b.deadlines <- time.Until(d)
	}
	b.started <- string(req.Data)
	select {
	case <-b.release:
		return req.Data, nil
	case <-ctx.Done():
		b.ended <- ctx.Err()
		return nil, ctx.Err()
	}
}

// blockerServer serves "echo" (see testServices) and "block", b.
func blockerServer(t *testing.T, b *blocker) *server {
	t.Helper()
	services := append(testServices(), Service{Name: "block", Handler: b})
	srv, err := newServer(zerolog.Nop(), services)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// receiveN receives n values from ch, failing the test after timeout.
func receiveN[T any](t *testing.T, ch <-chan T, n int, timeout time.Duration) []T {
	t.Helper()
	out := make([]T, 0, n)
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case v := <-ch:
			out = append(out, v)
		case <-deadline:
			t.Fatalf("got %d of %d values in %v", len(out), n, timeout)
		}
	}
	return out
}

// Many goroutines share one stream, and every caller gets its own reply.
func TestDispatchConcurrent(t *testing.T) {
	srv := &counting{HandlerServer: blockerServer(t, newBlocker(0))}
	_, c := serveLoopback(t, &pluginpb.Handler_ServiceDesc, srv)
	d := newDispatcher(c, zerolog.Nop(), 1<<20)
	t.Cleanup(d.close)

	const callers, calls = 32, 50
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				// Sizes vary so that replies finish out of order.
				data := bytes.Repeat([]byte(fmt.Sprintf("%d/%d;", g, i)), 1+(g*calls+i)%200)
				got, err := d.call(ctx, &handlers.Request{Service: "echo", ID: "x", Data: data})
				if err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("caller %d call %d: %d bytes, %v", g, i, len(got), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s, h := srv.streams.Load(), srv.handles.Load(); s != 1 || h != 0 {
		t.Errorf("%d streams and %d Handle calls, want 1 stream and no Handle call", s, h)
	}
}

// A caller that gives up returns at once, and the plugin learns of it:
// the handler's context ends with context.Canceled. A deadline reaches the
// handler as the context's deadline.
func TestDispatchCancel(t *testing.T) {
	b := newBlocker(4)
	_, c := serveLoopback(t, &pluginpb.Handler_ServiceDesc, blockerServer(t, b))
	d := newDispatcher(c, zerolog.Nop(), 1<<20)
	t.Cleanup(d.close)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := d.call(ctx, &handlers.Request{Service: "block", Data: []byte("cancel me")})
		done <- err
	}()
	receiveN(t, b.started, 1, 10*time.Second)
	cancel()
	if err := receiveN(t, done, 1, 5*time.Second)[0]; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: %v", err)
	}
	if err := receiveN(t, b.ended, 1, 5*time.Second)[0]; !errors.Is(err, context.Canceled) {
		t.Errorf("the handler's context ended with %v, want context.Canceled (the cancel message)", err)
	}

	const timeout = 300 * time.Millisecond
	ctx, cancel = context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	_, err := d.call(ctx, &handlers.Request{Service: "block", Data: []byte("time me out")})
	if handlers.CodeOf(err) != handlers.CodeTimeout {
		t.Errorf("call past its deadline: %v", err)
	}
	if el := time.Since(start); el > timeout+2*time.Second {
		t.Errorf("call with a %v timeout returned after %v", timeout, el)
	}
	if left := receiveN(t, b.deadlines, 1, time.Second)[0]; left <= 0 || left > timeout {
		t.Errorf("the handler saw %v left, want at most %v", left, timeout)
	}
	receiveN(t, b.ended, 1, 5*time.Second)

	// The stream still works.
	if got, err := d.call(context.Background(), &handlers.Request{Service: "echo", Data: []byte("after")}); err != nil || string(got) != "after" {
		t.Errorf("after cancellations: %q, %v", got, err)
	}
}

// A plugin that dies fails every call in flight at once, long before their
// deadlines.
func TestDispatchServerDeathFailsInFlight(t *testing.T) {
	const n = 8
	b := newBlocker(n)
	gs, c := serveLoopback(t, &pluginpb.Handler_ServiceDesc, blockerServer(t, b))
	d := newDispatcher(c, zerolog.Nop(), 1<<20)
	t.Cleanup(d.close)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := d.call(ctx, &handlers.Request{Service: "block", Data: []byte{byte(i)}})
			errs <- err
		}()
	}
	receiveN(t, b.started, n, 10*time.Second)
	start := time.Now()
	gs.Stop()
	for _, err := range receiveN(t, errs, n, 10*time.Second) {
		if handlers.CodeOf(err) != handlers.CodeHandlerFailed {
			t.Errorf("call in flight when the plugin died: %v, want handler_failed", err)
		}
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("calls in flight failed %v after the plugin died", el)
	}
}

// scripted is a plugin whose Dispatch streams run script, numbered from 1.
type scripted struct {
	pluginpb.UnimplementedHandlerServer
	streams atomic.Int32
	script  func(n int32, stream pluginpb.Handler_DispatchServer) error
}

func (s *scripted) Dispatch(stream pluginpb.Handler_DispatchServer) error {
	return s.script(s.streams.Add(1), stream)
}

// echoStream answers every request on stream with its data.
func echoStream(stream pluginpb.Handler_DispatchServer) error {
	for {
		in, err := stream.Recv()
		if err != nil {
			return err
		}
		if err := stream.Send(&pluginpb.HandleResponse{CallId: in.GetCallId(), Data: in.GetData()}); err != nil {
			return err
		}
	}
}

// An answer with a call id that was never sent breaks the stream; the next
// call gets a new one. An answer to a call that gave up is dropped.
func TestDispatchStreamBrokenByBadAnswer(t *testing.T) {
	srv := &scripted{script: func(n int32, stream pluginpb.Handler_DispatchServer) error {
		in, err := stream.Recv()
		if err != nil {
			return err
		}
		switch n {
		case 1:
			// An id the host never sent.
			_ = stream.Send(&pluginpb.HandleResponse{CallId: in.GetCallId() + 100, Data: []byte("bogus")})
			<-stream.Context().Done()
			return nil
		case 2:
			// Answer a call only after it was cancelled, then echo.
			cancelMsg, err := stream.Recv()
			if err != nil {
				return err
			}
			if !cancelMsg.GetCancel() || cancelMsg.GetCallId() != in.GetCallId() {
				return fmt.Errorf("want a cancel for %d, got %v", in.GetCallId(), cancelMsg)
			}
			if err := stream.Send(&pluginpb.HandleResponse{CallId: in.GetCallId(), Data: []byte("late")}); err != nil {
				return err
			}
		}
		if err := stream.Send(&pluginpb.HandleResponse{CallId: in.GetCallId(), Data: in.GetData()}); err != nil {
			return err
		}
		return echoStream(stream)
	}}
	_, c := serveLoopback(t, &pluginpb.Handler_ServiceDesc, srv)
	var logs logBuffer
	d := newDispatcher(c, zerolog.New(&logs), 1<<20)
	t.Cleanup(d.close)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := d.call(ctx, &handlers.Request{Service: "s", Data: []byte("one")})
	if handlers.CodeOf(err) != handlers.CodeHandlerFailed {
		t.Errorf("call answered with a bad id: %v, want handler_failed", err)
	}
	if !strings.Contains(logs.String(), "never sent") {
		t.Errorf("the bad answer was not logged: %s", logs.String())
	}

	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if _, err := d.call(short, &handlers.Request{Service: "s", Data: []byte("two")}); handlers.CodeOf(err) != handlers.CodeTimeout {
		t.Errorf("unanswered call: %v, want timeout", err)
	}
	for i := range 3 {
		want := fmt.Sprintf("three-%d", i)
		if got, err := d.call(ctx, &handlers.Request{Service: "s", Data: []byte(want)}); err != nil || string(got) != want {
			t.Errorf("call after a late answer: %q, %v; want %q", got, err, want)
		}
	}
	if n := srv.streams.Load(); n != 2 {
		t.Errorf("%d streams opened, want 2", n)
	}
}

// A plugin that stops reading its stream cannot hold a caller past its
// deadline: the stream is reset.
func TestDispatchStalledPlugin(t *testing.T) {
	srv := &scripted{script: func(n int32, stream pluginpb.Handler_DispatchServer) error {
		if n == 1 {
			<-stream.Context().Done() // never reads
			return nil
		}
		return echoStream(stream)
	}}
	_, c := serveLoopback(t, &pluginpb.Handler_ServiceDesc, srv)
	d := newDispatcher(c, zerolog.Nop(), 1<<20)
	t.Cleanup(d.close)

	// Enough data to fill the flow-control windows several times over.
	const callers = 12
	const timeout = 300 * time.Millisecond
	data := make([]byte, maxStreamRequest)
	start := time.Now()
	errs := make(chan error, callers)
	for range callers {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			_, err := d.call(ctx, &handlers.Request{Service: "s", Data: data})
			errs <- err
		}()
	}
	for _, err := range receiveN(t, errs, callers, 10*time.Second) {
		if c := handlers.CodeOf(err); c != handlers.CodeTimeout && c != handlers.CodeHandlerFailed {
			t.Errorf("call to a stalled plugin: %v, want timeout or handler_failed", err)
		}
	}
	if el := time.Since(start); el > timeout+sendStallGrace+2*time.Second {
		t.Errorf("calls to a stalled plugin returned after %v", el)
	}
	got, err := d.call(context.Background(), &handlers.Request{Service: "s", Data: []byte("again")})
	if err != nil || string(got) != "again" {
		t.Errorf("call on a new stream: %q, %v", got, err)
	}
}

// A plugin built from the old handler.proto (no Dispatch) is served with
// Handle calls, including the calls that were on their way when the host
// learned it.
func TestDispatchFallsBackToHandle(t *testing.T) {
	srv := &counting{HandlerServer: blockerServer(t, newBlocker(0))}
	old := pluginpb.Handler_ServiceDesc
	old.Streams = nil
	_, c := serveLoopback(t, &old, srv)
	var logs logBuffer
	d := newDispatcher(c, zerolog.New(&logs), 1<<20)
	t.Cleanup(d.close)

	const callers = 16
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, callers)
	for i := range callers {
		go func() {
			want := fmt.Sprint("call ", i)
			got, err := d.call(ctx, &handlers.Request{Service: "echo", Data: []byte(want)})
			if err == nil && string(got) != want {
				err = fmt.Errorf("got %q, want %q", got, want)
			}
			errs <- err
		}()
	}
	for _, err := range receiveN(t, errs, callers, 30*time.Second) {
		if err != nil {
			t.Error(err)
		}
	}
	if !d.unary.Load() {
		t.Error("the dispatcher did not switch to Handle")
	}
	if h := srv.handles.Load(); h != callers {
		t.Errorf("%d Handle calls, want %d", h, callers)
	}
	if strings.Count(logs.String(), "does not implement Dispatch") != 1 {
		t.Errorf("want the switch logged once: %s", logs.String())
	}
	if strings.Contains(logs.String(), `"level":"warn"`) {
		t.Errorf("the switch logged warnings: %s", logs.String())
	}
}

// Requests larger than maxStreamRequest take a Handle call of their own.
func TestDispatchLargeRequestUsesHandle(t *testing.T) {
	srv := &counting{HandlerServer: blockerServer(t, newBlocker(0))}
	_, c := serveLoopback(t, &pluginpb.Handler_ServiceDesc, srv)
	d := newDispatcher(c, zerolog.Nop(), 4<<20)
	t.Cleanup(d.close)
	for _, size := range []int{maxStreamRequest, maxStreamRequest + 1} {
		data := bytes.Repeat([]byte{7}, size)
		got, err := d.call(context.Background(), &handlers.Request{Service: "echo", Data: data})
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%d bytes: got %d bytes, %v", size, len(got), err)
		}
	}
	if s, h := srv.streams.Load(), srv.handles.Load(); s != 1 || h != 1 {
		t.Errorf("%d streams and %d Handle calls, want one of each", s, h)
	}
}

// A plugin serves at most maxStreamCalls requests of a stream at once and
// answers the next one with overloaded.
func TestServeDispatchOverloaded(t *testing.T) {
	b := newBlocker(maxStreamCalls + 1)
	_, c := serveLoopback(t, &pluginpb.Handler_ServiceDesc, blockerServer(t, b))
	d := newDispatcher(c, zerolog.Nop(), 1<<20)
	t.Cleanup(d.close)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, maxStreamCalls)
	for range maxStreamCalls {
		go func() {
			_, err := d.call(ctx, &handlers.Request{Service: "block", Data: []byte("x")})
			errs <- err
		}()
	}
	receiveN(t, b.started, maxStreamCalls, 30*time.Second)
	if _, err := d.call(ctx, &handlers.Request{Service: "echo", Data: []byte("one too many")}); handlers.CodeOf(err) != handlers.CodeOverloaded {
		t.Errorf("call beyond the limit: %v, want overloaded", err)
	}
	close(b.release)
	for _, err := range receiveN(t, errs, maxStreamCalls, 30*time.Second) {
		if err != nil {
			t.Errorf("call within the limit: %v", err)
			break
		}
	}
	if got, err := d.call(ctx, &handlers.Request{Service: "echo", Data: []byte("now")}); err != nil || string(got) != "now" {
		t.Errorf("after the others finished: %q, %v", got, err)
	}
}

// The plugin side of Dispatch is strict about call ids, and answers what is
// in flight before it ends a stream the host half-closed.
func TestServeDispatchProtocol(t *testing.T) {
	b := newBlocker(4)
	_, c := serveLoopback(t, &pluginpb.Handler_ServiceDesc, blockerServer(t, b))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for name, msgs := range map[string][]*pluginpb.HandleRequest{
		"no call id":        {{Service: "echo", Data: []byte("x")}},
		"duplicate call id": {{CallId: 7, Service: "block"}, {CallId: 7, Service: "echo"}},
	} {
		rs, err := c.Dispatch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if err := rs.Send(m); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		for {
			_, err := rs.Recv()
			if err != nil {
				if status.Code(err) != codes.InvalidArgument {
					t.Errorf("%s: stream ended with %v, want InvalidArgument", name, err)
				}
				break
			}
		}
	}
	receiveN(t, b.ended, 1, 5*time.Second) // the duplicate's first request

	rs, err := c.Dispatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&pluginpb.HandleRequest{CallId: 1, Service: "block", Data: []byte("slow")}); err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&pluginpb.HandleRequest{CallId: 2, Service: "echo", Data: []byte("fast")}); err != nil {
		t.Fatal(err)
	}
	if err := rs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	receiveN(t, b.started, 1, 5*time.Second)
	resp, err := rs.Recv()
	if err != nil || resp.GetCallId() != 2 || string(resp.GetData()) != "fast" {
		t.Fatalf("first answer: %v, %v; want call 2", resp, err)
	}
	close(b.release)
	resp, err = rs.Recv()
	if err != nil || resp.GetCallId() != 1 || string(resp.GetData()) != "slow" {
		t.Fatalf("second answer: %v, %v; want call 1", resp, err)
	}
	if _, err := rs.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last answer: %v, want the end of the stream", err)
	}
}

// An answer over the host's size limit breaks the stream (its call cannot
// be told from the others): the calls in flight fail with handler_failed,
// and the next call gets a new stream.
func TestDispatchOversizedAnswer(t *testing.T) {
	const limit = 1 << 10
	srv := &scripted{script: func(n int32, stream pluginpb.Handler_DispatchServer) error {
		if n == 1 {
			in, err := stream.Recv()
			if err != nil {
				return err
			}
			_ = stream.Send(&pluginpb.HandleResponse{CallId: in.GetCallId(), Data: make([]byte, limit+replyOverhead+1)})
			<-stream.Context().Done()
			return nil
		}
		return echoStream(stream)
	}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pluginpb.RegisterHandlerServer(gs, srv)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	// The host's receive limit, as the supervisor sets it.
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(limit+replyOverhead)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	d := newDispatcher(pluginpb.NewHandlerClient(conn), zerolog.Nop(), limit)
	t.Cleanup(d.close)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := d.call(ctx, &handlers.Request{Service: "s", Data: []byte("x")}); handlers.CodeOf(err) != handlers.CodeHandlerFailed {
		t.Errorf("call answered over the limit: %v, want handler_failed", err)
	}
	if got, err := d.call(ctx, &handlers.Request{Service: "s", Data: []byte("y")}); err != nil || string(got) != "y" {
		t.Errorf("next call: %q, %v", got, err)
	}
	if n := srv.streams.Load(); n != 2 {
		t.Errorf("%d streams, want 2", n)
	}
}
