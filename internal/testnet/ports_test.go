package testnet

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// A port the harness hands out is locked for this process, so that the
// harness of another test binary running at the same time (go test -p)
// cannot hand it out too.
func TestFreePortIsLocked(t *testing.T) {
	ap, err := freePort(netip.MustParseAddr("127.0.0.1"), true)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(portLockDir, strconv.Itoa(int(ap.Port()))), os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("no lock file for port %d: %v", ap.Port(), err)
	}
	defer f.Close()
	// Another open file description, as another process would have.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		t.Fatalf("port %d's lock could be taken again", ap.Port())
	}
	if lockPort(ap.Port()) {
		t.Fatalf("lockPort took port %d, handed out already", ap.Port())
	}
}
