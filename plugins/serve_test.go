package plugins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/peapod-mixnet/peapod/handlers"
	pluginpb "github.com/peapod-mixnet/peapod/plugins/proto"
)

func testServices() []Service {
	return []Service{
		{Name: "echo", Description: "echoes", Handler: handlers.HandlerFunc(func(ctx context.Context, req *handlers.Request) ([]byte, error) {
			return req.Data, nil
		})},
		{Name: "fail", Description: "fails", Handler: handlers.HandlerFunc(func(ctx context.Context, req *handlers.Request) ([]byte, error) {
			switch string(req.Data) {
			case "panic":
				panic("fail: asked to panic")
			case "plain":
				return nil, errors.New("plain failure")
			case "deadline":
				return nil, context.DeadlineExceeded
			case "badcode":
				return nil, &handlers.Error{Code: "Bad Code", Message: "x"}
			case "long":
				return nil, &handlers.Error{Code: "not_found", Message: strings.Repeat("é", MaxErrorMessageLen)}
			case "meta":
				return []byte(req.Service + "|" + req.Requester + "|" + req.ID), nil
			}
			return nil, handlers.Errorf("not_found", "no %s here", req.Data)
		})},
	}
}

func TestNewServerRejects(t *testing.T) {
	h := handlers.HandlerFunc(func(context.Context, *handlers.Request) ([]byte, error) { return nil, nil })
	many := make([]Service, MaxServices+1)
	for i := range many {
		many[i] = Service{Name: "s" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Handler: h}
	}
	for name, services := range map[string][]Service{
		"none":             nil,
		"bad name":         {{Name: "Bad", Handler: h}},
		"empty name":       {{Name: "", Handler: h}},
		"duplicate":        {{Name: "a", Handler: h}, {Name: "a", Handler: h}},
		"nil handler":      {{Name: "a"}},
		"long description": {{Name: "a", Description: strings.Repeat("d", MaxDescriptionLen+1), Handler: h}},
		"too many":         many,
	} {
		if _, err := newServer(zerolog.Nop(), services); err == nil {
			t.Errorf("%s: newServer accepted", name)
		} else if !strings.HasPrefix(err.Error(), "plugins: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
}

func TestServeWithoutHost(t *testing.T) {
	t.Setenv(Handshake.MagicCookieKey, "")
	err := Serve(testServices()...)
	if err == nil || !strings.Contains(err.Error(), "not meant to be run by hand") {
		t.Errorf("Serve without the cookie = %v", err)
	}
	if err := Serve(); err == nil {
		t.Error("Serve with no services succeeded")
	}
	t.Setenv(DataDirEnv, "")
	if _, err := DataDir(); err == nil {
		t.Error("DataDir with the variable unset succeeded")
	}
	t.Setenv(DataDirEnv, "/data/x")
	if dir, err := DataDir(); err != nil || dir != "/data/x" {
		t.Errorf("DataDir = %q, %v", dir, err)
	}
}

// loopback serves srv over gRPC on a real loopback TCP socket and returns a
// client for it.
func loopback(t *testing.T, srv pluginpb.HandlerServer) pluginpb.HandlerClient {
	t.Helper()
	_, client := serveLoopback(t, &pluginpb.Handler_ServiceDesc, srv)
	return client
}

// testDispatcher returns a dispatcher for c that uses Dispatch streams, or
// only Handle calls if unary is set.
func testDispatcher(c pluginpb.HandlerClient, log zerolog.Logger, maxReply int, unary bool) *dispatcher {
	d := newDispatcher(c, log, maxReply)
	d.unary.Store(unary)
	return d
}

func TestServerOverLoopback(t *testing.T) {
	for _, mode := range []string{"stream", "unary"} {
		t.Run(mode, func(t *testing.T) { testServerOverLoopback(t, mode == "unary") })
	}
}

func testServerOverLoopback(t *testing.T, unary bool) {
	var logs logBuffer
	srv, err := newServer(zerolog.New(&logs), testServices())
	if err != nil {
		t.Fatal(err)
	}
	c := loopback(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	services, err := describe(ctx, c, 1<<20)
	if err != nil || len(services) != 2 || services[0] != (handlers.ServiceInfo{Name: "echo", Description: "echoes"}) {
		t.Fatalf("describe = %v, %v", services, err)
	}
	if got := srv.maxReply.Load(); got != 1<<20 {
		t.Errorf("the server noted a reply limit of %d, want %d", got, 1<<20)
	}

	d := testDispatcher(c, zerolog.Nop(), 1<<20, unary)
	t.Cleanup(d.close)
	do := func(service, data string) ([]byte, error) {
		return d.call(ctx, &handlers.Request{Service: service, ID: "i", Requester: "r", Data: []byte(data)})
	}
	if got, err := do("echo", "hi"); err != nil || string(got) != "hi" {
		t.Errorf("echo = %q, %v", got, err)
	}
	if got, err := do("fail", "meta"); err != nil || string(got) != "fail|r|i" {
		t.Errorf("meta = %q, %v", got, err)
	}
	tests := []struct{ data, code, msg string }{
		{"panic", handlers.CodeHandlerFailed, "handler panicked"},
		{"plain", handlers.CodeHandlerFailed, "the handler failed"},
		{"deadline", handlers.CodeTimeout, ""},
		{"badcode", handlers.CodeHandlerFailed, "invalid error code"},
		{"other", "not_found", "no other here"},
	}
	for _, tt := range tests {
		_, err := do("fail", tt.data)
		var he *handlers.Error
		if !errors.As(err, &he) || he.Code != tt.code || !strings.Contains(he.Message, tt.msg) {
			t.Errorf("%s: %v, want %s containing %q", tt.data, err, tt.code, tt.msg)
		}
	}
	_, err = do("fail", "long")
	var he *handlers.Error
	if !errors.As(err, &he) || len(he.Message) > MaxErrorMessageLen || !utf8.ValidString(he.Message) {
		t.Errorf("long message: %d bytes, valid UTF-8 %v", len(he.Message), utf8.ValidString(he.Message))
	}
	if _, err := do("missing", "x"); handlers.CodeOf(err) != handlers.CodeUnknownService {
		t.Errorf("unknown service: %v", err)
	}
	if !strings.Contains(logs.String(), "fail: asked to panic") {
		t.Errorf("the panic was not logged: %s", logs.String())
	}

	_, err = d.call(ctx, &handlers.Request{Service: "echo", ID: "\xff"})
	if handlers.CodeOf(err) != handlers.CodeBadRequest {
		t.Errorf("invalid UTF-8 id: %v", err)
	}
	small := testDispatcher(c, zerolog.Nop(), 99, unary)
	t.Cleanup(small.close)
	_, err = small.call(ctx, &handlers.Request{Service: "echo", Data: make([]byte, 100)})
	if handlers.CodeOf(err) != handlers.CodeTooLarge {
		t.Errorf("reply over the limit: %v", err)
	}
	if got, err := do("echo", "after"); err != nil || string(got) != "after" {
		t.Errorf("echo after the failures = %q, %v", got, err)
	}

	d.mu.Lock()
	usedStream := d.cur != nil
	d.mu.Unlock()
	if usedStream == unary || d.unary.Load() != unary {
		t.Errorf("dispatcher has a stream %v and unary %v; want the %s path", usedStream, d.unary.Load(), map[bool]string{false: "stream", true: "unary"}[unary])
	}
}

// badDescriber answers Describe with whatever it is given.
type badDescriber struct {
	pluginpb.UnimplementedHandlerServer
	resp *pluginpb.DescribeResponse
}

func (b *badDescriber) Describe(context.Context, *pluginpb.DescribeRequest) (*pluginpb.DescribeResponse, error) {
	return b.resp, nil
}

func TestDescribeRejectsBadAnswers(t *testing.T) {
	many := &pluginpb.DescribeResponse{}
	for range MaxServices + 1 {
		many.Services = append(many.Services, &pluginpb.Service{Name: "x"})
	}
	for name, resp := range map[string]*pluginpb.DescribeResponse{
		"bad name":  {Services: []*pluginpb.Service{{Name: "../x"}}},
		"duplicate": {Services: []*pluginpb.Service{{Name: "x"}, {Name: "x"}}},
		"long desc": {Services: []*pluginpb.Service{{Name: "x", Description: strings.Repeat("d", MaxDescriptionLen+1)}}},
		"too many":  many,
	} {
		c := loopback(t, &badDescriber{resp: resp})
		if got, err := describe(context.Background(), c, 100); err == nil {
			t.Errorf("%s: describe accepted %v", name, got)
		}
	}
}

func TestCallErrors(t *testing.T) {
	c := loopback(t, &badDescriber{}) // Handle and Dispatch are unimplemented
	var logs logBuffer
	d := newDispatcher(c, zerolog.New(&logs), 100)
	t.Cleanup(d.close)
	_, err := d.call(context.Background(), &handlers.Request{Service: "x"})
	if handlers.CodeOf(err) != handlers.CodeHandlerFailed || strings.Contains(err.Error(), "Unimplemented") {
		t.Errorf("failed call: %v; want handler_failed without internals", err)
	}
	if !strings.Contains(logs.String(), "Unimplemented") {
		t.Errorf("failed call not logged with details: %s", logs.String())
	}
	if !d.unary.Load() {
		t.Error("the dispatcher did not fall back to Handle")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.call(ctx, &handlers.Request{Service: "x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	if _, err := d.call(ctx, &handlers.Request{Service: "x"}); handlers.CodeOf(err) != handlers.CodeTimeout {
		t.Errorf("call past its deadline: %v", err)
	}
}

// TestMessagesEvolve: a reader ignores fields added by a newer writer, and
// an older writer's message (without the newer fields) still decodes.
func TestMessagesEvolve(t *testing.T) {
	req := &pluginpb.HandleRequest{Service: "kv", Id: "1", Requester: "r", Data: []byte("d")}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	// A newer host adds field 15 (a string) and field 16 (a varint).
	b = protowire.AppendTag(b, 15, protowire.BytesType)
	b = protowire.AppendString(b, "from the future")
	b = protowire.AppendTag(b, 16, protowire.VarintType)
	b = protowire.AppendVarint(b, 42)
	var got pluginpb.HandleRequest
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatalf("newer message: %v", err)
	}
	if got.GetService() != "kv" || got.GetId() != "1" || got.GetRequester() != "r" || string(got.GetData()) != "d" {
		t.Errorf("decoded %v", &got)
	}
	// An older plugin that knew only data (field 1) of HandleResponse.
	old := protowire.AppendTag(nil, 1, protowire.BytesType)
	old = protowire.AppendBytes(old, []byte("reply"))
	var resp pluginpb.HandleResponse
	if err := proto.Unmarshal(old, &resp); err != nil || string(resp.GetData()) != "reply" || resp.GetError() != nil {
		t.Errorf("older response: %v, %v", &resp, err)
	}
}

// TestDispatchFieldNumbers pins the field numbers that Dispatch added, which
// plugins in other languages rely on.
func TestDispatchFieldNumbers(t *testing.T) {
	fields := func(m proto.Message) map[protowire.Number]protowire.Type {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out := make(map[protowire.Number]protowire.Type)
		for len(b) > 0 {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				t.Fatal(protowire.ParseError(n))
			}
			b = b[n:]
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				t.Fatal(protowire.ParseError(n))
			}
			b = b[n:]
			out[num] = typ
		}
		return out
	}
	for name, tt := range map[string]struct {
		msg  proto.Message
		want map[protowire.Number]protowire.Type
	}{
		"request": {&pluginpb.HandleRequest{CallId: 1, TimeoutMicros: 2, Cancel: true},
			map[protowire.Number]protowire.Type{5: protowire.VarintType, 6: protowire.VarintType, 7: protowire.VarintType}},
		"response": {&pluginpb.HandleResponse{CallId: 1},
			map[protowire.Number]protowire.Type{3: protowire.VarintType}},
		"describe": {&pluginpb.DescribeRequest{MaxReplySize: 1},
			map[protowire.Number]protowire.Type{1: protowire.VarintType}},
	} {
		if got := fields(tt.msg); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: fields %v, want %v", name, got, tt.want)
		}
	}
	// An old host's request has no call id or timeout; an old plugin's
	// answer has no call id.
	var req pluginpb.HandleRequest
	old := protowire.AppendTag(nil, 1, protowire.BytesType)
	old = protowire.AppendString(old, "kv")
	if err := proto.Unmarshal(old, &req); err != nil || req.GetCallId() != 0 || req.GetTimeoutMicros() != 0 || req.GetCancel() {
		t.Errorf("old request: %v, %v", &req, err)
	}
}

// TestWireErrorRoundTrip: a *handlers.Error crosses the boundary as it is;
// any other error crosses as its code with a generic message, and its text
// goes to the plugin's log only.
func TestWireErrorRoundTrip(t *testing.T) {
	var logs bytes.Buffer
	ctx := zerolog.New(&logs).WithContext(context.Background())
	for _, c := range []struct {
		err  error
		want handlers.Error
	}{
		{handlers.Errorf(handlers.CodeBadRequest, "bad"), handlers.Error{Code: handlers.CodeBadRequest, Message: "bad"}},
		{&handlers.Error{Code: "not_found"}, handlers.Error{Code: "not_found"}},
		{fmt.Errorf("wrapped: %w", handlers.Errorf("not_found", "no key")), handlers.Error{Code: "not_found", Message: "no key"}},
		{errors.New("dial db: password hunter2 refused"), handlers.Error{Code: handlers.CodeHandlerFailed, Message: "the handler failed"}},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), handlers.Error{Code: handlers.CodeTimeout, Message: "no reply in time"}},
		{&handlers.Error{Code: "Bad-Code", Message: "hunter2"}, handlers.Error{Code: handlers.CodeHandlerFailed, Message: "the handler returned an invalid error code"}},
	} {
		if back := fromWire(wireError(ctx, c.err)); *back != c.want {
			t.Errorf("%v came back as %+v, want %+v", c.err, back, c.want)
		}
	}
	if !strings.Contains(logs.String(), "password hunter2 refused") {
		t.Errorf("the plain error is not in the plugin's log:\n%s", logs.String())
	}
	if got := fromWire(&pluginpb.Error{Code: "", Message: "m"}); got.Code != handlers.CodeHandlerFailed {
		t.Errorf("empty code came back as %v", got)
	}
}

func TestValidErrorCode(t *testing.T) {
	for _, c := range []string{"timeout", "not_found", "e2", strings.Repeat("a", MaxErrorCodeLen)} {
		if !validErrorCode(c) {
			t.Errorf("validErrorCode(%q) = false", c)
		}
	}
	for _, c := range []string{"", "_x", "2x", "Not", "a-b", "a b", strings.Repeat("a", MaxErrorCodeLen+1)} {
		if validErrorCode(c) {
			t.Errorf("validErrorCode(%q) = true", c)
		}
	}
}

// FuzzClip: the result is valid UTF-8, within the limit, and a prefix of
// the input when the input is valid UTF-8.
func FuzzClip(f *testing.F) {
	f.Add("hello", 3)
	f.Add("héllo", 2)
	f.Add("\xff\xfe", 1)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n < 0 || n > 1<<16 {
			return
		}
		got := clip(s, n)
		if !utf8.ValidString(got) || len(got) > n {
			t.Fatalf("clip(%q, %d) = %q", s, n, got)
		}
		if utf8.ValidString(s) && !strings.HasPrefix(s, got) {
			t.Fatalf("clip(%q, %d) = %q, not a prefix", s, n, got)
		}
	})
}
