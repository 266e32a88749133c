package node

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func listen(t *testing.T, dir, name, addr string) net.Listener {
	t.Helper()
	ln, err := Listen(context.Background(), dir, name, addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestListenRemembersPort checks that a listener told to take any port
// binds the same one at the next start, each listener its own.
func TestListenRemembersPort(t *testing.T) {
	dir := t.TempDir()
	mix := listen(t, dir, "mix", "127.0.0.1:0")
	client := listen(t, dir, "client", "127.0.0.1:0")
	mixAddr, clientAddr := mix.Addr().String(), client.Addr().String()
	if mixAddr == clientAddr {
		t.Fatal("two listeners share an address")
	}
	mix.Close()
	client.Close()
	info, err := os.Stat(filepath.Join(dir, ListenFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", ListenFile, perm)
	}

	again := listen(t, dir, "mix", "127.0.0.1:0")
	defer again.Close()
	if again.Addr().String() != mixAddr {
		t.Errorf("mix listener moved from %s to %s", mixAddr, again.Addr())
	}
	// Another data folder is another node: another port.
	other := listen(t, t.TempDir(), "mix", "127.0.0.1:0")
	defer other.Close()
	if other.Addr().String() == mixAddr {
		t.Error("two data folders got the same port")
	}
}

// TestListenSavedPortTaken checks that a remembered port held by another
// process is an error that says what to do, not a silent move.
func TestListenSavedPortTaken(t *testing.T) {
	dir := t.TempDir()
	first := listen(t, dir, "mix", "127.0.0.1:0")
	defer first.Close() // still holds the port
	_, err := Listen(context.Background(), dir, "mix", "127.0.0.1:0")
	if err == nil {
		t.Fatal("bound the remembered port twice")
	}
	for _, want := range []string{first.Addr().String(), ListenFile, "delete the file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestListenExplicitPort checks that an explicit port is bound as given
// and leaves the remembered one alone, and that a changed host binds a new
// port.
func TestListenExplicitPort(t *testing.T) {
	dir := t.TempDir()
	ln := listen(t, dir, "mix", "127.0.0.1:0")
	remembered := ln.Addr().String()
	ln.Close()

	probe := listen(t, t.TempDir(), "probe", "127.0.0.1:0") // a free port
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	explicit := listen(t, dir, "mix", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if explicit.Addr().(*net.TCPAddr).Port != port {
		t.Errorf("explicit port %d bound as %s", port, explicit.Addr())
	}
	explicit.Close()
	again := listen(t, dir, "mix", "127.0.0.1:0")
	if again.Addr().String() != remembered {
		t.Errorf("an explicit port changed the remembered one: %s, want %s", again.Addr(), remembered)
	}
	again.Close()

	moved := listen(t, dir, "mix", "127.0.0.2:0")
	defer moved.Close()
	if !strings.HasPrefix(moved.Addr().String(), "127.0.0.2:") {
		t.Errorf("a new host bound %s", moved.Addr())
	}
}

// TestListenDamagedFile checks that a damaged listen file is an error
// naming it.
func TestListenDamagedFile(t *testing.T) {
	for name, content := range map[string]string{
		"not json":  "mix=127.0.0.1:1",
		"bad addr":  `{"mix":"localhost:1"}`,
		"port zero": `{"mix":"127.0.0.1:0"}`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ListenFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Listen(context.Background(), dir, "mix", "127.0.0.1:0")
		if err == nil || !strings.Contains(err.Error(), ListenFile) {
			t.Errorf("%s: Listen = %v, want an error naming %s", name, err, ListenFile)
		}
	}
}
