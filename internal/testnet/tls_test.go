package testnet

import (
	"bytes"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/framework/descriptor"
)

// tlsProxy is a TLS-terminating reverse proxy, as docs/operate.md puts in
// front of the public listeners: it forwards what allow admits (WebSocket
// upgrades included) to a target set once the target runs, answers 404 to
// the rest, and counts what it forwarded.
type tlsProxy struct {
	*httptest.Server
	target    atomic.Pointer[httputil.ReverseProxy]
	forwarded atomic.Int64
	upgrades  atomic.Int64
}

func newTLSProxy(t *testing.T, allow func(*http.Request) bool) *tlsProxy {
	p := &tlsProxy{}
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rp := p.target.Load()
		if rp == nil || (allow != nil && !allow(r)) {
			http.NotFound(w, r)
			return
		}
		p.forwarded.Add(1)
		if r.Header.Get("Upgrade") != "" {
			p.upgrades.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	p.StartTLS()
	t.Cleanup(p.Close)
	return p
}

// forwardTo makes the proxy forward to http://addr.
func (p *tlsProxy) forwardTo(addr string) {
	p.target.Store(httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr}))
}

// TestTLSInFront: the public edges of a network as docs/operate.md deploys
// them, behind TLS-terminating proxies (httputil.ReverseProxy in Caddy's or
// nginx's place): the directory at https://, the gateway's client listener
// at wss:// (announced with --client-announce), and the provider's endpoint
// exposing only its descriptor. The provider joins through the https
// directory, which its descriptor publishes; `client echo --provider
// https://…`, trusting only the proxies' certificate (SSL_CERT_FILE), gets
// its reply through them without the warning for plain http.
func TestTLSInFront(t *testing.T) {
	t.Parallel()
	dirProxy := newTLSProxy(t, nil)
	gwProxy := newTLSProxy(t, nil)
	provProxy := newTLSProxy(t, func(r *http.Request) bool { return r.URL.Path == descriptor.WellKnownPath })
	var certs bytes.Buffer
	for _, p := range []*tlsProxy{dirProxy, gwProxy, provProxy} {
		pem.Encode(&certs, &pem.Block{Type: "CERTIFICATE", Bytes: p.Certificate().Raw})
	}
	certFile := filepath.Join(t.TempDir(), "proxies.pem")
	if err := os.WriteFile(certFile, certs.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	trust := []string{"SSL_CERT_FILE=" + certFile}
	wss := "wss://" + gwProxy.Listener.Addr().String()

	n := startNet(t, Config{MixnodesPerLayer: 1, Gateways: 1,
		GatewayArgs: func(int) []string { return []string{"--client-announce", wss} }})
	needProvider(t, n.cfg.Bin)
	dirProxy.forwardTo(n.DirectoryAddr().String())
	gwProxy.forwardTo(n.Gateway(0).ClientListen.String())
	ctx := ctxFor(t, 2*time.Minute)

	p := startProvider(t, ctx, n, ProviderOptions{Args: []string{"--directory", dirProxy.URL}, Env: trust})
	provProxy.forwardTo(strings.TrimPrefix(p.HTTP, "http://"))
	if gwProxy.upgrades.Load() == 0 {
		t.Errorf("the provider's client did not connect through %s", wss)
	}

	cmd := exec.CommandContext(ctx, n.cfg.Bin.Client, "echo", "--provider", provProxy.URL, "--no-delay", "--no-cover", "hello")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), trust...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || strings.TrimSpace(stdout.String()) != "hello" {
		t.Fatalf("client echo: %v, stdout %q\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if strings.Contains(stderr.String(), "not https") {
		t.Errorf("the client warned about plain http:\n%s", stderr.String())
	}
	if dirProxy.forwarded.Load() < 2 || gwProxy.upgrades.Load() < 2 {
		t.Errorf("requests through the directory's proxy %d, WebSocket upgrades through the gateway's %d; want both clients through each",
			dirProxy.forwarded.Load(), gwProxy.upgrades.Load())
	}
	// The descriptor publishes the directory the provider was given.
	resp, err := provProxy.Client().Get(provProxy.URL + descriptor.WellKnownPath)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	d, err := descriptor.Verify(doc, descriptor.VerifyOptions{Now: time.Now()})
	if err != nil || d.Network.Directory != dirProxy.URL {
		t.Errorf("the descriptor's directory (%v): %+v, want %s", err, d, dirProxy.URL)
	}
}
