package testnet

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
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
		ap := netip.AddrPortFrom(ip, p)
		if check {
			ln, err := net.Listen("tcp", ap.String())
			if err != nil {
				continue
			}
			ln.Close()
		}
		ports.used[p] = true
		return ap, nil
	}
	return netip.AddrPort{}, errors.New("testnet: no free port in " + strconv.Itoa(portLow) + "-" + strconv.Itoa(portHigh))
}
