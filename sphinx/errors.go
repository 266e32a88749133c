package sphinx

import "errors"

// Errors a caller may branch on. Processing wraps none of them with detail
// about secret state: an authentication failure is always exactly
// ErrAuthentication, whatever went wrong.
var (
	// ErrPacketSize means a packet's length is not one of the packet sizes, or
	// not the size the caller expected.
	ErrPacketSize = errors.New("sphinx: bad packet size")

	// ErrAuthentication means the header failed authentication at this node:
	// its MAC does not match, or its group element is not a valid key. It
	// reveals nothing else, and processing leaves no output behind.
	ErrAuthentication = errors.New("sphinx: header authentication failed (MAC mismatch)")

	// ErrUnknownVersion means the header authenticated but its routing slot
	// names a version or slot kind this package does not know.
	ErrUnknownVersion = errors.New("sphinx: unknown packet version")

	// ErrPayload means the payload reached its last hop tampered with or badly
	// padded. No plaintext is returned.
	ErrPayload = errors.New("sphinx: bad payload (tampered or badly padded)")

	// ErrReplay means this node has already processed a packet with the same
	// replay tag.
	ErrReplay = errors.New("sphinx: replayed packet")

	// ErrRoute means a route is empty, longer than MaxHops, or names a node
	// key that is not a valid X25519 public key.
	ErrRoute = errors.New("sphinx: bad route")

	// ErrMessageTooLong means a message does not fit the packet size.
	ErrMessageTooLong = errors.New("sphinx: message too long for the packet size")

	// ErrSURB means a serialized SURB is malformed.
	ErrSURB = errors.New("sphinx: malformed SURB")

	// ErrReply means a sealed reply did not open with the key given.
	ErrReply = errors.New("sphinx: reply failed to open")
)
