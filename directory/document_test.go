package directory

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
)

// newAuthorityKeys returns n fresh authority keys and the Trust of them
// with the default threshold.
func newAuthorityKeys(t testing.TB, n int) ([]ed25519.PrivateKey, Trust) {
	t.Helper()
	var keys []ed25519.PrivateKey
	var trust Trust
	for range n {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, priv)
		trust.Authorities = append(trust.Authorities, pub)
	}
	return keys, trust
}

// sampleTopology is a valid topology of two mixnodes and a gateway, in the
// current epoch of testSchedule.
func sampleTopology(t testing.TB) *Topology {
	t.Helper()
	top := &Topology{Epoch: testSchedule().Info(testSchedule().Epoch(time.Now()))}
	for _, n := range []testNode{newMixnode(t, 2), newMixnode(t, 1)} {
		d := n.desc
		top.Mixnodes = append(top.Mixnodes, Mixnode{Layer: d.Layer, Address: d.Address, Identity: d.Identity, SphinxKeys: d.SphinxKeys, NoiseKey: d.NoiseKey})
	}
	g := newGateway(t).desc
	top.Gateways = []Gateway{{Address: g.Address, ClientAddress: g.ClientAddress, Identity: g.Identity, SphinxKeys: g.SphinxKeys}}
	return top
}

// signedDocument encodes top canonically and signs it with keys.
func signedDocument(t testing.TB, top *Topology, keys ...ed25519.PrivateKey) *Document {
	t.Helper()
	b, err := EncodeTopology(top)
	if err != nil {
		t.Fatal(err)
	}
	d := &Document{Topology: b}
	for _, k := range keys {
		d.Signatures = append(d.Signatures, SignTopology(k, b))
	}
	return d
}

func refusalReason(err error) string {
	if rej, ok := errors.AsType[*RefusedError](err); ok {
		return rej.Reason
	}
	return ""
}

// TestDocumentThreshold: a document needs K distinct configured authorities
// with valid signatures over its exact bytes; a repeated signature, a
// stranger's, a signature over other bytes count for nothing.
func TestDocumentThreshold(t *testing.T) {
	keys, trust := newAuthorityKeys(t, 3)
	if trust.K() != 2 {
		t.Fatalf("K() of 3 authorities = %d, want 2", trust.K())
	}
	stranger, _ := newAuthorityKeys(t, 1)
	top := sampleTopology(t)
	other := sampleTopology(t)
	otherBytes, _ := EncodeTopology(other)

	cases := []struct {
		name string
		sigs func(d *Document)
		ok   bool
	}{
		{"unsigned", func(d *Document) { d.Signatures = nil }, false},
		{"one authority", func(d *Document) { d.Signatures = d.Signatures[:1] }, false},
		{"one authority twice", func(d *Document) { d.Signatures = []DocumentSignature{d.Signatures[0], d.Signatures[0]} }, false},
		{"one authority and a stranger", func(d *Document) {
			d.Signatures = []DocumentSignature{d.Signatures[0], SignTopology(stranger[0], d.Topology)}
		}, false},
		{"a second signature over other bytes", func(d *Document) {
			d.Signatures = []DocumentSignature{d.Signatures[0], SignTopology(keys[1], otherBytes)}
		}, false},
		{"a stranger's signature named as an authority's", func(d *Document) {
			s := SignTopology(stranger[0], d.Topology)
			s.Authority = d.Signatures[1].Authority
			d.Signatures = []DocumentSignature{d.Signatures[0], s}
		}, false},
		{"a malformed signature", func(d *Document) { d.Signatures = d.Signatures[:2]; d.Signatures[1].Signature = "!!" }, false},
		{"two authorities", func(d *Document) { d.Signatures = d.Signatures[:2] }, true},
		{"all three", func(*Document) {}, true},
		{"two authorities and junk", func(d *Document) {
			d.Signatures = append(d.Signatures[:2], DocumentSignature{Authority: "x", Signature: "y"})
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := signedDocument(t, top, keys...)
			c.sigs(d)
			got, err := d.Verify(trust)
			if c.ok {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if want, _ := EncodeTopology(top); !bytes.Equal(mustEncode(t, got), want) {
					t.Fatal("Verify returned another topology than the one signed")
				}
				return
			}
			if refusalReason(err) != RefusedUnderThreshold {
				t.Fatalf("Verify = %v, want a refusal for under_threshold", err)
			}
		})
	}
}

func mustEncode(t testing.TB, top *Topology) []byte {
	t.Helper()
	b, err := EncodeTopology(top)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDocumentTampered: changing one byte of a signed topology (moving a
// node to another address) leaves it without valid signatures.
func TestDocumentTampered(t *testing.T) {
	keys, trust := newAuthorityKeys(t, 3)
	top := sampleTopology(t)
	d := signedDocument(t, top, keys...)
	moved := *top
	moved.Mixnodes = append([]Mixnode(nil), top.Mixnodes...)
	moved.Mixnodes[0].Address = "127.0.0.1:1"
	d.Topology = mustEncode(t, &moved)
	if _, err := d.Verify(trust); refusalReason(err) != RefusedUnderThreshold {
		t.Fatalf("Verify of a moved node = %v, want under_threshold", err)
	}
}

// TestDocumentCanonical: a topology in another encoding than the canonical
// one is refused even when the authorities signed those bytes, so that
// signatures are always over the one encoding of a view.
func TestDocumentCanonical(t *testing.T) {
	keys, trust := newAuthorityKeys(t, 3)
	top := sampleTopology(t)
	canonical := mustEncode(t, top)
	if !bytes.Contains(canonical, []byte(`"mixnodes":[{"layer":1`)) {
		t.Fatalf("canonical encoding does not list layer 1 first: %s", canonical)
	}
	var indented bytes.Buffer
	json.Indent(&indented, canonical, "", " ")
	unsorted, _ := json.Marshal(top) // layer 2 first, as sampleTopology made it
	unknown := bytes.Replace(canonical, []byte(`{"mixnodes"`), []byte(`{"extra":1,"mixnodes"`), 1)
	for name, b := range map[string][]byte{"indented": indented.Bytes(), "unsorted": unsorted, "unknown field": unknown} {
		d := &Document{Topology: b}
		for _, k := range keys {
			d.Signatures = append(d.Signatures, SignTopology(k, b))
		}
		if _, err := d.Verify(trust); refusalReason(err) != RefusedNotCanonical && refusalReason(err) != RefusedMalformed {
			t.Errorf("%s: Verify = %v, want not_canonical or malformed", name, err)
		}
	}
}

// TestDocumentInvalidTopology: a topology that breaks the rules is refused
// whatever its signatures.
func TestDocumentInvalidTopology(t *testing.T) {
	keys, trust := newAuthorityKeys(t, 3)
	top := sampleTopology(t)
	top.Mixnodes[0].Layer = 7
	d := signedDocument(t, top, keys...)
	if _, err := d.Verify(trust); refusalReason(err) != RefusedInvalid {
		t.Fatalf("Verify = %v, want invalid", err)
	}
}

func TestTrustValidate(t *testing.T) {
	_, trust := newAuthorityKeys(t, 4)
	for _, c := range []struct {
		threshold int
		ok        bool
	}{{0, true}, {3, true}, {4, true}, {2, false}, {5, false}, {-1, false}} {
		tr := trust
		tr.Threshold = c.threshold
		if err := tr.Validate(); (err == nil) != c.ok {
			t.Errorf("threshold %d of 4: Validate = %v, want ok %v", c.threshold, err, c.ok)
		}
	}
	dup := Trust{Authorities: []ed25519.PublicKey{trust.Authorities[0], trust.Authorities[0]}}
	if err := dup.Validate(); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a key listed twice: Validate = %v", err)
	}
	if _, err := ParseTrust([]string{"not a key"}, 0); err == nil {
		t.Error("ParseTrust took a key that is not base58")
	}
	got, err := ParseTrust(trust.Keys(), 3)
	if err != nil || got.K() != 3 || len(got.Authorities) != 4 {
		t.Errorf("ParseTrust(Keys()) = %v, %v", got, err)
	}
}

// docServer serves whatever document body holds at PathDocument.
func docServer(t *testing.T) (url string, body *atomic.Pointer[[]byte]) {
	body = new(atomic.Pointer[[]byte])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != PathDocument {
			http.NotFound(w, r)
			return
		}
		w.Write(*body.Load())
	}))
	t.Cleanup(srv.Close)
	return srv.URL, body
}

func encodeDoc(t testing.TB, d *Document) []byte {
	t.Helper()
	b, err := encodeDocument(*d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClientTrust: a Client with Trust accepts a document signed by a
// threshold, refuses and counts one under it, one of an epoch before the
// one it holds and one more than an epoch behind its clock, and falls over
// to the next URL when one refuses.
func TestClientTrust(t *testing.T) {
	keys, trust := newAuthorityKeys(t, 3)
	url, body := docServer(t)
	c := &Client{BaseURL: url, Trust: &trust}
	ctx := context.Background()
	sched := testSchedule()
	now := sched.EpochStart(100).Add(time.Second)
	c.Now = func() time.Time { return now }

	top := sampleTopology(t)
	top.Epoch = sched.Info(100)
	good := encodeDoc(t, signedDocument(t, top, keys[0], keys[2]))
	body.Store(&good)
	got, err := c.Topology(ctx)
	if err != nil || got.Epoch.Number != 100 || len(got.Mixnodes) != 2 {
		t.Fatalf("Topology of a document signed by 2 of 3 = %v, %v", got, err)
	}

	under := encodeDoc(t, signedDocument(t, top, keys[1]))
	body.Store(&under)
	if _, err := c.Topology(ctx); refusalReason(err) != RefusedUnderThreshold {
		t.Fatalf("Topology of a document signed by 1 of 3 = %v, want under_threshold", err)
	}

	older := *top
	older.Epoch = sched.Info(99)
	old := encodeDoc(t, signedDocument(t, &older, keys...))
	body.Store(&old)
	if _, err := c.Topology(ctx); refusalReason(err) != RefusedOldEpoch {
		t.Fatalf("Topology of epoch 99 after 100 = %v, want old_epoch", err)
	}
	fresh := &Client{BaseURL: url, Trust: &trust, Now: c.Now}
	if _, err := fresh.Topology(ctx); err != nil {
		t.Fatalf("a client holding nothing refused epoch 99 at epoch 100: %v", err)
	}
	stale := *top
	stale.Epoch = sched.Info(98)
	st := encodeDoc(t, signedDocument(t, &stale, keys...))
	body.Store(&st)
	if _, err := (&Client{BaseURL: url, Trust: &trust, Now: c.Now}).Topology(ctx); refusalReason(err) != RefusedStale {
		t.Fatalf("Topology of epoch 98 at epoch 100 = %v, want stale", err)
	}

	garbage := []byte(`{"topology":{},"signatures":[],"x":1}`)
	body.Store(&garbage)
	if _, err := c.Topology(ctx); refusalReason(err) != RefusedMalformed {
		t.Fatalf("Topology of an unknown field = %v, want malformed", err)
	}
	want := map[string]uint64{RefusedUnderThreshold: 1, RefusedOldEpoch: 1, RefusedMalformed: 1}
	for why, n := range c.Refused() {
		if n != want[why] {
			t.Errorf("Refused()[%s] = %d, want %d", why, n, want[why])
		}
	}

	// Two URLs: the first serves an under-threshold document, the second a
	// good one of the next epoch.
	url2, body2 := docServer(t)
	body.Store(&under)
	next := *top
	next.Epoch = sched.Info(101)
	now = sched.EpochStart(101)
	good2 := encodeDoc(t, signedDocument(t, &next, keys[1], keys[2]))
	body2.Store(&good2)
	c.BaseURL = url + "," + url2
	if got, err := c.Topology(ctx); err != nil || got.Epoch.Number != 101 {
		t.Fatalf("Topology over two URLs = %v, %v", got, err)
	}
}

// FuzzDocument: parsing and verifying any bytes never panics, and a
// document that passes is the canonical encoding of a valid topology signed
// by a threshold.
func FuzzDocument(f *testing.F) {
	keys, trust := newAuthorityKeys(f, 3)
	top := sampleTopology(f)
	f.Add(encodeDoc(f, signedDocument(f, top, keys...)))
	f.Add(encodeDoc(f, signedDocument(f, top, keys[0])))
	f.Add([]byte(`{"topology":{"mixnodes":[],"gateways":[],"epoch":{}},"signatures":[]}`))
	f.Add([]byte(`{"topology":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := ParseDocument(raw)
		if err != nil {
			if refusalReason(err) == "" {
				t.Fatalf("ParseDocument error is not a refusal: %v", err)
			}
			return
		}
		got, err := d.Verify(trust)
		if err != nil {
			if refusalReason(err) == "" {
				t.Fatalf("Verify error is not a refusal: %v", err)
			}
			return
		}
		if !bytes.Equal(mustEncode(t, got), d.Topology) {
			t.Fatal("an accepted topology is not canonical")
		}
		if got.Validate() != nil || d.validSignatures(trust) < trust.K() {
			t.Fatal("an accepted document is invalid or under threshold")
		}
	})
}

// FuzzAllowList: parsing never panics and every identity it returns is a
// valid key.
func FuzzAllowList(f *testing.F) {
	_, trust := newAuthorityKeys(f, 2)
	f.Add([]byte(strings.Join(trust.Keys(), "\n") + "\n# comment\n\n"))
	f.Add([]byte(address.EncodeKey(trust.Authorities[0]) + " # node 1\nxyz\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		ids, err := ParseAllowList(text)
		if err != nil {
			return
		}
		for _, id := range ids {
			if _, err := parseIdentity(id); err != nil {
				t.Fatalf("ParseAllowList returned %q: %v", id, err)
			}
		}
		if _, err := NewAllowList(ids); err != nil {
			t.Fatal(err)
		}
	})
}
