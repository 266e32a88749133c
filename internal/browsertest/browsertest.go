// Package browsertest starts headless Chromium for tests that drive a real
// browser with chromedp: Debian's chromium, which `make test` installs.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// RequiredEnv is the environment variable `make test` sets: with it, a
// missing Chromium fails a test instead of skipping it.
const RequiredEnv = "PEAPOD_SDK_TESTS"

// flags are the flags of every headless Chromium a test starts: no sandbox
// (tests run as root), and nothing that reaches outside this machine
// (QUIC, background networking, component updates, sync).
var flags = []chromedp.ExecAllocatorOption{
	chromedp.Headless,
	chromedp.NoSandbox,
	chromedp.DisableGPU,
	chromedp.NoFirstRun,
	chromedp.Flag("disable-quic", true),
	chromedp.Flag("disable-background-networking", true),
	chromedp.Flag("disable-component-update", true),
	chromedp.Flag("disable-sync", true),
}

// Tab starts a headless Chromium with a profile of its own and returns the
// chromedp context of a tab in it; the browser ends with ctx or t. Without
// chromium on PATH it skips t, or fails it when RequiredEnv is set.
func Tab(t testing.TB, ctx context.Context) context.Context {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv(RequiredEnv) != "" {
			t.Fatal("no chromium on PATH (run `make chromium`)")
		}
		t.Skip("no chromium on PATH (`make test` installs it)")
	}
	opts := append([]chromedp.ExecAllocatorOption{chromedp.ExecPath(chromium), chromedp.UserDataDir(t.TempDir())}, flags...)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	return tab
}
