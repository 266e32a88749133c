//go:build unix

package plugins

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/handlers"
)

// The tests here run against both kinds of plugin: one built with
// plugins.Serve (requests on a Dispatch stream) and one that implements only
// the old unary Handle.
var pluginKinds = []struct{ name, bin string }{
	{"stream", binTest},
	{"unary", binUnary},
}

// dispatcherOf returns the dispatcher of the named plugin's running
// process, or nil if it is down.
func dispatcherOf(s *Supervisor, name string) *dispatcher {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.plugins {
		if p.name == name {
			if inst := p.cur.Load(); inst != nil {
				return inst.dispatch
			}
		}
	}
	return nil
}

// checkPath fails the test unless d took the path of the plugin kind.
func checkPath(t *testing.T, d *dispatcher, kind string) {
	t.Helper()
	d.mu.Lock()
	stream := d.cur != nil
	d.mu.Unlock()
	if unary := d.unary.Load(); (kind == "unary") != unary || stream == unary {
		t.Errorf("dispatcher: open stream %v, unary %v; want the %s path", stream, unary, kind)
	}
}

// countLog counts the plugin output lines with the given message.
func countLog(logs *logBuffer, msg string) int {
	return strings.Count(logs.String(), `"message":"`+msg+`"`)
}

func TestSupervisorConcurrentRequests(t *testing.T) {
	for _, kind := range pluginKinds {
		t.Run(kind.name, func(t *testing.T) {
			dir := pluginDir(t, map[string]string{"testplugin": kind.bin})
			s, _ := startSupervisor(t, SupervisorConfig{Dir: dir})
			h := s.Handler()
			const callers, calls = 16, 25
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for g := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range calls {
						want := bytes.Repeat([]byte(fmt.Sprintf("%d.%d,", g, i)), 1+(g+i)%50)
						got, err := send(h, "test", string(want))
						if err != nil || !bytes.Equal(got, want) {
							errs <- fmt.Errorf("caller %d call %d: %q, %v", g, i, got, err)
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
			checkPath(t, dispatcherOf(s, "testplugin"), kind.name)
		})
	}
}

// A plugin that dies fails every request in flight at once, and the
// restarted plugin is sent requests afresh (on a new stream, for a plugin
// that has Dispatch).
func TestSupervisorCrashFailsRequestsInFlight(t *testing.T) {
	for _, kind := range pluginKinds {
		t.Run(kind.name, func(t *testing.T) {
			dir := pluginDir(t, map[string]string{"testplugin": kind.bin})
			s, logs := startSupervisor(t, SupervisorConfig{Dir: dir})
			h := s.Handler()
			pid := statusOf(t, s, "testplugin").PID
			before := dispatcherOf(s, "testplugin")

			const n = 8
			errs := make(chan error, n)
			for range n {
				go func() {
					_, err := send(h, "test", "block") // 30 s timeout
					errs <- err
				}()
			}
			waitFor(t, 10*time.Second, "the requests to be in flight", func() bool {
				return countLog(logs, "blocking") == n
			})
			start := time.Now()
			if _, err := send(h, "test", "exit"); handlers.CodeOf(err) != handlers.CodeHandlerFailed {
				t.Errorf("exit: %v, want handler_failed", err)
			}
			for _, err := range receiveN(t, errs, n, 10*time.Second) {
				if handlers.CodeOf(err) != handlers.CodeHandlerFailed {
					t.Errorf("request in flight when the plugin died: %v, want handler_failed", err)
				}
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("the requests in flight failed %v after the plugin died", el)
			}

			waitRestarted(t, s, "testplugin", pid)
			got, err := send(h, "test", "pid")
			if err != nil || string(got) == strconv.Itoa(pid) {
				t.Errorf("after the restart: pid %q, %v; want a new process", got, err)
			}
			after := dispatcherOf(s, "testplugin")
			if after == nil || after == before {
				t.Fatal("the restarted plugin has no dispatcher of its own")
			}
			checkPath(t, after, kind.name)
			before.mu.Lock()
			closed, stream := before.closed, before.cur
			before.mu.Unlock()
			if !closed || stream != nil {
				t.Errorf("the dead process's dispatcher: closed %v, stream %v; want closed, no stream", closed, stream)
			}
		})
	}
}

// A cancelled request ends its handler's context in the plugin, and a
// request's deadline is the handler's deadline.
func TestSupervisorCancelAndDeadlineReachPlugin(t *testing.T) {
	for _, kind := range pluginKinds {
		t.Run(kind.name, func(t *testing.T) {
			dir := pluginDir(t, map[string]string{"testplugin": kind.bin})
			s, logs := startSupervisor(t, SupervisorConfig{Dir: dir})
			h := s.Handler()

			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				_, err := h.Handle(ctx, &handlers.Request{Service: "test", Data: []byte("block")})
				done <- err
			}()
			waitFor(t, 10*time.Second, "the request to be in flight", func() bool {
				return countLog(logs, "blocking") == 1
			})
			cancel()
			if err := receiveN(t, done, 1, 5*time.Second)[0]; !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled request: %v", err)
			}
			waitFor(t, 10*time.Second, "the plugin to see the cancellation", func() bool {
				return countLog(logs, "request context ended: context canceled") == 1
			})

			ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got, err := h.Handle(ctx, &handlers.Request{Service: "test", Data: []byte("deadline")})
			if err != nil {
				t.Fatal(err)
			}
			if ms, err := strconv.Atoi(string(got)); err != nil || ms <= 0 || ms > 5000 {
				t.Errorf("the handler had %q ms left, want 0 < ms <= 5000", got)
			}
			if got, err := send(h, "test", "still here"); err != nil || string(got) != "still here" {
				t.Errorf("after the cancellation: %q, %v", got, err)
			}
			checkPath(t, dispatcherOf(s, "testplugin"), kind.name)
		})
	}
}

// A plugin without Dispatch behaves as plugins always did: errors cross the
// boundary, a hang is bounded by the request's timeout, and the host logs
// once that it uses Handle.
func TestSupervisorUnaryPlugin(t *testing.T) {
	dir := pluginDir(t, map[string]string{"testplugin": binUnary})
	s, logs := startSupervisor(t, SupervisorConfig{Dir: dir, MaxReplySize: 1000})
	h := s.Handler()
	if got, err := send(h, "test", "meta"); err != nil || string(got) != "req-1\nid-1" {
		t.Errorf("meta = %q, %v", got, err)
	}
	for data, code := range map[string]string{
		"error:not_found": "not_found",
		"plain-error":     handlers.CodeHandlerFailed,
		"big:1001":        handlers.CodeTooLarge,
		"big:100000000":   handlers.CodeTooLarge,
	} {
		if _, err := send(h, "test", data); handlers.CodeOf(err) != code {
			t.Errorf("%s: %v, want %s", data, err, code)
		}
	}
	const d = 300 * time.Millisecond
	start := time.Now()
	if _, err := send(handlers.Timeout(d)(h), "test", "hang"); handlers.CodeOf(err) != handlers.CodeTimeout {
		t.Errorf("hang: %v, want timeout", err)
	}
	if el := time.Since(start); el > d+2*time.Second {
		t.Errorf("hang returned after %v", el)
	}
	if n := strings.Count(logs.String(), "does not implement Dispatch"); n != 1 {
		t.Errorf("the switch to Handle logged %d times, want once", n)
	}
	checkPath(t, dispatcherOf(s, "testplugin"), "unary")
}
