// Package gwproto is the protocol a client speaks with its gateway over a
// WebSocket (binary frames only).
//
// A connection starts with a Noise NK handshake (channel.go) to the
// gateway's Noise static key, which the client takes from the topology:
// nothing the client sends before it names the client, and everything
// after it is encrypted to that key, so an observer of the link learns
// neither the client's identity key nor its address. Inside that channel
// a handshake authenticates both sides:
//
//   - Registration (first contact): the client sends its ed25519 identity, an
//     ephemeral X25519 key, a nonce and a timestamp, signed with its identity
//     key and bound to the gateway's identity and to the channel; the gateway
//     answers with its own ephemeral key and nonce, signed with its identity
//     key over a hash of the request. Both derive the long-term shared key K
//     from the ephemeral Diffie-Hellman secret, the nonces and both
//     identities.
//   - Authentication (every later connection): the client sends its identity,
//     a nonce and a timestamp, signed; the gateway checks that the timestamp is
//     within MaxClockSkew of its clock and strictly greater than the last one
//     it accepted from that client (so a captured request cannot be replayed),
//     and answers with a nonce and an HMAC under K over a hash of the request,
//     which proves to the client that it is talking to the gateway it
//     registered with.
//
// Both handshakes derive per-connection session keys from K, the two
// nonces and the Noise channel's hash. Every later frame is sealed with
// ChaCha20-Poly1305 under the key of its direction, with a frame counter as
// nonce, so frames cannot be read, altered, reordered, dropped unnoticed or
// replayed, and a stolen connection is useless without K.
//
// Session messages: the client asks the gateway to forward Sphinx packets to
// their first mixnode (Forward) and confirms what it was given (Received); the
// gateway hands over messages and acks addressed to the client (Deliver).
// Ping and Pong keep a connection measured and alive. See docs/protocol.md for
// the byte layouts.
package gwproto

import (
	"errors"
	"time"
)

// Version is the protocol version a handshake names: 2 since the
// handshake is encrypted to the gateway's Noise key.
const Version = 2

// MaxClockSkew is how far a handshake timestamp may be from the gateway's
// clock.
const MaxClockSkew = 120 * time.Second

// MaxFrameSize bounds every WebSocket frame of the protocol: the largest
// Sphinx packet with its forward header and the AEAD overhead, rounded up.
const MaxFrameSize = 64 << 10

// Sizes of the fields.
const (
	IdentitySize  = 32 // ed25519 public key
	EphemeralSize = 32 // X25519 public key
	NonceSize     = 16
	TimestampSize = 8 // u64 unix nanoseconds
	SignatureSize = 64
	ConfirmSize   = 32 // HMAC-SHA256
	KeySize       = 32 // the shared key K and each session key
)

// Handshake message tags (the first byte of a frame in the clear).
const (
	tagRegisterRequest  = 0x01
	tagRegisterResponse = 0x02
	tagAuthRequest      = 0x03
	tagAuthResponse     = 0x04
	tagHandshakeError   = 0x05
)

// Errors a caller may branch on.
var (
	// ErrNotRegistered means the gateway does not know the client; the
	// client should register.
	ErrNotRegistered = errors.New("gwproto: client is not registered with this gateway")
	// ErrAuthentication is the one error for every failed authentication:
	// bad signature, wrong key, unknown gateway confirmation, or a sealed
	// frame that does not open.
	ErrAuthentication = errors.New("gwproto: authentication failed")
	// ErrStale means a handshake timestamp is too far from the gateway's
	// clock or not newer than the last one accepted (a replay).
	ErrStale = errors.New("gwproto: stale or replayed handshake")
	// ErrMalformed means a frame could not be parsed.
	ErrMalformed = errors.New("gwproto: malformed frame")
	// ErrVersion means the other side speaks another version of the
	// protocol.
	ErrVersion = errors.New("gwproto: unsupported protocol version")
	// ErrRefused means the gateway will not serve a well-formed request,
	// such as a registration past its limits. A gateway's Registry wraps it
	// in an error whose text says why; that text goes to the client.
	ErrRefused = errors.New("gwproto: refused")
)

// ErrorCode is what a gateway tells a client when it refuses a handshake or a
// request.
type ErrorCode uint8

// Error codes.
const (
	CodeNotRegistered  ErrorCode = 1
	CodeAuthentication ErrorCode = 2
	CodeStale          ErrorCode = 3
	CodeMalformed      ErrorCode = 4
	CodeVersion        ErrorCode = 5
	CodeRefused        ErrorCode = 6 // a well-formed request the gateway will not serve
	CodeInternal       ErrorCode = 7
)

func (c ErrorCode) String() string {
	switch c {
	case CodeNotRegistered:
		return "not registered"
	case CodeAuthentication:
		return "authentication failed"
	case CodeStale:
		return "stale or replayed"
	case CodeMalformed:
		return "malformed"
	case CodeVersion:
		return "unsupported version"
	case CodeRefused:
		return "refused"
	case CodeInternal:
		return "internal error"
	}
	return "unknown error"
}

// err maps a code to the sentinel a caller branches on, when there is one.
func (c ErrorCode) err() error {
	switch c {
	case CodeNotRegistered:
		return ErrNotRegistered
	case CodeAuthentication:
		return ErrAuthentication
	case CodeStale:
		return ErrStale
	case CodeMalformed:
		return ErrMalformed
	case CodeVersion:
		return ErrVersion
	case CodeRefused:
		return ErrRefused
	}
	return nil
}

// CodeOf maps an error to the code a gateway should send for it.
func CodeOf(err error) ErrorCode {
	switch {
	case errors.Is(err, ErrNotRegistered):
		return CodeNotRegistered
	case errors.Is(err, ErrStale):
		return CodeStale
	case errors.Is(err, ErrMalformed):
		return CodeMalformed
	case errors.Is(err, ErrVersion):
		return CodeVersion
	case errors.Is(err, ErrAuthentication):
		return CodeAuthentication
	case errors.Is(err, ErrRefused):
		return CodeRefused
	}
	return CodeInternal
}

// RemoteError is an Error frame received from the other side.
type RemoteError struct {
	Code    ErrorCode
	Message string
}

func (e *RemoteError) Error() string {
	if e.Message == "" {
		return "gwproto: gateway says: " + e.Code.String()
	}
	return "gwproto: gateway says: " + e.Code.String() + ": " + e.Message
}

// Unwrap lets errors.Is match the sentinel of the code.
func (e *RemoteError) Unwrap() error { return e.Code.err() }
