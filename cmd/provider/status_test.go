package main

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/framework/requester"
	"github.com/peapod-mixnet/peapod/internal/browsertest"
)

// TestStatusPageInBrowser: the status page at GET / of the provider's
// endpoint, in headless Chromium, as an operator opens it: the address
// (and its Copy button puts it on the clipboard), the key, the network,
// the services, each plugin with its state, restarts and the reason one is
// not running, and the requests by outcome, after real requests through
// the mixnet. The page loads nothing besides itself.
func TestStatusPageInBrowser(t *testing.T) {
	bin := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tab := browsertest.Tab(t, ctx)
	p := startProvider(t, bin, t.TempDir(), "--plugins", badPlugin(t, bin))

	s, err := requester.Connect(ctx, requester.Config{
		ProviderURL: p.endpoint,
		ProviderKey: pinned(t, p.key),
		Client:      client.Config{NoDelay: true, Cover: client.CoverConfig{Disabled: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, data := range []string{"one", "two"} {
		if _, err := s.Do(ctx, "echo", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Do(ctx, "nosuch", nil); err == nil || !strings.Contains(err.Error(), "unknown_service") {
		t.Fatalf("a request for a missing service: %v", err)
	}

	if _, err := chromedp.Run(tab, chromedp.Navigate(p.endpoint+"/")); err != nil {
		t.Fatal(err)
	}
	// The test reads the clipboard back, which a page may do only when
	// allowed.
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(tab, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name}, Setting: browser.PermissionSettingGranted, Origin: p.endpoint,
		}); err != nil {
			t.Fatal(err)
		}
	}
	read := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	cell := func(row, class string) string {
		return read(`document.querySelector('` + row + ` .` + class + `').textContent`)
	}
	if got := read(`document.getElementById("address").value`); got != p.address {
		t.Errorf("address %q, want %q", got, p.address)
	}
	if got := read(`document.getElementById("key").textContent`); got != p.key {
		t.Errorf("key %q, want %q", got, p.key)
	}
	if got := read(`document.getElementById("network").textContent`); !strings.HasPrefix(got, "peapod, directory http://127.0.0.1:") {
		t.Errorf("network %q", got)
	}
	if got := read(`document.getElementById("health").textContent`); got != "Healthy: the transport is connected and every plugin that started is up." {
		t.Errorf("health %q", got)
	}
	if got := read(`[...document.querySelectorAll("#services tr[data-service]")].map(r => r.dataset.service).join(" ")`); got != "echo" {
		t.Errorf("services %q, want echo", got)
	}
	if got := cell(`tr[data-plugin="chatty"]`, "state") + " / " + cell(`tr[data-plugin="chatty"]`, "error"); !strings.HasPrefix(got, "not running / plugins: the plugin exited before its handshake (exit status 1): plugins: handlers: invalid service name \"Chatty\"") {
		t.Errorf("the chatty plugin: %q", got)
	}
	if got := cell(`tr[data-plugin="echo"]`, "state") + " " + cell(`tr[data-plugin="echo"]`, "restarts"); got != "running 0" {
		t.Errorf("the echo plugin: %q", got)
	}
	for outcome, want := range map[string]string{"ok": "2 2", "unknown_service": "1 1", "handler_failed": "0 0"} {
		row := `tr[data-outcome="` + outcome + `"]`
		if got := cell(row, "recent") + " " + cell(row, "total"); got != want {
			t.Errorf("%s requests: %q, want %q", outcome, got, want)
		}
	}
	// Nothing but the page itself was loaded.
	if got := read(`performance.getEntriesByType("resource").map(e => e.name).join(" ")`); got != "" {
		t.Errorf("the page loaded %s", got)
	}

	// Copy puts the address on the clipboard.
	if _, err := chromedp.Run(tab, chromedp.Click(chromedp.ID("copy"))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(tab, chromedp.Poll[bool](`document.getElementById("copied").textContent === "copied"`,
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("the Copy button did not say copied: %v", err)
	}
	got, err := chromedp.Run(tab, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if err != nil || got != p.address {
		t.Errorf("the clipboard holds %q (%v), want the address %q", got, err, p.address)
	}
}

// pinned decodes a provider key as the banner prints it.
func pinned(t *testing.T, key string) ed25519.PublicKey {
	t.Helper()
	k, err := address.DecodeKey(key, ed25519.PublicKeySize)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
