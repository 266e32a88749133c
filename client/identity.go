package client

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/peapod-mixnet/peapod/address"

	"github.com/peapod-mixnet/peapod/internal/keyfile"
	"github.com/peapod-mixnet/peapod/internal/x25519"
)

// Files in the data folder, all 0600:
//
//	identity.pem   ed25519 identity seed (32 bytes)
//	encryption.pem X25519 encryption key (32 bytes)
//	ack.pem        AES-128 key that seals this client's acks (16 bytes)
//	gateway.pem    gateway identity (32) ‖ shared key K with it (32), once registered
//	state.db       SURBs, reply keys, sender tags, delivery order (bbolt)
const (
	identityFile   = "identity.pem"
	encryptionFile = "encryption.pem"
	ackFile        = "ack.pem"
	gatewayFile    = "gateway.pem"
	stateFile      = "state.db"

	pemIdentity   = "PEAPOD ED25519 IDENTITY SEED"
	pemEncryption = "PEAPOD X25519 ENCRYPTION KEY"
	pemAck        = "PEAPOD ACK KEY"
	pemGateway    = "PEAPOD GATEWAY BINDING"

	ackKeySize = 16
)

// keys are the client's long-term secrets.
type keys struct {
	identity ed25519.PrivateKey
	encPriv  [32]byte // clamped
	encPub   [32]byte
	ackKey   []byte
}

func loadKeys(dir string, rand io.Reader) (*keys, error) {
	seed, _, err := keyfile.LoadOrCreate(filepath.Join(dir, identityFile), pemIdentity, ed25519.SeedSize, rand)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	enc, _, err := keyfile.LoadOrCreate(filepath.Join(dir, encryptionFile), pemEncryption, 32, rand)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	ack, _, err := keyfile.LoadOrCreate(filepath.Join(dir, ackFile), pemAck, ackKeySize, rand)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	k := &keys{identity: ed25519.NewKeyFromSeed(seed), ackKey: ack}
	copy(k.encPriv[:], enc)
	x25519.ScalarBaseMult(&k.encPub, x25519.ClampedScalar(&k.encPriv))
	x25519.Clamp(&k.encPriv)
	clear(enc)
	clear(seed)
	return k, nil
}

func (k *keys) identityPublic() ed25519.PublicKey { return k.identity.Public().(ed25519.PublicKey) }

// gatewayBinding is the gateway a client is registered with and the key they
// share. Before the first registration it names the chosen gateway only.
type gatewayBinding struct {
	identity   ed25519.PublicKey
	key        [32]byte
	registered bool
}

func loadBinding(dir string) (*gatewayBinding, error) {
	b, err := keyfile.Load(filepath.Join(dir, gatewayFile), pemGateway, 64)
	if err != nil {
		return nil, err
	}
	g := &gatewayBinding{identity: ed25519.PublicKey(append([]byte(nil), b[:32]...)), registered: true}
	copy(g.key[:], b[32:])
	clear(b)
	return g, nil
}

func saveBinding(dir string, g *gatewayBinding) error {
	b := append(append(make([]byte, 0, 64), g.identity...), g.key[:]...)
	defer clear(b)
	if err := keyfile.Save(filepath.Join(dir, gatewayFile), pemGateway, b); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return nil
}

// ErrNotRegistered means a data folder holds no client, or one that has
// never registered with a gateway, so it has no address yet.
var ErrNotRegistered = errors.New("client: not registered with a gateway")

// ReadAddress returns the address of the client whose data folder is dir,
// from its key files alone: without the network, and while that client runs.
func ReadAddress(dir string) (address.Address, error) {
	var a address.Address
	if _, err := os.Stat(filepath.Join(dir, identityFile)); errors.Is(err, os.ErrNotExist) {
		return a, fmt.Errorf("%w: there is no client in %s", ErrNotRegistered, dir)
	}
	seed, err := keyfile.Load(filepath.Join(dir, identityFile), pemIdentity, ed25519.SeedSize)
	if err != nil {
		return a, fmt.Errorf("client: %w", err)
	}
	defer clear(seed)
	enc, err := keyfile.Load(filepath.Join(dir, encryptionFile), pemEncryption, 32)
	if err != nil {
		return a, fmt.Errorf("client: %w", err)
	}
	defer clear(enc)
	b, err := loadBinding(dir)
	if errors.Is(err, keyfile.ErrNotFound) {
		return a, fmt.Errorf("%w: the client in %s has never registered", ErrNotRegistered, dir)
	}
	if err != nil {
		return a, fmt.Errorf("client: %w", err)
	}
	copy(a.Identity[:], ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
	var priv [32]byte
	copy(priv[:], enc)
	x25519.ScalarBaseMult(&a.Encryption, x25519.ClampedScalar(&priv))
	clear(priv[:])
	copy(a.Gateway[:], b.identity)
	return a, nil
}
