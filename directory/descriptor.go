package directory

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/peapod-mixnet/peapod/address"
)

// Role says which kind of node a [Descriptor] describes.
type Role string

// The roles a node can register with.
const (
	RoleMixnode Role = "mixnode"
	RoleGateway Role = "gateway"
)

// Descriptor is what a node registers: its role, where it listens and its
// public keys. It is the JSON body of a registration or deregistration.
//
// Keys are base58 text (Bitcoin alphabet) of exactly [KeySize] bytes. Build a
// descriptor with [NewMixnodeDescriptor] or [NewGatewayDescriptor] rather than
// by hand; [Client.Register] fills in Timestamp.
type Descriptor struct {
	// Role is RoleMixnode or RoleGateway.
	Role Role `json:"role"`
	// Layer is the mixnode's layer, MinLayer..MaxLayer; zero for a gateway.
	Layer int `json:"layer,omitempty"`
	// Address is the literal ip:port where the node receives Sphinx packets,
	// written as netip.AddrPort.String writes it.
	Address string `json:"address"`
	// ClientAddress is the ws:// or wss:// URL where a gateway accepts
	// clients; empty for a mixnode.
	ClientAddress string `json:"client_address,omitempty"`
	// Identity is the node's ed25519 public key, which signs its requests.
	Identity string `json:"identity"`
	// SphinxKeys are the node's X25519 public keys for Sphinx packets, one
	// per key rotation it holds (at most MaxSphinxKeys, of consecutive
	// rotations, oldest first; see [Schedule]).
	SphinxKeys []SphinxKey `json:"sphinx_keys"`
	// NoiseKey is the node's X25519 Noise static public key, which
	// authenticates its links and which clients encrypt their gateway
	// handshake to. Optional for now: empty means the node has none.
	NoiseKey string `json:"noise_key,omitempty"`
	// Timestamp is the signing time in unix nanoseconds; the server accepts
	// it only once per identity and only near its own clock.
	Timestamp int64 `json:"timestamp"`
}

// NewMixnodeDescriptor returns the descriptor of a mixnode in the given
// layer. It does not check its arguments; [Descriptor.Validate] does.
func NewMixnodeDescriptor(layer int, addr netip.AddrPort, identity ed25519.PublicKey, sphinxKeys []SphinxKey) Descriptor {
	return Descriptor{
		Role:       RoleMixnode,
		Layer:      layer,
		Address:    addr.String(),
		Identity:   address.EncodeKey(identity),
		SphinxKeys: sphinxKeys,
	}
}

// NewGatewayDescriptor returns the descriptor of a gateway that receives
// packets at addr and clients at clientAddress (a ws:// or wss:// URL). It
// does not check its arguments; [Descriptor.Validate] does.
func NewGatewayDescriptor(addr netip.AddrPort, clientAddress string, identity ed25519.PublicKey, sphinxKeys []SphinxKey) Descriptor {
	return Descriptor{
		Role:          RoleGateway,
		Address:       addr.String(),
		ClientAddress: clientAddress,
		Identity:      address.EncodeKey(identity),
		SphinxKeys:    sphinxKeys,
	}
}

// Validate reports the first field of d that the server would refuse. It
// does not look at the timestamp, which only the server can judge.
func (d Descriptor) Validate() error {
	switch d.Role {
	case RoleMixnode:
		if err := checkLayer(d.Layer); err != nil {
			return err
		}
		if d.ClientAddress != "" {
			return errors.New("directory: a mixnode has no client_address")
		}
	case RoleGateway:
		if d.Layer != 0 {
			return errors.New("directory: a gateway has no layer")
		}
		if _, err := parseClientAddress(d.ClientAddress); err != nil {
			return err
		}
	default:
		return fmt.Errorf("directory: role %q is neither %q nor %q", d.Role, RoleMixnode, RoleGateway)
	}
	if _, err := parseAddress(d.Address); err != nil {
		return err
	}
	if _, err := parseIdentity(d.Identity); err != nil {
		return err
	}
	if err := checkSphinxKeys(d.SphinxKeys); err != nil {
		return err
	}
	_, _, err := parseOptionalKey("noise_key", d.NoiseKey)
	return err
}

// ParseDescriptor decodes and validates a descriptor. It is strict: the
// data must be exactly one JSON object with only the descriptor's fields,
// spelt exactly, each at most once, and nothing after it.
func ParseDescriptor(data []byte) (Descriptor, error) {
	d, err := decodeDescriptor(data)
	if err != nil {
		return Descriptor{}, err
	}
	if err := d.Validate(); err != nil {
		return Descriptor{}, err
	}
	return d, nil
}

// decodeDescriptor is ParseDescriptor without the field checks.
func decodeDescriptor(data []byte) (Descriptor, error) {
	var d Descriptor
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return Descriptor{}, errors.New("directory: descriptor is not a JSON object")
	}
	seen := make(map[string]bool, 8)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Descriptor{}, fmt.Errorf("directory: malformed descriptor: %w", err)
		}
		key, _ := tok.(string) // inside an object, a token before a value is always a key
		var dst any
		switch key {
		case "role":
			dst = &d.Role
		case "layer":
			dst = &d.Layer
		case "address":
			dst = &d.Address
		case "client_address":
			dst = &d.ClientAddress
		case "identity":
			dst = &d.Identity
		case "sphinx_keys":
			dst = &strictJSON{&d.SphinxKeys}
		case "noise_key":
			dst = &d.NoiseKey
		case "timestamp":
			dst = &d.Timestamp
		default:
			return Descriptor{}, fmt.Errorf("directory: unknown field %q", key)
		}
		if seen[key] {
			return Descriptor{}, fmt.Errorf("directory: field %q appears twice", key)
		}
		seen[key] = true
		if err := dec.Decode(dst); err != nil {
			return Descriptor{}, fmt.Errorf("directory: field %q: %w", key, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return Descriptor{}, fmt.Errorf("directory: malformed descriptor: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Descriptor{}, errors.New("directory: trailing data after the descriptor")
	}
	return d, nil
}

// strictJSON decodes into v, refusing fields v does not have.
type strictJSON struct{ v any }

func (s strictJSON) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(s.v)
}
