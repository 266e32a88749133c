package descriptor

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/internal/testvectors"
)

const vectorsFile = "testdata/vectors.json"

// vector is one test vector: a document, the time and pin to verify it
// with, and the expected outcome. Failure cases are first-class entries.
type vector struct {
	Name     string `json:"name"`
	Document string `json:"document"`
	Now      string `json:"now"`
	// PinnedKey is the base58 key to pin, if any.
	PinnedKey string `json:"pinned_key,omitempty"`
	// Valid says whether Verify must accept the document.
	Valid bool `json:"valid"`
	// SelfCertifying is the expected flag of a valid document.
	SelfCertifying bool `json:"self_certifying,omitempty"`
	// Error names the expected failure: "signature", "key_mismatch",
	// "expired", "not_yet_valid" or "malformed".
	Error string `json:"error,omitempty"`
	// Limits are the expected limits of a valid document that publishes
	// them.
	Limits *wireLimits `json:"limits,omitempty"`
	// Authorities and Threshold are the expected network authorities and
	// threshold of a valid document that names them.
	Authorities []string `json:"authorities,omitempty"`
	Threshold   int      `json:"threshold,omitempty"`
}

type vectorFile struct {
	Comment string   `json:"comment"`
	Seeds   []string `json:"seeds_hex"`
	Vectors []vector `json:"vectors"`
}

// makeVectors builds the vectors from fixed seeds and times.
func makeVectors(t *testing.T) vectorFile {
	seed1 := bytes.Repeat([]byte{0x11}, ed25519.SeedSize)
	seed2 := bytes.Repeat([]byte{0x22}, ed25519.SeedSize)
	k1, k2 := ed25519.NewKeyFromSeed(seed1), ed25519.NewKeyFromSeed(seed2)
	var addr address.Address
	copy(addr.Identity[:], k1.Public().(ed25519.PublicKey))
	addr.Encryption = [32]byte{9}
	copy(addr.Gateway[:], k2.Public().(ed25519.PublicKey))
	issued := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	expires := issued.Add(24 * time.Hour)
	info := Info{
		Address:  addr,
		Services: []Service{{Name: "echo", Description: "replies with the request data, unchanged"}},
		Network:  Network{Type: NetworkPeapod, Directory: "http://127.0.0.1:8090"},
	}
	sign := func(key ed25519.PrivateKey, info Info) string {
		doc, err := Sign(key, info, issued, expires)
		if err != nil {
			t.Fatal(err)
		}
		return string(doc)
	}
	selfCert := sign(k1, info)
	limitsInfo := info
	limitsInfo.Limits = &Limits{MaxRequestSize: 262144, MaxReplySize: 1048576, RequestTimeout: 10 * time.Second}
	withLimits := sign(k1, limitsInfo)
	wantLimits := limitsInfo.Limits.wire()
	nymInfo := info
	nymInfo.Network = Network{Type: NetworkNym}
	nym := sign(k2, nymInfo)
	var authorities []string
	for _, b := range []byte{0x33, 0x44, 0x55} {
		k := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize))
		authorities = append(authorities, address.EncodeKey(k.Public().(ed25519.PublicKey)))
	}
	authInfo := info
	authInfo.Network.Directory = "http://127.0.0.1:8090,http://127.0.0.1:8091,http://127.0.0.1:8092"
	authInfo.Network.Authorities, authInfo.Network.Threshold = authorities, 2
	withAuthorities := sign(k1, authInfo)

	var w wireDocument
	_ = json.Unmarshal([]byte(selfCert), &w)
	payload, _ := base64.StdEncoding.DecodeString(w.Payload)
	rewrap := func(payload []byte, sig string) string {
		doc, _ := json.Marshal(wireDocument{V: 1, Payload: base64.StdEncoding.EncodeToString(payload), Signature: sig})
		return string(doc)
	}
	altered := rewrap(bytes.Replace(payload, []byte("8090"), []byte("8091"), 1), w.Signature)
	sig, _ := base64.StdEncoding.DecodeString(w.Signature)
	sig[0] ^= 0x80
	flipped := rewrap(payload, base64.StdEncoding.EncodeToString(sig))

	// Payloads that are signed correctly but break the parsing rules: a
	// verifier must refuse them as malformed whatever its JSON library
	// would make of them.
	signRaw := func(payload []byte) string {
		sig := ed25519.Sign(k1, signedMessage(payload))
		return rewrap(payload, base64.StdEncoding.EncodeToString(sig))
	}
	dupTop := signRaw(bytes.Replace(payload, []byte(`"v":1,`), []byte(`"v":1,"address":"x",`), 1))
	dupNested := signRaw(bytes.Replace(payload, []byte(`{"name":"echo",`), []byte(`{"name":"echo","name":"kv",`), 1))
	badKey := signRaw(bytes.Replace(payload, []byte(`"key":"`), []byte(`"key":"0`), 1))

	// Network authorities a verifier must refuse, signed correctly.
	var aw wireDocument
	_ = json.Unmarshal([]byte(withAuthorities), &aw)
	authPayload, _ := base64.StdEncoding.DecodeString(aw.Payload)
	quoted := func(keys ...string) string { b, _ := json.Marshal(keys); return string(b) }
	network := func(members string) string {
		return signRaw(bytes.Replace(payload, []byte(`"directory":"http://127.0.0.1:8090"`),
			[]byte(`"directory":"http://127.0.0.1:8090",`+members), 1))
	}
	belowMajority := signRaw(bytes.Replace(authPayload, []byte(`"threshold":2`), []byte(`"threshold":1`), 1))
	authTwice := network(`"authorities":` + quoted(authorities[0], authorities[1], authorities[0]))
	thresholdAlone := network(`"threshold":1`)
	thresholdZero := signRaw(bytes.Replace(authPayload, []byte(`"threshold":2`), []byte(`"threshold":0`), 1))
	thresholdText := signRaw(bytes.Replace(authPayload, []byte(`"threshold":2`), []byte(`"threshold":"2"`), 1))
	noAuthorities := network(`"authorities":[]`)
	shortKey := network(`"authorities":` + quoted(authorities[0][:20]))
	nymAuthorities := signRaw(bytes.Replace(payload, []byte(`"network":{"type":"peapod","directory":"http://127.0.0.1:8090"}`),
		[]byte(`"network":{"type":"nym","authorities":`+quoted(authorities...)+`}`), 1))

	now := issued.Add(time.Hour).Format(TimeLayout)
	key1 := address.EncodeKey(k1.Public().(ed25519.PublicKey))
	key2 := address.EncodeKey(k2.Public().(ed25519.PublicKey))
	return vectorFile{
		Comment: "peapod provider descriptors (docs/provider.md, section 3). The keys are ed25519 from the seeds given " +
			"(seed 0 is the address's identity, seed 1 the gateway's and the Nym-mode provider key). Regenerate with " +
			"go test ./framework/descriptor -run TestVectors -update.",
		Seeds: []string{strings.Repeat("11", 32), strings.Repeat("22", 32)},
		Vectors: []vector{
			{Name: "self-certifying peapod provider", Document: selfCert, Now: now, Valid: true, SelfCertifying: true},
			{Name: "self-certifying, with limits", Document: withLimits, Now: now, Valid: true, SelfCertifying: true, Limits: &wantLimits},
			{Name: "self-certifying, a network of three authorities", Document: withAuthorities, Now: now, Valid: true, SelfCertifying: true,
				Authorities: authorities, Threshold: 2},
			{Name: "network authorities with a threshold below a majority", Document: belowMajority, Now: now, Error: "malformed"},
			{Name: "a network authority listed twice", Document: authTwice, Now: now, Error: "malformed"},
			{Name: "a network threshold without authorities", Document: thresholdAlone, Now: now, Error: "malformed"},
			{Name: "a network threshold of 0", Document: thresholdZero, Now: now, Error: "malformed"},
			{Name: "a network threshold that is a string", Document: thresholdText, Now: now, Error: "malformed"},
			{Name: "an empty list of network authorities", Document: noAuthorities, Now: now, Error: "malformed"},
			{Name: "a network authority key that is not 32 bytes", Document: shortKey, Now: now, Error: "malformed"},
			{Name: "authorities of a Nym network", Document: nymAuthorities, Now: now, Error: "malformed"},
			{Name: "self-certifying, pinned to its key", Document: selfCert, Now: now, PinnedKey: key1, Valid: true, SelfCertifying: true},
			{Name: "nym provider with its own key, pinned", Document: nym, Now: now, PinnedKey: key2, Valid: true},
			{Name: "nym provider, pinned to another key", Document: nym, Now: now, PinnedKey: key1, Error: "key_mismatch"},
			{Name: "payload altered (directory port)", Document: altered, Now: now, Error: "signature"},
			{Name: "signature bit flipped", Document: flipped, Now: now, Error: "signature"},
			{Name: "expired", Document: selfCert, Now: expires.Add(DefaultMaxSkew).Format(TimeLayout), Error: "expired"},
			{Name: "issued in the future", Document: selfCert, Now: issued.Add(-DefaultMaxSkew - time.Second).Format(TimeLayout), Error: "not_yet_valid"},
			{Name: "self-certifying, pinned to another key", Document: selfCert, Now: now, PinnedKey: key2, Error: "key_mismatch"},
			{Name: "signed payload with a member twice", Document: dupTop, Now: now, Error: "malformed"},
			{Name: "signed payload with a member twice in a service", Document: dupNested, Now: now, Error: "malformed"},
			{Name: "signed payload whose key is not base58", Document: badKey, Now: now, Error: "malformed"},
			{Name: "trailing data", Document: selfCert + "x", Now: now, Error: "malformed"},
			{Name: "unknown version", Document: strings.Replace(selfCert, `"v":1`, `"v":2`, 1), Now: now, Error: "malformed"},
		},
	}
}

// TestVectors checks Verify against testdata/vectors.json, and that the
// file matches what the current code generates (regenerate with -update).
func TestVectors(t *testing.T) {
	stored := testvectors.Golden(t, vectorsFile, makeVectors(t))
	var file vectorFile
	if err := json.Unmarshal(stored, &file); err != nil {
		t.Fatal(err)
	}
	for _, v := range file.Vectors {
		now, err := time.Parse(TimeLayout, v.Now)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		opts := VerifyOptions{Now: now}
		if v.PinnedKey != "" {
			if opts.Key, err = address.DecodeKey(v.PinnedKey, ed25519.PublicKeySize); err != nil {
				t.Fatalf("%s: %v", v.Name, err)
			}
		}
		d, err := Verify([]byte(v.Document), opts)
		if v.Valid {
			if err != nil {
				t.Errorf("%s: %v", v.Name, err)
			} else if d.SelfCertifying != v.SelfCertifying {
				t.Errorf("%s: self-certifying %v", v.Name, d.SelfCertifying)
			} else if (d.Limits == nil) != (v.Limits == nil) || d.Limits != nil && d.Limits.wire() != *v.Limits {
				t.Errorf("%s: limits %+v, want %+v", v.Name, d.Limits, v.Limits)
			} else if !slices.Equal(d.Network.Authorities, v.Authorities) || d.Network.Threshold != v.Threshold {
				t.Errorf("%s: authorities %v threshold %d, want %v %d", v.Name, d.Network.Authorities, d.Network.Threshold, v.Authorities, v.Threshold)
			}
			continue
		}
		sentinel := map[string]error{
			"signature": ErrSignature, "key_mismatch": ErrKeyMismatch,
			"expired": ErrExpired, "not_yet_valid": ErrNotYetValid,
		}[v.Error]
		switch {
		case err == nil:
			t.Errorf("%s: accepted", v.Name)
		case sentinel != nil && !errors.Is(err, sentinel):
			t.Errorf("%s: %v, want %v", v.Name, err, sentinel)
		case sentinel == nil && v.Error != "malformed":
			t.Errorf("%s: unknown expected error %q", v.Name, v.Error)
		}
	}
}
