package directory

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/peapod-mixnet/peapod/address"
)

func TestRegisterAndTopology(t *testing.T) {
	ts := startServer(t, Config{})
	var nodes []testNode
	for layer := MaxLayer; layer >= MinLayer; layer-- { // registered out of order on purpose
		nodes = append(nodes, newMixnode(t, layer), newMixnode(t, layer))
	}
	gw6 := newGateway(t)
	key := gw6.key.Public().(ed25519.PublicKey)
	gw6.desc = NewGatewayDescriptor(netip.MustParseAddrPort("[::1]:1790"), "wss://[::1]:9443/client", key, gw6.desc.SphinxKeys)
	nodes = append(nodes, newGateway(t), gw6, newGateway(t))
	for _, n := range nodes {
		ts.register(t, n)
	}

	topo, err := ts.client.Topology(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Mixnodes) != 6 || len(topo.Gateways) != 3 {
		t.Fatalf("topology has %d mixnodes and %d gateways, want 6 and 3", len(topo.Mixnodes), len(topo.Gateways))
	}
	if !slices.IsSortedFunc(topo.Mixnodes, func(a, b Mixnode) int {
		if a.Layer != b.Layer {
			return a.Layer - b.Layer
		}
		return strings.Compare(a.Identity, b.Identity)
	}) {
		t.Errorf("mixnodes are not ordered by layer, then identity: %+v", topo.Mixnodes)
	}
	if !slices.IsSortedFunc(topo.Gateways, func(a, b Gateway) int { return strings.Compare(a.Identity, b.Identity) }) {
		t.Errorf("gateways are not ordered by identity: %+v", topo.Gateways)
	}
	if want := ts.Topology(); !equalTopology(topo, &want) {
		t.Errorf("HTTP topology %+v differs from Server.Topology %+v", *topo, want)
	}

	byID := make(map[string]testNode)
	for _, n := range nodes {
		byID[n.desc.Identity] = n
	}
	for _, m := range topo.Mixnodes {
		n, ok := byID[m.Identity]
		if !ok {
			t.Fatalf("unknown mixnode %s listed", m.Identity)
		}
		want := Mixnode{Layer: n.desc.Layer, Address: n.desc.Address, Identity: n.desc.Identity, SphinxKeys: n.desc.SphinxKeys, NoiseKey: n.desc.NoiseKey}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("mixnode %+v, want %+v", m, want)
		}
		checkKeys(t, n, m.IdentityKey, m.SphinxKeyFor)
		checkNoiseKey(t, n, m.NoisePublicKey)
		if ap, err := m.AddrPort(); err != nil || ap.String() != n.desc.Address {
			t.Errorf("AddrPort() = %v, %v; want %s", ap, err, n.desc.Address)
		}
		delete(byID, m.Identity)
	}
	for _, g := range topo.Gateways {
		n, ok := byID[g.Identity]
		if !ok {
			t.Fatalf("unknown gateway %s listed", g.Identity)
		}
		want := Gateway{Address: n.desc.Address, ClientAddress: n.desc.ClientAddress, Identity: n.desc.Identity, SphinxKeys: n.desc.SphinxKeys, NoiseKey: n.desc.NoiseKey}
		if !reflect.DeepEqual(g, want) {
			t.Errorf("gateway %+v, want %+v", g, want)
		}
		checkKeys(t, n, g.IdentityKey, g.SphinxKeyFor)
		checkNoiseKey(t, n, g.NoisePublicKey)
		if u, err := g.ClientURL(); err != nil || u.String() != n.desc.ClientAddress {
			t.Errorf("ClientURL() = %v, %v; want %s", u, err, n.desc.ClientAddress)
		}
		if found, ok := topo.Gateway(g.Identity); !ok || !reflect.DeepEqual(found, g) {
			t.Errorf("Topology.Gateway(%s) = %+v, %v", g.Identity, found, ok)
		}
		delete(byID, g.Identity)
	}
	if len(byID) != 0 {
		t.Errorf("%d registered nodes are not listed", len(byID))
	}
	for layer := MinLayer; layer <= MaxLayer; layer++ {
		for _, m := range topo.Layer(layer) {
			if m.Layer != layer {
				t.Errorf("Layer(%d) returned a mixnode of layer %d", layer, m.Layer)
			}
		}
		if n := len(topo.Layer(layer)); n != 2 {
			t.Errorf("Layer(%d) has %d mixnodes, want 2", layer, n)
		}
	}

	// The JSON has exactly the documented field names.
	status, body := ts.get(t, PathTopology)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d", PathTopology, status)
	}
	var raw struct {
		Mixnodes []map[string]any `json:"mixnodes"`
		Gateways []map[string]any `json:"gateways"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, m := range raw.Mixnodes {
		checkFieldNames(t, m, "layer", "address", "identity", "sphinx_keys", "noise_key")
	}
	for _, g := range raw.Gateways {
		if g["identity"] == gw6.desc.Identity { // registered no Noise key
			checkFieldNames(t, g, "address", "client_address", "identity", "sphinx_keys")
			continue
		}
		checkFieldNames(t, g, "address", "client_address", "identity", "sphinx_keys", "noise_key")
	}
}

// checkNoiseKey checks the Noise key a topology entry gives for n: the one
// it registered, or none when it registered none.
func checkNoiseKey(t *testing.T, n testNode, noise func() ([KeySize]byte, bool, error)) {
	t.Helper()
	got, ok, err := noise()
	if n.desc.NoiseKey == "" {
		if ok || err != nil {
			t.Errorf("NoisePublicKey() of a node without one = %x, %v, %v", got, ok, err)
		}
		return
	}
	if err != nil || !ok || address.EncodeKey(got[:]) != n.desc.NoiseKey {
		t.Errorf("NoisePublicKey() = %x, %v, %v; want %s", got, ok, err, n.desc.NoiseKey)
	}
}

func checkKeys(t *testing.T, n testNode, identity func() (ed25519.PublicKey, error), sphinx func(uint32) ([KeySize]byte, bool)) {
	t.Helper()
	id, err := identity()
	if err != nil || !id.Equal(n.key.Public()) {
		t.Errorf("IdentityKey() = %x, %v; want %x", id, err, n.key.Public())
	}
	want := n.desc.SphinxKeys[0]
	sk, ok := sphinx(want.Rotation)
	if !ok || address.EncodeKey(sk[:]) != want.Key {
		t.Errorf("SphinxKeyFor(%d) = %x, %v; want %s", want.Rotation, sk, ok, want.Key)
	}
	if _, ok := sphinx(want.Rotation + 5); ok {
		t.Errorf("SphinxKeyFor(%d) found a key the node never listed", want.Rotation+5)
	}
}

func checkFieldNames(t *testing.T, obj map[string]any, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, ok := obj[name]; !ok {
			t.Errorf("entry %v lacks field %q", obj, name)
		}
	}
	if len(obj) != len(names) {
		t.Errorf("entry %v has fields beyond %v", obj, names)
	}
}

func equalTopology(a, b *Topology) bool {
	return reflect.DeepEqual(a.Mixnodes, b.Mixnodes) && reflect.DeepEqual(a.Gateways, b.Gateways) && a.Epoch == b.Epoch
}

func TestEmptyTopologyHasEmptyLists(t *testing.T) {
	ts := startServer(t, Config{})
	status, body := ts.get(t, PathTopology)
	want := fmt.Sprintf(`{"mixnodes":[],"gateways":[],"epoch":{"number":0,"start":%d,"length":3600000000000,"rotation_epochs":6,"rotation":0}}`, testGenesis.UnixNano())
	if status != http.StatusOK || strings.TrimSpace(string(body)) != want {
		t.Errorf("GET %s = %d %s", PathTopology, status, body)
	}
}

func TestRegisterRejections(t *testing.T) {
	clock := newFakeClock()
	ts := startServer(t, Config{Now: clock.Now})
	mix := newMixnode(t, 2)
	gw := newGateway(t)
	other, _ := newKeys(t)
	now := clock.Now()
	sigMsg := reason(errSignature)

	// withDesc signs a modified copy of mix's descriptor properly, so that
	// only the field changes.
	withDesc := func(n testNode, edit func(*Descriptor)) func() ([]byte, []string) {
		return func() ([]byte, []string) {
			d := n.desc
			edit(&d)
			body, sig := signed(t, n.key, PathRegister, d, now)
			return body, []string{sig}
		}
	}
	// withBody signs raw bytes as the body.
	withBody := func(body string) func() ([]byte, []string) {
		return func() ([]byte, []string) {
			return []byte(body), []string{sign(mix.key, PathRegister, []byte(body))}
		}
	}
	good, goodSig := signed(t, mix.key, PathRegister, mix.desc, now)
	goodText := string(good)
	replace := func(old, new string) func() ([]byte, []string) {
		if !strings.Contains(goodText, old) {
			t.Fatalf("%q not in %s", old, goodText)
		}
		return withBody(strings.Replace(goodText, old, new, 1))
	}

	cases := []struct {
		name   string
		req    func() ([]byte, []string)
		status int
		want   string // substring of the error message
	}{
		{"unsigned", func() ([]byte, []string) { return good, nil }, 401, sigMsg},
		{"empty signature", func() ([]byte, []string) { return good, []string{""} }, 401, sigMsg},
		{"signature not base64", func() ([]byte, []string) { return good, []string{strings.Repeat("!", 88)} }, 401, sigMsg},
		{"signature too short", func() ([]byte, []string) {
			return good, []string{base64.StdEncoding.EncodeToString(make([]byte, 63))}
		}, 401, sigMsg},
		{"random signature", func() ([]byte, []string) {
			return good, []string{base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 64))}
		}, 401, sigMsg},
		{"signature of another key", func() ([]byte, []string) {
			return good, []string{sign(other, PathRegister, good)}
		}, 401, sigMsg},
		{"signature for the deregister path", func() ([]byte, []string) {
			return good, []string{sign(mix.key, PathDeregister, good)}
		}, 401, sigMsg},
		{"signature without the context", func() ([]byte, []string) {
			return good, []string{base64.StdEncoding.EncodeToString(ed25519.Sign(mix.key, good))}
		}, 401, sigMsg},
		{"signature of other bytes", func() ([]byte, []string) {
			return append(bytes.Clone(good), ' '), []string{goodSig}
		}, 401, sigMsg},
		{"signature header twice", func() ([]byte, []string) { return good, []string{goodSig, goodSig} }, 401, sigMsg},
		{"body too large", func() ([]byte, []string) {
			body := append(bytes.Repeat([]byte(" "), MaxDescriptorSize), good...)
			return body, []string{sign(mix.key, PathRegister, body)}
		}, 413, "larger than 65536 bytes"},
		{"empty body", withBody(""), 400, "not a JSON object"},
		{"not JSON", withBody("role=mixnode"), 400, "not a JSON object"},
		{"JSON array", withBody("[]"), 400, "not a JSON object"},
		{"truncated JSON", withBody(goodText[:len(goodText)-1]), 400, "malformed descriptor"},
		{"trailing data", withBody(goodText + "{}"), 400, "trailing data"},
		{"unknown field", replace(`"role"`, `"extra":1,"role"`), 400, `unknown field "extra"`},
		{"field in other case", replace(`"role"`, `"Role"`), 400, `unknown field "Role"`},
		{"field twice", replace(`"role":"mixnode"`, `"role":"mixnode","role":"mixnode"`), 400, `"role" appears twice`},
		{"layer of the wrong type", replace(`"layer":2`, `"layer":"2"`), 400, `field "layer"`},
		{"fractional timestamp", replace(`"timestamp":`, `"timestamp":0.5,"x":`), 400, `field "timestamp"`},
		{"bad role", withDesc(mix, func(d *Descriptor) { d.Role = "relay" }), 400, `role "relay"`},
		{"missing role", withDesc(mix, func(d *Descriptor) { d.Role = "" }), 400, `role ""`},
		{"layer 0", withDesc(mix, func(d *Descriptor) { d.Layer = 0 }), 400, "layer 0 is out of range 1..3"},
		{"layer 4", withDesc(mix, func(d *Descriptor) { d.Layer = 4 }), 400, "layer 4 is out of range 1..3"},
		{"negative layer", withDesc(mix, func(d *Descriptor) { d.Layer = -1 }), 400, "out of range"},
		{"gateway with a layer", withDesc(gw, func(d *Descriptor) { d.Layer = 1 }), 400, "a gateway has no layer"},
		{"mixnode with a client address", withDesc(mix, func(d *Descriptor) { d.ClientAddress = "ws://127.0.0.1:9000" }), 400, "a mixnode has no client_address"},
		{"host name address", withDesc(mix, func(d *Descriptor) { d.Address = "localhost:1789" }), 400, "not a literal ip:port"},
		{"address without port", withDesc(mix, func(d *Descriptor) { d.Address = "127.0.0.1" }), 400, "not a literal ip:port"},
		{"missing address", withDesc(mix, func(d *Descriptor) { d.Address = "" }), 400, "address is missing"},
		{"port 0", withDesc(mix, func(d *Descriptor) { d.Address = "127.0.0.1:0" }), 400, "port 0"},
		{"unspecified address", withDesc(mix, func(d *Descriptor) { d.Address = "0.0.0.0:1789" }), 400, "unspecified"},
		{"multicast address", withDesc(mix, func(d *Descriptor) { d.Address = "224.0.0.1:1789" }), 400, "multicast"},
		{"zoned address", withDesc(mix, func(d *Descriptor) { d.Address = "[fe80::1%eth0]:1789" }), 400, "zone"},
		{"non-canonical address", withDesc(mix, func(d *Descriptor) { d.Address = "[0:0::1]:1789" }), 400, "not canonical"},
		{"http client address", withDesc(gw, func(d *Descriptor) { d.ClientAddress = "http://127.0.0.1:9000" }), 400, "ws:// or wss://"},
		{"client address not a URL", withDesc(gw, func(d *Descriptor) { d.ClientAddress = "ws://[::1" }), 400, "not a URL"},
		{"client address without host", withDesc(gw, func(d *Descriptor) { d.ClientAddress = "ws:///path" }), 400, "no host"},
		{"client address with a query", withDesc(gw, func(d *Descriptor) { d.ClientAddress = "ws://127.0.0.1:9000/?a=b" }), 400, "query"},
		{"client address with user", withDesc(gw, func(d *Descriptor) { d.ClientAddress = "ws://u:p@127.0.0.1:9000" }), 400, "user"},
		{"client address with port 0", withDesc(gw, func(d *Descriptor) { d.ClientAddress = "ws://127.0.0.1:0" }), 400, "invalid port"},
		{"client address too long", withDesc(gw, func(d *Descriptor) {
			d.ClientAddress = "ws://127.0.0.1:9000/" + strings.Repeat("a", MaxClientAddressLen)
		}), 400, "longer than"},
		{"missing client address", withDesc(gw, func(d *Descriptor) { d.ClientAddress = "" }), 400, "client_address is missing"},
		{"identity not base58", withDesc(mix, func(d *Descriptor) { d.Identity = "0OIl" + d.Identity[4:] }), 400, "identity is not a 32-byte base58 key"},
		{"identity of 31 bytes", withDesc(mix, func(d *Descriptor) { d.Identity = address58(make([]byte, 31)) }), 400, "identity is not a 32-byte base58 key"},
		{"identity not a curve point", withDesc(mix, func(d *Descriptor) { d.Identity = address58(append([]byte{2}, make([]byte, 31)...)) }), 400, "not a valid ed25519 public key"},
		{"sphinx key of 33 bytes", withDesc(mix, func(d *Descriptor) { d.SphinxKeys = []SphinxKey{{Key: address58(make([]byte, 33))}} }), 400, "sphinx_keys[0].key is not a 32-byte base58 key"},
		{"missing sphinx key", withDesc(mix, func(d *Descriptor) { d.SphinxKeys = []SphinxKey{{Rotation: 3}} }), 400, "sphinx_keys[0].key is missing"},
		{"no sphinx keys", withDesc(mix, func(d *Descriptor) { d.SphinxKeys = nil }), 400, "sphinx_keys is empty"},
		{"noise key of 31 bytes", withDesc(mix, func(d *Descriptor) { d.NoiseKey = address58(make([]byte, 31)) }), 400, "noise_key is not a 32-byte base58 key"},
		{"stale timestamp", func() ([]byte, []string) {
			body, sig := signed(t, mix.key, PathRegister, mix.desc, now.Add(-3*time.Minute))
			return body, []string{sig}
		}, 400, "away from the directory's clock"},
		{"future timestamp", func() ([]byte, []string) {
			body, sig := signed(t, mix.key, PathRegister, mix.desc, now.Add(3*time.Minute))
			return body, []string{sig}
		}, 400, "away from the directory's clock"},
		{"zero timestamp", func() ([]byte, []string) {
			body, sig := signed(t, mix.key, PathRegister, mix.desc, time.Unix(0, 0))
			return body, []string{sig}
		}, 400, "away from the directory's clock"},
	}
	want := make(map[string]int) // rejections by reason
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, sigs := tc.req()
			status, msg := ts.post(t, PathRegister, body, sigs...)
			if status != tc.status || !strings.Contains(msg, tc.want) {
				t.Errorf("%d %q, want %d and a message containing %q", status, msg, tc.status, tc.want)
			}
			if strings.HasPrefix(msg, "directory:") {
				t.Errorf("error message %q repeats the package prefix", msg)
			}
		})
		switch {
		case tc.status == http.StatusUnauthorized:
			want[reasonSignature]++
		case tc.status == http.StatusRequestEntityTooLarge:
			want[reasonTooLarge]++
		case strings.Contains(tc.want, "clock"):
			want[reasonClockSkew]++
		}
	}
	if topo := ts.Topology(); len(topo.Mixnodes)+len(topo.Gateways) != 0 {
		t.Fatalf("refused requests changed the topology: %+v", topo)
	}

	// The server keeps serving: the good request still succeeds.
	if status, msg := ts.post(t, PathRegister, good, goodSig); status != http.StatusOK {
		t.Fatalf("valid registration after the refusals: %d %s", status, msg)
	}
	if topo := ts.Topology(); len(topo.Mixnodes) != 1 || topo.Mixnodes[0].Identity != mix.desc.Identity {
		t.Fatalf("topology after the valid registration: %+v", topo)
	}
	metrics := ts.metricsText(t)
	for _, line := range []string{
		`peapod_directory_requests_accepted_total{request="register"} 1`,
		fmt.Sprintf(`peapod_directory_requests_rejected_total{reason="signature"} %d`, want[reasonSignature]),
		fmt.Sprintf(`peapod_directory_requests_rejected_total{reason="too_large"} %d`, want[reasonTooLarge]),
		fmt.Sprintf(`peapod_directory_requests_rejected_total{reason="clock_skew"} %d`, want[reasonClockSkew]),
		`peapod_directory_nodes{role="mixnode"} 1`,
		`peapod_directory_nodes{role="gateway"} 0`,
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("metrics lack %q:\n%s", line, metrics)
		}
	}
}

// TestDeregisterRejections checks that deregistration is held to the same
// rules as registration.
func TestDeregisterRejections(t *testing.T) {
	ts := startServer(t, Config{})
	n := newMixnode(t, 1)
	ts.register(t, n)
	now := time.Now()
	body, sig := signed(t, n.key, PathDeregister, n.desc, now.Add(time.Second))
	forRegister := sign(n.key, PathRegister, body)
	bad := n.desc
	bad.Layer = 9
	badBody, badSig := signed(t, n.key, PathDeregister, bad, now.Add(time.Second))
	staleBody, staleSig := signed(t, n.key, PathDeregister, n.desc, now.Add(-time.Hour))
	for _, tc := range []struct {
		name   string
		body   []byte
		sigs   []string
		status int
	}{
		{"unsigned", body, nil, http.StatusUnauthorized},
		{"signed for the register path", body, []string{forRegister}, http.StatusUnauthorized},
		{"bad field", badBody, []string{badSig}, http.StatusBadRequest},
		{"stale timestamp", staleBody, []string{staleSig}, http.StatusBadRequest},
	} {
		if status, msg := ts.post(t, PathDeregister, tc.body, tc.sigs...); status != tc.status {
			t.Errorf("%s: %d %q, want %d", tc.name, status, msg, tc.status)
		}
	}
	if topo := ts.Topology(); len(topo.Mixnodes) != 1 {
		t.Fatalf("a refused deregistration removed the node: %+v", topo)
	}
	if status, msg := ts.post(t, PathDeregister, body, sig); status != http.StatusOK {
		t.Fatalf("valid deregistration: %d %s", status, msg)
	}
	if topo := ts.Topology(); len(topo.Mixnodes) != 0 {
		t.Fatalf("deregistered node still listed: %+v", topo)
	}
}

func address58(b []byte) string { return address.EncodeKey(b) }

func (ts *testServer) metricsText(t testing.TB) string {
	t.Helper()
	status, body := ts.get(t, PathMetrics)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d", PathMetrics, status)
	}
	return string(body)
}

func TestReplay(t *testing.T) {
	clock := newFakeClock()
	ts := startServer(t, Config{Now: clock.Now})
	n := newMixnode(t, 1)
	t0 := clock.Now()
	first, firstSig := signed(t, n.key, PathRegister, n.desc, t0)
	if status, msg := ts.post(t, PathRegister, first, firstSig); status != http.StatusOK {
		t.Fatalf("first registration: %d %s", status, msg)
	}
	if status, msg := ts.post(t, PathRegister, first, firstSig); status != http.StatusConflict || !strings.Contains(msg, "replayed") {
		t.Errorf("the same request again: %d %q, want 409 and a message about replay", status, msg)
	}

	// An older, never-seen request is refused too; a newer one is accepted.
	older, olderSig := signed(t, n.key, PathRegister, n.desc, t0.Add(-time.Second))
	if status, _ := ts.post(t, PathRegister, older, olderSig); status != http.StatusConflict {
		t.Errorf("older timestamp: %d, want 409", status)
	}
	moved := n.desc
	moved.Address = testAddr().String()
	newer, newerSig := signed(t, n.key, PathRegister, moved, t0.Add(time.Second))
	if status, msg := ts.post(t, PathRegister, newer, newerSig); status != http.StatusOK {
		t.Fatalf("newer registration: %d %s", status, msg)
	}
	if topo := ts.Topology(); len(topo.Mixnodes) != 1 || topo.Mixnodes[0].Address != moved.Address {
		t.Errorf("a node that moved is listed as %+v, want address %s", topo.Mixnodes, moved.Address)
	}

	// After deregistration, replaying a registration must not bring the node back.
	dereg, deregSig := signed(t, n.key, PathDeregister, n.desc, t0.Add(2*time.Second))
	if status, msg := ts.post(t, PathDeregister, dereg, deregSig); status != http.StatusOK {
		t.Fatalf("deregistration: %d %s", status, msg)
	}
	if status, _ := ts.post(t, PathRegister, newer, newerSig); status != http.StatusConflict {
		t.Errorf("replayed registration after deregistration: %d, want 409", status)
	}
	if status, _ := ts.post(t, PathDeregister, dereg, deregSig); status != http.StatusConflict {
		t.Errorf("replayed deregistration: %d, want 409", status)
	}
	// Even after a sweep, as long as the replay would pass the clock check.
	clock.Advance(DefaultTTL + time.Second)
	if err := ts.sweep(); err != nil {
		t.Fatal(err)
	}
	if status, _ := ts.post(t, PathRegister, newer, newerSig); status != http.StatusConflict {
		t.Errorf("replayed registration after a sweep: %d, want 409", status)
	}
	if topo := ts.Topology(); len(topo.Mixnodes) != 0 {
		t.Errorf("deregistered node listed: %+v", topo.Mixnodes)
	}
}

func TestDeregister(t *testing.T) {
	ts := startServer(t, Config{})
	a, b := newMixnode(t, 3), newGateway(t)
	ts.register(t, a)
	ts.register(t, b)
	if err := ts.client.Deregister(context.Background(), a.desc, a.key); err != nil {
		t.Fatal(err)
	}
	topo := ts.Topology()
	if len(topo.Mixnodes) != 0 || len(topo.Gateways) != 1 {
		t.Fatalf("after deregistering the mixnode: %+v", topo)
	}
	if err := ts.client.Deregister(context.Background(), b.desc, a.key); err == nil {
		t.Error("Deregister with a key that does not match the descriptor succeeded")
	}
	// Deregistering a node the directory does not know is not an error.
	stranger := newMixnode(t, 1)
	if err := ts.client.Deregister(context.Background(), stranger.desc, stranger.key); err != nil {
		t.Errorf("Deregister of an unknown node: %v", err)
	}
	if n := ts.countTracked(); n != 2 {
		t.Errorf("tracked identities = %d, want 2 (an unknown node leaves no trace)", n)
	}
	// A deregistered node can come back.
	ts.register(t, a)
	if topo := ts.Topology(); len(topo.Mixnodes) != 1 {
		t.Errorf("re-registered node not listed: %+v", topo)
	}
}

func TestStaleEntriesDropAfterTTL(t *testing.T) {
	clock := newFakeClock()
	ts := startServer(t, Config{Now: clock.Now})
	quiet, busy := newMixnode(t, 1), newGateway(t)
	ts.register(t, quiet)
	ts.register(t, busy)

	clock.Advance(DefaultTTL * 2 / 3)
	ts.register(t, busy) // only busy refreshes
	clock.Advance(DefaultTTL / 3)
	topo := ts.Topology()
	if len(topo.Mixnodes) != 1 {
		t.Fatalf("at exactly the TTL the quiet node should still be listed: %+v", topo)
	}
	clock.Advance(time.Nanosecond)
	topo = ts.Topology()
	if len(topo.Mixnodes) != 0 || len(topo.Gateways) != 1 {
		t.Fatalf("after the TTL: %+v, want only the gateway that refreshed", topo)
	}
	if !strings.Contains(ts.metricsText(t), `peapod_directory_nodes{role="mixnode"} 0`) {
		t.Error("metrics still count the stale mixnode")
	}

	// The stale entry stays in the database while its last request could
	// still be replayed, then the sweep deletes it there too.
	if err := ts.sweep(); err != nil {
		t.Fatal(err)
	}
	if n := ts.countTracked(); n != 2 {
		t.Fatalf("tracked = %d right after the TTL, want 2", n)
	}
	clock.Advance(DefaultMaxClockSkew - DefaultTTL + time.Second)
	if err := ts.sweep(); err != nil {
		t.Fatal(err)
	}
	if n := ts.countTracked(); n != 1 {
		t.Fatalf("tracked = %d after the clock skew, want 1 (the gateway)", n)
	}
	dir := ts.cfg.DataDir
	ts.Close()
	stored := storedIdentities(t, dir)
	if !slices.Equal(stored, []string{busy.desc.Identity}) {
		t.Errorf("database holds %v, want only %s", stored, busy.desc.Identity)
	}
}

// storedIdentities lists the identities in a closed server's database.
func storedIdentities(t *testing.T, dir string) []string {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, storeFile), 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ids []string
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketNodes).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestRestartKeepsTopology(t *testing.T) {
	clock := newFakeClock()
	cfg := Config{DataDir: t.TempDir(), Now: clock.Now}
	ts := startServer(t, cfg)
	nodes := []testNode{newMixnode(t, 1), newMixnode(t, 2), newMixnode(t, 3), newGateway(t)}
	for _, n := range nodes {
		ts.register(t, n)
	}
	gone := newMixnode(t, 2)
	ts.register(t, gone)
	if err := ts.client.Deregister(context.Background(), gone.desc, gone.key); err != nil {
		t.Fatal(err)
	}
	replay, replaySig := signed(t, nodes[0].key, PathRegister, nodes[0].desc, clock.Now().Add(-time.Minute))
	before := ts.Topology()
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ts.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	ts2 := startServer(t, cfg)
	after := ts2.Topology()
	if !equalTopology(&before, &after) || len(after.Mixnodes) != 3 || len(after.Gateways) != 1 {
		t.Fatalf("topology after restart\n%+v\nwant\n%+v", after, before)
	}
	// What each identity last sent is remembered too.
	if status, _ := ts2.post(t, PathRegister, replay, replaySig); status != http.StatusConflict {
		t.Errorf("old registration after restart: %d, want 409", status)
	}
	if n := ts2.countTracked(); n != 5 {
		t.Errorf("tracked identities after restart = %d, want 5 (4 nodes and 1 deregistered)", n)
	}
	// So are the last-seen times: without refreshes the nodes go stale.
	clock.Advance(DefaultTTL + time.Second)
	if topo := ts2.Topology(); len(topo.Mixnodes)+len(topo.Gateways) != 0 {
		t.Errorf("after the TTL, a restarted server still lists %+v", topo)
	}
}

func TestDataDirInUse(t *testing.T) {
	ts := startServer(t, Config{})
	_, err := New(Config{DataDir: ts.cfg.DataDir})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second server on the same DataDir: %v, want an error saying it is in use", err)
	}
}

func TestDamagedEntryIsSkipped(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, Config{DataDir: dir})
	good := newMixnode(t, 1)
	ts.register(t, good)
	ts.Close()

	damaged := newGateway(t)
	db, err := bbolt.Open(filepath.Join(dir, storeFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketNodes).Put([]byte(damaged.desc.Identity), []byte(`{"timestamp":1,"last_seen":1,"descriptor":{"role":"x"}}`))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	ts2 := startServer(t, Config{DataDir: dir})
	if topo := ts2.Topology(); len(topo.Mixnodes) != 1 || len(topo.Gateways) != 0 {
		t.Errorf("after loading a damaged entry: %+v, want the one good mixnode", topo)
	}
	ts2.register(t, damaged) // the node can register again
}

func TestUnknownStoreVersionIsRefused(t *testing.T) {
	dir := t.TempDir()
	db, err := bbolt.Open(filepath.Join(dir, storeFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(keyVersion, []byte("99"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{DataDir: dir}); err == nil || !strings.Contains(err.Error(), `version "99"`) {
		t.Fatalf("New on a version 99 database: %v", err)
	}
}

func TestMaxNodes(t *testing.T) {
	clock := newFakeClock()
	ts := startServer(t, Config{Now: clock.Now, MaxNodes: 2})
	a, b, c := newMixnode(t, 1), newMixnode(t, 2), newMixnode(t, 3)
	ts.register(t, a)
	ts.register(t, b)
	err := ts.client.Register(context.Background(), c.desc, c.key)
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusTooManyRequests || !strings.Contains(se.Message, "full") {
		t.Fatalf("third node in a directory of 2: %v, want a 429 saying it is full", err)
	}
	ts.register(t, a) // a known node can still refresh
	clock.Advance(DefaultMaxClockSkew + time.Second)
	ts.registerAt(t, a, clock.Now())
	// b is stale and its last request too old to replay: c takes its place.
	ts.registerAt(t, c, clock.Now())
	if got := identities(ptr(ts.Topology())); !sameSet(got, []string{a.desc.Identity, c.desc.Identity}) {
		t.Errorf("listed %v, want a and c", got)
	}
}

func ptr[T any](v T) *T { return &v }

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestConcurrentRegistrations(t *testing.T) {
	ts := startServer(t, Config{})
	const workers, perWorker = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, 3*workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				var n testNode
				if i%4 == 3 {
					n = newGateway(t)
				} else {
					n = newMixnode(t, 1+(w+i)%3)
				}
				if err := ts.client.Register(context.Background(), n.desc, n.key); err != nil {
					errs <- err
				}
				if err := ts.client.Register(context.Background(), n.desc, n.key); err != nil {
					errs <- fmt.Errorf("refresh: %w", err)
				}
				if _, err := ts.client.Topology(context.Background()); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	topo := ts.Topology()
	if n := len(topo.Mixnodes) + len(topo.Gateways); n != workers*perWorker {
		t.Errorf("%d nodes listed, want %d", n, workers*perWorker)
	}
	if err := topo.Validate(); err != nil {
		t.Error(err)
	}
}

func TestHealthMetricsAndErrors(t *testing.T) {
	ts := startServer(t, Config{})
	if status, body := ts.get(t, PathHealth); status != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Errorf("GET %s = %d %s", PathHealth, status, body)
	}
	if status, body := ts.get(t, "/v1/nothing"); status != http.StatusNotFound || !strings.Contains(string(body), `"error"`) {
		t.Errorf("GET /v1/nothing = %d %s", status, body)
	}
	if status, body := ts.get(t, PathRegister); status != http.StatusMethodNotAllowed || !strings.Contains(string(body), `"error"`) {
		t.Errorf("GET %s = %d %s", PathRegister, status, body)
	}
	// Two servers in one process keep separate metrics.
	other := startServer(t, Config{})
	ts.register(t, newMixnode(t, 1))
	if m := other.metricsText(t); !strings.Contains(m, `peapod_directory_requests_accepted_total{request="register"} 0`) {
		t.Errorf("another server's registration shows in this server's metrics:\n%s", m)
	}
	if m := ts.metricsText(t); !strings.Contains(m, `peapod_directory_requests_accepted_total{request="register"} 1`) ||
		!strings.Contains(m, `peapod_directory_tracked_identities 1`) {
		t.Errorf("metrics:\n%s", m)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{DataDir: t.TempDir(), TTL: -time.Second},
		{DataDir: t.TempDir(), MaxNodes: -1},
		{DataDir: t.TempDir(), MaxClockSkew: -time.Second},
	} {
		if s, err := New(cfg); err == nil {
			s.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		} else if !strings.HasPrefix(err.Error(), "directory: Config.") {
			t.Errorf("New(%+v): %v, want an error naming the field", cfg, err)
		}
	}
}

func TestServeReturnsAfterClose(t *testing.T) {
	s, err := New(Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ts := serveOn(t, s, Config{}, nil)
	ts.register(t, newMixnode(t, 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(ts.url + PathHealth); err == nil {
		t.Error("the server still answers after Close")
	}
}

// A connection that has been opened but has sent no request (a client
// transport's spare) must not hold Close: net/http alone would wait five
// seconds for it and then report a timeout.
func TestCloseDoesNotWaitForSilentConnections(t *testing.T) {
	s, err := New(Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ts := serveOn(t, s, Config{}, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for s.http.Fresh() != 1 {
		runtime.Gosched()
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("the silent connection is still open after Close")
	}
}
