package framework

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"path/filepath"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/internal/keyfile"
)

// Files in the Host's data folder.
const (
	providerKeyFile     = "provider.pem"
	requesterSecretFile = "requester.pem"
	clientDir           = "client"
	pluginsDataDir      = "plugins"

	pemProviderKey     = "PEAPOD PROVIDER IDENTITY SEED"
	pemRequesterSecret = "PEAPOD REQUESTER ID SECRET"
)

// Sizes of the requester id derivation.
const (
	requesterSecretSize = 32
	// requesterIDSize is how many bytes of the HMAC make a requester id:
	// 128 bits, far beyond any collision among one provider's requesters.
	requesterIDSize = 16
)

// requesterIDContext separates requester ids from any other use of the
// secret.
const requesterIDContext = "peapod-requester-id-v1"

// loadProviderKey returns the provider's own ed25519 identity, created on
// first start. It signs the descriptor when the transport cannot sign with
// the address's key.
func loadProviderKey(dataDir string) (ed25519.PrivateKey, error) {
	seed, _, err := keyfile.LoadOrCreate(filepath.Join(dataDir, providerKeyFile), pemProviderKey, ed25519.SeedSize, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("framework: provider key: %w", err)
	}
	defer clear(seed)
	return ed25519.NewKeyFromSeed(seed), nil
}

// requesterIDs derives the opaque requester ids handlers see.
type requesterIDs struct {
	secret []byte
}

func loadRequesterIDs(dataDir string) (*requesterIDs, error) {
	secret, _, err := keyfile.LoadOrCreate(filepath.Join(dataDir, requesterSecretFile), pemRequesterSecret, requesterSecretSize, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("framework: requester secret: %w", err)
	}
	return &requesterIDs{secret: secret}, nil
}

// id returns the requester id for a sender tag: the first 16 bytes of
// HMAC-SHA256(secret, context ‖ tag), in unpadded base64url (22
// characters). It is stable for one tag across restarts, reveals nothing of
// the tag without the secret, and differs between providers (each has its
// own secret, and a requester has a different tag towards each).
func (r *requesterIDs) id(tag address.SenderTag) string {
	m := hmac.New(sha256.New, r.secret)
	m.Write([]byte(requesterIDContext))
	m.Write(tag[:])
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(m.Sum(sum[:0])[:requesterIDSize])
}
