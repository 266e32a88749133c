package httpstop

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"
)

func serve(t *testing.T, h http.Handler) (*Server, string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Wrap(&http.Server{Handler: h})
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	return s, ln.Addr().String(), served
}

// A connection that sent nothing does not hold Shutdown: plain net/http
// would wait five seconds for it and, with this deadline, fail.
func TestShutdownClosesSilentConnections(t *testing.T) {
	s, addr, served := serve(t, http.NotFoundHandler())
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for s.Fresh() != 1 {
		runtime.Gosched()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("the silent connection is still open")
	}
}

// A request in flight still finishes.
func TestShutdownWaitsForRequests(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s, addr, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	}))
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr)
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- s.Shutdown(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned with a request in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if b := <-got; b != "done" {
		t.Fatalf("the request got %q", b)
	}
}
