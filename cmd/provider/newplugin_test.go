package main

import (
	"bytes"
	"errors"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/internal/cli"
)

// runProvider runs the built provider in the folder dir and returns its
// stdout, stderr and exit status.
func runProvider(t *testing.T, bin, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "provider"), args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("provider %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// goIn runs the go command in dir and fails t unless it succeeds.
func goIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	defer func(start time.Time) { t.Logf("go %s: %v", strings.Join(args, " "), time.Since(start)) }(time.Now())
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestNewPlugin: `provider new-plugin NAME` as a plugin author uses it, from
// a peapod checkout: the module it writes is gofmt-formatted, its own
// tests pass (they build the plugin and run it under a supervisor), and the
// plugin built into a provider's plugins folder answers `client call`
// through the mixnet, its coded error included. Mistakes are refused with a
// message.
func TestNewPlugin(t *testing.T) {
	bin := binaries(t)
	checkout, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "hello")
	stdout, stderr, code := runProvider(t, bin, checkout, "new-plugin", "--dir", dir, "hello")
	if code != 0 || !strings.Contains(stdout, "wrote the plugin module example.com/hello in "+dir) || !strings.Contains(stdout, "go mod tidy") {
		t.Fatalf("new-plugin: status %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "module example.com/hello\n") || !strings.Contains(string(mod), "replace github.com/peapod-mixnet/peapod => "+checkout+"\n") {
		t.Errorf("go.mod:\n%s", mod)
	}
	for _, name := range []string{"main.go", "main_test.go"} {
		src, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if formatted, err := format.Source(src); err != nil || !bytes.Equal(formatted, src) {
			t.Errorf("%s is not gofmt-formatted (%v)", name, err)
		}
	}

	// The author's next steps, as the command prints them.
	goIn(t, dir, "mod", "tidy")
	if out := goIn(t, dir, "test", "-count=1", "-v", "./..."); !strings.Contains(out, "--- PASS: TestGreet") || !strings.Contains(out, "--- PASS: TestPlugin") {
		t.Errorf("the module's tests did not both run:\n%s", out)
	}
	plugins := t.TempDir()
	goIn(t, dir, "build", "-o", filepath.Join(plugins, "hello"), ".")
	p := startProvider(t, bin, t.TempDir(), "--plugins", plugins)
	// The banner suggests the service it runs, through client call, and
	// no example service it does not run.
	if !strings.Contains(p.banner, "services  hello\n") || !strings.Contains(p.banner, "call --provider "+p.endpoint+" hello DATA\n") ||
		!strings.Contains(p.banner, "--provider-key "+p.key+" hello DATA\n") || strings.Contains(p.banner, " echo ") || strings.Contains(p.banner, " kv ") {
		t.Errorf("banner:\n%s", p.banner)
	}
	request(t, bin, p, "hello, world", "call", "hello", "world")
	out, errOut, code := runClient(t, bin, "call", "--provider", p.endpoint, "--no-delay", "--no-cover", "hello", "")
	if code != 1 || !strings.Contains(out+errOut, "bad_request") || !strings.Contains(out+errOut, "send the name to greet") {
		t.Errorf("an empty call: status %d, stdout %q, stderr %q", code, out, errOut)
	}

	// Mistakes.
	elsewhere := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"new-plugin"}, cli.ExitUsage, "name the plugin"},
		{[]string{"new-plugin", "Hello"}, cli.ExitUsage, `invalid name "Hello"`},
		{[]string{"new-plugin", "--dir", dir, "hello"}, cli.ExitError, dir + " exists and is not empty"},
		{[]string{"new-plugin", "hello"}, cli.ExitError, "no peapod checkout around this binary or the current folder: name one with --peapod DIR"},
		{[]string{"new-plugin", "--peapod", dir, "hello"}, cli.ExitError, `its go.mod is module "example.com/hello", not github.com/peapod-mixnet/peapod`},
	} {
		if _, stderr, code := runProvider(t, bin, elsewhere, tc.args...); code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("provider %q: status %d, stderr %q; want %d, %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("a refused new-plugin wrote %d files", len(entries))
	}
}
