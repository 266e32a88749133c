package gwproto

import (
	"encoding/binary"
	"fmt"

	"github.com/peapod-mixnet/peapod/sphinx"
)

// Session message tags (the first byte of a sealed frame's plaintext).
const (
	tagForward  = 0x10
	tagReceived = 0x11
	tagPing     = 0x12
	tagPong     = 0x13
	tagDeliver  = 0x20
	tagError    = 0x21
)

// MaxReceivedIDs bounds the ids one Received message may confirm.
const MaxReceivedIDs = 1024

// maxErrorText bounds the text of an Error message.
const maxErrorText = 1024

// Message is one session message. The concrete types are Forward, Received,
// Ping, Pong, Deliver and Error.
type Message interface {
	appendTo(dst []byte) []byte
}

// Forward asks the gateway to send a Sphinx packet to its first hop, which
// must be a layer-1 mixnode of the gateway's topology.
//
//	0x10 ‖ first hop[32] ‖ packet (one of the Sphinx packet sizes)
type Forward struct {
	FirstHop sphinx.NodeAddress
	Packet   []byte
}

// Received confirms that the client holds the delivered messages with these
// ids; the gateway forgets them and sends their acks on.
//
//	0x11 ‖ count u16 ‖ id u64 × count
type Received struct {
	IDs []uint64
}

// Ping asks the other side to answer with a Pong carrying the same value.
//
//	0x12 ‖ value u64
type Ping struct{ Value uint64 }

// Pong answers a Ping.
//
//	0x13 ‖ value u64
type Pong struct{ Value uint64 }

// DeliverKind says what a Deliver carries.
type DeliverKind uint8

// Deliver kinds.
const (
	// KindMessage is the end-to-end encrypted part of a data packet's payload:
	// everything after its SURB-ack.
	KindMessage DeliverKind = 1
	// KindAck is the payload of an ack packet.
	KindAck DeliverKind = 2
)

func (k DeliverKind) String() string {
	switch k {
	case KindMessage:
		return "message"
	case KindAck:
		return "ack"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Deliver hands the client something addressed to it. The client confirms it
// with Received; until then the gateway keeps it.
//
//	0x20 ‖ id u64 ‖ kind u8 ‖ payload
type Deliver struct {
	ID      uint64
	Kind    DeliverKind
	Payload []byte
}

// Error reports a refused request or handshake.
//
//	0x21 ‖ code u8 ‖ length u16 ‖ UTF-8 text (handshake errors use tag 0x05)
type Error struct {
	Code    ErrorCode
	Message string
}

func (m *Forward) appendTo(dst []byte) []byte {
	dst = append(dst, tagForward)
	dst = append(dst, m.FirstHop[:]...)
	return append(dst, m.Packet...)
}

func (m *Received) appendTo(dst []byte) []byte {
	dst = append(dst, tagReceived)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.IDs)))
	for _, id := range m.IDs {
		dst = binary.BigEndian.AppendUint64(dst, id)
	}
	return dst
}

func (m *Ping) appendTo(dst []byte) []byte {
	return binary.BigEndian.AppendUint64(append(dst, tagPing), m.Value)
}

func (m *Pong) appendTo(dst []byte) []byte {
	return binary.BigEndian.AppendUint64(append(dst, tagPong), m.Value)
}

func (m *Deliver) appendTo(dst []byte) []byte {
	dst = append(dst, tagDeliver)
	dst = binary.BigEndian.AppendUint64(dst, m.ID)
	dst = append(dst, byte(m.Kind))
	return append(dst, m.Payload...)
}

func (m *Error) appendTo(dst []byte) []byte {
	return appendError(dst, tagError, m)
}

func appendError(dst []byte, tag byte, m *Error) []byte {
	text := m.Message
	if len(text) > maxErrorText {
		text = text[:maxErrorText]
	}
	dst = append(dst, tag, byte(m.Code))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(text)))
	return append(dst, text...)
}

// AppendMessage appends the plaintext encoding of m to dst.
func AppendMessage(dst []byte, m Message) []byte { return m.appendTo(dst) }

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// ParseMessage decodes a session message. Slices in the result alias b.
func ParseMessage(b []byte) (Message, error) {
	if len(b) == 0 {
		return nil, malformed("empty message")
	}
	tag, body := b[0], b[1:]
	switch tag {
	case tagForward:
		if len(body) < sphinx.NodeAddressSize {
			return nil, malformed("forward: %d bytes, shorter than a node address", len(body))
		}
		m := &Forward{Packet: body[sphinx.NodeAddressSize:]}
		copy(m.FirstHop[:], body)
		if _, ok := sphinx.SizeOf(len(m.Packet)); !ok {
			return nil, malformed("forward: a %d-byte packet is not a Sphinx packet size", len(m.Packet))
		}
		if _, err := m.FirstHop.AddrPort(); err != nil {
			return nil, malformed("forward: first hop: %v", err)
		}
		return m, nil
	case tagReceived:
		if len(body) < 2 {
			return nil, malformed("received: missing count")
		}
		n := int(binary.BigEndian.Uint16(body))
		if n > MaxReceivedIDs {
			return nil, malformed("received: %d ids, at most %d", n, MaxReceivedIDs)
		}
		if len(body) != 2+8*n {
			return nil, malformed("received: %d bytes for %d ids", len(body), n)
		}
		m := &Received{IDs: make([]uint64, n)}
		for i := range m.IDs {
			m.IDs[i] = binary.BigEndian.Uint64(body[2+8*i:])
		}
		return m, nil
	case tagPing, tagPong:
		if len(body) != 8 {
			return nil, malformed("ping/pong: %d bytes, want 8", len(body))
		}
		v := binary.BigEndian.Uint64(body)
		if tag == tagPing {
			return &Ping{Value: v}, nil
		}
		return &Pong{Value: v}, nil
	case tagDeliver:
		if len(body) < 9 {
			return nil, malformed("deliver: %d bytes, shorter than its header", len(body))
		}
		m := &Deliver{ID: binary.BigEndian.Uint64(body), Kind: DeliverKind(body[8]), Payload: body[9:]}
		if m.Kind != KindMessage && m.Kind != KindAck {
			return nil, malformed("deliver: unknown kind %d", body[8])
		}
		return m, nil
	case tagError:
		return parseError(body)
	}
	return nil, malformed("unknown message tag 0x%02x", tag)
}

func parseError(body []byte) (*Error, error) {
	if len(body) < 3 {
		return nil, malformed("error: %d bytes, shorter than its header", len(body))
	}
	n := int(binary.BigEndian.Uint16(body[1:]))
	if len(body) != 3+n {
		return nil, malformed("error: text length %d, %d bytes follow", n, len(body)-3)
	}
	return &Error{Code: ErrorCode(body[0]), Message: string(body[3:])}, nil
}
