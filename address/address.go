// Package address holds the names peapod gives to clients and the keys that
// make them up, in the exact forms Nym uses.
//
// A client is reached through an Address: its ed25519 identity key, its X25519
// encryption key and the ed25519 identity key of the gateway it is registered
// with. The text form is Nym's
//
//	base58(identity) "." base58(encryption) "@" base58(gateway)
//
// with the Bitcoin base58 alphabet, and the binary form is the three 32-byte
// keys in that order (Size bytes). Both forms are parsed strictly: each part
// must decode to exactly 32 bytes, the separators must each appear exactly
// once, nothing else (not even whitespace) is accepted, and the identity and
// gateway keys must be valid ed25519 points, as Nym's own parser demands.
// Every string Parse accepts is the canonical one: String gives it back
// unchanged.
//
// A SenderTag is the 16-byte random name a client gives itself when it sends
// reply SURBs to a recipient, so that the recipient can answer without
// learning its Address. EncodeKey and DecodeKey are the base58 helpers used
// wherever peapod prints or reads a key as text.
package address

import (
	"errors"
	"fmt"
	"strings"

	"filippo.io/edwards25519"
)

// Sizes of an Address and of its parts, in bytes.
const (
	// KeySize is the size of each of the three keys in an Address.
	KeySize = 32
	// Size is the size of the binary form of an Address.
	Size = 3 * KeySize
)

// Separators of the text form.
const (
	keySeparator     = '.' // between the identity and the encryption key
	gatewaySeparator = '@' // between the client's keys and the gateway
)

// Address names a client on the mixnet. The zero value is the all-zero
// address, which IsZero reports; it is not a usable destination.
type Address struct {
	// Identity is the client's ed25519 public identity key. Its bytes are
	// also the client's Sphinx destination.
	Identity [KeySize]byte
	// Encryption is the client's X25519 public key, used to encrypt the
	// message fragments sent to it.
	Encryption [KeySize]byte
	// Gateway is the ed25519 public identity key of the gateway the client
	// is registered with.
	Gateway [KeySize]byte
}

// Parse reads an address in Nym's text form,
// "identity.encryption@gateway". The error names the part that is wrong,
// for example "address: encryption key: decodes to 31 bytes, want 32".
func Parse(s string) (Address, error) {
	var a Address
	client, gateway, ok := strings.Cut(s, string(gatewaySeparator))
	if !ok {
		return Address{}, errors.New("address: missing '@' between the client keys and the gateway")
	}
	if strings.IndexByte(gateway, gatewaySeparator) >= 0 {
		return Address{}, errors.New("address: more than one '@'")
	}
	identity, encryption, ok := strings.Cut(client, string(keySeparator))
	if !ok {
		return Address{}, errors.New("address: missing '.' between the identity and the encryption key")
	}
	if strings.IndexByte(encryption, keySeparator) >= 0 {
		return Address{}, errors.New("address: more than one '.' before the '@'")
	}
	if err := decodeKeyInto(a.Identity[:], identity); err != nil {
		return Address{}, fmt.Errorf("address: identity: %w", err)
	}
	if err := decodeKeyInto(a.Encryption[:], encryption); err != nil {
		return Address{}, fmt.Errorf("address: encryption key: %w", err)
	}
	if err := decodeKeyInto(a.Gateway[:], gateway); err != nil {
		return Address{}, fmt.Errorf("address: gateway: %w", err)
	}
	if err := a.Validate(); err != nil {
		return Address{}, err
	}
	return a, nil
}

// FromBytes reads the binary form of an address: exactly Size bytes, the
// identity, encryption and gateway keys in that order. It applies the same
// checks as Parse.
func FromBytes(b []byte) (Address, error) {
	if len(b) != Size {
		return Address{}, fmt.Errorf("address: binary form is %d bytes, want %d", len(b), Size)
	}
	var a Address
	copy(a.Identity[:], b[:KeySize])
	copy(a.Encryption[:], b[KeySize:2*KeySize])
	copy(a.Gateway[:], b[2*KeySize:])
	if err := a.Validate(); err != nil {
		return Address{}, err
	}
	return a, nil
}

// Validate reports whether the identity and gateway keys are valid ed25519
// points, the check Nym applies to every address it reads. Any 32 bytes are
// accepted as the X25519 encryption key, as in Nym. Parse and FromBytes call
// Validate; an Address built field by field has not been checked.
func (a Address) Validate() error {
	if _, err := new(edwards25519.Point).SetBytes(a.Identity[:]); err != nil {
		return errors.New("address: identity: not a valid ed25519 public key")
	}
	if _, err := new(edwards25519.Point).SetBytes(a.Gateway[:]); err != nil {
		return errors.New("address: gateway: not a valid ed25519 public key")
	}
	return nil
}

// String returns the address in Nym's text form,
// "identity.encryption@gateway".
func (a Address) String() string {
	return string(a.appendText(make([]byte, 0, 3*maxEncodedLen(KeySize)+2)))
}

// AppendText appends the text form of the address to dst and returns the
// extended slice.
func (a Address) AppendText(dst []byte) ([]byte, error) {
	return a.appendText(dst), nil
}

func (a Address) appendText(dst []byte) []byte {
	dst = append(dst, EncodeKey(a.Identity[:])...)
	dst = append(dst, keySeparator)
	dst = append(dst, EncodeKey(a.Encryption[:])...)
	dst = append(dst, gatewaySeparator)
	return append(dst, EncodeKey(a.Gateway[:])...)
}

// MarshalText returns the text form of the address, so that an Address is a
// JSON string and a TOML string.
func (a Address) MarshalText() ([]byte, error) {
	return a.appendText(nil), nil
}

// UnmarshalText parses the text form with Parse.
func (a *Address) UnmarshalText(text []byte) error {
	parsed, err := Parse(string(text))
	if err != nil {
		return err
	}
	*a = parsed
	return nil
}

// AppendBinary appends the Size-byte binary form of the address to dst and
// returns the extended slice.
func (a Address) AppendBinary(dst []byte) []byte {
	dst = append(dst, a.Identity[:]...)
	dst = append(dst, a.Encryption[:]...)
	return append(dst, a.Gateway[:]...)
}

// Bytes returns the binary form of the address.
func (a Address) Bytes() [Size]byte {
	var out [Size]byte
	a.AppendBinary(out[:0])
	return out
}

// IsZero reports whether every byte of the address is zero, the value of an
// Address that was never set.
func (a Address) IsZero() bool {
	return a == Address{}
}
