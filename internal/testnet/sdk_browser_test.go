package testnet

import (
	"bufio"
	"context"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/peapod-mixnet/peapod/internal/browsertest"
)

// testBrowser runs the TypeScript SDK's browser example
// (sdk/typescript/example, served by its tiny static server) in headless
// Chromium: the page discovers the provider at providerURL, connects to a
// `client run` started with --allow-origin for the page's origin, and puts,
// gets, lists and deletes a key through the mixnet.
func testBrowser(t *testing.T, ctx context.Context, e *sdkEnv, n *Network, providerURL string) {
	tab := browsertest.Tab(t, ctx)

	// The page's static server prints its URL first.
	srv := exec.CommandContext(ctx, e.node, "example/serve.mjs", "0")
	srv.Dir = e.typescript()
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the example's server printed no URL: %v", err)
	}
	page, err := url.Parse(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	origin := page.Scheme + "://" + page.Host
	c, err := n.StartClient(ctx, "browser-client", ClientOptions{Args: []string{"--allow-origin", origin}})
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"provider": {providerURL}, "ws": {c.WS}, "run": {"demo"}}
	page.RawQuery = q.Encode()

	bctx, cancel := context.WithTimeout(tab, 2*time.Minute)
	defer cancel()
	// The page sets #status's data-state to ok or error when the demo ends.
	const ended = `document.getElementById("status").dataset.state !== "idle" &&
		document.getElementById("status").textContent !== "Connected."`
	read := func(expr string) string {
		v, err := chromedp.Run(bctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("reading the page (%s): %v", expr, err)
		}
		return v
	}
	if _, err := chromedp.Run(bctx, chromedp.Navigate(page.String())); err != nil {
		t.Fatalf("loading %s: %v", page, err)
	}
	_, err = chromedp.Run(bctx, chromedp.Poll[bool](ended, chromedp.WithPollingTimeout(90*time.Second)))
	state := read(`document.getElementById("status").dataset.state`)
	status := read(`document.getElementById("status").textContent`)
	log := read(`document.getElementById("log").textContent`)
	if err != nil {
		t.Fatalf("the page did not finish: %v (status %q)\n%s", err, status, log)
	}
	if state != "ok" || status != "demo passed" {
		t.Fatalf("the page says %s: %q\n%s", state, status, log)
	}
	if !strings.Contains(log, "(first_use)") || !strings.Contains(log, "after delete → (not found)") {
		t.Errorf("the page's log lacks the first use of the key or the delete:\n%s", log)
	}
	t.Logf("the page's log:\n%s", log)
}
