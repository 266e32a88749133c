package framework

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/handlers"
)

// TestStatusPage: GET / is an HTML page with the address, the key, the
// network, the services (their descriptions escaped: a plugin writes them)
// and the requests by outcome, whose Content-Security-Policy admits its own
// inline style and script, by hash, and nothing else. The page in a real
// browser: cmd/provider.TestStatusPageInBrowser.
func TestStatusPage(t *testing.T) {
	tr := newMemTransport(t)
	hostile := Service{
		ServiceInfo: handlers.ServiceInfo{Name: "odd", Description: `<img src=x onerror="alert(1)">`},
		Handler: handlers.HandlerFunc(func(context.Context, *handlers.Request) ([]byte, error) {
			return nil, handlers.Errorf("not_found", "no")
		}),
	}
	h := startHost(t, tr, Config{Services: []Service{echoService, hostile}})
	tag := newTag(t)
	wantOK(t, tr.do(t, tag, "1", "echo", []byte("a")), "a")
	wantOK(t, tr.do(t, tag, "2", "echo", []byte("b")), "b")
	wantError(t, tr.do(t, tag, "3", "nosuch", nil), handlers.CodeUnknownService)
	wantError(t, tr.do(t, tag, "4", "odd", nil), "not_found")

	resp, err := http.Get("http://" + h.HTTPAddr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	body := string(raw)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`value="` + h.Address().String() + `"`,
		`<code id="key">` + address.EncodeKey(h.Key()) + `</code>`,
		`peapod, directory <code>` + testNetwork.Directory + `</code>`,
		`<tr data-service="echo">`,
		`&lt;img src=x onerror=&#34;alert(1)&#34;&gt;`,
		`<tr data-outcome="ok"><td>ok</td><td class="recent">2</td><td class="total">2</td></tr>`,
		`<tr data-outcome="unknown_service"><td>unknown_service</td><td class="recent">1</td><td class="total">1</td></tr>`,
		`<tr data-outcome="other"><td>other <span class="note">(a service's own code, such as not_found)</span></td><td class="recent">1</td><td class="total">1</td></tr>`,
		`<tr data-outcome="timeout"><td>timeout</td><td class="recent">0</td><td class="total">0</td></tr>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(body, "<img") {
		t.Error("a service description reached the page unescaped")
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.HasPrefix(csp, "default-src 'none';") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, tag := range []string{"style", "script"} {
		m := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllStringSubmatch(body, -1)
		if len(m) != 1 || !strings.Contains(csp, tag+"-src "+cspHash(m[0][1])) {
			t.Errorf("the page's %s is not the one its policy admits (%d found)", tag, len(m))
		}
	}
	if regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).MatchString(body) {
		t.Error("the page refers to another site")
	}
}
