package gateway

import (
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"

	"github.com/peapod-mixnet/peapod/internal/keyfile"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// Key files in the data folder, and their PEM types (the same as a
// mixnode's).
const (
	IdentityFile     = "identity.pem"
	IdentityPEMType  = "PEAPOD ED25519 IDENTITY SEED"
	SphinxKeyFile    = "sphinx.pem"
	SphinxKeyPEMType = "PEAPOD X25519 SPHINX KEY"
)

// ReplayFilterFile, in the data folder, holds the gateway's Sphinx replay
// filter, saved every Config.ReplaySaveInterval and on Close (format:
// internal/replaystore).
const ReplayFilterFile = "replay.bin"

// loadKeys returns the gateway's identity and Sphinx keys from dir, making
// them on first start.
func loadKeys(dir string) (ed25519.PrivateKey, *sphinx.PrivateKey, error) {
	seed, _, err := keyfile.LoadOrCreate(filepath.Join(dir, IdentityFile), IdentityPEMType, ed25519.SeedSize, rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	identity := ed25519.NewKeyFromSeed(seed)
	clear(seed)
	raw, _, err := keyfile.LoadOrCreate(filepath.Join(dir, SphinxKeyFile), SphinxKeyPEMType, sphinx.KeySize, rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	key, err := sphinx.NewPrivateKey(raw)
	clear(raw)
	if err != nil {
		return nil, nil, err
	}
	return identity, key, nil
}
