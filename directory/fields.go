package directory

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"

	"filippo.io/edwards25519"

	"github.com/peapod-mixnet/peapod/address"
)

// MaxClientAddressLen bounds the length of a gateway's client_address.
const MaxClientAddressLen = 256

// parseKey decodes the base58 text s of a KeySize-byte key; field names the
// key in errors.
func parseKey(field, s string) ([KeySize]byte, error) {
	var key [KeySize]byte
	if s == "" {
		return key, fmt.Errorf("directory: %s is missing", field)
	}
	raw, err := address.DecodeKey(s, KeySize)
	if err != nil {
		return key, fmt.Errorf("directory: %s is not a %d-byte base58 key: %w", field, KeySize, err)
	}
	copy(key[:], raw)
	return key, nil
}

// parseOptionalKey is parseKey for a key that may be absent: an empty s
// gives ok false and no error.
func parseOptionalKey(field, s string) (key [KeySize]byte, ok bool, err error) {
	if s == "" {
		return key, false, nil
	}
	key, err = parseKey(field, s)
	return key, err == nil, err
}

// parseIdentity decodes a base58 ed25519 identity key, which must be a
// valid curve point.
func parseIdentity(s string) (ed25519.PublicKey, error) {
	key, err := parseKey("identity", s)
	if err != nil {
		return nil, err
	}
	if _, err := new(edwards25519.Point).SetBytes(key[:]); err != nil {
		return nil, errors.New("directory: identity is not a valid ed25519 public key")
	}
	return ed25519.PublicKey(key[:]), nil
}

// parseAddress parses a node's address: a literal IP and a port, written
// canonically (as netip.AddrPort.String writes it), that another host can
// reach: no zone, no unspecified or multicast address, no port 0.
func parseAddress(s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, fmt.Errorf("directory: address is missing")
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("directory: address %q is not a literal ip:port", s)
	}
	if ap.String() != s {
		return netip.AddrPort{}, fmt.Errorf("directory: address %q is not canonical, want %q", s, ap.String())
	}
	switch addr := ap.Addr(); {
	case addr.Zone() != "":
		return netip.AddrPort{}, fmt.Errorf("directory: address %q has an IPv6 zone", s)
	case addr.IsUnspecified():
		return netip.AddrPort{}, fmt.Errorf("directory: address %q is unspecified; register the address others reach", s)
	case addr.IsMulticast():
		return netip.AddrPort{}, fmt.Errorf("directory: address %q is multicast", s)
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("directory: address %q has port 0", s)
	}
	return ap, nil
}

// parseClientAddress parses a gateway's client_address: an absolute ws:// or
// wss:// URL with a host, an optional port and path, and nothing else.
func parseClientAddress(s string) (*url.URL, error) {
	if s == "" {
		return nil, fmt.Errorf("directory: client_address is missing")
	}
	if len(s) > MaxClientAddressLen {
		return nil, fmt.Errorf("directory: client_address is longer than %d bytes", MaxClientAddressLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("directory: client_address %q is not a URL", s)
	}
	switch {
	case u.Scheme != "ws" && u.Scheme != "wss":
		return nil, fmt.Errorf("directory: client_address %q must use ws:// or wss://", s)
	case u.Opaque != "" || u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("directory: client_address %q has no host", s)
	case u.User != nil:
		return nil, fmt.Errorf("directory: client_address %q must not carry user information", s)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("directory: client_address %q must not have a query or fragment", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return nil, fmt.Errorf("directory: client_address %q has an invalid port", s)
		}
	}
	return u, nil
}

// checkLayer reports whether layer is a mixnode layer.
func checkLayer(layer int) error {
	if layer < MinLayer || layer > MaxLayer {
		return fmt.Errorf("directory: layer %d is out of range %d..%d", layer, MinLayer, MaxLayer)
	}
	return nil
}
