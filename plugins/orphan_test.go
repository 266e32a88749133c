//go:build unix

package plugins

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestHostHelperProcess is not a test: TestPluginsDieWithTheirHost runs the
// test binary again with this function as a provider host, which starts the
// plugins in PEAPOD_TEST_PLUGIN_DIR, prints their process ids and waits to
// be killed.
func TestHostHelperProcess(t *testing.T) {
	dir := os.Getenv("PEAPOD_TEST_PLUGIN_DIR")
	if dir == "" {
		t.Skip("helper process for TestPluginsDieWithTheirHost")
	}
	s, err := NewSupervisor(SupervisorConfig{Dir: dir, DataDir: os.Getenv("PEAPOD_TEST_DATA_DIR"), Logger: zerolog.Nop()})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if err := s.Start(context.Background()); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for _, st := range s.Status() {
		fmt.Println("pid", st.PID)
	}
	select {}
}

// A host that is killed (SIGKILL: it cannot stop its plugins) leaves no
// plugin behind: the kernel's parent death signal, or the plugin's own
// check of its parent, ends it.
func TestPluginsDieWithTheirHost(t *testing.T) {
	dir := pluginDir(t, map[string]string{"echo": binEcho, "kv": binKV})
	cmd := exec.Command(os.Args[0], "-test.run=^TestHostHelperProcess$")
	cmd.Env = append(os.Environ(), "PEAPOD_TEST_PLUGIN_DIR="+dir, "PEAPOD_TEST_DATA_DIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var pids []int
	sc := bufio.NewScanner(out)
	for len(pids) < 2 && sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "error") {
			t.Fatal(line)
		}
		if pid, ok := strings.CutPrefix(line, "pid "); ok {
			n, err := strconv.Atoi(pid)
			if err != nil || n <= 0 {
				t.Fatalf("bad pid line %q", line)
			}
			pids = append(pids, n)
		}
	}
	if len(pids) != 2 {
		t.Fatalf("the host reported %d plugins, want 2", len(pids))
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("plugin %d outlived its killed host", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
