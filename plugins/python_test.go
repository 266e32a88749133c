//go:build unix

package plugins

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/peapod-mixnet/peapod/handlers"
)

// pythonExample is the Python plugin of docs/plugins.md, shipped with the
// stubs protoc generates from handler.proto.
const pythonExample = "../examples/upper-python"

// requiredEnv is set by `make test`, which installs what these tests need:
// without it a missing dependency skips them.
const requiredEnv = "PEAPOD_SDK_TESTS"

// need skips t, or fails it under `make test`, when cmd cannot run.
func need(t *testing.T, what string, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		msg := fmt.Sprintf("%s is missing (`make python-plugin-deps` installs it): %v\n%s", what, err, out)
		if os.Getenv(requiredEnv) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// TestPythonPlugin: the Python example, run by a supervisor as the
// provider runs it: its service is registered, requests (many at once, on
// the Dispatch stream) get their replies, its coded error reaches the
// caller, and it exits quietly when the supervisor closes.
func TestPythonPlugin(t *testing.T) {
	need(t, "Debian's python3-grpcio and python3-protobuf", exec.Command("/usr/bin/python3", "-c", "import grpc, google.protobuf"))
	s, logs := startSupervisor(t, SupervisorConfig{Paths: []string{filepath.Join(pythonExample, "upper")}})
	st := s.Status()
	if len(st) != 1 || !st[0].Up || len(st[0].Services) != 1 || st[0].Services[0] != "upper" {
		t.Fatalf("status %+v\nlog:\n%s", st, logs)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := fmt.Sprintf("hello %d", i)
			want := fmt.Sprintf("HELLO %d", i)
			if got, err := send(s.Handler(), "upper", data); err != nil || string(got) != want {
				t.Errorf("%q: %q, %v", data, got, err)
			}
		}()
	}
	wg.Wait()
	_, err := send(s.Handler(), "upper", "\xff")
	if want := (&handlers.Error{Code: handlers.CodeBadRequest, Message: "data is not UTF-8"}); err == nil || err.Error() != want.Error() {
		t.Errorf("invalid UTF-8: %v, want %v", err, want)
	}
	pid := s.Status()[0].PID
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("the plugin (pid %d) still runs after Close", pid)
	}
	// The host ended the Dispatch stream by cancelling it, which the
	// plugin takes quietly. (A plugin that does not prints a traceback in
	// about half the runs: whether it does before it exits is a race.)
	if strings.Contains(logs.String(), "Traceback") {
		t.Errorf("the plugin printed a Python traceback:\n%s", logs)
	}
}

// TestPythonExampleCurrent: the example is the program docs/plugins.md
// shows, and its handler_pb2.py is what protoc generates from
// handler.proto today.
func TestPythonExampleCurrent(t *testing.T) {
	doc, err := os.ReadFile("../docs/plugins.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```python\n(.*?)```").FindSubmatch(doc)
	script, err := os.ReadFile(filepath.Join(pythonExample, "upper"))
	if err != nil {
		t.Fatal(err)
	}
	if m == nil || !bytes.Equal(m[1], script) {
		t.Errorf("docs/plugins.md's Python plugin differs from %s/upper", pythonExample)
	}

	need(t, "protoc (Debian's protobuf-compiler)", exec.Command("protoc", "--version"))
	out := t.TempDir()
	if b, err := exec.Command("protoc", "--proto_path=proto", "--python_out="+out, "proto/handler.proto").CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
	generated, err := os.ReadFile(filepath.Join(out, "handler_pb2.py"))
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join(pythonExample, "handler_pb2.py"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(generated, shipped) {
		t.Errorf("%s/handler_pb2.py is not what protoc generates from handler.proto: run `make proto`", pythonExample)
	}
}
