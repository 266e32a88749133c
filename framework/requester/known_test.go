package requester

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/framework/descriptor"
	"github.com/peapod-mixnet/peapod/internal/testvectors"
)

const vectorsFile = "testdata/vectors.json"

// providerIDCases are the provider URLs every peapod tool must remember
// under the same name; they go to testdata/vectors.json for the SDKs.
var providerIDCases = []struct{ URL, ID string }{
	{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
	{"http://127.0.0.1:8080/", "http://127.0.0.1:8080"},
	{"HTTP://Provider.Example:8080//", "http://provider.example:8080"},
	{"https://provider.example:443/peapod/", "https://provider.example/peapod"},
	{"http://provider.example:80", "http://provider.example"},
	{"https://provider.example:8443/a/b?x=1#frag", "https://provider.example:8443/a/b"},
	{"http://[::1]:8080/", "http://[::1]:8080"},
	{"http://[::1]/", "http://[::1]"},
}

type vectorFile struct {
	Comment     string `json:"comment"`
	ProviderIDs []struct {
		URL string `json:"url"`
		ID  string `json:"id"`
	} `json:"provider_ids"`
}

// TestProviderIDVectors checks ProviderID and that testdata/vectors.json
// holds the cases (regenerate with -update).
func TestProviderIDVectors(t *testing.T) {
	var f vectorFile
	f.Comment = "How a provider URL is named in a known-providers file (trust on first use), the same in every peapod " +
		"tool. Regenerate with go test ./framework/requester -run TestProviderIDVectors -update."
	for _, c := range providerIDCases {
		got, err := ProviderID(c.URL)
		if err != nil || got != c.ID {
			t.Errorf("ProviderID(%q) = %q, %v; want %q", c.URL, got, err, c.ID)
		}
		f.ProviderIDs = append(f.ProviderIDs, struct {
			URL string `json:"url"`
			ID  string `json:"id"`
		}{c.URL, c.ID})
	}
	testvectors.Golden(t, vectorsFile, f)
	for _, bad := range []string{"ftp://x", "127.0.0.1:8080", "http://", ""} {
		if _, err := ProviderID(bad); err == nil {
			t.Errorf("ProviderID(%q) accepted", bad)
		}
	}
}

func TestKnownProviders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "client", KnownProvidersFile)
	k := OpenKnownProviders(path)
	if _, ok, err := k.Key("http://a"); ok || err != nil {
		t.Fatalf("empty store: %v, %v", ok, err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	if err := k.Remember("http://a", pub); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v, %v", fi, err)
	}
	got, ok, err := OpenKnownProviders(path).Key("http://a")
	if err != nil || !ok || !bytes.Equal(got, pub) {
		t.Fatalf("read back: %x, %v, %v", got, ok, err)
	}
	b, _ := os.ReadFile(path)
	var f map[string]any
	if json.Unmarshal(b, &f) != nil || f["v"] != float64(1) || f["providers"].(map[string]any)["http://a"] != address.EncodeKey(pub) {
		t.Fatalf("file content %s", b)
	}

	// A damaged file is an error that names it, never an empty store
	// (which would silently trust anew).
	for _, bad := range []string{`{}`, `{"v":2,"providers":{}}`, `not json`, `{"v":1,"providers":{},"x":1}`} {
		os.WriteFile(path, []byte(bad), 0o600)
		if _, _, err := k.Key("http://a"); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("file %q: %v", bad, err)
		}
		if err := k.Remember("http://a", pub); err == nil {
			t.Errorf("file %q: Remember overwrote it", bad)
		}
	}
	os.WriteFile(path, []byte(`{"v":1,"providers":{"http://a":"0OIl"}}`), 0o600)
	if _, _, err := k.Key("http://a"); err == nil {
		t.Error("a key that is not base58 was accepted")
	}
}

// TestDiscoverTrustOnFirstUse: the first use prints and remembers the key,
// later uses check it, and a descriptor signed by another key (a
// substitute, self-certifying for its own address) is refused.
func TestDiscoverTrustOnFirstUse(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	pub2, priv2, _ := ed25519.GenerateKey(rand.Reader)
	honest := signedDoc(t, priv, testAddress(t, pub))
	substitute := signedDoc(t, priv2, testAddress(t, pub2))
	var served atomic.Value
	served.Store(honest)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(served.Load().([]byte))
	}))
	t.Cleanup(srv.Close)
	known := OpenKnownProviders(filepath.Join(t.TempDir(), KnownProvidersFile))
	ctx := context.Background()

	d, err := Discover(ctx, nil, srv.URL+"/", nil, known)
	if err != nil {
		t.Fatal(err)
	}
	if d.Trust != TrustFirstUse || d.ProviderID != srv.URL || !strings.Contains(strings.Join(d.Warnings, "\n"), address.EncodeKey(pub)) {
		t.Fatalf("first use: %+v", d)
	}
	if !strings.Contains(strings.Join(d.Warnings, "\n"), "not https") {
		t.Errorf("no warning about plain http: %q", d.Warnings)
	}
	d, err = Discover(ctx, nil, srv.URL, nil, known)
	if err != nil || d.Trust != TrustRemembered || len(d.Warnings) != 0 {
		t.Fatalf("second use: %+v, %v", d, err)
	}

	served.Store(substitute)
	_, err = Discover(ctx, nil, srv.URL, nil, known)
	var kc *KeyChangedError
	if !errors.As(err, &kc) || kc.Remembered != address.EncodeKey(pub) || kc.Seen != address.EncodeKey(pub2) || kc.File != known.Path() {
		t.Fatalf("substitute: %v", err)
	}
	// Without the store it passes: this is what trust on first use adds.
	if d, err := Discover(ctx, nil, srv.URL, nil, nil); err != nil || d.Trust != TrustNone {
		t.Fatalf("substitute, no store: %+v, %v", d, err)
	}
	// A pin wins over the store, both ways.
	if d, err := Discover(ctx, nil, srv.URL, pub2, known); err != nil || d.Trust != TrustPinned {
		t.Fatalf("pinned to the new key: %+v, %v", d, err)
	}
	if _, err := Discover(ctx, nil, srv.URL, pub, known); !errors.Is(err, descriptor.ErrKeyMismatch) {
		t.Fatalf("pinned to the old key: %v", err)
	}
}

// FuzzProviderID: no panic, and a provider id names itself (so every tool
// that normalises again gets the same name).
func FuzzProviderID(f *testing.F) {
	for _, c := range providerIDCases {
		f.Add(c.URL)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := ProviderID(raw)
		if err != nil {
			return
		}
		again, err := ProviderID(id)
		if err != nil || again != id {
			t.Fatalf("ProviderID(%q) = %q, but ProviderID(%q) = %q, %v", raw, id, id, again, err)
		}
	})
}
