package testnet

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// Ports are handed out below the kernel's ephemeral range (32768 and up on
// Linux), so that no outgoing connection of another program takes a port
// between the moment the harness checks it and the moment a node binds it.
const (
	portLow  = 20000
	portHigh = 32000
)

var ports struct {
	sync.Mutex
	used map[uint16]bool
	// locks hold the lock files of the ports handed out, open (and so
	// locked) for the life of the process.
	locks []*os.File
}

// portLockDir holds a lock file per port a harness in some process has
// handed out. Test binaries of several packages run at once (go test -p)
// and each picks ports at random from the same range: the bind check alone
// leaves a moment between the check and the node's own bind in which the
// other process can take the port. A port is handed out only with an
// exclusive flock on its file, which the kernel drops when the process
// ends, however it ends.
var portLockDir = filepath.Join(os.TempDir(), "peapod-testnet-ports")

// lockPort takes the lock of port p for this process; false when another
// process holds it. Without a lock folder (it cannot be made) every port
// counts as free.
func lockPort(p uint16) bool {
	if err := os.MkdirAll(portLockDir, 0o777); err != nil {
		return true
	}
	f, err := os.OpenFile(filepath.Join(portLockDir, strconv.Itoa(int(p))), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	ports.locks = append(ports.locks, f)
	return true
}

// freePort returns a port of ip that is free now and that this process has
// not handed out before, so that a node can be restarted on it later.
// Processes in a namespace of their own skip the bind check (check false):
// the namespace has no other listeners.
func freePort(ip netip.Addr, check bool) (netip.AddrPort, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.used == nil {
		ports.used = make(map[uint16]bool)
	}
	for range 1000 {
		p := uint16(portLow + rand.IntN(portHigh-portLow))
		if ports.used[p] {
			continue
		}
		if !lockPort(p) {
			ports.used[p] = true // another process's harness has it
			continue
		}
		ap := netip.AddrPortFrom(ip, p)
		if check {
			ln, err := net.Listen("tcp", ap.String())
			if err != nil {
				ports.used[p] = true
				continue
			}
			ln.Close()
		}
		ports.used[p] = true
		return ap, nil
	}
	return netip.AddrPort{}, errors.New("testnet: no free port in " + strconv.Itoa(portLow) + "-" + strconv.Itoa(portHigh))
}
