package testnet

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The SDKs' integration tests need Node ≥ 20 with the TypeScript SDK's
// packages (npm ci) and Debian's python3-websockets and
// python3-cryptography; `make test` installs them and sets
// PEAPOD_SDK_TESTS=1, which turns a missing one from a skip into a failure.
const sdkTestsEnv = "PEAPOD_SDK_TESTS"

// sdkPython is the Python the SDK runs on: Debian's, whose packages the
// Makefile installs (not a pyenv one that lacks them).
const sdkPython = "/usr/bin/python3"

// sdkEnv is what the SDKs' tools need: the repository root and the
// programs.
type sdkEnv struct {
	root   string // the repository
	node   string
	python string
}

func (e *sdkEnv) typescript() string { return filepath.Join(e.root, "sdk", "typescript") }
func (e *sdkEnv) pythonDir() string  { return filepath.Join(e.root, "sdk", "python") }

// needSDKs finds Node and Python with the SDKs' dependencies, builds the
// TypeScript SDK (tsc, incremental enough to take a few seconds), and
// skips t when something is missing, unless PEAPOD_SDK_TESTS is set.
func needSDKs(t testing.TB) *sdkEnv {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		(*sdkEnv)(nil).missing(t, format, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	goTool, err := goCommand()
	if err != nil {
		t.Fatal(err)
	}
	root, err := moduleRoot(ctx, goTool)
	if err != nil {
		t.Fatal(err)
	}
	e := &sdkEnv{root: root, python: sdkPython}
	if e.node, err = exec.LookPath("node"); err != nil {
		missing("no node on PATH")
	}
	out, err := exec.CommandContext(ctx, e.node, "--version").Output()
	major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(strings.TrimSpace(string(out)), "v"), ".", 2)[0])
	if err != nil || major < 20 {
		missing("node %s is older than 20", bytes.TrimSpace(out))
	}
	if _, err := os.Stat(filepath.Join(e.typescript(), "node_modules", "@noble", "ed25519")); err != nil {
		missing("sdk/typescript has no node_modules")
	}
	if err := exec.CommandContext(ctx, e.python, "-c", "import websockets, cryptography").Run(); err != nil {
		missing("%s lacks websockets or cryptography", e.python)
	}
	e.run(t, ctx, e.typescript(), nil, e.node, "node_modules/typescript/bin/tsc", "-p", ".")
	return e
}

// missing skips t for a missing dependency, or fails it when the
// Makefile was to install it (PEAPOD_SDK_TESTS is set).
func (*sdkEnv) missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(sdkTestsEnv) != "" {
		t.Fatalf(format+" (run `make sdk-deps`)", args...)
	}
	t.Skipf(format+" (`make test` installs it)", args...)
}

// run runs a program in dir with env added, and fails t with its output
// when it fails. It returns the output.
func (e *sdkEnv) run(t testing.TB, ctx context.Context, dir string, env []string, prog string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(prog), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// summary returns the last lines of a test runner's output.
func summary(out string, lines int) string {
	all := strings.Split(strings.TrimSpace(out), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// TestSDKs runs the TypeScript and Python SDKs' integration tests through a
// network of processes: a provider with the example plugins (its request
// limit raised to 1 MiB, so that the kv service's own too_large can be
// reached) and a `client run` whose WebSocket API the SDKs use. Each SDK
// discovers the provider (trusting the network's directory authorities,
// which the descriptor names), puts, gets, lists and deletes kv keys through the
// mixnet, sees unknown_service and too_large as typed errors, refuses a
// tampered descriptor and a wrong pinned key, and runs its README's example
// as written. The browser subtest does the kv part from the TypeScript
// SDK's example page in headless Chromium.
func TestSDKs(t *testing.T) {
	t.Parallel()
	e := needSDKs(t)
	n := startNet(t, Config{})
	ctx := ctxFor(t, 5*time.Minute)
	p := startProvider(t, ctx, n, ProviderOptions{Args: []string{"--max-request", "1048576"}})
	c, err := n.StartClient(ctx, "sdk-client", ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"PEAPOD_PROVIDER_URL=" + p.HTTP, "PEAPOD_WS_URL=" + c.WS, "PEAPOD_AUTHORITIES=" + n.AuthorityKeys()}

	t.Run("node", func(t *testing.T) {
		out := e.run(t, ctx, e.typescript(), env, e.node, "--experimental-websocket", "--test", "test/integration.test.mjs")
		if !strings.Contains(out, "# pass 4") || !strings.Contains(out, "# skipped 0") {
			t.Fatalf("not every integration test ran and passed:\n%s", out)
		}
		t.Log(summary(out, 8))
	})
	t.Run("python", func(t *testing.T) {
		out := e.run(t, ctx, e.pythonDir(), env, e.python, "-m", "unittest", "-v", "tests.test_integration")
		if !strings.Contains(out, "Ran 4 tests") || strings.Contains(out, "skipped") {
			t.Fatalf("not every integration test ran and passed:\n%s", out)
		}
		t.Log(summary(out, 8))
	})
	t.Run("browser", func(t *testing.T) { testBrowser(t, ctx, e, n, p.HTTP) })
}
