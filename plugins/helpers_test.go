package plugins

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/handlers"
	"github.com/peapod-mixnet/peapod/internal/testbuild"
)

// The plugin binaries the tests run, built once per test binary into a
// temporary folder by buildPlugins.
const (
	binTest    = "testplugin"
	binTestV2  = "testplugin-v2"
	binMute    = "testplugin-mute"
	binUnary   = "testplugin-unary"
	binProcs1  = "testplugin-gomaxprocs1"
	binBadName = "testplugin-badname"
	binEcho    = "echo"
	binKV      = "kv"
)

var built = testbuild.New("peapod-plugins-test-",
	testbuild.Target{Out: binTest, Pkg: "./internal/testplugin"},
	testbuild.Target{Out: binTestV2, Pkg: "./internal/testplugin", LDFlags: "-X main.variant=v2"},
	testbuild.Target{Out: binMute, Pkg: "./internal/testplugin", LDFlags: "-X main.variant=mute"},
	testbuild.Target{Out: binUnary, Pkg: "./internal/testplugin", LDFlags: "-X main.variant=unary"},
	testbuild.Target{Out: binProcs1, Pkg: "./internal/testplugin", LDFlags: "-X main.variant=gomaxprocs1"},
	testbuild.Target{Out: binBadName, Pkg: "./internal/testplugin", LDFlags: "-X main.variant=badname"},
	testbuild.Target{Out: binEcho, Pkg: "../examples/echo/plugin"},
	testbuild.Target{Out: binKV, Pkg: "../examples/kvstore/plugin"})

func TestMain(m *testing.M) {
	code := m.Run()
	built.Remove()
	os.Exit(code)
}

// buildPlugins builds the test and example plugins with go build (once) and
// returns the folder holding them.
func buildPlugins(tb testing.TB) string {
	tb.Helper()
	return built.Dir(tb)
}

// pluginDir returns a new plugins folder holding symbolic links to the
// built binaries: links maps the plugin name to the binary's name.
func pluginDir(tb testing.TB, links map[string]string) string {
	tb.Helper()
	bin := buildPlugins(tb)
	dir := tb.TempDir()
	for name, binary := range links {
		if err := os.Symlink(filepath.Join(bin, binary), filepath.Join(dir, name)); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// logBuffer collects log output; it may be written after a test ends, so
// it is not tied to testing.T.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startSupervisor creates and starts a supervisor over cfg (with a fresh
// data folder and a logger into the returned buffer unless cfg has them),
// and closes it when the test ends, printing the log if the test failed.
func startSupervisor(tb testing.TB, cfg SupervisorConfig) (*Supervisor, *logBuffer) {
	tb.Helper()
	logs := &logBuffer{}
	if cfg.DataDir == "" {
		cfg.DataDir = tb.TempDir()
	}
	cfg.Logger = zerolog.New(logs).Level(zerolog.DebugLevel)
	s, err := NewSupervisor(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		if tb.Failed() {
			tb.Logf("supervisor log:\n%s", logs.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	return s, logs
}

// send sends data to service through h.
func send(h handlers.Handler, service, data string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return h.Handle(ctx, &handlers.Request{Service: service, ID: "id-1", Requester: "req-1", Data: []byte(data)})
}

// waitFor polls cond until it holds or the timeout passes. It is for state
// the supervisor offers no signal for (a plugin coming back up).
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// statusOf returns the status of the named plugin.
func statusOf(tb testing.TB, s *Supervisor, name string) PluginStatus {
	tb.Helper()
	for _, st := range s.Status() {
		if st.Name == name {
			return st
		}
	}
	tb.Fatalf("no plugin %q in Status", name)
	return PluginStatus{}
}
