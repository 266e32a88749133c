// Package keyfile keeps secret key material on disk.
//
// A secret is stored as one PEM block in its own file, written atomically
// (temporary file, fsync, rename) with permissions 0600 inside a folder with
// permissions 0700. LoadOrCreate makes a secret on first start and returns the
// same bytes on every later start, which is what keeps a node's or a client's
// address stable across restarts. A file that other users can read, or whose
// content is not what the caller expects, is refused with an error that names
// the file and the problem; the secret itself never appears in an error.
package keyfile

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/peapod-mixnet/peapod/internal/atomicfile"
)

// ErrNotFound is returned by Load when the file does not exist.
var ErrNotFound = errors.New("keyfile: not found")

// Load reads the secret of the given PEM type and size from path.
func Load(path, pemType string, size int) ([]byte, error) {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	if err != nil {
		return nil, fmt.Errorf("keyfile: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("keyfile: %s is accessible by other users (mode %04o); run chmod 600 on it", path, perm)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keyfile: %w", err)
	}
	block, rest := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("keyfile: %s holds no PEM block", path)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("keyfile: %s has trailing data after its PEM block", path)
	}
	if block.Type != pemType {
		return nil, fmt.Errorf("keyfile: %s holds a %q, want a %q", path, block.Type, pemType)
	}
	if len(block.Bytes) != size {
		return nil, fmt.Errorf("keyfile: %s holds %d bytes, want %d", path, len(block.Bytes), size)
	}
	return block.Bytes, nil
}

// Save writes secret to path atomically with permissions 0600, creating the
// folder (0700) when needed and replacing any previous file.
func Save(path, pemType string, secret []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keyfile: %w", err)
	}
	err := atomicfile.Write(path, 0o600, func(f *os.File) error {
		return pem.Encode(f, &pem.Block{Type: pemType, Bytes: secret})
	})
	if err != nil {
		return fmt.Errorf("keyfile: %w", err)
	}
	return nil
}

// LoadOrCreate returns the secret stored at path. When the file does not
// exist it reads size fresh bytes from rand, saves them, and returns them.
func LoadOrCreate(path, pemType string, size int, rand io.Reader) (secret []byte, created bool, err error) {
	secret, err = Load(path, pemType, size)
	if err == nil {
		return secret, false, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	secret = make([]byte, size)
	if _, err := io.ReadFull(rand, secret); err != nil {
		return nil, false, fmt.Errorf("keyfile: reading randomness: %w", err)
	}
	if err := Save(path, pemType, secret); err != nil {
		return nil, false, err
	}
	return secret, true, nil
}
