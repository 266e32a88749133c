package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/internal/keyfile"
	"github.com/peapod-mixnet/peapod/internal/x25519"
)

// errInUse means another process holds the client's data folder.
var errInUse = errors.New("client: the data folder is in use by another process")

// openClient makes a client on the data folder of cfg, telling apart the
// case of a folder another process (a running `client run`) holds.
func openClient(cfg client.Config) (*client.Client, error) {
	c, err := client.New(cfg)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (is `client run` running on it?)", errInUse, cfg.DataDir)
	}
	return c, err
}

// The files of a client's data folder that make up its address, as package
// client writes them (client/identity.go).
//
// TODO: replace with a function of package client that reads the address of
// a data folder without starting the client, once it has one.
const (
	identityFile   = "identity.pem"
	encryptionFile = "encryption.pem"
	gatewayFile    = "gateway.pem"

	pemIdentity   = "PEAPOD ED25519 IDENTITY SEED"
	pemEncryption = "PEAPOD X25519 ENCRYPTION KEY"
	pemGateway    = "PEAPOD GATEWAY BINDING"

	gatewayBindingSize = ed25519.PublicKeySize + 32 // gateway identity ‖ shared key
)

// errNotRegistered means the data folder holds no registration yet.
var errNotRegistered = errors.New("client: not registered with a gateway")

// readAddress reads the address of the client in dir from its key files,
// without the network and without opening its state (so it works while the
// client runs).
func readAddress(dir string) (address.Address, error) {
	if _, err := os.Stat(filepath.Join(dir, identityFile)); errors.Is(err, os.ErrNotExist) {
		return address.Address{}, fmt.Errorf("%w: there is no client in %s (run `client init --data %s`)", errNotRegistered, dir, dir)
	}
	seed, err := keyfile.Load(filepath.Join(dir, identityFile), pemIdentity, ed25519.SeedSize)
	if err != nil {
		return address.Address{}, fmt.Errorf("client: %w", err)
	}
	defer clear(seed)
	enc, err := keyfile.Load(filepath.Join(dir, encryptionFile), pemEncryption, x25519.Size)
	if err != nil {
		return address.Address{}, fmt.Errorf("client: %w", err)
	}
	defer clear(enc)
	binding, err := keyfile.Load(filepath.Join(dir, gatewayFile), pemGateway, gatewayBindingSize)
	if errors.Is(err, keyfile.ErrNotFound) {
		return address.Address{}, fmt.Errorf("%w: the client in %s has never registered (run `client init --data %s`)", errNotRegistered, dir, dir)
	}
	if err != nil {
		return address.Address{}, fmt.Errorf("client: %w", err)
	}
	defer clear(binding)

	var a address.Address
	copy(a.Identity[:], ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
	var priv [x25519.Size]byte
	copy(priv[:], enc)
	x25519.ScalarBaseMult(&a.Encryption, x25519.ClampedScalar(&priv))
	clear(priv[:])
	copy(a.Gateway[:], binding[:ed25519.PublicKeySize])
	if err := a.Validate(); err != nil {
		return address.Address{}, fmt.Errorf("client: the keys in %s: %w", dir, err)
	}
	return a, nil
}
