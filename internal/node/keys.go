package node

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"path/filepath"

	"github.com/peapod-mixnet/peapod/internal/keyfile"
)

// Key files in a node's data folder, each one PEM block (package
// internal/keyfile: permissions 0600 in a 0700 folder, written atomically).
const (
	// IdentityFile holds the 32-byte seed of the node's ed25519 identity.
	IdentityFile = "identity.pem"
	// IdentityPEMType is the PEM type of IdentityFile.
	IdentityPEMType = "PEAPOD ED25519 IDENTITY SEED"
	// NoiseKeyFile holds the node's 32-byte X25519 Noise static private key.
	NoiseKeyFile = "noise.pem"
	// NoiseKeyPEMType is the PEM type of NoiseKeyFile.
	NoiseKeyPEMType = "PEAPOD X25519 NOISE STATIC KEY"
)

// NoiseKeySize is the size of a Noise static key, private or public.
const NoiseKeySize = 32

// Keys are a node's long-term keys.
type Keys struct {
	// Identity is the node's ed25519 identity: its name in the directory,
	// and the key that signs its registrations.
	Identity ed25519.PrivateKey
	// Noise is the node's X25519 Noise static key.
	Noise *NoiseKey
}

// Wipe clears the private keys from memory. The Keys are unusable after.
func (k *Keys) Wipe() {
	clear(k.Identity)
	if k.Noise != nil {
		k.Noise.Wipe()
	}
}

// IdentityPublic is the node's public identity key.
func (k *Keys) IdentityPublic() ed25519.PublicKey {
	return k.Identity.Public().(ed25519.PublicKey)
}

// NoiseKey is an X25519 key pair for the Noise protocol (Noise_*_25519):
// the private half is 32 random bytes, used as X25519 takes them (clamped
// inside the function), and the public half is X25519(private, 9), which is
// what github.com/flynn/noise's DH25519 computes. A node's NoiseKey is
// published in the directory as noise_key.
type NoiseKey struct {
	private [NoiseKeySize]byte
	public  [NoiseKeySize]byte
}

// NewNoiseKey returns the key pair of a 32-byte private key.
func NewNoiseKey(private []byte) (*NoiseKey, error) {
	if len(private) != NoiseKeySize {
		return nil, fmt.Errorf("node: Noise private key is %d bytes, want %d", len(private), NoiseKeySize)
	}
	priv, err := ecdh.X25519().NewPrivateKey(private)
	if err != nil {
		return nil, fmt.Errorf("node: Noise private key: %w", err)
	}
	k := &NoiseKey{}
	copy(k.private[:], private)
	copy(k.public[:], priv.PublicKey().Bytes())
	return k, nil
}

// GenerateNoiseKey makes a fresh key pair from rand.
func GenerateNoiseKey(rand io.Reader) (*NoiseKey, error) {
	var raw [NoiseKeySize]byte
	defer clear(raw[:])
	if _, err := io.ReadFull(rand, raw[:]); err != nil {
		return nil, fmt.Errorf("node: reading randomness: %w", err)
	}
	return NewNoiseKey(raw[:])
}

// Public is the public key, the one peers authenticate the node by.
func (k *NoiseKey) Public() [NoiseKeySize]byte { return k.public }

// Private returns a copy of the private key, in the form
// github.com/flynn/noise's DHKey.Private takes. The caller owns the copy and
// should clear it when done with it.
func (k *NoiseKey) Private() []byte { return append([]byte(nil), k.private[:]...) }

// Wipe clears the private key. The key is unusable after.
func (k *NoiseKey) Wipe() { clear(k.private[:]) }

// LoadKeys returns the node's long-term keys from dir, making each one that
// is missing (a first start, or a data folder from before the key existed).
// A key file that others can read, or that does not hold what it should, is
// an error naming the file; its content never appears in an error.
func LoadKeys(dir string) (*Keys, error) {
	seed, _, err := keyfile.LoadOrCreate(filepath.Join(dir, IdentityFile), IdentityPEMType, ed25519.SeedSize, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("node: identity key: %w", err)
	}
	identity := ed25519.NewKeyFromSeed(seed)
	clear(seed)
	raw, _, err := keyfile.LoadOrCreate(filepath.Join(dir, NoiseKeyFile), NoiseKeyPEMType, NoiseKeySize, rand.Reader)
	if err != nil {
		clear(identity)
		return nil, fmt.Errorf("node: Noise key: %w", err)
	}
	noise, err := NewNoiseKey(raw)
	clear(raw)
	if err != nil {
		clear(identity)
		return nil, err
	}
	return &Keys{Identity: identity, Noise: noise}, nil
}

// AuthorityKeyFile is the directory authority's signing key in its data
// folder, and AuthorityPEMType its PEM type (an ed25519 seed).
const (
	AuthorityKeyFile = "authority.pem"
	AuthorityPEMType = "PEAPOD AUTHORITY KEY"
)

// LoadAuthorityKey returns a directory authority's ed25519 signing key from
// dir, making it on first start.
func LoadAuthorityKey(dir string) (ed25519.PrivateKey, error) {
	seed, _, err := keyfile.LoadOrCreate(filepath.Join(dir, AuthorityKeyFile), AuthorityPEMType, ed25519.SeedSize, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("node: authority key: %w", err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	clear(seed)
	return key, nil
}
