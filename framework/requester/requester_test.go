package requester

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/framework/descriptor"
)

func testAddress(t *testing.T, identity ed25519.PublicKey) address.Address {
	t.Helper()
	var a address.Address
	copy(a.Identity[:], identity)
	_, _ = rand.Read(a.Encryption[:])
	gw, _, _ := ed25519.GenerateKey(rand.Reader)
	copy(a.Gateway[:], gw)
	return a
}

// serve serves doc at the well-known path and returns the base URL.
func serve(t *testing.T, doc []byte, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != descriptor.WellKnownPath {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func signedDoc(t *testing.T, key ed25519.PrivateKey, addr address.Address) []byte {
	t.Helper()
	now := time.Now()
	doc, err := descriptor.Sign(key, descriptor.Info{
		Address:  addr,
		Services: []descriptor.Service{{Name: "echo", Description: "echo"}},
		Network:  descriptor.Network{Type: descriptor.NetworkPeapod, Directory: "http://127.0.0.1:8090", Authorities: authorityKeys(t, 3)},
	}, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestFetch(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	addr := testAddress(t, pub)
	doc := signedDoc(t, key, addr)
	ctx := context.Background()

	d, err := Fetch(ctx, nil, serve(t, doc, http.StatusOK)+"/", descriptor.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Address != addr || !d.SelfCertifying {
		t.Errorf("descriptor %+v", d)
	}
	if _, err := Fetch(ctx, nil, serve(t, doc, http.StatusOK), descriptor.VerifyOptions{Key: pub}); err != nil {
		t.Errorf("pinned to its key: %v", err)
	}
}

// TestFetchRefusesTampered: the tooling refuses a descriptor that was
// altered, signed by another key than the pinned one, expired, or not
// served properly.
func TestFetchRefusesTampered(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	addr := testAddress(t, pub)
	doc := signedDoc(t, key, addr)
	ctx := context.Background()

	var outer map[string]any
	_ = json.Unmarshal(doc, &outer)
	payload, _ := base64.StdEncoding.DecodeString(outer["payload"].(string))
	otherAddr := testAddress(t, otherPub)
	outer["payload"] = base64.StdEncoding.EncodeToString(bytes.Replace(payload, []byte(addr.String()), []byte(otherAddr.String()), 1))
	swapped, _ := json.Marshal(outer)

	expiredDoc, err := descriptor.Sign(key, descriptor.Info{
		Address: addr, Services: []descriptor.Service{},
		Network: descriptor.Network{Type: descriptor.NetworkPeapod, Directory: "http://127.0.0.1:8090"},
	}, time.Now().Add(-3*time.Hour), time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name string
		url  string
		opts descriptor.VerifyOptions
		want error
	}{
		{"address swapped", serve(t, swapped, http.StatusOK), descriptor.VerifyOptions{}, descriptor.ErrSignature},
		{"signed by an impostor", serve(t, signedDoc(t, otherKey, addr), http.StatusOK), descriptor.VerifyOptions{Key: pub}, descriptor.ErrKeyMismatch},
		{"expired", serve(t, expiredDoc, http.StatusOK), descriptor.VerifyOptions{}, descriptor.ErrExpired},
		{"truncated", serve(t, doc[:len(doc)/2], http.StatusOK), descriptor.VerifyOptions{}, nil},
		{"not found", serve(t, doc, http.StatusNotFound), descriptor.VerifyOptions{}, nil},
		{"too big", serve(t, append(bytes.Repeat([]byte(" "), descriptor.MaxSize), doc...), http.StatusOK), descriptor.VerifyOptions{}, nil},
	} {
		_, err := Fetch(ctx, nil, tt.url, tt.opts)
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	for _, bad := range []string{"", "ftp://x", "127.0.0.1:8080", "http://"} {
		if _, err := Fetch(ctx, nil, bad, descriptor.VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "URL") {
			t.Errorf("URL %q: %v", bad, err)
		}
	}
}

func TestConnectRefusesNym(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	doc, err := descriptor.Sign(key, descriptor.Info{
		Address: testAddress(t, pub), Services: []descriptor.Service{},
		Network: descriptor.Network{Type: descriptor.NetworkNym},
	}, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Connect(context.Background(), Config{ProviderURL: serve(t, doc, http.StatusOK)}); !errors.Is(err, ErrNymNetwork) {
		t.Errorf("Connect: %v", err)
	}
}

// TestConnectRefusesAnotherNetwork: with Config.Directory, a descriptor
// naming another directory (or a Nym network) is refused loudly with a
// *NetworkMismatchError before anything starts, and its key is not
// remembered on this first use; the same directory written differently
// (case, default port, trailing slash) is the same network.
func TestConnectRefusesAnotherNetwork(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	url := serve(t, signedDoc(t, key, testAddress(t, pub)), http.StatusOK) // names http://127.0.0.1:8090
	known := OpenKnownProviders(t.TempDir() + "/known.json")
	for _, dir := range []string{"http://127.0.0.1:9999", "https://127.0.0.1:8090", "http://127.0.0.1:8090/other"} {
		_, err := Connect(context.Background(), Config{ProviderURL: url, Directory: dir, KnownProviders: known})
		var mismatch *NetworkMismatchError
		if !errors.As(err, &mismatch) || mismatch.Got != "http://127.0.0.1:8090" || !strings.Contains(err.Error(), "THE PROVIDER'S NETWORK IS NOT YOURS") {
			t.Errorf("Directory %s: %v, want a loud *NetworkMismatchError", dir, err)
		}
	}
	id, _ := ProviderID(url)
	if _, ok, err := known.Key(id); ok || err != nil {
		t.Errorf("the refused descriptor's key was remembered (%v)", err)
	}
	for _, dir := range []string{"http://127.0.0.1:8090", "HTTP://127.0.0.1:8090/"} {
		d, err := discover(context.Background(), nil, url, nil, nil, yourNetwork{directory: dir})
		if err != nil || d.Descriptor == nil {
			t.Errorf("Directory %s: %v, want the descriptor accepted", dir, err)
		}
	}

	nymDoc, err := descriptor.Sign(key, descriptor.Info{
		Address: testAddress(t, pub), Services: []descriptor.Service{},
		Network: descriptor.Network{Type: descriptor.NetworkNym},
	}, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Connect(context.Background(), Config{ProviderURL: serve(t, nymDoc, http.StatusOK), Directory: "http://127.0.0.1:8090"})
	var mismatch *NetworkMismatchError
	if !errors.As(err, &mismatch) || mismatch.Got != "a nym network" {
		t.Errorf("a Nym provider with a peapod directory pinned: %v", err)
	}
}

// authorityKeys returns the base58 keys of n fresh authorities.
func authorityKeys(t *testing.T, n int) []string {
	var keys []string
	for range n {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, address.EncodeKey(pub))
	}
	return keys
}

// TestConnectRefusesOtherAuthorities: a requester told to trust some
// directory authorities refuses a provider whose descriptor names others,
// or a lower threshold, loudly, before it remembers the provider's key or
// starts a client; the same authorities in another order pass; one told
// nothing takes the descriptor's.
func TestConnectRefusesOtherAuthorities(t *testing.T) {
	mine, theirs := authorityKeys(t, 3), authorityKeys(t, 3)
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	sign := func(n descriptor.Network) []byte {
		t.Helper()
		n.Type, n.Directory = descriptor.NetworkPeapod, "http://127.0.0.1:1"
		doc, err := descriptor.Sign(key, descriptor.Info{Address: testAddress(t, pub), Services: []descriptor.Service{}, Network: n},
			time.Now(), time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	trust, err := directory.ParseTrust(mine, 0)
	if err != nil {
		t.Fatal(err)
	}
	known := OpenKnownProviders(t.TempDir() + "/known.json")
	for _, c := range []struct {
		name string
		n    descriptor.Network
	}{
		{"other authorities", descriptor.Network{Authorities: theirs}},
		{"one authority replaced", descriptor.Network{Authorities: append(slices.Clone(mine[:2]), theirs[0])}},
		{"a lower threshold", descriptor.Network{Authorities: append(slices.Clone(mine), theirs...), Threshold: 4}},
	} {
		cfg := Config{ProviderURL: serve(t, sign(c.n), http.StatusOK), DataDir: t.TempDir(), KnownProviders: known}
		cfg.Client.Trust = &trust
		_, err := Connect(context.Background(), cfg)
		var mismatch *AuthoritiesMismatchError
		if !errors.Is(err, ErrOtherAuthorities) || !errors.As(err, &mismatch) ||
			!strings.Contains(err.Error(), "THE PROVIDER'S NETWORK IS NOT YOURS") || !strings.Contains(err.Error(), mismatch.Got[0]) {
			t.Errorf("%s: Connect = %v, want a loud *AuthoritiesMismatchError", c.name, err)
		}
		id, _ := ProviderID(cfg.ProviderURL)
		if _, ok, err := known.Key(id); ok || err != nil {
			t.Errorf("%s: the refused descriptor's key was remembered (%v)", c.name, err)
		}
	}
	strict, _ := directory.ParseTrust(mine, 3)
	lower := &descriptor.Descriptor{Info: descriptor.Info{Network: descriptor.Network{Type: descriptor.NetworkPeapod, Authorities: mine, Threshold: 2}}}
	if err := checkAuthorities("p", lower, &strict); !errors.Is(err, ErrOtherAuthorities) {
		t.Errorf("a descriptor's threshold below the trusted one: %v, want ErrOtherAuthorities", err)
	}
	reordered := &descriptor.Descriptor{Info: descriptor.Info{Network: descriptor.Network{Type: descriptor.NetworkPeapod, Authorities: []string{mine[2], mine[0], mine[1]}, Threshold: 3}}}
	if err := checkAuthorities("p", reordered, &trust); err != nil {
		t.Errorf("the same authorities in another order, a higher threshold: %v", err)
	}
	if _, err := discover(context.Background(), nil, serve(t, sign(reordered.Network), http.StatusOK), pub, nil, yourNetwork{trust: &trust}); err != nil {
		t.Errorf("discover with the same authorities: %v", err)
	}

	disc, err := Discover(context.Background(), nil, serve(t, sign(descriptor.Network{}), http.StatusOK), pub, nil)
	if err != nil || !strings.Contains(strings.Join(disc.Warnings, "\n"), "names no directory authorities") {
		t.Fatalf("Discover of a network without authorities: %v, %v; want a warning", disc, err)
	}
	published := descriptor.Network{Type: descriptor.NetworkPeapod, Authorities: mine, Threshold: 2}
	if got, err := networkTrust(nil, published); err != nil || got == nil || !slices.Equal(got.Keys(), mine) {
		t.Fatalf("networkTrust(nil, descriptor's) = %v, %v; want the descriptor's", got, err)
	}
	if got, err := networkTrust(&trust, published); err != nil || got != &trust {
		t.Fatalf("the same authorities: %v, %v", got, err)
	}
	if got, err := networkTrust(&trust, descriptor.Network{Type: descriptor.NetworkPeapod}); err != nil || got != &trust {
		t.Fatalf("a descriptor naming none: %v, %v; want the configured trust", got, err)
	}
}

// TestCheckNetworkAuthorityURLs: a network of several directory
// authorities names their URLs separated by commas; the requester's
// directory matches it when it lists the same URLs in any order (compared
// as provider ids), and not when it lists only some of them or others.
func TestCheckNetworkAuthorityURLs(t *testing.T) {
	d := &descriptor.Descriptor{Info: descriptor.Info{Network: descriptor.Network{
		Type: descriptor.NetworkPeapod, Directory: "http://127.0.0.1:8090,http://127.0.0.1:8091,http://127.0.0.1:8092"}}}
	for _, dir := range []string{
		"http://127.0.0.1:8090,http://127.0.0.1:8091,http://127.0.0.1:8092",
		"HTTP://127.0.0.1:8092/, http://127.0.0.1:8090,http://127.0.0.1:8091",
	} {
		if err := checkNetwork("p", d, dir); err != nil {
			t.Errorf("directory %q: %v, want the network accepted", dir, err)
		}
	}
	for _, dir := range []string{
		"http://127.0.0.1:8090",
		"http://127.0.0.1:8090,http://127.0.0.1:8091",
		"http://127.0.0.1:8090,http://127.0.0.1:8091,http://127.0.0.1:9999",
		"http://127.0.0.1:8090,http://127.0.0.1:8091,http://127.0.0.1:8092,http://127.0.0.1:8093",
	} {
		var mismatch *NetworkMismatchError
		if err := checkNetwork("p", d, dir); !errors.As(err, &mismatch) {
			t.Errorf("directory %q: %v, want a *NetworkMismatchError", dir, err)
		}
	}
	if err := checkNetwork("p", d, "http://127.0.0.1:8090,ftp://x"); err == nil || !strings.Contains(err.Error(), "not an http(s) URL") {
		t.Errorf("a directory list with a non-http URL: %v", err)
	}
}
