package plugins

import (
	"context"
	"testing"

	"github.com/peapod-mixnet/peapod/handlers"
)

// benchPayload is the request size of the dispatch benchmarks: about what
// one mixnet packet carries.
const benchPayload = 1024

// echo is the handler of examples/echo/plugin.
func echo(ctx context.Context, req *handlers.Request) ([]byte, error) {
	return req.Data, nil
}

// BenchmarkPluginDispatch sends a request through the supervisor's router
// across the go-plugin gRPC boundary to the echo example plugin and back.
// Compare with BenchmarkDirectDispatch and with the floor,
// BenchmarkUnixPingPong, run in the same invocation:
//
//	go test -run '^$' -bench 'Dispatch|PingPong' -benchmem ./plugins/
func BenchmarkPluginDispatch(b *testing.B) {
	dir := pluginDir(b, map[string]string{"echo": binEcho})
	s, _ := startSupervisor(b, SupervisorConfig{Dir: dir})
	benchDispatch(b, s.Handler(), "echo", benchPayload)
}

// BenchmarkPluginDispatchKinds is BenchmarkPluginDispatch against the test
// plugin built three ways: with plugins.Serve (requests on a Dispatch
// stream), the same with runtime.GOMAXPROCS(1), and against the old
// handler.proto (one Handle call per request, as for a plugin without
// Dispatch); and with a 64 KiB payload on the stream.
func BenchmarkPluginDispatchKinds(b *testing.B) {
	for _, k := range []struct {
		name, bin string
		size      int
	}{
		{"stream", binTest, benchPayload},
		{"stream-gomaxprocs1", binProcs1, benchPayload},
		{"unary", binUnary, benchPayload},
		{"stream-64KiB", binTest, 64 << 10},
		{"unary-64KiB", binUnary, 64 << 10},
	} {
		b.Run(k.name, func(b *testing.B) {
			dir := pluginDir(b, map[string]string{"testplugin": k.bin})
			s, _ := startSupervisor(b, SupervisorConfig{Dir: dir})
			benchDispatch(b, s.Handler(), "test", k.size)
		})
	}
}

// BenchmarkDirectDispatch calls the same echo handler in-process through a
// handlers.Router: the baseline for BenchmarkPluginDispatch.
func BenchmarkDirectDispatch(b *testing.B) {
	var r handlers.Router
	if err := r.Register(handlers.ServiceInfo{Name: "echo"}, handlers.HandlerFunc(echo)); err != nil {
		b.Fatal(err)
	}
	benchDispatch(b, &r, "echo", benchPayload)
}

// benchDispatch sends requests of size bytes to service through h, one at
// a time.
func benchDispatch(b *testing.B, h handlers.Handler, service string, size int) {
	req := &handlers.Request{Service: service, ID: "bench", Requester: "requester", Data: make([]byte, size)}
	ctx := context.Background()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		reply, err := h.Handle(ctx, req)
		if err != nil || len(reply) != size {
			b.Fatalf("Handle = %d bytes, %v", len(reply), err)
		}
	}
}

// BenchmarkPluginDispatchParallel is BenchmarkPluginDispatch with requests
// in flight from several goroutines at once, as a busy provider sends them:
// its ns/op is the inverse of throughput, not the latency of one call.
func BenchmarkPluginDispatchParallel(b *testing.B) {
	dir := pluginDir(b, map[string]string{"echo": binEcho})
	s, _ := startSupervisor(b, SupervisorConfig{Dir: dir})
	h := s.Handler()
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := &handlers.Request{Service: "echo", ID: "bench", Requester: "requester", Data: make([]byte, benchPayload)}
		for pb.Next() {
			reply, err := h.Handle(context.Background(), req)
			if err != nil || len(reply) != benchPayload {
				b.Errorf("Handle = %d bytes, %v", len(reply), err)
				return
			}
		}
	})
}
