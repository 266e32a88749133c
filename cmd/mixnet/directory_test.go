package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
)

// keyOfLength returns a fresh base58 identity key of n characters.
func keyOfLength(t *testing.T, n int) string {
	for {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if k := address.EncodeKey(pub); len(k) == n {
			return k
		}
	}
}

// TestAllowListReloadOnSIGHUP: SIGHUP reloads the allow-list even when the
// file's size and modification time say nothing changed; a file that does
// not parse leaves the list as it was.
func TestAllowListReloadOnSIGHUP(t *testing.T) {
	a, b := keyOfLength(t, 44), keyOfLength(t, 44)
	path := filepath.Join(t.TempDir(), "allow")
	if err := os.WriteFile(path, []byte(a+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stamp := time.Now().Add(-time.Hour)
	os.Chtimes(path, stamp, stamp)
	list, err := directory.NewAllowList([]string{a})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	done := make(chan struct{})
	go func() { defer close(done); watchAllowList(ctx, path, list, hup, zerolog.Nop()) }()
	defer func() { cancel(); <-done }()

	// Same size, same modification time: only SIGHUP can tell.
	if err := os.WriteFile(path, []byte(b+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, stamp, stamp)
	hup <- syscall.SIGHUP
	deadline := time.Now().Add(5 * time.Second)
	for !list.Allows(b) || list.Allows(a) {
		if time.Now().After(deadline) {
			t.Fatal("b not admitted within 5s of SIGHUP")
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := os.WriteFile(path, []byte(b+"\nnot a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := reloadAllowList(path, list); err == nil || !list.Allows(b) || list.Len() != 1 {
		t.Fatalf("a file that does not parse: %v, and the list changed", err)
	}
}
