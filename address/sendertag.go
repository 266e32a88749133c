package address

import (
	"crypto/rand"
	"fmt"
	"io"
)

// SenderTagSize is the size of a SenderTag in bytes.
const SenderTagSize = 16

// SenderTag is the random name a client gives itself towards one recipient
// when it sends anonymously with reply SURBs (Nym's AnonymousSenderTag). The
// recipient answers through the SURBs stored under the tag without ever
// learning the sender's Address. Its text form is base58.
type SenderTag [SenderTagSize]byte

// NewSenderTag draws a fresh tag from r, or from crypto/rand when r is nil.
func NewSenderTag(r io.Reader) (SenderTag, error) {
	if r == nil {
		r = rand.Reader
	}
	var t SenderTag
	if _, err := io.ReadFull(r, t[:]); err != nil {
		return SenderTag{}, fmt.Errorf("address: drawing a sender tag: %w", err)
	}
	return t, nil
}

// ParseSenderTag reads a tag in base58; it must decode to exactly
// SenderTagSize bytes.
func ParseSenderTag(s string) (SenderTag, error) {
	var t SenderTag
	if err := decodeKeyInto(t[:], s); err != nil {
		return SenderTag{}, fmt.Errorf("address: sender tag: %w", err)
	}
	return t, nil
}

// String returns the tag in base58.
func (t SenderTag) String() string {
	return EncodeKey(t[:])
}

// MarshalText returns the base58 form of the tag, so that a SenderTag is a
// JSON string.
func (t SenderTag) MarshalText() ([]byte, error) {
	return []byte(t.String()), nil
}

// UnmarshalText parses the base58 form with ParseSenderTag.
func (t *SenderTag) UnmarshalText(text []byte) error {
	parsed, err := ParseSenderTag(string(text))
	if err != nil {
		return err
	}
	*t = parsed
	return nil
}
