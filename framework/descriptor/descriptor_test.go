package descriptor

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
)

var (
	t0      = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	seedA   = bytes.Repeat([]byte{1}, ed25519.SeedSize)
	seedB   = bytes.Repeat([]byte{2}, ed25519.SeedSize)
	keyA    = ed25519.NewKeyFromSeed(seedA)
	keyB    = ed25519.NewKeyFromSeed(seedB)
	publicA = keyA.Public().(ed25519.PublicKey)
	publicB = keyB.Public().(ed25519.PublicKey)
	dirURL  = "http://127.0.0.1:9000"
)

// testAddress returns an address whose identity is the public half of
// identity, so that a descriptor signed with identity is self-certifying.
func testAddress(t testing.TB, identity ed25519.PublicKey) address.Address {
	t.Helper()
	var a address.Address
	copy(a.Identity[:], identity)
	a.Encryption[0] = 9
	copy(a.Gateway[:], publicB)
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	return a
}

func testInfo(t testing.TB) Info {
	return Info{
		Address: testAddress(t, publicA),
		Services: []Service{
			{Name: "echo", Description: "replies with what it gets"},
			{Name: "kv", Description: `key-value store; {"op":...}`},
		},
		Network: Network{Type: NetworkPeapod, Directory: dirURL},
	}
}

func sign(t testing.TB, key ed25519.PrivateKey, info Info) []byte {
	t.Helper()
	doc, err := Sign(key, info, t0, t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestNetworkAuthorities: the network section carries the authorities'
// keys and the threshold through signing and verifying; a payload whose
// authorities are not an array of keys is refused.
func TestNetworkAuthorities(t *testing.T) {
	info := testInfo(t)
	info.Network.Authorities = []string{address.EncodeKey(publicA), address.EncodeKey(publicB)}
	info.Network.Threshold = 2
	d, err := Verify(sign(t, keyA, info), VerifyOptions{Now: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	trust, err := d.Network.Trust()
	if err != nil || trust == nil || trust.K() != 2 || !reflect.DeepEqual(trust.Keys(), info.Network.Authorities) {
		t.Fatalf("Trust() = %+v, %v", trust, err)
	}
	payload := payloadOf(t, sign(t, keyA, testInfo(t)))
	if _, err := Verify(resign(keyA, payload), VerifyOptions{Now: t0.Add(time.Hour)}); err != nil {
		t.Fatalf("the re-signed payload itself: %v", err)
	}
	for _, bad := range []string{`"authorities":"x"`, `"authorities":[]`, `"authorities":[1]`, `"threshold":0`, `"threshold":"2"`} {
		changed := bytes.Replace(payload, []byte(`"type":"peapod",`), []byte(`"type":"peapod",`+bad+`,`), 1)
		if _, err := Verify(resign(keyA, changed), VerifyOptions{Now: t0.Add(time.Hour)}); err == nil || errors.Is(err, ErrSignature) {
			t.Errorf("network with %s: Verify = %v, want a refusal of the member", bad, err)
		}
	}
}

func TestSignVerify(t *testing.T) {
	info := testInfo(t)
	doc := sign(t, keyA, info)
	d, err := Verify(doc, VerifyOptions{Now: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if d.Address != info.Address || !reflect.DeepEqual(d.Network, info.Network) || len(d.Services) != 2 || d.Services[1] != info.Services[1] {
		t.Errorf("content: got %+v, want %+v", d.Info, info)
	}
	if !bytes.Equal(d.Key, publicA) || !d.IssuedAt.Equal(t0) || !d.ExpiresAt.Equal(t0.Add(24*time.Hour)) {
		t.Errorf("key or times: %x %v %v", d.Key, d.IssuedAt, d.ExpiresAt)
	}
	if !d.SelfCertifying {
		t.Error("signed with the address's identity key, but not self-certifying")
	}
	if s, ok := d.Service("kv"); !ok || s.Name != "kv" {
		t.Error("Service(kv) not found")
	}
	if _, ok := d.Service("nope"); ok {
		t.Error("Service(nope) found")
	}

	// Pinned key and address that match.
	a := info.Address
	if _, err := Verify(doc, VerifyOptions{Now: t0, Key: publicA, Address: &a}); err != nil {
		t.Errorf("with matching pins: %v", err)
	}
}

func TestNotSelfCertifying(t *testing.T) {
	info := testInfo(t)
	info.Network = Network{Type: NetworkNym}
	doc := sign(t, keyB, info)
	d, err := Verify(doc, VerifyOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if d.SelfCertifying {
		t.Error("signed with another key than the address's, yet self-certifying")
	}
	if _, err := Verify(doc, VerifyOptions{Now: t0, Key: publicB}); err != nil {
		t.Errorf("pinned to its key: %v", err)
	}
}

func TestWireForm(t *testing.T) {
	doc := sign(t, keyA, testInfo(t))
	var outer map[string]any
	if err := json.Unmarshal(doc, &outer); err != nil {
		t.Fatal(err)
	}
	if len(outer) != 3 || outer["v"] != 1.0 {
		t.Fatalf("document = %s", doc)
	}
	payload, _ := base64.StdEncoding.DecodeString(outer["payload"].(string))
	sig, _ := base64.StdEncoding.DecodeString(outer["signature"].(string))
	// The signed bytes, exactly as documented.
	if !ed25519.Verify(publicA, append([]byte("peapod-provider-descriptor-v1\n"), payload...), sig) {
		t.Error("signature is not over the documented bytes")
	}
	want := `{"v":1,"address":"` + testAddress(t, publicA).String() + `","services":[` +
		`{"name":"echo","description":"replies with what it gets"},` +
		`{"name":"kv","description":"key-value store; {\"op\":...}"}],` +
		`"network":{"type":"peapod","directory":"http://127.0.0.1:9000"},` +
		`"key":"` + address.EncodeKey(publicA) + `",` +
		`"issued_at":"2025-06-01T12:00:00Z","expires_at":"2025-06-02T12:00:00Z"}`
	if string(payload) != want {
		t.Errorf("payload:\n got %s\nwant %s", payload, want)
	}
}

// resign builds a document around payload, signed with key.
func resign(key ed25519.PrivateKey, payload []byte) []byte {
	sig := ed25519.Sign(key, append([]byte(SignatureContext), payload...))
	doc, _ := json.Marshal(wireDocument{V: 1, Payload: base64.StdEncoding.EncodeToString(payload), Signature: base64.StdEncoding.EncodeToString(sig)})
	return doc
}

func payloadOf(t testing.TB, doc []byte) []byte {
	var w wireDocument
	if err := json.Unmarshal(doc, &w); err != nil {
		t.Fatal(err)
	}
	p, err := base64.StdEncoding.DecodeString(w.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTampered: every alteration of a document is refused.
func TestTampered(t *testing.T) {
	info := testInfo(t)
	doc := sign(t, keyA, info)
	payload := payloadOf(t, doc)
	var w wireDocument
	_ = json.Unmarshal(doc, &w)
	now := VerifyOptions{Now: t0}

	other := testAddress(t, publicB)
	tests := []struct {
		name string
		doc  []byte
		want error
	}{
		{"address swapped", resignLike(doc, bytes.Replace(payload, []byte(info.Address.String()), []byte(other.String()), 1)), ErrSignature},
		{"directory changed", resignLike(doc, bytes.Replace(payload, []byte("127.0.0.1:9000"), []byte("127.0.0.1:9001"), 1)), ErrSignature},
		{"service dropped", resignLike(doc, bytes.Replace(payload, []byte(`{"name":"echo","description":"replies with what it gets"},`), nil, 1)), ErrSignature},
		{"expiry extended", resignLike(doc, bytes.Replace(payload, []byte("2025-06-02"), []byte("2025-06-03"), 1)), ErrSignature},
		{"whitespace added", resignLike(doc, append(append([]byte{}, payload...), ' ')), ErrSignature},
		{"signature flipped", mutateSig(w, func(s []byte) { s[10] ^= 1 }), ErrSignature},
		{"signature short", mutateSig(w, func(s []byte) {}, 63), ErrSignature},
		{"key swapped, re-signed by the attacker", resign(keyB, bytes.Replace(payload, []byte(`"key":"`+address.EncodeKey(publicA)), []byte(`"key":"`+address.EncodeKey(publicB)), 1)), nil},
	}
	for _, tt := range tests {
		_, err := Verify(tt.doc, now)
		if tt.want == nil {
			continue
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}

	// An attacker who re-signs with their own key produces a valid
	// document, but it is no longer self-certifying, and a pin refuses it.
	forged := tests[len(tests)-1].doc
	d, err := Verify(forged, now)
	if err != nil {
		t.Fatalf("forged, unpinned: %v", err)
	}
	if d.SelfCertifying {
		t.Error("a document signed by a key other than the address's is self-certifying")
	}
	if _, err := Verify(forged, VerifyOptions{Now: t0, Key: publicA}); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("forged, pinned key: err = %v, want ErrKeyMismatch", err)
	}
	// Pinning the address does not refuse it (the address is unchanged);
	// self-certification is what ties key and address, see the package doc.
	a := info.Address
	if d, err := Verify(forged, VerifyOptions{Now: t0, Address: &a}); err != nil || d.SelfCertifying {
		t.Errorf("forged, pinned address: %v, self-certifying %v", err, d != nil && d.SelfCertifying)
	}
	b := other
	if _, err := Verify(doc, VerifyOptions{Now: t0, Address: &b}); !errors.Is(err, ErrAddressMismatch) {
		t.Errorf("pinned other address: err = %v", err)
	}
}

// resignLike replaces the payload of doc without re-signing it.
func resignLike(doc, payload []byte) []byte {
	var w wireDocument
	_ = json.Unmarshal(doc, &w)
	w.Payload = base64.StdEncoding.EncodeToString(payload)
	out, _ := json.Marshal(w)
	return out
}

func mutateSig(w wireDocument, f func([]byte), trim ...int) []byte {
	sig, _ := base64.StdEncoding.DecodeString(w.Signature)
	f(sig)
	if len(trim) > 0 {
		sig = sig[:trim[0]]
	}
	w.Signature = base64.StdEncoding.EncodeToString(sig)
	out, _ := json.Marshal(w)
	return out
}

func TestTimes(t *testing.T) {
	doc := sign(t, keyA, testInfo(t))
	for _, tt := range []struct {
		now  time.Time
		want error
	}{
		{t0, nil},
		{t0.Add(-DefaultMaxSkew), nil},
		{t0.Add(-DefaultMaxSkew - time.Second), ErrNotYetValid},
		{t0.Add(24 * time.Hour), nil},
		{t0.Add(24*time.Hour + DefaultMaxSkew), ErrExpired},
		{t0.Add(48 * time.Hour), ErrExpired},
	} {
		_, err := Verify(doc, VerifyOptions{Now: tt.now})
		if !errors.Is(err, tt.want) {
			t.Errorf("at %v: err = %v, want %v", tt.now, err, tt.want)
		}
	}
	if _, err := Verify(doc, VerifyOptions{Now: t0.Add(25 * time.Hour), MaxSkew: 2 * time.Hour}); err != nil {
		t.Errorf("with a larger skew: %v", err)
	}
}

func TestSignRefuses(t *testing.T) {
	info := testInfo(t)
	for name, f := range map[string]func() error{
		"expires first": func() error { _, err := Sign(keyA, info, t0, t0); return err },
		"too long":      func() error { _, err := Sign(keyA, info, t0, t0.Add(MaxLifetime+time.Second)); return err },
		"short key":     func() error { _, err := Sign(keyA[:10], info, t0, t0.Add(time.Hour)); return err },
		"not ed25519":   func() error { _, err := Sign(rsaLike{}, info, t0, t0.Add(time.Hour)); return err },
		"nil signer":    func() error { _, err := Sign(nil, info, t0, t0.Add(time.Hour)); return err },
		"no address": func() error {
			i := info
			i.Address = address.Address{}
			_, err := Sign(keyA, i, t0, t0.Add(time.Hour))
			return err
		},
		"bad service": func() error {
			i := info
			i.Services = []Service{{Name: "Bad"}}
			_, err := Sign(keyA, i, t0, t0.Add(time.Hour))
			return err
		},
		"twice": func() error {
			i := info
			i.Services = []Service{{Name: "a"}, {Name: "a"}}
			_, err := Sign(keyA, i, t0, t0.Add(time.Hour))
			return err
		},
		"no directory": func() error {
			i := info
			i.Network.Directory = ""
			_, err := Sign(keyA, i, t0, t0.Add(time.Hour))
			return err
		},
		"nym directory": func() error {
			i := info
			i.Network.Type = NetworkNym
			_, err := Sign(keyA, i, t0, t0.Add(time.Hour))
			return err
		},
		"an authority key that is not one": func() error {
			i := info
			i.Network.Authorities = []string{"nope"}
			_, err := Sign(keyA, i, t0, t0.Add(time.Hour))
			return err
		},
		"a threshold below a majority": func() error {
			i := info
			i.Network.Authorities = []string{address.EncodeKey(publicA), address.EncodeKey(publicB)}
			i.Network.Threshold = 1
			_, err := Sign(keyA, i, t0, t0.Add(time.Hour))
			return err
		},
		"a threshold without authorities": func() error {
			i := info
			i.Network.Threshold = 2
			_, err := Sign(keyA, i, t0, t0.Add(time.Hour))
			return err
		},
		"unknown net": func() error {
			i := info
			i.Network.Type = "tor"
			_, err := Sign(keyA, i, t0, t0.Add(time.Hour))
			return err
		},
		"bad descr utf8": func() error {
			i := info
			i.Services = []Service{{Name: "a", Description: "\xff"}}
			_, err := Sign(keyA, i, t0, t0.Add(time.Hour))
			return err
		},
	} {
		if f() == nil {
			t.Errorf("%s: Sign accepted it", name)
		}
	}
	// No services is fine, and encodes as an empty list.
	i := info
	i.Services = nil
	doc, err := Sign(keyA, i, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Verify(doc, VerifyOptions{Now: t0})
	if err != nil || d.Services == nil || len(d.Services) != 0 {
		t.Errorf("no services: %+v, %v", d, err)
	}
}

// TestStrictPayload: payloads that are validly signed but malformed are
// refused, so that every verifier reads a signed payload the same way.
func TestStrictPayload(t *testing.T) {
	good := string(payloadOf(t, sign(t, keyA, testInfo(t))))
	for name, payload := range map[string]string{
		"duplicate top":    strings.Replace(good, `"v":1,`, `"v":1,"v":1,`, 1),
		"duplicate nested": strings.Replace(good, `"type":"peapod",`, `"type":"peapod","type":"nym",`, 1),
		"case variant":     strings.Replace(good, `"address"`, `"Address"`, 1),
		"version 2":        strings.Replace(good, `"v":1,`, `"v":2,`, 1),
		"version 1.0":      strings.Replace(good, `"v":1,`, `"v":1.0,`, 1),
		"trailing":         good + " {}",
		"not object":       `[` + good + `]`,
		"time non-utc":     strings.Replace(good, `2025-06-01T12:00:00Z`, `2025-06-01T14:00:00+02:00`, 1),
		"time fraction":    strings.Replace(good, `2025-06-01T12:00:00Z`, `2025-06-01T12:00:00.5Z`, 1),
		"services null":    strings.Replace(good, `"services":[`, `"services":null,"x":[`, 1),
		"service no descr": strings.Replace(good, `,"description":"replies with what it gets"`, ``, 1),
		"bad utf8":         strings.Replace(good, `echo`, "ech\xff", 1),
		"key short":        strings.Replace(good, `"key":"`+address.EncodeKey(publicA), `"key":"abc`, 1),
	} {
		if payload == good {
			t.Fatalf("%s: replacement did not apply", name)
		}
		if _, err := Verify(resign(keyA, []byte(payload)), VerifyOptions{Now: t0}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// An unknown member is ignored (later versions may add some).
	extra := strings.Replace(good, `"v":1,`, `"v":1,"contact":"ops@example.org",`, 1)
	if _, err := Verify(resign(keyA, []byte(extra)), VerifyOptions{Now: t0}); err != nil {
		t.Errorf("unknown member: %v", err)
	}
}

func TestDocumentErrors(t *testing.T) {
	doc := sign(t, keyA, testInfo(t))
	for name, d := range map[string][]byte{
		"empty":      nil,
		"not json":   []byte("hello"),
		"version":    bytes.Replace(doc, []byte(`"v":1`), []byte(`"v":2`), 1),
		"duplicate":  bytes.Replace(doc, []byte(`"v":1,`), []byte(`"v":1,"v":1,`), 1),
		"trailing":   append(append([]byte{}, doc...), '0'),
		"no payload": bytes.Replace(doc, []byte(`"payload"`), []byte(`"p"`), 1),
		"too big":    append(append([]byte{}, doc...), bytes.Repeat([]byte(" "), MaxSize)...),
	} {
		if _, err := Verify(d, VerifyOptions{Now: t0}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzVerify: no panic; what verifies signs again to the same content.
func FuzzVerify(f *testing.F) {
	info := testInfo(f)
	f.Add(sign(f, keyA, info))
	info.Network = Network{Type: NetworkNym}
	f.Add(sign(f, keyA, info))
	f.Add([]byte(`{"v":1,"payload":"","signature":""}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		d, err := Verify(doc, VerifyOptions{Now: t0})
		if err != nil {
			return
		}
		if !bytes.Equal(d.Key, publicA) {
			t.Fatalf("verified under a key nobody signed with: %x", d.Key)
		}
		again, err := Sign(keyA, d.Info, d.IssuedAt, d.ExpiresAt)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := Verify(again, VerifyOptions{Now: t0})
		if err != nil || d2.Address != d.Address || !reflect.DeepEqual(d2.Network, d.Network) || len(d2.Services) != len(d.Services) {
			t.Fatalf("re-signed: %+v, %v; want %+v", d2, err, d)
		}
	})
}

// FuzzPayload: signed payloads of any shape never panic the parser, and a
// payload that parses re-encodes to one that parses to the same content.
func FuzzPayload(f *testing.F) {
	f.Add(payloadOf(f, sign(f, keyA, testInfo(f))))
	f.Fuzz(func(t *testing.T, payload []byte) {
		d, err := Verify(resign(keyA, payload), VerifyOptions{Now: t0})
		if err != nil {
			return
		}
		again, err := Sign(keyA, d.Info, d.IssuedAt, d.ExpiresAt)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := Verify(again, VerifyOptions{Now: t0})
		if err != nil || d2.Address != d.Address || !reflect.DeepEqual(d2.Network, d.Network) || len(d2.Services) != len(d.Services) {
			t.Fatalf("re-signed: %+v, %v; want %+v", d2, err, d)
		}
		for i := range d.Services {
			if d.Services[i] != d2.Services[i] {
				t.Fatalf("service %d: %+v != %+v", i, d.Services[i], d2.Services[i])
			}
		}
	})
}

// rsaLike is a crypto.Signer without an ed25519 key.
type rsaLike struct{}

func (rsaLike) Public() crypto.PublicKey { return "not a key" }
func (rsaLike) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("unused")
}

// TestLimits: published limits survive signing and verifying, are written
// as documented, and a payload with malformed limits is refused; a payload
// without them verifies with nil Limits.
func TestLimits(t *testing.T) {
	info := testInfo(t)
	info.Limits = &Limits{MaxRequestSize: 262144, MaxReplySize: 1 << 20, RequestTimeout: 10 * time.Second}
	doc := sign(t, keyA, info)
	d, err := Verify(doc, VerifyOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if d.Limits == nil || *d.Limits != *info.Limits {
		t.Fatalf("limits %+v, want %+v", d.Limits, info.Limits)
	}
	good := string(payloadOf(t, doc))
	const wire = `"limits":{"max_request_size":262144,"max_reply_size":1048576,"request_timeout_ms":10000},`
	if !strings.Contains(good, `"network":{"type":"peapod","directory":"http://127.0.0.1:9000"},`+wire+`"key":`) {
		t.Errorf("payload %s does not hold %s after the network", good, wire)
	}
	if b, _ := json.Marshal(info.Limits); string(b) != strings.TrimSuffix(strings.TrimPrefix(wire, `"limits":`), ",") {
		t.Errorf("Limits as JSON (/address): %s", b)
	}

	// A timeout that is not whole milliseconds is published rounded up.
	info.Limits.RequestTimeout = 1500 * time.Microsecond
	if d, err := Verify(sign(t, keyA, info), VerifyOptions{Now: t0}); err != nil || d.Limits.RequestTimeout != 2*time.Millisecond {
		t.Errorf("rounded timeout: %+v, %v", d.Limits, err)
	}

	for name, limits := range map[string]string{
		"zero":          `"limits":{"max_request_size":0,"max_reply_size":1048576,"request_timeout_ms":10000},`,
		"negative":      `"limits":{"max_request_size":-1,"max_reply_size":1048576,"request_timeout_ms":10000},`,
		"fraction":      `"limits":{"max_request_size":262144.5,"max_reply_size":1048576,"request_timeout_ms":10000},`,
		"exponent":      `"limits":{"max_request_size":2e5,"max_reply_size":1048576,"request_timeout_ms":10000},`,
		"leading zero":  `"limits":{"max_request_size":0262144,"max_reply_size":1048576,"request_timeout_ms":10000},`,
		"string":        `"limits":{"max_request_size":"262144","max_reply_size":1048576,"request_timeout_ms":10000},`,
		"over 2^53-1":   `"limits":{"max_request_size":9007199254740992,"max_reply_size":1048576,"request_timeout_ms":10000},`,
		"missing":       `"limits":{"max_reply_size":1048576,"request_timeout_ms":10000},`,
		"twice":         `"limits":{"max_request_size":1,"max_request_size":2,"max_reply_size":1048576,"request_timeout_ms":10000},`,
		"not an object": `"limits":[262144,1048576,10000],`,
	} {
		payload := strings.Replace(good, wire, limits, 1)
		if _, err := Verify(resign(keyA, []byte(payload)), VerifyOptions{Now: t0}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The largest value every JSON reader holds exactly is accepted.
	largest := strings.Replace(good, `"request_timeout_ms":10000`, `"request_timeout_ms":9007199254740991`, 1)
	if d, err := Verify(resign(keyA, []byte(largest)), VerifyOptions{Now: t0}); err != nil || d.Limits.RequestTimeout <= 0 {
		t.Errorf("largest timeout: %+v, %v", d, err)
	}
	if d, err := Verify(sign(t, keyA, testInfo(t)), VerifyOptions{Now: t0}); err != nil || d.Limits != nil {
		t.Errorf("without limits: %+v, %v", d, err)
	}
	info.Limits = &Limits{MaxRequestSize: 0, MaxReplySize: 1, RequestTimeout: time.Second}
	if _, err := Sign(keyA, info, t0, t0.Add(time.Hour)); err == nil {
		t.Error("Sign published a zero limit")
	}
}
