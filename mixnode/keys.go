package mixnode

import (
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"

	"github.com/peapod-mixnet/peapod/internal/keyfile"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// Key files in Config.DataDir, each one PEM block (see internal/keyfile).
const (
	// IdentityFile holds the 32-byte seed of the node's ed25519 identity,
	// which signs its directory registrations.
	IdentityFile = "identity.pem"
	// IdentityPEMType is the PEM type of IdentityFile.
	IdentityPEMType = "PEAPOD ED25519 IDENTITY SEED"
	// SphinxKeyFile holds the node's 32-byte X25519 Sphinx private key.
	SphinxKeyFile = "sphinx.pem"
	// SphinxKeyPEMType is the PEM type of SphinxKeyFile.
	SphinxKeyPEMType = "PEAPOD X25519 SPHINX KEY"
)

// ReplayFilterFile, in Config.DataDir, holds the node's replay filter, saved
// every Config.ReplaySaveInterval and when the node closes, so that a
// restarted node still refuses the packets it processed before (format:
// internal/replaystore). Deleting it lets every packet processed under the
// current Sphinx key be replayed once.
const ReplayFilterFile = "replay.bin"

// loadKeys loads the node's keys from dir, creating them on first start.
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
