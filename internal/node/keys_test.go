package node

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peapod-mixnet/peapod/internal/keyfile"
)

// TestLoadKeysMakesThenKeeps checks that a first start makes both keys with
// permissions 0600 and a second start returns the same ones.
func TestLoadKeysMakesThenKeeps(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{IdentityFile, NoiseKeyFile} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", name, perm)
		}
	}
	again, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Identity, again.Identity) || first.Noise.Public() != again.Noise.Public() {
		t.Error("a second start loaded other keys")
	}
	other, err := LoadKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first.Identity, other.Identity) || first.Noise.Public() == other.Noise.Public() {
		t.Error("two data folders share keys")
	}
}

// TestNoiseKeyAddedToOldDataFolder checks that a data folder made before
// nodes had Noise keys keeps its identity and gains a Noise key.
func TestNoiseKeyAddedToOldDataFolder(t *testing.T) {
	dir := t.TempDir()
	seed := make([]byte, 32)
	rand.Read(seed)
	if err := keyfile.Save(filepath.Join(dir, IdentityFile), IdentityPEMType, seed); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Identity.Seed(), seed) {
		t.Error("the identity changed")
	}
	if _, err := os.Stat(filepath.Join(dir, NoiseKeyFile)); err != nil {
		t.Errorf("no Noise key file made: %v", err)
	}
}

// TestNoiseKeyPair checks that the public half is X25519(private, 9), as a
// Noise library computes it, and that Private hands out a copy.
func TestNoiseKeyPair(t *testing.T) {
	k, err := GenerateNoiseKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv := k.Private()
	ref, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Public()
	if !bytes.Equal(ref.PublicKey().Bytes(), pub[:]) {
		t.Error("the public key is not X25519(private, 9)")
	}
	clear(priv)
	if bytes.Equal(k.Private(), make([]byte, NoiseKeySize)) {
		t.Error("clearing the copy Private returned cleared the key")
	}
	k.Wipe()
	if !bytes.Equal(k.Private(), make([]byte, NoiseKeySize)) {
		t.Error("Wipe left the private key")
	}
	if _, err := NewNoiseKey(make([]byte, 31)); err == nil {
		t.Error("a 31-byte private key was accepted")
	}
}

// TestReadableKeyRefused checks that a key file others can read stops the
// node, with an error that names the file and holds no key bytes.
func TestReadableKeyRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadKeys(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, NoiseKeyFile)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadKeys(dir)
	if err == nil || !strings.Contains(err.Error(), NoiseKeyFile) || !strings.HasPrefix(err.Error(), "node: ") {
		t.Fatalf("LoadKeys with a readable Noise key = %v, want an error naming %s", err, NoiseKeyFile)
	}
}
