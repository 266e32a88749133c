package requester

import (
	"bytes"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/internal/atomicfile"
)

// KnownProvidersFile is the name of the file, in a client's data folder,
// that remembers the key each provider was first seen with.
const KnownProvidersFile = "known_providers.json"

// knownVersion is the value of "v" in a known-providers file.
const knownVersion = 1

// maxKnownSize bounds the file KnownProviders reads.
const maxKnownSize = 4 << 20

// KnownProviders remembers the descriptor key each provider URL was seen
// with, for trust on first use: once a key is remembered, a descriptor
// signed by another key is refused with a *KeyChangedError. It keeps them
// in a JSON file, written atomically with mode 0600, that the SDKs read and
// write too:
//
//	{"v":1,"providers":{"http://127.0.0.1:8080":"<base58 key>"}}
//
// Its methods are safe for concurrent use within one process.
type KnownProviders struct {
	path string
	mu   sync.Mutex
}

// OpenKnownProviders returns the store kept in the file at path, which
// need not exist yet.
func OpenKnownProviders(path string) *KnownProviders {
	return &KnownProviders{path: path}
}

// Path is the file the keys are kept in.
func (k *KnownProviders) Path() string { return k.path }

type knownFile struct {
	V         int               `json:"v"`
	Providers map[string]string `json:"providers"`
}

// Key returns the key remembered for provider (a ProviderID), if any.
func (k *KnownProviders) Key(provider string) (ed25519.PublicKey, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f, err := k.readLocked()
	if err != nil {
		return nil, false, err
	}
	text, ok := f.Providers[provider]
	if !ok {
		return nil, false, nil
	}
	key, err := address.DecodeKey(text, ed25519.PublicKeySize)
	if err != nil {
		return nil, false, fmt.Errorf("requester: %s: the key of %s: %w", k.path, provider, err)
	}
	return key, true, nil
}

// Remember records key for provider (a ProviderID), replacing any other.
func (k *KnownProviders) Remember(provider string, key ed25519.PublicKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	f, err := k.readLocked()
	if err != nil {
		return err
	}
	f.Providers[provider] = address.EncodeKey(key)
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("requester: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
		return fmt.Errorf("requester: %w", err)
	}
	err = atomicfile.Write(k.path, 0o600, func(w *os.File) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("requester: remembering the key of %s: %w", provider, err)
	}
	return nil
}

func (k *KnownProviders) readLocked() (*knownFile, error) {
	b, err := os.ReadFile(k.path)
	if errors.Is(err, fs.ErrNotExist) {
		return &knownFile{V: knownVersion, Providers: make(map[string]string)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("requester: %w", err)
	}
	if len(b) > maxKnownSize {
		return nil, fmt.Errorf("requester: %s: more than %d bytes", k.path, maxKnownSize)
	}
	var f knownFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil || f.V != knownVersion || f.Providers == nil {
		return nil, fmt.Errorf("requester: %s is not a file of known provider keys (want {\"v\":1,\"providers\":{...}})", k.path)
	}
	return &f, nil
}

// KeyChangedError refuses a descriptor signed by another key than the one
// remembered for its provider: what a substituted descriptor looks like.
type KeyChangedError struct {
	// Provider is the ProviderID; Remembered and Seen the base58 keys.
	Provider, Remembered, Seen string
	// File is where the remembered key is kept.
	File string
}

// Error says loudly what happened and what to do if the change is real.
func (e *KeyChangedError) Error() string {
	return fmt.Sprintf("requester: THE PROVIDER'S KEY CHANGED: %s was signed by %s before and now by %s. "+
		"This is what a substituted descriptor looks like. If the provider changed its key on purpose, "+
		"remove its line from %s and try again.", e.Provider, e.Remembered, e.Seen, e.File)
}

// ProviderID is the name a provider URL is remembered under, the same in
// every peapod tool (the client, both SDKs): scheme and host in lower case,
// the port unless it is the scheme's default, the path without a trailing
// slash; no query, no fragment, no user.
func ProviderID(providerURL string) (string, error) {
	u, err := url.Parse(providerURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("requester: provider URL %q is not an http(s) URL", providerURL)
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if port == "" || scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	} else {
		host = net.JoinHostPort(host, port)
	}
	return scheme + "://" + host + strings.TrimRight(u.EscapedPath(), "/"), nil
}

// sameKey reports whether two keys are equal, in constant time.
func sameKey(a, b ed25519.PublicKey) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare(a, b) == 1
}
