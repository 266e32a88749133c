// Package descriptor is the signed description a peapod provider publishes
// at /.well-known/peapod.json: its mixnet address, its services, the network
// it is on, and the public key that signed it, with an issue and an expiry
// time.
//
// A provider builds one with [Sign]; a requester, or a mirror that caches
// it, checks it with [Verify] before trusting the address in it. The
// document is JSON,
//
//	{"v":1,"payload":"<base64 of the payload JSON>","signature":"<base64 of 64 bytes>"}
//
// where the signature is ed25519 over [SignatureContext] followed by the
// payload bytes exactly as they decode from base64: nothing is
// canonicalised, so any change to the payload, however small, breaks the
// signature. The payload is
//
//	{"v":1,"address":"...","services":[{"name":"echo","description":"..."}],
//	 "network":{"type":"peapod","directory":"http://...,http://...","authorities":["<base58 key>",...],"threshold":2},
//	 "limits":{"max_request_size":262144,"max_reply_size":1048576,"request_timeout_ms":10000},
//	 "key":"<base58 ed25519 public key>",
//	 "issued_at":"2025-01-02T03:04:05Z","expires_at":"2025-01-03T03:04:05Z"}
//
// "limits" is optional, for providers that predate it; a verifier that
// finds it checks it like every other member (see [Limits]).
//
// What a valid signature proves depends on the key. When the key is the
// identity key of the address in the payload (a provider on a peapod network
// signs with its own mixnet identity), the descriptor is self-certifying:
// only the holder of that address could have made it, so a requester that
// knows the address, or the key, learns nothing false from a mirror. When
// the key is another key (a provider behind a Nym client, which does not
// give out its identity key), the signature proves only that the holder of
// that key made it: a requester must pin the key (VerifyOptions.Key) to
// learn anything. Without a pin, a descriptor fetched from an endpoint the
// requester does not trust is only as trustworthy as that endpoint; see
// docs/provider.md.
package descriptor

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/handlers"
)

// Version is the value of "v" in a document and in its payload.
const Version = 1

// SignatureContext is prepended to the payload bytes to form the message
// that is signed. It keeps a descriptor signature from being valid for any
// other message the same key signs (a peapod client's identity key also
// signs its gateway handshakes, with contexts of their own).
const SignatureContext = "peapod-provider-descriptor-v1\n"

// WellKnownPath is where a provider's HTTP endpoint serves its descriptor.
const WellKnownPath = "/.well-known/peapod.json"

// Limits and defaults.
const (
	// MaxSize is the largest document, in bytes, that Verify reads.
	MaxSize = 256 << 10
	// MaxLifetime is the longest validity a descriptor may claim.
	MaxLifetime = 31 * 24 * time.Hour
	// DefaultMaxSkew is how far a verifier's clock may be behind the
	// issuer's, or ahead of the expiry, and still accept a descriptor.
	DefaultMaxSkew = 5 * time.Minute
	// TimeLayout is the only accepted time form: RFC 3339 in UTC, whole
	// seconds.
	TimeLayout = "2006-01-02T15:04:05Z"
)

// Network types, the value of Network.Type.
const (
	// NetworkPeapod is a peapod network, joined through its directory.
	NetworkPeapod = "peapod"
	// NetworkNym is Nym's mixnet, joined with a Nym client.
	NetworkNym = "nym"
)

// Errors of Verify that a caller may want to tell apart.
var (
	// ErrSignature: the signature does not verify. Every signature failure
	// gives this one error.
	ErrSignature = errors.New("descriptor: invalid signature")
	// ErrKeyMismatch: the descriptor is signed by another key than the one
	// pinned in VerifyOptions.Key.
	ErrKeyMismatch = errors.New("descriptor: signed by another key than the pinned one")
	// ErrAddressMismatch: the descriptor names another address than the one
	// pinned in VerifyOptions.Address.
	ErrAddressMismatch = errors.New("descriptor: names another address than the pinned one")
	// ErrExpired: the descriptor's expiry time has passed.
	ErrExpired = errors.New("descriptor: expired")
	// ErrNotYetValid: the descriptor's issue time is in the future.
	ErrNotYetValid = errors.New("descriptor: issued in the future")
)

// Service is one service a provider offers.
type Service struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// Network says how to reach the mixnet the provider is on.
type Network struct {
	// Type is NetworkPeapod or NetworkNym.
	Type string `json:"type"`
	// Directory is the base URL of the peapod network's directory, or the
	// URLs of its directory authorities separated by commas; empty for Nym.
	Directory string `json:"directory,omitempty"`
	// Authorities are the base58 ed25519 keys of the peapod network's
	// directory authorities, and Threshold the signatures of distinct
	// authorities a topology document needs (0: a majority): the network's
	// trust roots, which a requester that trusts the descriptor uses to
	// verify the topology (see directory.Trust). Empty for a network whose
	// topology is not signed, and for Nym.
	Authorities []string `json:"authorities,omitempty"`
	Threshold   int      `json:"threshold,omitempty"`
}

// Trust returns the network's trust roots, nil when it names no
// authorities.
func (n Network) Trust() (*directory.Trust, error) {
	if len(n.Authorities) == 0 {
		if n.Threshold != 0 {
			return nil, errors.New("descriptor: a network threshold without authorities")
		}
		return nil, nil
	}
	t, err := directory.ParseTrust(n.Authorities, n.Threshold)
	if err != nil {
		return nil, fmt.Errorf("descriptor: network authorities: %s", strings.TrimPrefix(err.Error(), "directory: "))
	}
	return &t, nil
}

// Limits are the limits a provider enforces, published so that a requester
// can refuse at once a request the provider would refuse, and knows how
// long a request may run. In JSON (member "limits" of the payload and of
// /address), every member is a whole number:
//
//	{"max_request_size":262144,"max_reply_size":1048576,"request_timeout_ms":10000}
type Limits struct {
	// MaxRequestSize is the longest request message the provider reads:
	// the whole JSON envelope (package envelope), not just its data. A
	// longer one is answered with the code "too_large".
	MaxRequestSize int
	// MaxReplySize is the longest reply data (before base64) a service may
	// return; a longer reply becomes a "too_large" error.
	MaxReplySize int
	// RequestTimeout is how long the provider lets a request run before it
	// answers "timeout" (JSON: request_timeout_ms, whole milliseconds).
	RequestTimeout time.Duration
}

// maxLimit is the largest number a limit may have: 2^53-1, the largest
// integer every JSON reader (JavaScript's included) holds exactly.
const maxLimit = 1<<53 - 1

type wireLimits struct {
	MaxRequestSize   int64 `json:"max_request_size"`
	MaxReplySize     int64 `json:"max_reply_size"`
	RequestTimeoutMS int64 `json:"request_timeout_ms"`
}

func (l Limits) wire() wireLimits {
	ms := int64(l.RequestTimeout / time.Millisecond)
	if l.RequestTimeout%time.Millisecond > 0 {
		ms++ // rounded up
	}
	return wireLimits{int64(l.MaxRequestSize), int64(l.MaxReplySize), ms}
}

// MarshalJSON writes the JSON form shown on Limits.
func (l Limits) MarshalJSON() ([]byte, error) { return json.Marshal(l.wire()) }

// check reports a limit Sign would publish that Verify would refuse.
func (l *Limits) check() error {
	w := l.wire()
	for _, v := range []int64{w.MaxRequestSize, w.MaxReplySize, w.RequestTimeoutMS} {
		if v < 1 || v > maxLimit {
			return fmt.Errorf("descriptor: limits must be 1 to %d (bytes, milliseconds)", int64(maxLimit))
		}
	}
	return nil
}

// Info is what a provider publishes about itself: the content of its
// /address endpoint, and of its descriptor besides the key and times.
type Info struct {
	Address  address.Address `json:"address"`
	Services []Service       `json:"services"`
	Network  Network         `json:"network"`
	// Limits are the provider's limits; nil when it does not publish them
	// (providers older than the member).
	Limits *Limits `json:"limits,omitempty"`
}

// Descriptor is a verified descriptor.
type Descriptor struct {
	Info
	// Key is the public key that signed the descriptor.
	Key ed25519.PublicKey
	// IssuedAt and ExpiresAt bound the descriptor's validity.
	IssuedAt, ExpiresAt time.Time
	// SelfCertifying reports that Key is the identity key of Address, so
	// that the descriptor was made by the holder of the address.
	SelfCertifying bool
}

// Service returns the service of that name, if the provider offers it.
func (d *Descriptor) Service(name string) (Service, bool) {
	for _, s := range d.Services {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

type wireDocument struct {
	V         int    `json:"v"`
	Payload   string `json:"payload"`
	Signature string `json:"signature"`
}

type wirePayload struct {
	V         int             `json:"v"`
	Address   address.Address `json:"address"`
	Services  []Service       `json:"services"`
	Network   Network         `json:"network"`
	Limits    *wireLimits     `json:"limits,omitempty"`
	Key       string          `json:"key"`
	IssuedAt  string          `json:"issued_at"`
	ExpiresAt string          `json:"expires_at"`
}

// Sign returns the descriptor document for info, signed by signer, valid
// from issued to expires (both rounded down to the second). signer must hold
// an ed25519 key (an ed25519.PrivateKey is a crypto.Signer). Sign checks
// info as Verify would.
func Sign(signer crypto.Signer, info Info, issued, expires time.Time) ([]byte, error) {
	if k, ok := signer.(ed25519.PrivateKey); signer == nil || ok && len(k) != ed25519.PrivateKeySize {
		return nil, errors.New("descriptor: invalid private key")
	}
	public, ok := signer.Public().(ed25519.PublicKey)
	if !ok || len(public) != ed25519.PublicKeySize {
		return nil, errors.New("descriptor: the signer does not hold an ed25519 key")
	}
	issued, expires = issued.UTC().Truncate(time.Second), expires.UTC().Truncate(time.Second)
	if err := checkLifetime(issued, expires); err != nil {
		return nil, err
	}
	if err := checkInfo(&info); err != nil {
		return nil, err
	}
	if info.Services == nil {
		info.Services = []Service{}
	}
	w := wirePayload{
		V: Version, Address: info.Address, Services: info.Services, Network: info.Network,
		Key:      address.EncodeKey(public),
		IssuedAt: issued.Format(TimeLayout), ExpiresAt: expires.Format(TimeLayout),
	}
	if info.Limits != nil {
		l := info.Limits.wire()
		w.Limits = &l
	}
	payload, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("descriptor: %w", err)
	}
	msg := signedMessage(payload)
	sig, err := signer.Sign(nil, msg, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("descriptor: signing: %w", err)
	}
	if !ed25519.Verify(public, msg, sig) {
		return nil, errors.New("descriptor: the signer made an invalid signature")
	}
	doc, err := json.Marshal(wireDocument{
		V:         Version,
		Payload:   base64.StdEncoding.EncodeToString(payload),
		Signature: base64.StdEncoding.EncodeToString(sig),
	})
	if err != nil {
		return nil, fmt.Errorf("descriptor: %w", err)
	}
	if len(doc) > MaxSize {
		return nil, fmt.Errorf("descriptor: %d bytes, more than %d", len(doc), MaxSize)
	}
	return doc, nil
}

// VerifyOptions says what Verify checks beyond the signature and the times.
type VerifyOptions struct {
	// Now is the time to check validity against; zero means time.Now().
	Now time.Time
	// MaxSkew is how much clock difference to allow; zero means
	// DefaultMaxSkew.
	MaxSkew time.Duration
	// Key, if not nil, is the provider's pinned public key: a descriptor
	// signed by another key fails with ErrKeyMismatch.
	Key ed25519.PublicKey
	// Address, if not nil, is the provider's pinned address: a descriptor
	// for another address fails with ErrAddressMismatch.
	Address *address.Address
}

// Verify checks a descriptor document and returns its content. It fails
// unless the document is well formed, the signature verifies with the key
// the payload names, the pinned key and address (if any) match, and the
// descriptor is valid at opts.Now: issued no later than Now+MaxSkew and
// expiring after Now-MaxSkew, with a lifetime of at most MaxLifetime.
//
// A descriptor that passes without a pin proves only what the package doc
// says: check Descriptor.SelfCertifying, or pin the key.
func Verify(doc []byte, opts VerifyOptions) (*Descriptor, error) {
	if len(doc) > MaxSize {
		return nil, fmt.Errorf("descriptor: %d bytes, more than %d", len(doc), MaxSize)
	}
	m, err := parseObject(doc)
	if err != nil {
		return nil, fmt.Errorf("descriptor: document: %w", err)
	}
	if err := checkVersion(m); err != nil {
		return nil, fmt.Errorf("descriptor: document: %w", err)
	}
	payloadText, err := stringMember(m, "payload")
	if err != nil {
		return nil, fmt.Errorf("descriptor: document: %w", err)
	}
	payload, err := decodeBase64(payloadText)
	if err != nil {
		return nil, errors.New(`descriptor: document: "payload" is not canonical padded base64`)
	}
	sigText, err := stringMember(m, "signature")
	if err != nil {
		return nil, ErrSignature
	}
	sig, err := decodeBase64(sigText)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, ErrSignature
	}
	d, err := parsePayload(payload)
	if err != nil {
		return nil, err
	}
	if opts.Key != nil && (len(opts.Key) != ed25519.PublicKeySize || subtle.ConstantTimeCompare(opts.Key, d.Key) != 1) {
		return nil, ErrKeyMismatch
	}
	if !ed25519.Verify(d.Key, signedMessage(payload), sig) {
		return nil, ErrSignature
	}
	if opts.Address != nil && *opts.Address != d.Address {
		return nil, ErrAddressMismatch
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	skew := opts.MaxSkew
	if skew <= 0 {
		skew = DefaultMaxSkew
	}
	switch {
	case d.IssuedAt.After(now.Add(skew)):
		return nil, fmt.Errorf("%w: issued %s", ErrNotYetValid, d.IssuedAt.Format(TimeLayout))
	case !d.ExpiresAt.After(now.Add(-skew)):
		return nil, fmt.Errorf("%w: at %s", ErrExpired, d.ExpiresAt.Format(TimeLayout))
	}
	d.SelfCertifying = bytes.Equal(d.Key, d.Address.Identity[:])
	return d, nil
}

// parsePayload reads and checks a payload; the signature is not checked.
func parsePayload(payload []byte) (*Descriptor, error) {
	d, err := readPayload(payload)
	if err != nil {
		return nil, fmt.Errorf("descriptor: payload: %w", err)
	}
	if err := checkLifetime(d.IssuedAt, d.ExpiresAt); err != nil {
		return nil, err
	}
	if err := checkInfo(&d.Info); err != nil {
		return nil, err
	}
	return d, nil
}

func readPayload(payload []byte) (*Descriptor, error) {
	m, err := parseObject(payload)
	if err != nil {
		return nil, err
	}
	if err := checkVersion(m); err != nil {
		return nil, err
	}
	d := new(Descriptor)
	text, err := stringMember(m, "address")
	if err != nil {
		return nil, err
	}
	if d.Address, err = address.Parse(text); err != nil {
		return nil, fmt.Errorf(`"address": %w`, err)
	}
	if text, err = stringMember(m, "key"); err != nil {
		return nil, err
	}
	if d.Key, err = address.DecodeKey(text, ed25519.PublicKeySize); err != nil {
		return nil, fmt.Errorf(`"key": %w`, err)
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"issued_at", &d.IssuedAt}, {"expires_at", &d.ExpiresAt}} {
		if text, err = stringMember(m, t.name); err != nil {
			return nil, err
		}
		if *t.dst, err = parseTime(text); err != nil {
			return nil, fmt.Errorf("%q: %w", t.name, err)
		}
	}
	network, err := objectMember(m, "network")
	if err != nil {
		return nil, err
	}
	if d.Network.Type, err = stringMember(network, "type"); err != nil {
		return nil, fmt.Errorf(`"network": %w`, err)
	}
	if _, ok := network["directory"]; ok {
		if d.Network.Directory, err = stringMember(network, "directory"); err != nil {
			return nil, fmt.Errorf(`"network": %w`, err)
		}
	}
	if raw, ok := network["authorities"]; ok {
		if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &d.Network.Authorities) != nil || len(d.Network.Authorities) == 0 {
			return nil, errors.New(`"network": "authorities" is not a non-empty array of strings`)
		}
	}
	if raw, ok := network["threshold"]; ok {
		n, err := strconv.ParseInt(string(raw), 10, 32)
		if err != nil || n < 1 || raw[0] == '0' || raw[0] == '+' {
			return nil, errors.New(`"network": "threshold" is not a whole number above 0`)
		}
		d.Network.Threshold = int(n)
	}
	if _, ok := m["limits"]; ok {
		limits, err := objectMember(m, "limits")
		if err != nil {
			return nil, err
		}
		if d.Limits, err = readLimits(limits); err != nil {
			return nil, fmt.Errorf(`"limits": %w`, err)
		}
	}
	raw, ok := m["services"]
	if !ok {
		return nil, errors.New(`missing member "services"`)
	}
	var list []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
		return nil, errors.New(`"services" is not an array`)
	}
	d.Services = make([]Service, 0, len(list))
	for _, item := range list {
		sm, err := parseObject(item)
		if err != nil {
			return nil, fmt.Errorf(`"services": %w`, err)
		}
		var s Service
		if s.Name, err = stringMember(sm, "name"); err != nil {
			return nil, fmt.Errorf(`"services": %w`, err)
		}
		if s.Description, err = stringMember(sm, "description"); err != nil {
			return nil, fmt.Errorf(`"services": %w`, err)
		}
		d.Services = append(d.Services, s)
	}
	return d, nil
}

// readLimits reads the members of "limits": each must be a whole number
// from 1 to 2^53-1, written as plain digits.
func readLimits(m map[string]json.RawMessage) (*Limits, error) {
	var w [3]int64
	for i, name := range []string{"max_request_size", "max_reply_size", "request_timeout_ms"} {
		raw, ok := m[name]
		if !ok {
			return nil, fmt.Errorf("missing member %q", name)
		}
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n < 1 || n > maxLimit || raw[0] == '0' || raw[0] == '+' {
			return nil, fmt.Errorf("%q is not a whole number from 1 to %d", name, int64(maxLimit))
		}
		w[i] = n
	}
	timeout := time.Duration(math.MaxInt64) // ~292 years: what the largest numbers mean
	if w[2] <= math.MaxInt64/int64(time.Millisecond) {
		timeout = time.Duration(w[2]) * time.Millisecond
	}
	return &Limits{MaxRequestSize: int(w[0]), MaxReplySize: int(w[1]), RequestTimeout: timeout}, nil
}

// checkInfo checks what Sign and Verify both require of an Info.
func checkInfo(info *Info) error {
	if info.Limits != nil {
		if err := info.Limits.check(); err != nil {
			return err
		}
	}
	if info.Address.IsZero() {
		return errors.New("descriptor: missing address")
	}
	if err := info.Address.Validate(); err != nil {
		return fmt.Errorf("descriptor: %w", err)
	}
	seen := make(map[string]bool, len(info.Services))
	for _, s := range info.Services {
		if !handlers.ValidServiceName(s.Name) {
			return fmt.Errorf("descriptor: invalid service name %.80q", s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("descriptor: service %q listed twice", s.Name)
		}
		if !utf8.ValidString(s.Description) {
			return fmt.Errorf("descriptor: description of %q is not UTF-8", s.Name)
		}
		seen[s.Name] = true
	}
	switch info.Network.Type {
	case NetworkPeapod:
		if info.Network.Directory == "" {
			return errors.New("descriptor: a peapod network needs a directory URL")
		}
	case NetworkNym:
		if info.Network.Directory != "" {
			return errors.New("descriptor: a Nym network has no directory URL")
		}
	default:
		return fmt.Errorf("descriptor: unknown network type %.20q", info.Network.Type)
	}
	if !utf8.ValidString(info.Network.Directory) {
		return errors.New("descriptor: directory URL is not UTF-8")
	}
	if info.Network.Type != NetworkPeapod && (len(info.Network.Authorities) > 0 || info.Network.Threshold != 0) {
		return errors.New("descriptor: only a peapod network has directory authorities")
	}
	if _, err := info.Network.Trust(); err != nil {
		return err
	}
	return nil
}

func checkLifetime(issued, expires time.Time) error {
	if !expires.After(issued) {
		return errors.New("descriptor: expires before it is issued")
	}
	if expires.Sub(issued) > MaxLifetime {
		return fmt.Errorf("descriptor: valid for more than %v", MaxLifetime)
	}
	return nil
}

func signedMessage(payload []byte) []byte {
	msg := make([]byte, 0, len(SignatureContext)+len(payload))
	return append(append(msg, SignatureContext...), payload...)
}

// parseTime accepts only TimeLayout, and only its canonical form.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(TimeLayout, s)
	if err != nil || t.Format(TimeLayout) != s {
		return time.Time{}, fmt.Errorf("not a UTC time of the form %s", TimeLayout)
	}
	return t, nil
}

// parseObject reads one JSON object into its members, keyed exactly as
// they are spelt (Go's decoder would match struct fields regardless of
// case, which two verifiers could read differently). It refuses invalid
// UTF-8, members that appear twice at any depth, and data after the object.
// Unknown members are kept and ignored by the callers, so that later
// versions may add members.
func parseObject(b []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("not valid UTF-8")
	}
	if err := checkDuplicates(b); err != nil {
		return nil, err
	}
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 || b[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, errors.New("malformed JSON")
	}
	return m, nil
}

func checkVersion(m map[string]json.RawMessage) error {
	v, ok := m["v"]
	if !ok {
		return errors.New(`missing member "v"`)
	}
	if string(v) != "1" {
		return fmt.Errorf("unsupported version %.20s", v)
	}
	return nil
}

func stringMember(m map[string]json.RawMessage, name string) (string, error) {
	raw, ok := m[name]
	if !ok {
		return "", fmt.Errorf("missing member %q", name)
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", fmt.Errorf("%q is not a string", name)
	}
	return s, nil
}

func objectMember(m map[string]json.RawMessage, name string) (map[string]json.RawMessage, error) {
	raw, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("missing member %q", name)
	}
	obj, err := parseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", name, err)
	}
	return obj, nil
}

// checkDuplicates checks that b is one JSON value with nothing after it in
// which no object has a member twice. Verifiers in other languages may keep
// the first of two equal members where Go keeps the last; refusing them
// keeps every verifier's reading of a signed payload the same.
func checkDuplicates(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		keys    map[string]bool // nil for an array
		wantKey bool
	}
	var stack []*frame
	for values := 0; ; {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return errors.New("malformed JSON")
		}
		if len(stack) == 0 {
			if values++; values > 1 {
				return errors.New("data after the JSON value")
			}
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.keys != nil && top.wantKey {
			if tok == json.Delim('}') {
				stack = stack[:len(stack)-1]
				continue
			}
			key, ok := tok.(string)
			if !ok {
				return errors.New("malformed JSON")
			}
			if top.keys[key] {
				return fmt.Errorf("member %.40q appears twice", key)
			}
			top.keys[key] = true
			top.wantKey = false
			continue
		}
		if top != nil && top.keys != nil {
			top.wantKey = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: make(map[string]bool), wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

func decodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if base64.StdEncoding.EncodedLen(len(b)) != len(s) {
		return nil, errors.New("line breaks in base64")
	}
	return b, nil
}
