package keyfile

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateIsStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "identity.pem")
	first, created, err := LoadOrCreate(path, "TEST KEY", 32, rand.Reader)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreate: created=%v err=%v", created, err)
	}
	second, created, err := LoadOrCreate(path, "TEST KEY", 32, rand.Reader)
	if err != nil || created {
		t.Fatalf("second LoadOrCreate: created=%v err=%v", created, err)
	}
	if !bytes.Equal(first, second) {
		t.Fatal("secret changed between starts")
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("file mode %04o, want 0600", perm)
	}
	dirInfo, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if perm := dirInfo.Mode().Perm(); perm != 0o700 {
		t.Fatalf("folder mode %04o, want 0700", perm)
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k.pem")
	if err := Save(path, "TEST KEY", make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		prepare func()
		pemType string
		size    int
		want    string
	}{
		{"wrong type", func() {}, "OTHER KEY", 32, `want a "OTHER KEY"`},
		{"wrong size", func() {}, "TEST KEY", 16, "holds 32 bytes, want 16"},
		{"world readable", func() { os.Chmod(path, 0o644) }, "TEST KEY", 32, "accessible by other users"},
		{"not pem", func() { os.WriteFile(path, []byte("garbage"), 0o600); os.Chmod(path, 0o600) }, "TEST KEY", 32, "no PEM block"},
	}
	for _, c := range cases {
		c.prepare()
		_, err := Load(path, c.pemType, c.size)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "AAAA") {
			t.Errorf("%s: error leaks key material: %v", c.name, err)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.pem"), "TEST KEY", 32); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing file: err = %v, want ErrNotFound", err)
	}
}
