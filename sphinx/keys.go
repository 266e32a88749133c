package sphinx

import (
	"errors"
	"fmt"
	"io"

	"github.com/peapod-mixnet/peapod/internal/x25519"
)

// PrivateKey is a node's X25519 Sphinx key. Its bytes are interchangeable
// with crypto/ecdh X25519 private keys.
type PrivateKey struct {
	raw     [KeySize]byte
	clamped [KeySize]byte
	public  PublicKey
}

// GenerateKey makes a new private key from rand.
func GenerateKey(rand io.Reader) (*PrivateKey, error) {
	var b [KeySize]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return nil, fmt.Errorf("sphinx: reading randomness: %w", err)
	}
	return NewPrivateKey(b[:])
}

// NewPrivateKey makes a private key from 32 bytes.
func NewPrivateKey(b []byte) (*PrivateKey, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("sphinx: private key is %d bytes, want %d", len(b), KeySize)
	}
	k := new(PrivateKey)
	copy(k.raw[:], b)
	k.clamped = k.raw
	x25519.Clamp(&k.clamped)
	x25519.ScalarBaseMult((*[KeySize]byte)(&k.public), x25519.ClampedScalar(&k.raw))
	return k, nil
}

// Bytes returns a copy of the 32 bytes the key was made from.
func (k *PrivateKey) Bytes() []byte { return append([]byte(nil), k.raw[:]...) }

// PublicKey returns the key's public half.
func (k *PrivateKey) PublicKey() PublicKey { return k.public }

// Wipe overwrites the private key in memory with zeros, for forward
// secrecy once the key's life has ended: packets made for it can no longer
// be peeled with it (Process then fails with ErrAuthentication). The public
// half stays readable. Wipe must not run concurrently with a Process that
// uses the key.
func (k *PrivateKey) Wipe() {
	clear(k.raw[:])
	clear(k.clamped[:])
}

// ParsePublicKey checks that b is a canonical X25519 public key.
func ParsePublicKey(b []byte) (PublicKey, error) {
	var p PublicKey
	if len(b) != KeySize {
		return p, fmt.Errorf("sphinx: public key is %d bytes, want %d", len(b), KeySize)
	}
	copy(p[:], b)
	if !x25519.IsCanonical((*[KeySize]byte)(&p)) {
		return p, errors.New("sphinx: public key is not a canonical X25519 encoding")
	}
	return p, nil
}

// The per-hop key schedule. The shared secret of a hop is expanded by
// HKDF-SHA256 into stream key 16 ‖ MAC key 16 ‖ payload key 192 ‖ blinding
// factor 32 ‖ replay tag 32, Nym's layout. As in Nym's newest packet version,
// the payload key actually used is expanded from a 16-byte seed (the first 16
// bytes of the payload key field) by a second HKDF, so that a SURB can carry
// 16 bytes a hop instead of 192.
const (
	streamKeySize      = 16
	macKeySize         = 16
	payloadFieldSize   = lionessKeySize
	blindingSize       = 32
	PayloadKeySeedSize = 16 // size of one hop's payload key seed in a SURB
	hopKeysSize        = streamKeySize + macKeySize + payloadFieldSize + blindingSize + ReplayTagSize

	hkStream   = 0
	hkMAC      = hkStream + streamKeySize
	hkPayload  = hkMAC + macKeySize
	hkBlinding = hkPayload + payloadFieldSize
	hkReplay   = hkBlinding + blindingSize
)

var (
	hopKeysSalt    = []byte("peapod-sphinx-v1 hop key salt")
	hopKeysInfo    = []byte("peapod-sphinx-v1 hop keys")
	payloadKeySalt = []byte("peapod-sphinx-v1 payload key salt")
	payloadKeyInfo = []byte("peapod-sphinx-v1 payload key")
)

// hopKeys is the expanded shared secret of one hop.
type hopKeys struct{ raw [hopKeysSize]byte }

func (k *hopKeys) streamKey() []byte { return k.raw[hkStream : hkStream+streamKeySize] }
func (k *hopKeys) macKey() []byte    { return k.raw[hkMAC : hkMAC+macKeySize] }
func (k *hopKeys) payloadSeed() *[PayloadKeySeedSize]byte {
	return (*[PayloadKeySeedSize]byte)(k.raw[hkPayload:])
}
func (k *hopKeys) blinding() *[blindingSize]byte { return (*[blindingSize]byte)(k.raw[hkBlinding:]) }
func (k *hopKeys) replayTag() *ReplayTag         { return (*ReplayTag)(k.raw[hkReplay:]) }

// deriveHopKeys expands a shared secret into s.keys.
func (s *scratch) deriveHopKeys(shared *[KeySize]byte) {
	s.hkdf(s.keys.raw[:], hopKeysSalt, shared[:], hopKeysInfo)
}

// derivePayloadKey expands a payload key seed into s.payloadKey.
func (s *scratch) derivePayloadKey(seed *[PayloadKeySeedSize]byte) {
	s.hkdf(s.payloadKey[:], payloadKeySalt, seed[:], payloadKeyInfo)
}
