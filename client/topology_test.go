package client

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/sphinx"
)

func TestHealthScores(t *testing.T) {
	var h health
	now := time.Now()
	// A node never blamed is good; crediting it first must not stall on the
	// zero time of its new score.
	h.adjust([]string{"a"}, -0.5, now)
	if !h.good("a", now) || !h.good("unknown", now) {
		t.Fatal("fresh nodes are not good")
	}
	for range 3 {
		h.adjust([]string{"dead"}, 1, now)
	}
	if h.good("dead", now) {
		t.Fatal("a node blamed three times is still good")
	}
	// Blame decays: after a few half-lives the node is tried again.
	if !h.good("dead", now.Add(3*healthHalfLife)) {
		t.Fatal("blame did not decay")
	}
	keys := map[uint32]sphinx.PublicKey{4: {1}}
	nodes := []netNode{{identity: "dead", keys: keys}, {identity: "alive", keys: keys}, {identity: "keyless", keys: map[uint32]sphinx.PublicKey{3: {2}}}}
	pick := func() string {
		n, ok := h.pick(nodes, 4, now)
		if !ok {
			t.Fatal("no node picked")
		}
		return n.identity
	}
	for range 50 {
		if pick() != "alive" {
			t.Fatal("picked the blamed node while a good one was there")
		}
	}
	h.adjust([]string{"alive"}, 5, now)
	seen := map[string]bool{}
	for range 100 {
		seen[pick()] = true
	}
	if !seen["dead"] || !seen["alive"] || seen["keyless"] {
		t.Fatalf("with every node blamed, pick must still choose among all that have a key: %v", seen)
	}
	if _, ok := h.pick(nodes, 5, now); ok {
		t.Fatal("picked a node without a key of the rotation")
	}
}

// TestTopologySkipsBadEntries: a gateway the client cannot reach without
// showing who it is (no noise_key in the topology) is skipped with a reason,
// as is one whose noise_key does not parse; one with a key is kept, with
// that key.
func TestTopologySkipsBadEntries(t *testing.T) {
	key := func(b byte) string { return address.EncodeKey(bytes.Repeat([]byte{b}, 32)) }
	ids := make([]ed25519.PublicKey, 3)
	for i := range ids {
		ids[i], _, _ = ed25519.GenerateKey(rand.Reader)
	}
	gw := func(id int, noise string) directory.Gateway {
		return directory.Gateway{Address: "127.0.0.1:1790", ClientAddress: "ws://127.0.0.1:9000",
			Identity: address.EncodeKey(ids[id]), SphinxKeys: []directory.SphinxKey{{Rotation: 0, Key: key(9)}}, NoiseKey: noise}
	}
	v, skipped := parseTopology(&directory.Topology{Gateways: []directory.Gateway{
		gw(0, key(7)), gw(1, ""), gw(2, "not-base58-0OIl"),
	}})
	if len(v.gateways) != 1 || len(skipped) != 2 {
		t.Fatalf("kept %d gateways, skipped %v; want 1 kept, 2 skipped", len(v.gateways), skipped)
	}
	g, ok := v.gateway(ids[0])
	if !ok || g.noiseKey != [32]byte(bytes.Repeat([]byte{7}, 32)) {
		t.Fatalf("the gateway with a Noise key: %v, key %x", ok, g.noiseKey)
	}
	if !strings.Contains(skipped[0].Error(), "noise_key") || !strings.Contains(skipped[1].Error(), "noise_key") {
		t.Errorf("the reasons do not name noise_key: %v", skipped)
	}
}
