//go:build unix

package plugins

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peapod-mixnet/peapod/handlers"
)

func TestSupervisorLearnsServices(t *testing.T) {
	dir := pluginDir(t, map[string]string{"echo": binEcho, "testplugin": binTest})
	s, _ := startSupervisor(t, SupervisorConfig{Dir: dir})

	want := []handlers.ServiceInfo{
		{Name: "echo", Description: "replies with the request data, unchanged"},
		{Name: "test", Description: "behaves as the request data says"},
	}
	if got := s.Services(); !reflect.DeepEqual(got, want) {
		t.Errorf("Services() = %v, want %v", got, want)
	}
	st := s.Status()
	if len(st) != 2 {
		t.Fatalf("Status() = %+v, want two plugins", st)
	}
	for i, name := range []string{"echo", "testplugin"} {
		p := st[i]
		if p.Name != name || !p.Up || p.PID <= 0 || p.Restarts != 0 || p.Skipped || p.LastError != "" {
			t.Errorf("Status()[%d] = %+v", i, p)
		}
	}
	if got := st[1].Services; !reflect.DeepEqual(got, []string{"test"}) {
		t.Errorf("testplugin services = %v", got)
	}
}

func TestSupervisorDispatch(t *testing.T) {
	t.Setenv("PEAPOD_TEST_SECRET", "host-only")
	dir := pluginDir(t, map[string]string{"echo": binEcho, "testplugin": binTest})
	dataDir := t.TempDir()
	s, _ := startSupervisor(t, SupervisorConfig{Dir: dir, DataDir: dataDir})
	h := s.Handler()

	if got, err := send(h, "echo", "hello, mixnet"); err != nil || string(got) != "hello, mixnet" {
		t.Errorf("echo = %q, %v", got, err)
	}
	if got, err := send(h, "echo", ""); err != nil || len(got) != 0 {
		t.Errorf("empty echo = %q, %v", got, err)
	}
	if got, err := send(h, "test", "meta"); err != nil || string(got) != "req-1\nid-1" {
		t.Errorf("meta = %q, %v; want requester and id passed through", got, err)
	}
	got, err := send(h, "test", "env")
	if err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(dataDir, "testplugin")
	if lines := strings.Split(string(got), "\n"); len(lines) != 3 || lines[0] != own || lines[1] != own || lines[2] != "false" {
		t.Errorf("env = %q; want data folder %s as env and working directory, and no host environment", got, own)
	}
	if fi, err := os.Stat(own); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data folder: %v, %v", fi, err)
	}
	if _, err := send(h, "nope", "x"); handlers.CodeOf(err) != handlers.CodeUnknownService {
		t.Errorf("unknown service: %v", err)
	}
}

func TestSupervisorErrorCodesCrossBoundary(t *testing.T) {
	dir := pluginDir(t, map[string]string{"testplugin": binTest})
	s, logs := startSupervisor(t, SupervisorConfig{Dir: dir, MaxReplySize: 1000})
	h := s.Handler()
	for _, code := range []string{handlers.CodeBadRequest, handlers.CodeOverloaded, handlers.CodeTooLarge, handlers.CodeTimeout, "not_found"} {
		_, err := send(h, "test", "error:"+code)
		var he *handlers.Error
		if !errors.As(err, &he) || he.Code != code || he.Message != "asked to fail" {
			t.Errorf("error:%s gave %v", code, err)
		}
	}
	tests := []struct{ data, code, msg string }{
		{"plain-error", handlers.CodeHandlerFailed, "handler_failed: the handler failed"},
		{"error:Not-A-Code", handlers.CodeHandlerFailed, "invalid error code"},
		{"big:1000", "", ""},
		{"big:1001", handlers.CodeTooLarge, ""},
		{"big:100000000", handlers.CodeTooLarge, ""},
	}
	for _, tt := range tests {
		_, err := send(h, "test", tt.data)
		if handlers.CodeOf(err) != tt.code || (err != nil && !strings.Contains(err.Error(), tt.msg)) {
			t.Errorf("%s gave %v, want code %q with %q", tt.data, err, tt.code, tt.msg)
		}
	}
	if got, err := send(h, "test", "still alive"); err != nil || string(got) != "still alive" {
		t.Errorf("after errors: %q, %v", got, err)
	}
	// A plain error's text never crosses to the requester; it is in the
	// host's log, under the plugin's name, for the operator.
	if _, err := send(h, "test", "plain-error"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("plain error reached the requester as %v", err)
	}
	waitFor(t, 10*time.Second, "the plain error's text in the host's log", func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "secret db password wrong") && strings.Contains(line, `"plugin":"testplugin"`) {
				return true
			}
		}
		return false
	})
}

func TestSupervisorPanicKeepsServing(t *testing.T) {
	dir := pluginDir(t, map[string]string{"testplugin": binTest})
	s, logs := startSupervisor(t, SupervisorConfig{Dir: dir})
	h := s.Handler()
	pid := statusOf(t, s, "testplugin").PID

	_, err := send(h, "test", "panic")
	if handlers.CodeOf(err) != handlers.CodeHandlerFailed {
		t.Fatalf("panic gave %v, want handler_failed", err)
	}
	if got, err := send(h, "test", "ping"); err != nil || string(got) != "ping" {
		t.Errorf("after panic: %q, %v", got, err)
	}
	st := statusOf(t, s, "testplugin")
	if st.PID != pid || st.Restarts != 0 || !st.Up {
		t.Errorf("after panic: %+v, want the same process (pid %d) still up", st, pid)
	}
	waitFor(t, 5*time.Second, "the panic in the host log", func() bool {
		return strings.Contains(logs.String(), "asked to panic")
	})
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "asked to panic") && !strings.Contains(line, `"plugin":"testplugin"`) {
			t.Errorf("panic logged without the plugin field: %s", line)
		}
	}
}

func TestSupervisorPluginOutputLogged(t *testing.T) {
	dir := pluginDir(t, map[string]string{"testplugin": binTest})
	s, logs := startSupervisor(t, SupervisorConfig{Dir: dir})
	if _, err := send(s.Handler(), "test", "stderr:a note from the plugin"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the plugin's stderr line in the host log", func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"message":"a note from the plugin"`) && strings.Contains(line, `"plugin":"testplugin"`) {
				return true
			}
		}
		return false
	})
}

// restartCount reads peapod_plugin_restarts_total{plugin=name} from reg.
func restartCount(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "peapod_plugin_restarts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "plugin" && l.GetValue() == name {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// waitRestarted waits until the named plugin is up again in a process
// other than oldPID, and returns its status.
func waitRestarted(t *testing.T, s *Supervisor, name string, oldPID int) PluginStatus {
	t.Helper()
	var st PluginStatus
	waitFor(t, 10*time.Second, name+" to be restarted", func() bool {
		st = statusOf(t, s, name)
		return st.Up && st.PID != oldPID
	})
	return st
}

func TestSupervisorRestartsAfterExit(t *testing.T) {
	dir := pluginDir(t, map[string]string{"testplugin": binTest})
	reg := prometheus.NewRegistry()
	s, _ := startSupervisor(t, SupervisorConfig{Dir: dir, Registerer: reg})
	h := s.Handler()
	pid := statusOf(t, s, "testplugin").PID

	_, err := send(h, "test", "exit")
	if handlers.CodeOf(err) != handlers.CodeHandlerFailed {
		t.Fatalf("exit gave %v, want handler_failed", err)
	}
	st := waitRestarted(t, s, "testplugin", pid)
	if st.Restarts != 1 || !strings.Contains(st.LastError, "exit status 3") {
		t.Errorf("after restart: %+v", st)
	}
	if got := restartCount(t, reg, "testplugin"); got != 1 {
		t.Errorf("restart counter = %v, want 1", got)
	}
	if got, err := send(h, "test", "back"); err != nil || string(got) != "back" {
		t.Errorf("after restart: %q, %v", got, err)
	}
	if !reflect.DeepEqual(st.Services, []string{"test"}) {
		t.Errorf("services after restart: %v", st.Services)
	}
}

func TestSupervisorRestartsAfterSIGKILL(t *testing.T) {
	dir := pluginDir(t, map[string]string{"echo": binEcho, "testplugin": binTest})
	s, _ := startSupervisor(t, SupervisorConfig{Dir: dir})
	h := s.Handler()
	pid := statusOf(t, s, "testplugin").PID
	echoPID := statusOf(t, s, "echo").PID

	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := waitRestarted(t, s, "testplugin", pid)
	if st.Restarts != 1 || !strings.Contains(st.LastError, "killed") {
		t.Errorf("after SIGKILL: %+v", st)
	}
	if got, err := send(h, "test", "pid"); err != nil || string(got) != strconv.Itoa(st.PID) {
		t.Errorf("pid = %q, %v; want %d", got, err, st.PID)
	}
	if e := statusOf(t, s, "echo"); e.PID != echoPID || e.Restarts != 0 {
		t.Errorf("the other plugin was disturbed: %+v", e)
	}
}

func TestSupervisorDownPluginFailsFast(t *testing.T) {
	dir := pluginDir(t, map[string]string{"testplugin": binTest})
	// A long backoff keeps the plugin down for the duration of the test.
	s, _ := startSupervisor(t, SupervisorConfig{Dir: dir, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	pid := statusOf(t, s, "testplugin").PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the plugin to be seen down", func() bool {
		return !statusOf(t, s, "testplugin").Up
	})
	start := time.Now()
	_, err := send(s.Handler(), "test", "x")
	if handlers.CodeOf(err) != handlers.CodeHandlerFailed {
		t.Errorf("request to a dead plugin: %v, want handler_failed", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("request to a dead plugin took %v, want an immediate failure", d)
	}
	if got := s.Services(); len(got) != 1 || got[0].Name != "test" {
		t.Errorf("services of a dead plugin should stay listed: %v", got)
	}
}

func TestSupervisorHangBoundedByTimeout(t *testing.T) {
	dir := pluginDir(t, map[string]string{"testplugin": binTest})
	s, _ := startSupervisor(t, SupervisorConfig{Dir: dir})
	const d = 300 * time.Millisecond
	h := handlers.Timeout(d)(s.Handler())
	start := time.Now()
	_, err := send(h, "test", "hang")
	elapsed := time.Since(start)
	if handlers.CodeOf(err) != handlers.CodeTimeout {
		t.Errorf("hang gave %v, want timeout", err)
	}
	if elapsed < d || elapsed > d+2*time.Second {
		t.Errorf("hang returned after %v, want about %v", elapsed, d)
	}
	if got, err := send(h, "test", "ok"); err != nil || string(got) != "ok" {
		t.Errorf("after a hang: %q, %v", got, err)
	}
}

// processGone reports whether pid no longer runs (it is absent or a zombie).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func TestSupervisorCloseLeavesNoProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs /proc")
	}
	dir := pluginDir(t, map[string]string{"echo": binEcho, "testplugin": binTest, "kv": binKV})
	s, err := NewSupervisor(SupervisorConfig{Dir: dir, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, st := range s.Status() {
		if !st.Up {
			t.Fatalf("%+v not up", st)
		}
		pids = append(pids, st.PID)
	}
	child, err := send(s.Handler(), "test", "spawn")
	if err != nil {
		t.Fatal(err)
	}
	childPID, _ := strconv.Atoi(string(child))
	if processGone(childPID) {
		t.Fatalf("spawned child %d is not running", childPID)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if !processGone(pid) {
			t.Errorf("plugin process %d still running after Close", pid)
		}
	}
	// SIGKILL to the process group is delivered asynchronously.
	waitFor(t, 5*time.Second, "the plugin's child to be killed", func() bool { return processGone(childPID) })
	for _, st := range s.Status() {
		if st.Up || st.PID != 0 {
			t.Errorf("after Close: %+v", st)
		}
	}
	if _, err := send(s.Handler(), "echo", "x"); handlers.CodeOf(err) != handlers.CodeHandlerFailed {
		t.Errorf("request after Close: %v, want handler_failed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Start(context.Background()); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestSupervisorCloseStoppedPlugin(t *testing.T) {
	dir := pluginDir(t, map[string]string{"testplugin": binTest})
	s, err := NewSupervisor(SupervisorConfig{Dir: dir, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	pid := statusOf(t, s, "testplugin").PID
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > stopGrace+5*time.Second {
		t.Errorf("Close took %v with a stopped plugin", d)
	}
	if !processGone(pid) {
		t.Errorf("stopped plugin %d survived Close", pid)
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func TestSupervisorSkipsBadPlugins(t *testing.T) {
	dir := pluginDir(t, map[string]string{"echo": binEcho, "wrongversion": binTestV2, "mute": binMute, "chatty": binBadName})
	writeFile(t, filepath.Join(dir, "notexec"), "#!/bin/sh\nexit 0\n", 0o644)
	writeFile(t, filepath.Join(dir, "notaplugin"), "#!/bin/sh\necho hello\nsleep 30\n", 0o755)
	writeFile(t, filepath.Join(dir, "silent"), "#!/bin/sh\nexit 1\n", 0o755)
	// Output that upsets go-plugin's own parsers: a JSON log line with a
	// non-string message, and a TLS certificate field in the handshake.
	writeFile(t, filepath.Join(dir, "hostile"), "#!/bin/sh\n"+
		`echo '{"@message":5,"@level":7,"@timestamp":[]}' >&2`+"\n"+
		`echo '1|1|tcp|127.0.0.1:1|grpc|MIIBhTCCASugAwIBAgIQIRi6zePL6mKjOipn+dNuaTAKBggqhkjOPQQDAjASMRAwDgYDVQQKEwdBY21lIENvMB4XDTE3MTAyMDE5NDMwNloXDTE4MTAyMDE5NDMwNlowEjEQMA4GA1UEChMHQWNtZSBDbzBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABD0d'`+"\n"+
		"sleep 30\n", 0o755)
	writeFile(t, filepath.Join(dir, ".hidden"), "#!/bin/sh\nexit 1\n", 0o755)
	if err := os.Mkdir(filepath.Join(dir, "subfolder"), 0o755); err != nil {
		t.Fatal(err)
	}

	const startTimeout = 2 * time.Second
	begin := time.Now()
	s, logs := startSupervisor(t, SupervisorConfig{Dir: dir, StartTimeout: startTimeout})
	if d := time.Since(begin); d > startTimeout+5*time.Second {
		t.Errorf("Start took %v with StartTimeout %v", d, startTimeout)
	}
	if got := s.Services(); len(got) != 1 || got[0].Name != "echo" {
		t.Errorf("Services() = %v, want only echo", got)
	}
	if got, err := send(s.Handler(), "echo", "fine"); err != nil || string(got) != "fine" {
		t.Errorf("echo = %q, %v", got, err)
	}
	want := map[string]string{
		"notexec":      "not executable",
		"notaplugin":   "bad handshake line",
		"silent":       "the plugin exited before its handshake (exit status 1) and wrote nothing on its standard error",
		"chatty":       `the plugin exited before its handshake (exit status 1): plugins: handlers: invalid service name "Chatty"`,
		"hostile":      "bad handshake line",
		"wrongversion": "plugin protocol version",
		"mute":         "start took longer than 2s",
	}
	var names []string
	for _, st := range s.Status() {
		names = append(names, st.Name)
		if st.Name == "echo" {
			continue
		}
		if !st.Skipped || st.Up || !strings.Contains(st.LastError, want[st.Name]) {
			t.Errorf("Status %+v, want skipped with an error containing %q", st, want[st.Name])
		}
		if !strings.Contains(logs.String(), `"plugin":"`+st.Name+`"`) {
			t.Errorf("plugin %s not reported in the log", st.Name)
		}
	}
	if got := strings.Join(names, " "); got != "chatty echo hostile mute notaplugin notexec silent wrongversion" {
		t.Errorf("Status lists %s; hidden files and folders must be ignored", got)
	}
}

func TestSupervisorDuplicateService(t *testing.T) {
	dir := pluginDir(t, map[string]string{"echo": binEcho, "echo2": binEcho})
	s, logs := startSupervisor(t, SupervisorConfig{Dir: dir})
	if st := statusOf(t, s, "echo"); !reflect.DeepEqual(st.Services, []string{"echo"}) {
		t.Errorf("first plugin: %+v", st)
	}
	if st := statusOf(t, s, "echo2"); !st.Up || len(st.Services) != 0 {
		t.Errorf("second plugin: %+v, want running with no services", st)
	}
	if !strings.Contains(logs.String(), "already offered by another plugin") {
		t.Error("the duplicate service was not logged")
	}
	if got, err := send(s.Handler(), "echo", "x"); err != nil || string(got) != "x" {
		t.Errorf("echo = %q, %v", got, err)
	}
}

func TestSupervisorPathsAndConfigErrors(t *testing.T) {
	bin := buildPlugins(t)
	s, _ := startSupervisor(t, SupervisorConfig{Paths: []string{filepath.Join(bin, binEcho)}})
	if got, err := send(s.Handler(), "echo", "via Paths"); err != nil || string(got) != "via Paths" {
		t.Errorf("plugin from Paths: %q, %v", got, err)
	}

	notExec := filepath.Join(t.TempDir(), "notexec")
	writeFile(t, notExec, "x", 0o644)
	hidden := filepath.Join(t.TempDir(), ".hidden")
	writeFile(t, hidden, "#!/bin/sh\nexit 1\n", 0o755)
	dup := pluginDir(t, map[string]string{"echo": binEcho})
	for name, cfg := range map[string]SupervisorConfig{
		"missing path":      {Paths: []string{filepath.Join(t.TempDir(), "missing")}},
		"path not exec":     {Paths: []string{notExec}},
		"path is a folder":  {Paths: []string{t.TempDir()}},
		"missing dir":       {Dir: filepath.Join(t.TempDir(), "missing")},
		"two plugins named": {Dir: dup, Paths: []string{filepath.Join(bin, binEcho)}},
		"hidden path":       {Paths: []string{hidden}},
	} {
		cfg.DataDir = t.TempDir()
		s, err := NewSupervisor(cfg)
		if err != nil {
			t.Fatalf("%s: NewSupervisor: %v", name, err)
		}
		if err := s.Start(context.Background()); err == nil {
			t.Errorf("%s: Start succeeded", name)
		} else if !strings.HasPrefix(err.Error(), "plugins: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
		s.Close()
	}

	for name, cfg := range map[string]SupervisorConfig{
		"no data dir":      {},
		"negative backoff": {DataDir: "x", MinBackoff: -1},
		"max below min":    {DataDir: "x", MinBackoff: time.Second, MaxBackoff: time.Millisecond},
		"negative size":    {DataDir: "x", MaxReplySize: -1},
	} {
		if _, err := NewSupervisor(cfg); err == nil {
			t.Errorf("%s: NewSupervisor succeeded", name)
		}
	}

	s2, err := NewSupervisor(SupervisorConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Start(context.Background()); err != nil {
		t.Fatalf("Start with no plugins: %v", err)
	}
	if err := s2.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
}

func TestCheckPluginName(t *testing.T) {
	for _, name := range []string{"echo", "kv-store", "my plugin", "a.b"} {
		if err := checkPluginName(name); err != nil {
			t.Errorf("checkPluginName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", ".hidden", "a/b", `a\b`, "a\x00b", "a\nb"} {
		if err := checkPluginName(name); err == nil {
			t.Errorf("checkPluginName(%q) accepted", name)
		}
	}
}

func TestKVStorePluginKeepsDataAcrossRestarts(t *testing.T) {
	dir := pluginDir(t, map[string]string{"kv": binKV})
	s, _ := startSupervisor(t, SupervisorConfig{Dir: dir})
	h := s.Handler()
	if _, err := send(h, "kv", `{"op":"put","key":"greeting","value":"hello"}`); err != nil {
		t.Fatal(err)
	}
	_, err := send(h, "kv", `{"op":"get","key":"missing"}`)
	if handlers.CodeOf(err) != "not_found" {
		t.Errorf("get of a missing key: %v, want not_found", err)
	}
	_, err = send(h, "kv", `{"op":"fly"}`)
	if handlers.CodeOf(err) != handlers.CodeBadRequest {
		t.Errorf("unknown op: %v, want bad_request", err)
	}

	pid := statusOf(t, s, "kv").PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitRestarted(t, s, "kv", pid)
	got, err := send(h, "kv", `{"op":"get","key":"greeting"}`)
	if err != nil || string(got) != `{"value":"hello"}` {
		t.Errorf("after restart: %q, %v", got, err)
	}
}
