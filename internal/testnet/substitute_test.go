package testnet

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/framework/descriptor"
)

// TestSubstitutedNetwork: whoever serves a provider's http:// endpoint can
// hand a first-time requester a self-certifying descriptor of its own
// naming its own network (directory, gateways, mixnodes). `client echo
// --directory` with the requester's network refuses it, loudly, before
// anything is sent and without remembering the substitute's key; the
// provider's real descriptor passes the same check and the request is
// answered. A substitute that keeps the network's directory URL but names
// the attacker's directory authorities (whose documents would choose the
// routes) is refused the same way by `client echo --authorities` with the
// network's keys; the real descriptor, which names them, passes. Without
// --directory or --authorities the substitution is not noticed on first
// use.
func TestSubstitutedNetwork(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{})
	ctx := ctxFor(t, 3*time.Minute)
	needProvider(t, n.cfg.Bin)
	p := startProvider(t, ctx, n, ProviderOptions{})

	pub, attacker, _ := ed25519.GenerateKey(rand.Reader)
	var attackerAddr address.Address
	copy(attackerAddr.Identity[:], pub)
	attackerAddr.Encryption, attackerAddr.Gateway = p.Address().Encryption, p.Address().Gateway
	const otherNetwork = "http://127.0.0.1:9" // the attacker's directory (nothing needs to run there)
	substitute, err := descriptor.Sign(attacker, descriptor.Info{
		Address:  attackerAddr,
		Services: []descriptor.Service{{Name: "echo", Description: "the attacker's"}},
		Network:  descriptor.Network{Type: descriptor.NetworkPeapod, Directory: otherNetwork},
	}, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	authPub, _, _ := ed25519.GenerateKey(rand.Reader)
	otherAuthorities, err := descriptor.Sign(attacker, descriptor.Info{
		Address:  attackerAddr,
		Services: []descriptor.Service{{Name: "echo", Description: "the attacker's"}},
		Network: descriptor.Network{Type: descriptor.NetworkPeapod, Directory: n.DirectoryURL(),
			Authorities: []string{address.EncodeKey(authPub)}},
	}, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	echo := func(proxy, known string, extra ...string) RunResult {
		t.Helper()
		args := append([]string{"echo", "--provider", proxy, "--no-delay", "--no-cover", "--timeout", "60s",
			"--known-providers", known}, extra...)
		res, err := RunCommand(ctx, nil, n.cfg.Bin.Client, append(args, "hello through the mixnet")...)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	t.Run("substitute refused", func(t *testing.T) {
		known := filepath.Join(t.TempDir(), "known_providers.json")
		proxy := descriptorProxy(t, p.HTTP, func() []byte { return substitute })
		res := echo(proxy, known, "--directory", n.DirectoryURL())
		if res.Code == 0 || !strings.Contains(res.Stderr, "THE PROVIDER'S NETWORK IS NOT YOURS") ||
			!strings.Contains(res.Stderr, otherNetwork) || !strings.Contains(res.Stderr, "Nothing was sent") {
			t.Errorf("exit %d, stderr %q: want a loud refusal naming the other network", res.Code, res.Stderr)
		}
		if b, err := os.ReadFile(known); err == nil && strings.Contains(string(b), address.EncodeKey(pub)) {
			t.Errorf("the substitute's key was remembered: %s", b)
		}
	})

	t.Run("other authorities refused", func(t *testing.T) {
		known := filepath.Join(t.TempDir(), "known_providers.json")
		proxy := descriptorProxy(t, p.HTTP, func() []byte { return otherAuthorities })
		res := echo(proxy, known, "--authorities", n.AuthorityKeys())
		if res.Code == 0 || !strings.Contains(res.Stderr, "THE PROVIDER'S NETWORK IS NOT YOURS") ||
			!strings.Contains(res.Stderr, address.EncodeKey(authPub)) || !strings.Contains(res.Stderr, "Nothing was sent") {
			t.Errorf("exit %d, stderr %q: want a loud refusal naming the other authorities", res.Code, res.Stderr)
		}
		if b, err := os.ReadFile(known); err == nil && strings.Contains(string(b), address.EncodeKey(pub)) {
			t.Errorf("the substitute's key was remembered: %s", b)
		}
	})

	t.Run("real descriptor passes", func(t *testing.T) {
		if d, err := descriptor.Verify(fetchDescriptor(t, p), descriptor.VerifyOptions{}); err != nil ||
			strings.Join(d.Network.Authorities, ",") != n.AuthorityKeys() {
			t.Fatalf("the provider's descriptor names the authorities %v (%v), want %s", d.Network.Authorities, err, n.AuthorityKeys())
		}
		proxy := descriptorProxy(t, p.HTTP, func() []byte { return fetchDescriptor(t, p) })
		res := echo(proxy, filepath.Join(t.TempDir(), "known_providers.json"), "--directory", n.DirectoryURL()+"/",
			"--authorities", n.AuthorityKeys())
		if res.Code != 0 || res.Stdout != "hello through the mixnet\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", res.Code, res.Stdout, res.Stderr)
		}
	})

	t.Run("unpinned network", func(t *testing.T) {
		proxy := descriptorProxy(t, p.HTTP, func() []byte { return substitute })
		res := echo(proxy, filepath.Join(t.TempDir(), "known_providers.json"), "--timeout", "3s")
		if res.Code == 0 || strings.Contains(res.Stderr, "NETWORK IS NOT YOURS") || !strings.Contains(res.Stderr, "is not https") {
			t.Errorf("exit %d, stderr %q: want the substitution unnoticed but for the plain-http warning", res.Code, res.Stderr)
		}
	})
}
