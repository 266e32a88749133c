package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/framework/requester"
	"github.com/peapod-mixnet/peapod/internal/cli"
	"github.com/peapod-mixnet/peapod/internal/testbuild"
)

// Tests of the built binaries: the provider with the real example plugins
// next to it, and the client's echo and kv subcommands, as a newcomer runs
// them (with --no-delay and --no-cover, so that they take seconds).

const processTimeout = 60 * time.Second

var built = testbuild.New("peapod-provider-test-",
	testbuild.Target{Out: "bin/provider", Pkg: "."},
	testbuild.Target{Out: "bin/client", Pkg: "../client"},
	testbuild.Target{Out: "bin/plugins/echo", Pkg: "../../examples/echo/plugin"},
	testbuild.Target{Out: "bin/plugins/kvstore", Pkg: "../../examples/kvstore/plugin"})

func TestMain(m *testing.M) {
	code := m.Run()
	built.Remove()
	os.Exit(code)
}

// binaries builds the provider, the client and the example plugins, laid
// out as `make build` does, once per test binary.
func binaries(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	return built.Path(t, "bin")
}

// providerProcess is a running provider binary and what its banner said.
type providerProcess struct {
	banner   string // everything printed up to "Press Ctrl-C"
	cmd      *exec.Cmd
	endpoint string
	address  string
	key      string
	stderr   *lockedWriter
	exited   chan error
}

// badPlugin builds the test plugin whose service name plugins.Serve
// refuses ("Chatty"), alone in a new plugins folder with the echo example,
// and returns the folder.
func badPlugin(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-buildvcs=false", "-ldflags", "-X main.variant=badname",
		"-o", filepath.Join(dir, "chatty"), "../../plugins/internal/testplugin")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	echo, err := os.ReadFile(filepath.Join(bin, "plugins", "echo"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "echo"), echo, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestProviderPluginFailsAtStart: a plugin that exits before its handshake
// (plugins.Serve refused its service name) is reported with its own words
// in the error log line, the banner and /healthz; the banner suggests only
// the services that run.
func TestProviderPluginFailsAtStart(t *testing.T) {
	bin := binaries(t)
	p := startProvider(t, bin, t.TempDir(), "--plugins", badPlugin(t, bin))
	const cause = `the plugin exited before its handshake (exit status 1): plugins: handlers: invalid service name "Chatty"`
	for _, want := range []string{
		"  plugins   chatty (NOT RUNNING: plugins: " + cause + ")\n",
		"            echo (running: echo)\n",
		"  services  echo\n",
		"echo --provider " + p.endpoint + " hello\n",
	} {
		if !strings.Contains(p.banner, want) {
			t.Errorf("the banner does not say %q:\n%s", want, p.banner)
		}
	}
	if strings.Contains(p.banner, " kv ") || strings.Contains(p.banner, "call --provider") {
		t.Errorf("the banner suggests a service that is not loaded:\n%s", p.banner)
	}
	if !strings.Contains(p.stderr.String(), `"level":"error","plugin":"chatty"`) || !strings.Contains(p.stderr.String(), strings.ReplaceAll(cause, `"`, `\"`)) {
		t.Errorf("no error line with the cause:\n%s", p.stderr)
	}
	resp, err := http.Get(p.endpoint + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var health struct {
		OK      bool `json:"ok"`
		Plugins []struct {
			Name    string `json:"name"`
			Skipped bool   `json:"skipped"`
			Error   string `json:"error"`
		} `json:"plugins"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&health); err != nil {
		t.Fatal(err)
	}
	if !health.OK || len(health.Plugins) != 2 || health.Plugins[0].Name != "chatty" || !health.Plugins[0].Skipped ||
		!strings.Contains(health.Plugins[0].Error, cause) || health.Plugins[1].Error != "" {
		t.Errorf("/healthz: %+v", health)
	}
	// Every plugin's restart counter is there from the start, at 0, so
	// that an alert on it has a series before the first restart.
	metrics := httpGet(t, p.endpoint+"/metrics")
	for _, want := range []string{`peapod_plugin_restarts_total{plugin="echo"} 0`, `peapod_plugin_restarts_total{plugin="chatty"} 0`} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics has no %s", want)
		}
	}
}

// TestProviderNoPlugins: with an empty plugins folder the provider runs,
// and its banner says there is nothing to try and how to add plugins,
// rather than suggesting a command that cannot work.
func TestProviderNoPlugins(t *testing.T) {
	bin := binaries(t)
	p := startProvider(t, bin, t.TempDir(), "--plugins", t.TempDir())
	for _, want := range []string{"  plugins   (none found)\n", "  services  (none)\n", "Nothing to try yet: put plugin executables in the plugins folder"} {
		if !strings.Contains(p.banner, want) {
			t.Errorf("the banner does not say %q:\n%s", want, p.banner)
		}
	}
	if strings.Contains(p.banner, "Try it") || strings.Contains(p.banner, "--provider ") {
		t.Errorf("the banner suggests a request to a provider without services:\n%s", p.banner)
	}
}

// httpGet returns the body of a 200 answer to GET url.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// startProvider runs bin/provider on dataDir with free ports, and waits for
// its banner.
func startProvider(t *testing.T, bin, dataDir string, extra ...string) *providerProcess {
	t.Helper()
	args := append([]string{
		"--data", dataDir, "--http", "127.0.0.1:0", "--local-directory", "127.0.0.1:0",
		"--no-delay", "--no-cover",
	}, extra...)
	cmd := exec.Command(filepath.Join(bin, "provider"), args...)
	cmd.Dir = t.TempDir()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &providerProcess{cmd: cmd, stderr: &lockedWriter{}, exited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(t, syscall.SIGTERM) })

	banner := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for done := false; !done && sc.Scan(); {
			p.banner += sc.Text() + "\n" // read by the test once the banner is complete
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 {
				switch fields[0] {
				case "address":
					p.address = fields[1]
				case "key":
					p.key = fields[1]
				case "endpoint":
					p.endpoint = fields[1]
				}
			}
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				done = true
				banner <- nil
			}
		}
		banner <- errors.New("the provider's output ended before its banner")
		io.Copy(io.Discard, stdout)
	}()
	go func() { p.exited <- cmd.Wait() }()
	select {
	case err := <-banner:
		if err != nil {
			t.Fatalf("%v\nstderr:\n%s", err, p.stderr)
		}
	case <-time.After(processTimeout):
		t.Fatalf("no banner within %v\nstderr:\n%s", processTimeout, p.stderr)
	}
	if p.address == "" || p.key == "" || !strings.HasPrefix(p.endpoint, "http://127.0.0.1:") {
		t.Fatalf("banner: address %q key %q endpoint %q", p.address, p.key, p.endpoint)
	}
	return p
}

// stop sends sig, unless the process has exited, and waits for it to
// exit, returning its exit error.
func (p *providerProcess) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err
		return err
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	return p.wait(t)
}

// wait waits for the process to exit and returns its exit error; it may be
// called again.
func (p *providerProcess) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err
		return err
	case <-time.After(processTimeout):
		_ = p.cmd.Process.Kill()
		t.Fatalf("the provider did not exit\nstderr:\n%s", p.stderr)
		return nil
	}
}

// lockedWriter collects a process's output for reading while it runs.
type lockedWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// runClient runs bin/client with args and returns its stdout, stderr and
// exit status.
func runClient(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	return runClientIn(t, bin, "", args...)
}

// runClientIn is runClient with stdin as the client's standard input.
func runClientIn(t *testing.T, bin, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "client"), args...)
	cmd.Dir = t.TempDir()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("client %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// request runs a client subcommand against the provider and expects
// success with stdout want.
func request(t *testing.T, bin string, p *providerProcess, want string, args ...string) {
	t.Helper()
	full := append([]string{args[0], "--provider", p.endpoint, "--no-delay", "--no-cover"}, args[1:]...)
	stdout, stderr, code := runClient(t, bin, full...)
	if code != 0 || stdout != want {
		t.Fatalf("client %s: status %d, stdout %q (want %q)\nstderr:\n%s\nprovider stderr:\n%s", strings.Join(full, " "), code, stdout, want, stderr, p.stderr)
	}
}

// TestProviderProcess: the built provider, with the real plugins next to
// it, on its embedded network. A client discovers the address over HTTP
// and gets echo and kv replies through the mixnet; errors and a wrong key
// pin fail with a non-zero status; after a restart the provider keeps its
// address and the kv data.
func TestProviderProcess(t *testing.T) {
	bin := binaries(t)
	dataDir := t.TempDir()
	// The example file as an operator starts from it; the flags win.
	example, err := filepath.Abs(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	p := startProvider(t, bin, dataDir, "--config", example)

	resp, err := http.Get(p.endpoint + "/address")
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Address  string `json:"address"`
		Services []struct {
			Name string `json:"name"`
		} `json:"services"`
	}
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || info.Address != p.address || len(info.Services) != 2 {
		t.Fatalf("/address: %+v, %v", info, err)
	}

	request(t, bin, p, "hello mixnet\n", "echo", "hello", "mixnet")
	request(t, bin, p, "ok\n", "kv", "put", "greeting", "hi there")
	request(t, bin, p, "hi there\n", "kv", "get", "greeting")
	request(t, bin, p, "greeting\n", "kv", "list", "gr")
	request(t, bin, p, "hello\n", "echo", "--provider-key", p.key, "hello")

	// client call: any service, its data as an argument, @FILE or stdin;
	// flags after the operation work too.
	file := filepath.Join(t.TempDir(), "note.txt")
	if err := os.WriteFile(file, []byte("from a file\nwith two lines\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	request(t, bin, p, "raw data", "call", "echo", "raw data")
	request(t, bin, p, "from a file\nwith two lines\n", "call", "echo", "@"+file)
	request(t, bin, p, `{"value":"hi there"}`, "call", "kv", `{"op":"get","key":"greeting"}`)
	request(t, bin, p, "ok\n", "kv", "put", "note", "@"+file)
	for _, args := range [][]string{
		{"call", "echo", "-", "--provider", p.endpoint, "--no-delay", "--no-cover"},
		{"kv", "put", "piped", "-", "--provider", p.endpoint, "--no-delay", "--no-cover"},
	} {
		stdout, stderr, code := runClientIn(t, bin, "through a pipe", args...)
		if want := map[string]string{"call": "through a pipe", "kv": "ok\n"}[args[0]]; code != 0 || stdout != want {
			t.Errorf("client %v with stdin: status %d, stdout %q (want %q)\n%s", args, code, stdout, want, stderr)
		}
	}
	stdout, stderr, code := runClient(t, bin, "kv", "get", "note", "--provider", p.endpoint, "--no-delay", "--no-cover")
	if code != 0 || stdout != "from a file\nwith two lines\n\n" {
		t.Errorf("kv get with the flags after the operation: status %d, stdout %q\n%s", code, stdout, stderr)
	}
	_, stderr, code = runClient(t, bin, "call", "--provider", p.endpoint, "--no-delay", "--no-cover", "nosuch", "x")
	if code != 1 || !strings.Contains(stderr, `offers no service "nosuch"`) {
		t.Errorf("call of a missing service: status %d, stderr %q", code, stderr)
	}

	// A request over the provider's published limit (the example file's
	// 262144 bytes) is refused by the client before it is sent, with what
	// fits, rather than resent until --timeout.
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 300<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = runClient(t, bin, "call", "--provider", p.endpoint, "--no-delay", "--no-cover", "echo", "@"+big)
	if code != 1 || !strings.Contains(stderr, "client call: a request of 307200 bytes of data") ||
		!strings.Contains(stderr, "over the provider's limit of 262144 bytes") || !strings.Contains(stderr, "not sent") {
		t.Errorf("call with data over the limit: status %d, stderr %q", code, stderr)
	}

	_, stderr, code = runClient(t, bin, "kv", "--provider", p.endpoint, "--no-delay", "--no-cover", "get", "missing")
	if code != 1 || !strings.Contains(stderr, "not_found") {
		t.Errorf("kv get of a missing key: status %d, stderr %q", code, stderr)
	}
	wrongKey := "4QXYyEVc5fUDjmmi8PrHN9tdUFV4PCvSJE1278cHyvoe"
	_, stderr, code = runClient(t, bin, "echo", "--provider", p.endpoint, "--provider-key", wrongKey, "--no-delay", "--no-cover", "x")
	if code != 1 || !strings.Contains(stderr, "pinned") {
		t.Errorf("echo with a wrong key pin: status %d, stderr %q", code, stderr)
	}

	// The embedded network logs at warn: its nodes' start-up and their
	// clients' comings and goings do not bury the provider's lines.
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(line, `"network":"embedded"`) && strings.Contains(line, `"level":"info"`) {
			t.Errorf("an info line of the embedded network: %s", line)
			break
		}
	}
	// Each log line is a JSON object with each key once (a key twice, as
	// "component" was on the embedded network's and the host's client's
	// lines, is read differently by different log tools).
	for _, line := range strings.Split(strings.TrimSpace(p.stderr.String()), "\n") {
		if key := repeatedKey(line); key != "" {
			t.Errorf("a log line with %q twice: %s", key, line)
			break
		}
	}
	// Its own request lines are there, and their durations carry a unit.
	if !regexp.MustCompile(`"service":"kv","code":"ok","duration":"[0-9.]+(µs|ms|s)"`).MatchString(p.stderr.String()) {
		t.Errorf("no request line of the kv service with a duration in units:\n%s", p.stderr)
	}

	// A graceful stop, then a restart on the same data.
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("the provider exited with %v\nstderr:\n%s", err, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "provider stopped") {
		t.Errorf("no clean stop in the log:\n%s", p.stderr)
	}
	p2 := startProvider(t, bin, dataDir)
	if p2.address != p.address || p2.key != p.key {
		t.Fatalf("after a restart: address %s (was %s), key %s (was %s)", p2.address, p.address, p2.key, p.key)
	}
	request(t, bin, p2, "hi there\n", "kv", "get", "greeting")
}

// repeatedKey returns a key that the JSON object line holds twice at its
// top level, "" when none does, and "(not a JSON object)" when line is
// not one.
func repeatedKey(line string) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal([]byte(line), &fields) != nil {
		return "(not a JSON object)"
	}
	dec := json.NewDecoder(strings.NewReader(line))
	seen := map[string]bool{}
	dec.Token() // {
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "(not a JSON object)"
		}
		key, _ := tok.(string)
		if seen[key] {
			return key
		}
		seen[key] = true
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return "(not a JSON object)"
		}
	}
	return ""
}

// TestProviderSecondSignal: while a request hangs in a plugin and the
// graceful shutdown waits for it, a second signal ends the process at once
// and takes the plugin processes with it.
func TestProviderSecondSignal(t *testing.T) {
	bin := binaries(t)
	plugins := t.TempDir()
	out, err := exec.Command("go", "build", "-buildvcs=false", "-o", filepath.Join(plugins, "testplugin"), "../../plugins/internal/testplugin").CombinedOutput()
	if err != nil {
		t.Fatalf("go build testplugin: %v\n%s", err, out)
	}
	p := startProvider(t, bin, t.TempDir(), "--plugins", plugins, "--timeout", "1h", "--drain-timeout", "1h")
	pids := pluginPIDs(t, p)
	if len(pids) != 1 {
		t.Fatalf("plugin pids %v", pids)
	}

	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	s, err := requester.Connect(ctx, requester.Config{
		ProviderURL: p.endpoint,
		Client:      client.Config{NoDelay: true, Cover: client.CoverConfig{Disabled: true}},
		Options:     requester.Options{Resend: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	go s.Do(ctx, "test", []byte("hang")) // never answered
	waitFor(t, "the request to be in flight", func() bool {
		resp, err := http.Get(p.endpoint + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "peapod_provider_requests_in_flight 1")
	})

	_ = p.cmd.Process.Signal(syscall.SIGINT)
	waitFor(t, "the graceful shutdown to begin", func() bool {
		return strings.Contains(p.stderr.String(), "shutting down")
	})
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	var exit *exec.ExitError
	if err := p.wait(t); !errors.As(err, &exit) || exit.ExitCode() != cli.ExitError {
		t.Fatalf("after two signals: %v, want exit status %d\nstderr:\n%s", err, cli.ExitError, p.stderr)
	}
	for _, pid := range pids {
		// Signal 0 tests whether the process exists; nothing signals the
		// death of a process that is not our child.
		waitFor(t, fmt.Sprintf("plugin process %d to die", pid), func() bool { return syscall.Kill(pid, 0) != nil })
	}
}

// waitFor polls cond until it holds, failing the test after
// processTimeout; for states of another process that nothing signals.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(processTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pluginPIDs reads the plugins' process ids from the provider's log.
func pluginPIDs(t *testing.T, p *providerProcess) []int {
	t.Helper()
	var pids []int
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		var entry struct {
			Message string `json:"message"`
			PID     int    `json:"pid"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Message == "plugin started" && entry.PID > 0 {
			pids = append(pids, entry.PID)
		}
	}
	return pids
}

// TestProviderBadUsage: bad flags and files end with status 2 and a
// message, before anything starts.
func TestProviderBadUsage(t *testing.T) {
	bin := binaries(t)
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("[provider]\nnope = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(t.TempDir(), "bare.toml")
	if err := os.WriteFile(bare, []byte("[limits]\nrequest_timeout = 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--no-such-flag"},
		{"--config", bad},
		{"--config", bare},
		{"--directory", "http://127.0.0.1:1", "--nym-client", "ws://127.0.0.1:1"},
		{"extra-argument"},
	} {
		cmd := exec.Command(filepath.Join(bin, "provider"), args...)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != cli.ExitUsage || len(out) == 0 {
			t.Errorf("provider %v: %v\n%s", args, err, out)
		}
	}
}

// TestVersions: --version on the binaries prints one line naming the
// program, the commit and the Go version, and exits 0.
func TestVersions(t *testing.T) {
	bin := binaries(t)
	for _, args := range [][]string{{"provider", "--version"}, {"client", "--version"}, {"client", "kv", "--version"}} {
		out, err := exec.Command(filepath.Join(bin, args[0]), args[1:]...).Output()
		if err != nil || !strings.HasPrefix(string(out), args[0]+" ") || !strings.Contains(string(out), " commit ") ||
			!strings.Contains(string(out), runtime.Version()) || strings.Count(string(out), "\n") != 1 {
			t.Errorf("%v: %v: %q", args, err, out)
		}
	}
}
