package sphinx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// NodeAddress is a node's network address as it travels inside a header:
// family (4 or 6) ‖ port u16 ‖ IP (4 or 16 bytes) ‖ zero padding to 32 bytes,
// Nym's encoding. The first 19 bytes (CompactNodeAddressSize) always hold the
// whole address, which is the form acks carry in a payload.
type NodeAddress [NodeAddressSize]byte

// CompactNodeAddressSize is the size of a node address with its trailing
// padding removed: family ‖ port ‖ 16 bytes of IP.
const CompactNodeAddressSize = 1 + 2 + 16

const (
	familyIPv4 = 4
	familyIPv6 = 6
)

// NewNodeAddress encodes ap. IPv4-mapped IPv6 addresses are encoded as IPv4.
func NewNodeAddress(ap netip.AddrPort) (NodeAddress, error) {
	var a NodeAddress
	ip := ap.Addr().Unmap()
	switch {
	case ip.Is4():
		a[0] = familyIPv4
		v4 := ip.As4()
		copy(a[3:], v4[:])
	case ip.Is6() && ip.Zone() == "":
		a[0] = familyIPv6
		v6 := ip.As16()
		copy(a[3:], v6[:])
	default:
		return a, fmt.Errorf("sphinx: node address %v is not an IPv4 or zoneless IPv6 address", ap)
	}
	binary.BigEndian.PutUint16(a[1:3], ap.Port())
	return a, nil
}

// ParseNodeAddress parses "ip:port" into a NodeAddress.
func ParseNodeAddress(s string) (NodeAddress, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return NodeAddress{}, fmt.Errorf("sphinx: node address %q: %w", s, err)
	}
	return NewNodeAddress(ap)
}

var errNodeAddress = errors.New("sphinx: malformed node address")

// AddrPort decodes the address. It fails on an unknown family or non-zero
// padding.
func (a NodeAddress) AddrPort() (netip.AddrPort, error) {
	port := binary.BigEndian.Uint16(a[1:3])
	var ip netip.Addr
	var used int
	switch a[0] {
	case familyIPv4:
		ip = netip.AddrFrom4([4]byte(a[3:7]))
		used = 7
	case familyIPv6:
		ip = netip.AddrFrom16([16]byte(a[3:19]))
		used = 19
	default:
		return netip.AddrPort{}, errNodeAddress
	}
	for _, b := range a[used:] {
		if b != 0 {
			return netip.AddrPort{}, errNodeAddress
		}
	}
	return netip.AddrPortFrom(ip, port), nil
}

// String returns "ip:port", or a hex dump when the address is malformed.
func (a NodeAddress) String() string {
	ap, err := a.AddrPort()
	if err != nil {
		return fmt.Sprintf("invalid(%x)", a[:CompactNodeAddressSize])
	}
	return ap.String()
}
