package node

import (
	"crypto/rand"
	"fmt"
	"path/filepath"

	"github.com/peapod-mixnet/peapod/internal/keyfile"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// The Sphinx key and its replay filter, in a node's data folder.
const (
	// SphinxKeyFile holds the node's 32-byte X25519 Sphinx private key.
	SphinxKeyFile = "sphinx.pem"
	// SphinxKeyPEMType is the PEM type of SphinxKeyFile.
	SphinxKeyPEMType = "PEAPOD X25519 SPHINX KEY"
	// ReplayFilterFile holds the replay filter of the Sphinx key (format:
	// internal/replaystore).
	ReplayFilterFile = "replay.bin"
)

// LoadSphinxKey returns the node's Sphinx key from dir, making it on first
// start.
func LoadSphinxKey(dir string) (*sphinx.PrivateKey, error) {
	raw, _, err := keyfile.LoadOrCreate(filepath.Join(dir, SphinxKeyFile), SphinxKeyPEMType, sphinx.KeySize, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("node: Sphinx key: %w", err)
	}
	key, err := sphinx.NewPrivateKey(raw)
	clear(raw)
	if err != nil {
		return nil, fmt.Errorf("node: Sphinx key: %w", err)
	}
	return key, nil
}
