package directory

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/peapod-mixnet/peapod/address"
)

// The signed topology document.
//
// Directory authorities publish the topology of an epoch as a [Document]:
// the topology's canonical encoding (see [EncodeTopology]) and the
// signatures of the authorities that hold the same canonical bytes. Each
// signature is an ed25519 signature, by an authority's key, over
//
//	"peapod-topology-v1\n" + topology
//
// A consumer (client, gateway, mixnode, provider) is configured with the
// authorities' public keys and a threshold k ([Trust]) and accepts a
// document only when at least k distinct configured keys signed its exact
// bytes ([Document.Verify]). Signatures by keys it does not know, repeated
// keys and invalid signatures count for nothing.

// DocumentContext prefixes the bytes an authority signs.
const DocumentContext = "peapod-topology-v1\n"

// MaxAuthorities bounds the authorities a [Trust] names and the signatures
// a [Document] carries.
const MaxAuthorities = 64

// Reasons a document is refused: the values of [RefusedError.Reason] and
// of the reason label of the consumers' refused-document counters.
const (
	RefusedMalformed      = "malformed"       // not a document: bad JSON, unknown field, trailing data
	RefusedNotCanonical   = "not_canonical"   // the topology is not in its canonical encoding
	RefusedInvalid        = "invalid"         // a field of the topology the rules refuse
	RefusedUnderThreshold = "under_threshold" // fewer than k valid signatures by configured authorities
	RefusedOldEpoch       = "old_epoch"       // older than the epoch the consumer holds
	RefusedStale          = "stale"           // more than one epoch behind the consumer's clock
)

// RefusedReasons lists every reason a document is refused.
var RefusedReasons = []string{
	RefusedMalformed, RefusedNotCanonical, RefusedInvalid,
	RefusedUnderThreshold, RefusedOldEpoch, RefusedStale,
}

// RefusedError is the error of a refused document: Reason is one of the
// Refused* constants, Err says what is wrong.
type RefusedError struct {
	Reason string
	Err    error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("directory: topology document refused (%s): %s", e.Reason, reason(e.Err))
}

func (e *RefusedError) Unwrap() error { return e.Err }

func refused(why string, err error) error { return &RefusedError{Reason: why, Err: err} }

// Trust is what a consumer trusts: the authorities' ed25519 public keys and
// how many of them must sign a document.
type Trust struct {
	// Authorities are the authorities' public keys, each once.
	Authorities []ed25519.PublicKey
	// Threshold is the number of distinct authorities whose signatures a
	// document needs. Zero means a majority: len(Authorities)/2 + 1.
	Threshold int
}

// ParseTrust builds a [Trust] from base58 authority keys and a threshold
// (0: a majority), and checks it with [Trust.Validate].
func ParseTrust(keys []string, threshold int) (Trust, error) {
	t := Trust{Threshold: threshold}
	for i, k := range keys {
		key, err := parseIdentity(k)
		if err != nil {
			return Trust{}, fmt.Errorf("directory: authority key %d (%.50q) %s", i+1, k, strings.TrimPrefix(reason(err), "identity "))
		}
		t.Authorities = append(t.Authorities, key)
	}
	if err := t.Validate(); err != nil {
		return Trust{}, err
	}
	return t, nil
}

// Validate reports whether t is usable: one to MaxAuthorities distinct
// keys and a threshold that is a majority of them at least and all of them
// at most. A threshold below a majority would let two disjoint sets of
// authorities each make a document for the same epoch.
func (t Trust) Validate() error {
	n := len(t.Authorities)
	if n == 0 {
		return errors.New("directory: no authority keys")
	}
	if n > MaxAuthorities {
		return fmt.Errorf("directory: %d authority keys, at most %d allowed", n, MaxAuthorities)
	}
	seen := make(map[string]bool, n)
	for i, k := range t.Authorities {
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("directory: authority key %d is %d bytes, want %d", i+1, len(k), ed25519.PublicKeySize)
		}
		if seen[string(k)] {
			return fmt.Errorf("directory: authority key %s is listed twice", address.EncodeKey(k))
		}
		seen[string(k)] = true
	}
	if k := t.Threshold; k != 0 && (k < n/2+1 || k > n) {
		return fmt.Errorf("directory: threshold %d is out of range %d..%d (a majority of %d authorities to all of them)", k, n/2+1, n, n)
	}
	return nil
}

// K is the number of signatures a document needs.
func (t Trust) K() int {
	if t.Threshold == 0 {
		return len(t.Authorities)/2 + 1
	}
	return t.Threshold
}

// Keys returns the base58 text of the authority keys.
func (t Trust) Keys() []string {
	out := make([]string, len(t.Authorities))
	for i, k := range t.Authorities {
		out[i] = address.EncodeKey(k)
	}
	return out
}

// Document is a signed topology as authorities serve it at [PathDocument].
type Document struct {
	// Topology is the canonical encoding of the topology, as signed.
	Topology json.RawMessage `json:"topology"`
	// Signatures are the authorities' signatures over Topology, sorted by
	// authority key.
	Signatures []DocumentSignature `json:"signatures"`
}

// DocumentSignature is one authority's signature of a [Document].
type DocumentSignature struct {
	// Authority is the base58 ed25519 key of the authority.
	Authority string `json:"authority"`
	// Signature is the standard base64 of the ed25519 signature.
	Signature string `json:"signature"`
}

// EncodeTopology returns the canonical encoding of t: compact JSON, fields
// in the order of the Go types, mixnodes sorted by layer then identity,
// gateways by identity, empty lists as []. Two authorities with the same
// view of the network produce the same bytes.
func EncodeTopology(t *Topology) ([]byte, error) {
	c := *t
	c.Mixnodes = slices.Clone(t.Mixnodes)
	c.Gateways = slices.Clone(t.Gateways)
	if c.Mixnodes == nil {
		c.Mixnodes = []Mixnode{}
	}
	if c.Gateways == nil {
		c.Gateways = []Gateway{}
	}
	sortTopology(&c)
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("directory: encoding the topology: %w", err)
	}
	return b, nil
}

// sortTopology puts t's lists in canonical order.
func sortTopology(t *Topology) {
	slices.SortFunc(t.Mixnodes, func(a, b Mixnode) int {
		return cmp.Or(cmp.Compare(a.Layer, b.Layer), cmp.Compare(a.Identity, b.Identity))
	})
	slices.SortFunc(t.Gateways, func(a, b Gateway) int { return cmp.Compare(a.Identity, b.Identity) })
}

// documentMessage is what an authority signs for canonical topology bytes.
func documentMessage(topology []byte) []byte {
	msg := make([]byte, 0, len(DocumentContext)+len(topology))
	msg = append(msg, DocumentContext...)
	return append(msg, topology...)
}

// SignTopology returns key's signature of the canonical topology bytes.
func SignTopology(key ed25519.PrivateKey, topology []byte) DocumentSignature {
	return DocumentSignature{
		Authority: address.EncodeKey(key.Public().(ed25519.PublicKey)),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, documentMessage(topology))),
	}
}

// verifySignature reports whether s is a valid signature by key over the
// topology bytes.
func verifySignature(key ed25519.PublicKey, topology []byte, s DocumentSignature) bool {
	if len(s.Signature) != base64.StdEncoding.EncodedLen(ed25519.SignatureSize) {
		return false
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(s.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(key, documentMessage(topology), sig)
}

// ParseDocument decodes a document strictly: no unknown field, no trailing
// data, at most MaxAuthorities signatures. It does not check the
// signatures; [Document.Verify] does.
func ParseDocument(raw []byte) (*Document, error) {
	if len(raw) > MaxTopologySize {
		return nil, refused(RefusedMalformed, fmt.Errorf("directory: document is larger than %d bytes", MaxTopologySize))
	}
	var d Document
	if err := decodeStrict(raw, &d); err != nil {
		return nil, refused(RefusedMalformed, fmt.Errorf("directory: document: %s", reason(err)))
	}
	if len(d.Topology) == 0 || d.Topology[0] != '{' {
		return nil, refused(RefusedMalformed, errors.New("directory: document has no topology object"))
	}
	if len(d.Signatures) > MaxAuthorities {
		return nil, refused(RefusedMalformed, fmt.Errorf("directory: document carries %d signatures, at most %d allowed", len(d.Signatures), MaxAuthorities))
	}
	return &d, nil
}

// decodeStrict decodes one JSON value from raw into v, refusing unknown
// fields and trailing data.
func decodeStrict(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("directory: trailing data after the value")
	}
	return nil
}

// Verify checks d against trust and returns its topology: the topology
// must be in its canonical encoding and valid, and at least trust.K()
// distinct authorities of trust must have signed its exact bytes. Every
// failure is a [*RefusedError].
func (d *Document) Verify(trust Trust) (*Topology, error) {
	var t Topology
	if err := decodeStrict(d.Topology, &t); err != nil {
		return nil, refused(RefusedMalformed, fmt.Errorf("directory: topology: %s", reason(err)))
	}
	canonical, err := EncodeTopology(&t)
	if err != nil {
		return nil, refused(RefusedMalformed, err)
	}
	if !bytes.Equal(canonical, d.Topology) {
		return nil, refused(RefusedNotCanonical, errors.New("directory: the topology is not in its canonical encoding"))
	}
	if err := t.Validate(); err != nil {
		return nil, refused(RefusedInvalid, err)
	}
	if n, k := d.validSignatures(trust), trust.K(); n < k {
		return nil, refused(RefusedUnderThreshold,
			fmt.Errorf("directory: %d valid signatures by configured authorities, %d needed", n, k))
	}
	return &t, nil
}

// validSignatures counts the distinct authorities of trust with a valid
// signature in d.
func (d *Document) validSignatures(trust Trust) int {
	counted := make(map[string]bool, len(trust.Authorities))
	for _, s := range d.Signatures {
		key, ok := trust.key(s.Authority)
		if !ok || counted[s.Authority] || !verifySignature(key, d.Topology, s) {
			continue
		}
		counted[s.Authority] = true
	}
	return len(counted)
}

// key returns the configured authority key whose base58 text is s.
func (t Trust) key(s string) (ed25519.PublicKey, bool) {
	for _, k := range t.Authorities {
		if address.EncodeKey(k) == s {
			return k, true
		}
	}
	return nil, false
}

// checkFresh refuses a topology older than the epoch held (held is 0 with
// have false when nothing is held yet) or more than one epoch behind now.
func checkFresh(t *Topology, held uint64, have bool, now time.Time) error {
	if have && t.Epoch.Number < held {
		return refused(RefusedOldEpoch, fmt.Errorf("directory: document of epoch %d, epoch %d is held", t.Epoch.Number, held))
	}
	if cur := t.Schedule().Epoch(now); t.Epoch.Number+1 < cur {
		return refused(RefusedStale, fmt.Errorf("directory: document of epoch %d, the clock says epoch %d", t.Epoch.Number, cur))
	}
	return nil
}
