// Package wire carries Sphinx packets over the TCP connections between
// mixnet nodes: the frame format, an inbound [Server] and an outbound [Pool].
//
// A frame is a 4-byte header followed by exactly one packet:
//
//	version u8 ‖ size tag u8 ‖ packet type u8 ‖ key rotation u8 ‖ packet
//
// the layout of Nym's framing codec (common/nymsphinx/framing) at its packet
// version 8, the first with the key-rotation byte. The packet's length is
// implied by its size tag ([sphinx.PacketSize.Len]), so a frame carries no
// length field and a receiver knows how many bytes to read before it reads
// them. peapod sends only Sphinx packets (type [PacketTypeMix]); the key
// rotation names the Sphinx key a packet was made for (see internal/node). A
// decoder refuses any version, size tag, packet type or key rotation it does
// not know with a [*HeaderError] naming the field.
// Nothing re-synchronises a byte stream after a bad header, so whoever reads
// frames closes the connection on the first error.
//
// The pieces fit together like this: [AppendFrame] encodes, [ParseHeader],
// [DecodeFrame] and [ReadFrame] decode; a [Server] accepts connections,
// reads frames with read deadlines and a connection cap, and hands each frame
// to a [Handler]; a [Pool] keeps one persistent connection per destination
// and sends frames without ever blocking its caller. Mixnodes and gateways
// use both.
package wire

import (
	"fmt"

	"github.com/peapod-mixnet/peapod/sphinx"
)

// Version is the frame format version peapod writes and accepts: Nym's
// packet version 8 (KEY_ROTATION_VERSION_NUMBER), whose header has four
// bytes. Nym's older headers (version 7 with three bytes, and the legacy
// two-byte header that starts with a size tag) are refused.
const Version uint8 = 8

// Sizes and offsets of the frame format.
const (
	// HeaderSize is the size of a frame header.
	HeaderSize = 4

	versionOffset  = 0
	sizeTagOffset  = 1
	typeOffset     = 2
	rotationOffset = 3

	// MaxPacketLen is the length of the largest packet a frame carries (an
	// extended32 Sphinx packet). A buffer of this length can receive any
	// frame's packet.
	MaxPacketLen = sphinx.Overhead + 32<<10
	// MaxFrameLen is the length of the largest frame.
	MaxFrameLen = HeaderSize + MaxPacketLen
)

// PacketType says how the packet in a frame is encoded. Its values are
// Nym's PacketType.
type PacketType uint8

// The packet types of Nym's network. peapod sends and accepts only
// PacketTypeMix.
const (
	// PacketTypeMix is a Sphinx packet.
	PacketTypeMix PacketType = 0
	// PacketTypeVPN is Nym's deprecated unmixed mode; refused.
	PacketTypeVPN PacketType = 1
	// PacketTypeOutfox is Nym's Outfox packet format; refused.
	PacketTypeOutfox PacketType = 2
)

func (t PacketType) String() string {
	switch t {
	case PacketTypeMix:
		return "mix"
	case PacketTypeVPN:
		return "vpn"
	case PacketTypeOutfox:
		return "outfox"
	}
	return fmt.Sprintf("unknown(%d)", uint8(t))
}

// KeyRotation says which of a node's Sphinx keys a packet was made for,
// during a key rotation when a node holds two. Its values are Nym's
// SphinxKeyRotation.
type KeyRotation uint8

// The key rotations of Nym's network: a node holds at most two keys, of
// consecutive rotations, so the parity of a rotation names one of them.
const (
	// KeyRotationUnknown names no rotation: the node uses its current key.
	KeyRotationUnknown KeyRotation = 0
	// KeyRotationOdd names the key of an odd-numbered rotation.
	KeyRotationOdd KeyRotation = 1
	// KeyRotationEven names the key of an even-numbered rotation.
	KeyRotationEven KeyRotation = 2
)

func (r KeyRotation) String() string {
	switch r {
	case KeyRotationUnknown:
		return "unknown"
	case KeyRotationOdd:
		return "odd"
	case KeyRotationEven:
		return "even"
	}
	return fmt.Sprintf("invalid(%d)", uint8(r))
}

// Header is the part of a frame header that varies from frame to frame (the
// version byte is always [Version]).
type Header struct {
	// Size is the packet's size tag; the packet is Size.Len() bytes.
	Size sphinx.PacketSize
	// Type is how the packet is encoded; always PacketTypeMix in peapod.
	Type PacketType
	// KeyRotation names the node key the packet was made for.
	KeyRotation KeyRotation
}

// HeaderFor returns the header of a Sphinx packet: its size tag from its
// length, type mix, key rotation unknown. It fails when len(packet) is not
// one of the packet sizes.
func HeaderFor(packet []byte) (Header, error) {
	size, ok := sphinx.SizeOf(len(packet))
	if !ok {
		return Header{}, fmt.Errorf("wire: %d bytes is not a Sphinx packet size", len(packet))
	}
	return Header{Size: size, Type: PacketTypeMix, KeyRotation: KeyRotationUnknown}, nil
}

// PacketLen is the length of the packet that follows h, or 0 when h's size
// tag is unknown.
func (h Header) PacketLen() int { return h.Size.Len() }

// Validate reports the first field of h that a decoder would refuse, as a
// *HeaderError.
func (h Header) Validate() error {
	if !h.Size.Valid() {
		return &HeaderError{Field: FieldSizeTag, Value: uint8(h.Size)}
	}
	if h.Type != PacketTypeMix {
		return &HeaderError{Field: FieldPacketType, Value: uint8(h.Type)}
	}
	if h.KeyRotation > KeyRotationEven {
		return &HeaderError{Field: FieldKeyRotation, Value: uint8(h.KeyRotation)}
	}
	return nil
}

// The fields a HeaderError can name.
const (
	FieldVersion     = "version"
	FieldSizeTag     = "size tag"
	FieldPacketType  = "packet type"
	FieldKeyRotation = "key rotation"
)

// HeaderError reports a frame header field that a decoder refuses. A reader
// that meets one cannot find the next frame and closes the connection.
type HeaderError struct {
	// Field is one of FieldVersion, FieldSizeTag, FieldPacketType,
	// FieldKeyRotation.
	Field string
	// Value is the byte the header held.
	Value uint8
}

func (e *HeaderError) Error() string {
	if e.Field == FieldPacketType && PacketType(e.Value) <= PacketTypeOutfox {
		return fmt.Sprintf("wire: unsupported packet type %d (%v)", e.Value, PacketType(e.Value))
	}
	return fmt.Sprintf("wire: unknown %s %d", e.Field, e.Value)
}

// AppendFrame appends the frame of packet with header h to dst and returns
// the extended slice. It does not check its arguments: h must pass
// Validate and len(packet) must be h.PacketLen(), or the peer reading the
// frame loses its place in the stream. [HeaderFor] builds a header that fits.
func AppendFrame(dst []byte, h Header, packet []byte) []byte {
	dst = append(dst, Version, uint8(h.Size), uint8(h.Type), uint8(h.KeyRotation))
	return append(dst, packet...)
}

// ParseHeader decodes the frame header at the start of b and returns the
// bytes after it. It fails when b is shorter than HeaderSize (an error that
// is not a *HeaderError) or when a field is refused (a *HeaderError; fields
// are checked in wire order, so the error names the first bad one).
func ParseHeader(b []byte) (Header, []byte, error) {
	if len(b) < HeaderSize {
		return Header{}, b, fmt.Errorf("wire: frame header is %d bytes, want %d", len(b), HeaderSize)
	}
	if b[versionOffset] != Version {
		return Header{}, b, &HeaderError{Field: FieldVersion, Value: b[versionOffset]}
	}
	h := Header{
		Size:        sphinx.PacketSize(b[sizeTagOffset]),
		Type:        PacketType(b[typeOffset]),
		KeyRotation: KeyRotation(b[rotationOffset]),
	}
	if err := h.Validate(); err != nil {
		return Header{}, b, err
	}
	return h, b[HeaderSize:], nil
}

// DecodeFrame decodes the frame at the start of b. packet aliases b, and
// rest is what follows the frame. It fails when the header is refused or b
// ends before the packet does.
func DecodeFrame(b []byte) (h Header, packet, rest []byte, err error) {
	h, body, err := ParseHeader(b)
	if err != nil {
		return Header{}, nil, b, err
	}
	n := h.PacketLen()
	if len(body) < n {
		return Header{}, nil, b, fmt.Errorf("wire: frame holds %d bytes of a %d-byte %v packet", len(body), n, h.Size)
	}
	return h, body[:n:n], body[n:], nil
}
