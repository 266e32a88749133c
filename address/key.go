package address

import (
	"errors"
	"fmt"

	"github.com/mr-tron/base58"
)

// alphabet is the Bitcoin base58 alphabet, the one Nym and mr-tron/base58 use.
const alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// EncodeKey returns key in base58 with the Bitcoin alphabet, the text form
// Nym and peapod use for every public key and tag.
func EncodeKey(key []byte) string {
	return base58.Encode(key)
}

// DecodeKey reads a base58 key that must decode to exactly size bytes. It
// rejects empty input, any character outside the alphabet (whitespace
// included) and input of the wrong length, with an error that says which.
func DecodeKey(s string, size int) ([]byte, error) {
	if size <= 0 {
		return nil, fmt.Errorf("address: key size %d is not positive", size)
	}
	key := make([]byte, size)
	if err := decodeKeyInto(key, s); err != nil {
		return nil, fmt.Errorf("address: key: %w", err)
	}
	return key, nil
}

// decodeKeyInto decodes s into dst, which it fills exactly. Its errors carry
// no prefix, so that callers can name the part that was being decoded.
func decodeKeyInto(dst []byte, s string) error {
	if s == "" {
		return errors.New("empty")
	}
	// Base58 decoding is quadratic; refuse input longer than any encoding
	// of len(dst) bytes before doing the work.
	if limit := maxEncodedLen(len(dst)); len(s) > limit {
		return fmt.Errorf("too long: %d characters, a %d-byte key takes at most %d", len(s), len(dst), limit)
	}
	for i := 0; i < len(s); i++ {
		if !isAlphabet(s[i]) {
			if s[i] < 0x80 {
				return fmt.Errorf("invalid base58 character %q at offset %d", rune(s[i]), i)
			}
			return fmt.Errorf("invalid base58 byte 0x%02x at offset %d", s[i], i)
		}
	}
	decoded, err := base58.Decode(s)
	if err != nil {
		return fmt.Errorf("invalid base58: %w", err)
	}
	if len(decoded) != len(dst) {
		return fmt.Errorf("decodes to %d bytes, want %d", len(decoded), len(dst))
	}
	// Base58 with a fixed length has one encoding per value; this check
	// keeps that promise even if the decoder were ever more lenient.
	if base58.Encode(decoded) != s {
		return errors.New("not in canonical base58 form")
	}
	copy(dst, decoded)
	return nil
}

// maxEncodedLen bounds the length of the base58 encoding of n bytes
// (log(256)/log(58) < 1.38 characters a byte).
func maxEncodedLen(n int) int {
	return n*138/100 + 1
}

func isAlphabet(c byte) bool {
	switch {
	case c >= '1' && c <= '9':
		return true
	case c >= 'A' && c <= 'Z':
		return c != 'I' && c != 'O'
	case c >= 'a' && c <= 'z':
		return c != 'l'
	}
	return false
}
