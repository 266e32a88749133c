package framework

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/handlers"
)

// pluginHost starts a host running the test plugin (service "test") and
// the echo example plugin, with fast restarts.
func pluginHost(t *testing.T, timeout time.Duration) (*Host, *memTransport) {
	t.Helper()
	tr := newMemTransport(t)
	h := startHost(t, tr, Config{
		Plugins: PluginsConfig{Dir: pluginDir(t, pluginTest, pluginEcho), MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
		Limits:  Limits{RequestTimeout: timeout},
	})
	return h, tr
}

func pluginUp(h *Host, name string) (up bool, restarts int) {
	for _, p := range h.supervisor.Status() {
		if p.Name == name {
			return p.Up, p.Restarts
		}
	}
	return false, 0
}

// TestPluginFailures: a plugin that panics, exits or hangs does not take
// the host down; the requester gets the right error, and the plugin serves
// again within seconds.
func TestPluginFailures(t *testing.T) {
	const timeout = 2 * time.Second
	h, tr := pluginHost(t, timeout)
	tag := newTag(t)
	wantOK(t, tr.do(t, tag, "hello", "echo", []byte("hi")), "hi")
	wantOK(t, tr.do(t, tag, "pid0", "test", []byte("hello")), "hello")

	pid := func(id string) int {
		t.Helper()
		rep := tr.do(t, tag, id, "test", []byte("pid"))
		wantOK(t, rep, string(rep.Data))
		n, err := strconv.Atoi(string(rep.Data))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := pid("pid1")

	// A panic inside the handler: the plugin recovers it and keeps serving.
	wantError(t, tr.do(t, tag, "panic", "test", []byte("panic")), handlers.CodeHandlerFailed)
	if after := pid("pid2"); after != before {
		t.Errorf("the plugin restarted after a handler panic (pid %d → %d)", before, after)
	}

	// The plugin process exits: the request fails, the plugin comes back.
	start := time.Now()
	wantError(t, tr.do(t, tag, "exit", "test", []byte("exit")), handlers.CodeHandlerFailed)
	eventually(t, "the plugin to restart", func() bool {
		up, restarts := pluginUp(h, pluginTest)
		return up && restarts >= 1
	})
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the plugin took %v to come back", d)
	}
	if after := pid("pid3"); after == before {
		t.Error("the plugin has the same pid after exiting")
	}
	// Meanwhile the other plugin was never affected.
	wantOK(t, tr.do(t, tag, "hello2", "echo", []byte("still")), "still")

	// A handler that hangs is bounded by the request timeout.
	start = time.Now()
	wantError(t, tr.do(t, tag, "hang", "test", []byte("hang")), handlers.CodeTimeout)
	if d := time.Since(start); d < timeout || d > timeout+10*time.Second {
		t.Errorf("timeout after %v, want about %v", d, timeout)
	}
	wantOK(t, tr.do(t, tag, "after-hang", "test", []byte("fine")), "fine")

	// The service-specific error code passes through.
	wantError(t, tr.do(t, tag, "code", "test", []byte("error:not_found")), "not_found")

	// Health and metrics tell the story.
	status, body := get(t, h, PathHealth)
	var health Health
	if err := json.Unmarshal(body, &health); err != nil || status != http.StatusOK {
		t.Fatalf("health %d %s", status, body)
	}
	if len(health.Plugins) != 2 {
		t.Errorf("health lists %d plugins", len(health.Plugins))
	}
	_, metrics := get(t, h, PathMetrics)
	if !strings.Contains(string(metrics), `peapod_plugin_restarts_total{plugin="testplugin"} 1`) {
		t.Errorf("metrics:\n%s", grepLines(string(metrics), "restarts"))
	}
}

// TestPluginDownHealth: while a plugin is down, /healthz says so (503),
// requests for its services fail at once, and the descriptor still lists
// them. (TestPluginFailures checks that a plugin comes back.)
func TestPluginDownHealth(t *testing.T) {
	tr := newMemTransport(t)
	h := startHost(t, tr, Config{
		// A restart delay longer than the test keeps the plugin down.
		Plugins: PluginsConfig{Dir: pluginDir(t, pluginTest), MinBackoff: time.Hour, MaxBackoff: time.Hour},
	})
	tag := newTag(t)
	wantError(t, tr.do(t, tag, "exit", "test", []byte("exit")), handlers.CodeHandlerFailed)
	eventually(t, "the plugin to be reported down", func() bool {
		up, _ := pluginUp(h, pluginTest)
		return !up
	})
	if status, body := get(t, h, PathHealth); status != http.StatusServiceUnavailable || !strings.Contains(string(body), `"up":false`) {
		t.Errorf("health while a plugin is down: %d %s", status, body)
	}
	start := time.Now()
	wantError(t, tr.do(t, tag, "while-down", "test", []byte("x")), handlers.CodeHandlerFailed)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a request for a plugin that is down took %v; it must fail at once", d)
	}
	doc, err := h.Descriptor()
	if err != nil || !strings.Contains(string(doc), "payload") {
		t.Fatalf("descriptor: %s, %v", doc, err)
	}
	if names := h.Services(); len(names) != 1 || names[0].Name != "test" {
		t.Errorf("services while the plugin is down: %v", names)
	}
}

// TestPluginServicesPublished: the plugins' services appear in /address
// and the descriptor, beside in-process ones; an in-process service shadows
// a plugin's of the same name.
func TestPluginServicesPublished(t *testing.T) {
	tr := newMemTransport(t)
	h := startHost(t, tr, Config{
		Plugins:  PluginsConfig{Dir: pluginDir(t, pluginTest, pluginEcho, pluginKV)},
		Services: []Service{{ServiceInfo: handlers.ServiceInfo{Name: "echo", Description: "in-process"}, Handler: echoService.Handler}},
	})
	var names []string
	for _, s := range h.Services() {
		names = append(names, s.Name+"="+s.Description)
	}
	got := strings.Join(names, ",")
	if !strings.HasPrefix(got, "echo=in-process,kv=") || !strings.Contains(got, ",test=") {
		t.Errorf("services %s", got)
	}
	tag := newTag(t)
	put := tr.do(t, tag, "1", "kv", []byte(`{"op":"put","key":"k","value":"v"}`))
	wantOK(t, put, `{"ok":true}`)
	wantOK(t, tr.do(t, tag, "2", "kv", []byte(`{"op":"get","key":"k"}`)), `{"value":"v"}`)
	wantError(t, tr.do(t, tag, "3", "kv", []byte(`{"op":"get","key":"missing"}`)), "not_found")
	wantError(t, tr.do(t, tag, "4", "kv", []byte(`{"op":"fly"}`)), handlers.CodeBadRequest)
}
