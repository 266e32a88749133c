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
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
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
		Network:  descriptor.Network{Type: descriptor.NetworkPeapod, Directory: "http://127.0.0.1:8090"},
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
