package mixnode

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/peapod-mixnet/peapod/directory"
)

// newDirectory runs a directory server on a loopback port.
func newDirectory(t testing.TB) *directory.Client {
	t.Helper()
	srv, err := directory.New(directory.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return &directory.Client{BaseURL: "http://" + ln.Addr().String()}
}

// TestDirectoryRegistration runs a node against a real directory: it is
// listed with its layer, address and keys while it runs, and gone once
// Close returns.
func TestDirectoryRegistration(t *testing.T) {
	dir := newDirectory(t)
	n := newNode(t, 2, func(c *Config) { c.DirectoryURL = dir.BaseURL })

	var listed []directory.Mixnode
	eventually(t, "the node is listed", func() bool {
		topo, err := dir.Topology(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		listed = topo.Mixnodes
		return len(listed) == 1
	})
	m := listed[0]
	id, err := m.IdentityKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := m.SphinxPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	addr, err := m.AddrPort()
	if err != nil {
		t.Fatal(err)
	}
	if m.Layer != 2 || addr != n.AnnounceAddr() || !id.Equal(n.Identity()) || key != n.SphinxKey() {
		t.Fatalf("listed as %+v", m)
	}

	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	topo, err := dir.Topology(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Mixnodes) != 0 {
		t.Fatalf("still listed after Close: %+v", topo.Mixnodes)
	}
}

// TestKeysPersist restarts a node on the same data folder: it keeps its
// identity and Sphinx key, stored in files only its user can read.
func TestKeysPersist(t *testing.T) {
	data := t.TempDir()
	first := newNode(t, 1, func(c *Config) { c.DataDir = data })
	id, key := first.Identity(), first.SphinxKey()
	first.Close()

	second := newNode(t, 1, func(c *Config) { c.DataDir = data })
	if !bytes.Equal(second.Identity(), id) || second.SphinxKey() != key {
		t.Fatal("the keys changed across a restart")
	}
	for _, name := range []string{IdentityFile, SphinxKeyFile} {
		info, err := os.Stat(filepath.Join(data, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Fatalf("%s has mode %04o, want 0600", name, perm)
		}
	}
	// Another folder, other keys.
	other := newNode(t, 1, nil)
	if bytes.Equal(other.Identity(), id) || other.SphinxKey() == key {
		t.Fatal("two data folders share keys")
	}
}

// TestKeysRefusedWhenReadable checks a key file readable by others stops
// the node from starting.
func TestKeysRefusedWhenReadable(t *testing.T) {
	data := t.TempDir()
	n, err := New(Config{ListenAddr: "127.0.0.1:0", Layer: 1, DataDir: data, ReplayCapacity: testReplayCapacity})
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	if err := os.Chmod(filepath.Join(data, SphinxKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{ListenAddr: "127.0.0.1:0", Layer: 1, DataDir: data, ReplayCapacity: testReplayCapacity}); err == nil {
		t.Fatal("a world-readable key file was accepted")
	}
}
