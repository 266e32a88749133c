package gwproto

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gorilla/websocket"
)

// Handshake layouts (all in the clear, one binary WebSocket frame each):
//
//	register request  0x01 ‖ version u8 ‖ identity[32] ‖ ephemeral[32] ‖ nonce[16] ‖ timestamp u64 ‖ signature[64]
//	register response 0x02 ‖ ephemeral[32] ‖ nonce[16] ‖ signature[64]
//	auth request      0x03 ‖ version u8 ‖ identity[32] ‖ nonce[16] ‖ timestamp u64 ‖ signature[64]
//	auth response     0x04 ‖ nonce[16] ‖ confirm[32]
//	handshake error   0x05 ‖ code u8 ‖ length u16 ‖ text
//
// A request's signature is made with the client's identity key over
// context ‖ gateway identity ‖ the request up to the signature. The register
// response's signature is made with the gateway's identity key over
// context ‖ SHA-256(request) ‖ ephemeral ‖ nonce. The auth response's confirm
// is HMAC-SHA256(K, context ‖ SHA-256(request) ‖ nonce).
const (
	registerRequestSize  = 1 + 1 + IdentitySize + EphemeralSize + NonceSize + TimestampSize + SignatureSize
	registerResponseSize = 1 + EphemeralSize + NonceSize + SignatureSize
	authRequestSize      = 1 + 1 + IdentitySize + NonceSize + TimestampSize + SignatureSize
	authResponseSize     = 1 + NonceSize + ConfirmSize
)

var (
	ctxRegisterRequest  = []byte("peapod-gateway-register-v1")
	ctxRegisterResponse = []byte("peapod-gateway-register-response-v1")
	ctxAuthRequest      = []byte("peapod-gateway-auth-v1")
	ctxAuthConfirm      = []byte("peapod-gateway-auth-confirm-v1")
	infoSharedKey       = "peapod-gateway-shared-key-v1"
	infoSession         = "peapod-gateway-session-v1"
)

// Registry is the gateway's record of registered clients. Implementations
// must be safe for concurrent use and make each accepted timestamp durable
// before returning, so that a restart does not reopen a replay window.
type Registry interface {
	// Register records key as the shared key of client, unless ts is not
	// later than a timestamp already accepted from client (ErrStale), or
	// the gateway will not take the client (an error wrapping ErrRefused,
	// whose text is sent to the client: it must say why and hold nothing
	// secret).
	Register(client ed25519.PublicKey, key [KeySize]byte, ts time.Time) error
	// Authenticate returns the shared key of client and records ts, unless
	// the client is unknown (ErrNotRegistered) or ts is not later than a
	// timestamp already accepted from it (ErrStale).
	Authenticate(client ed25519.PublicKey, ts time.Time) ([KeySize]byte, error)
}

func withDeadline(ctx context.Context, ws *websocket.Conn) func() {
	if d, ok := ctx.Deadline(); ok {
		ws.SetReadDeadline(d)
		ws.SetWriteDeadline(d)
	}
	// When ctx ends early, close the connection to unblock a pending read or
	// write. net.Conn.Close is safe from another goroutine; gorilla's
	// deadline setters are not, so they are only called from this one.
	stop := context.AfterFunc(ctx, func() { ws.UnderlyingConn().Close() })
	return func() {
		stop()
		ws.SetReadDeadline(time.Time{})
		ws.SetWriteDeadline(time.Time{})
	}
}

func readFrame(ws *websocket.Conn) ([]byte, error) {
	kind, b, err := ws.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("gwproto: reading: %w", err)
	}
	if kind != websocket.BinaryMessage {
		return nil, malformed("a text frame; the protocol uses binary frames")
	}
	return b, nil
}

func readHandshakeReply(ws *websocket.Conn, tag byte, size int) ([]byte, error) {
	b, err := readFrame(ws)
	if err != nil {
		return nil, err
	}
	if len(b) > 0 && b[0] == tagHandshakeError {
		e, err := parseError(b[1:])
		if err != nil {
			return nil, err
		}
		return nil, &RemoteError{Code: e.Code, Message: e.Message}
	}
	if len(b) != size || b[0] != tag {
		return nil, malformed("unexpected handshake reply (%d bytes)", len(b))
	}
	return b, nil
}

func randomNonce(rand io.Reader) ([NonceSize]byte, error) {
	var n [NonceSize]byte
	if _, err := io.ReadFull(rand, n[:]); err != nil {
		return n, fmt.Errorf("gwproto: reading randomness: %w", err)
	}
	return n, nil
}

func signedPayload(context []byte, gateway ed25519.PublicKey, msg []byte) []byte {
	p := make([]byte, 0, len(context)+IdentitySize+len(msg))
	p = append(p, context...)
	p = append(p, gateway...)
	return append(p, msg...)
}

// sharedKey derives K from the registration's Diffie-Hellman secret.
func sharedKey(dh []byte, clientNonce, gatewayNonce [NonceSize]byte, client, gateway ed25519.PublicKey) ([KeySize]byte, error) {
	var k [KeySize]byte
	salt := append(clientNonce[:], gatewayNonce[:]...)
	info := infoSharedKey + string(client) + string(gateway)
	out, err := hkdf.Key(sha256.New, dh, salt, info, KeySize)
	if err != nil {
		return k, fmt.Errorf("gwproto: %w", err)
	}
	copy(k[:], out)
	return k, nil
}

// Register performs a registration on ws, as the client with identity id, with
// the gateway whose identity is gateway. It returns the shared key K, to be
// kept for later Authenticate calls, and the session.
func Register(ctx context.Context, ws *websocket.Conn, id ed25519.PrivateKey, gateway ed25519.PublicKey, rand io.Reader, now time.Time) ([KeySize]byte, *Session, error) {
	var zero [KeySize]byte
	defer withDeadline(ctx, ws)()
	eph, err := ecdh.X25519().GenerateKey(rand)
	if err != nil {
		return zero, nil, fmt.Errorf("gwproto: %w", err)
	}
	nonce, err := randomNonce(rand)
	if err != nil {
		return zero, nil, err
	}
	req := make([]byte, 0, registerRequestSize)
	req = append(req, tagRegisterRequest, Version)
	req = append(req, id.Public().(ed25519.PublicKey)...)
	req = append(req, eph.PublicKey().Bytes()...)
	req = append(req, nonce[:]...)
	req = binary.BigEndian.AppendUint64(req, uint64(now.UnixNano()))
	req = append(req, ed25519.Sign(id, signedPayload(ctxRegisterRequest, gateway, req))...)
	if err := ws.WriteMessage(websocket.BinaryMessage, req); err != nil {
		return zero, nil, fmt.Errorf("gwproto: sending registration: %w", err)
	}

	resp, err := readHandshakeReply(ws, tagRegisterResponse, registerResponseSize)
	if err != nil {
		return zero, nil, err
	}
	gwEph := resp[1 : 1+EphemeralSize]
	var gwNonce [NonceSize]byte
	copy(gwNonce[:], resp[1+EphemeralSize:])
	sig := resp[1+EphemeralSize+NonceSize:]
	reqHash := sha256.Sum256(req)
	signed := append(append(append(append([]byte{}, ctxRegisterResponse...), reqHash[:]...), gwEph...), gwNonce[:]...)
	if !ed25519.Verify(gateway, signed, sig) {
		return zero, nil, ErrAuthentication
	}
	peer, err := ecdh.X25519().NewPublicKey(gwEph)
	if err != nil {
		return zero, nil, ErrAuthentication
	}
	dh, err := eph.ECDH(peer)
	if err != nil {
		return zero, nil, ErrAuthentication
	}
	k, err := sharedKey(dh, nonce, gwNonce, id.Public().(ed25519.PublicKey), gateway)
	if err != nil {
		return zero, nil, err
	}
	s, err := newSession(ws, k, nonce, gwNonce, true)
	if err != nil {
		return zero, nil, err
	}
	return k, s, nil
}

// Authenticate performs an authentication on ws with the shared key k from an
// earlier registration. ErrNotRegistered (through a *RemoteError) means the
// gateway no longer knows the client and it should register again.
func Authenticate(ctx context.Context, ws *websocket.Conn, id ed25519.PrivateKey, gateway ed25519.PublicKey, k [KeySize]byte, rand io.Reader, now time.Time) (*Session, error) {
	defer withDeadline(ctx, ws)()
	nonce, err := randomNonce(rand)
	if err != nil {
		return nil, err
	}
	req := make([]byte, 0, authRequestSize)
	req = append(req, tagAuthRequest, Version)
	req = append(req, id.Public().(ed25519.PublicKey)...)
	req = append(req, nonce[:]...)
	req = binary.BigEndian.AppendUint64(req, uint64(now.UnixNano()))
	req = append(req, ed25519.Sign(id, signedPayload(ctxAuthRequest, gateway, req))...)
	if err := ws.WriteMessage(websocket.BinaryMessage, req); err != nil {
		return nil, fmt.Errorf("gwproto: sending authentication: %w", err)
	}
	resp, err := readHandshakeReply(ws, tagAuthResponse, authResponseSize)
	if err != nil {
		return nil, err
	}
	var gwNonce [NonceSize]byte
	copy(gwNonce[:], resp[1:])
	want := authConfirm(k, req, gwNonce)
	if subtle.ConstantTimeCompare(want[:], resp[1+NonceSize:]) != 1 {
		return nil, ErrAuthentication
	}
	return newSession(ws, k, nonce, gwNonce, true)
}

func authConfirm(k [KeySize]byte, req []byte, gwNonce [NonceSize]byte) [ConfirmSize]byte {
	reqHash := sha256.Sum256(req)
	m := hmac.New(sha256.New, k[:])
	m.Write(ctxAuthConfirm)
	m.Write(reqHash[:])
	m.Write(gwNonce[:])
	var out [ConfirmSize]byte
	m.Sum(out[:0])
	return out
}

// AcceptConfig is what a gateway needs to accept handshakes.
type AcceptConfig struct {
	Identity ed25519.PrivateKey
	Registry Registry
	Rand     io.Reader
	Now      func() time.Time
}

// Accept runs the gateway side of a handshake on ws: a registration or an
// authentication. It returns the client's identity and the session. On
// failure it tells the client why (one opaque reason for every
// authentication failure) and returns the error.
func Accept(ctx context.Context, ws *websocket.Conn, cfg AcceptConfig) (ed25519.PublicKey, *Session, error) {
	defer withDeadline(ctx, ws)()
	b, err := readFrame(ws)
	if err != nil {
		return nil, nil, err
	}
	client, s, err := accept(ws, cfg, b)
	if err != nil {
		code := CodeOf(err)
		text := ""
		if code == CodeMalformed || code == CodeRefused {
			text = err.Error()
		}
		ws.WriteMessage(websocket.BinaryMessage, appendError(nil, tagHandshakeError, &Error{Code: code, Message: text}))
		return nil, nil, err
	}
	return client, s, nil
}

func checkTimestamp(b []byte, now time.Time) (time.Time, error) {
	ts := time.Unix(0, int64(binary.BigEndian.Uint64(b)))
	if d := ts.Sub(now); d > MaxClockSkew || d < -MaxClockSkew {
		return ts, fmt.Errorf("%w: timestamp %v is %v from the gateway's clock", ErrStale, ts.UTC(), d.Round(time.Second))
	}
	return ts, nil
}

func accept(ws *websocket.Conn, cfg AcceptConfig, b []byte) (ed25519.PublicKey, *Session, error) {
	gateway := cfg.Identity.Public().(ed25519.PublicKey)
	if len(b) < 2 {
		return nil, nil, malformed("handshake of %d bytes", len(b))
	}
	if b[0] != tagRegisterRequest && b[0] != tagAuthRequest {
		return nil, nil, malformed("handshake starts with tag 0x%02x", b[0])
	}
	if b[1] != Version {
		return nil, nil, fmt.Errorf("%w: version %d, this gateway speaks %d", ErrMalformed, b[1], Version)
	}
	switch b[0] {
	case tagRegisterRequest:
		if len(b) != registerRequestSize {
			return nil, nil, malformed("registration of %d bytes, want %d", len(b), registerRequestSize)
		}
		client := ed25519.PublicKey(b[2 : 2+IdentitySize])
		ephBytes := b[2+IdentitySize : 2+IdentitySize+EphemeralSize]
		var nonce [NonceSize]byte
		copy(nonce[:], b[2+IdentitySize+EphemeralSize:])
		tsOff := 2 + IdentitySize + EphemeralSize + NonceSize
		signed, sig := b[:tsOff+TimestampSize], b[tsOff+TimestampSize:]
		if !ed25519.Verify(client, signedPayload(ctxRegisterRequest, gateway, signed), sig) {
			return nil, nil, ErrAuthentication
		}
		ts, err := checkTimestamp(b[tsOff:], cfg.Now())
		if err != nil {
			return nil, nil, err
		}
		peer, err := ecdh.X25519().NewPublicKey(ephBytes)
		if err != nil {
			return nil, nil, ErrAuthentication
		}
		eph, err := ecdh.X25519().GenerateKey(cfg.Rand)
		if err != nil {
			return nil, nil, fmt.Errorf("gwproto: %w", err)
		}
		dh, err := eph.ECDH(peer)
		if err != nil {
			return nil, nil, ErrAuthentication
		}
		gwNonce, err := randomNonce(cfg.Rand)
		if err != nil {
			return nil, nil, err
		}
		k, err := sharedKey(dh, nonce, gwNonce, client, gateway)
		if err != nil {
			return nil, nil, err
		}
		if err := cfg.Registry.Register(client, k, ts); err != nil {
			return nil, nil, err
		}
		reqHash := sha256.Sum256(b)
		resp := make([]byte, 0, registerResponseSize)
		resp = append(resp, tagRegisterResponse)
		resp = append(resp, eph.PublicKey().Bytes()...)
		resp = append(resp, gwNonce[:]...)
		toSign := append(append(append(append([]byte{}, ctxRegisterResponse...), reqHash[:]...), eph.PublicKey().Bytes()...), gwNonce[:]...)
		resp = append(resp, ed25519.Sign(cfg.Identity, toSign)...)
		if err := ws.WriteMessage(websocket.BinaryMessage, resp); err != nil {
			return nil, nil, fmt.Errorf("gwproto: sending registration response: %w", err)
		}
		s, err := newSession(ws, k, nonce, gwNonce, false)
		return bytesClone(client), s, err

	default: // tagAuthRequest
		if len(b) != authRequestSize {
			return nil, nil, malformed("authentication of %d bytes, want %d", len(b), authRequestSize)
		}
		client := ed25519.PublicKey(b[2 : 2+IdentitySize])
		var nonce [NonceSize]byte
		copy(nonce[:], b[2+IdentitySize:])
		tsOff := 2 + IdentitySize + NonceSize
		signed, sig := b[:tsOff+TimestampSize], b[tsOff+TimestampSize:]
		if !ed25519.Verify(client, signedPayload(ctxAuthRequest, gateway, signed), sig) {
			return nil, nil, ErrAuthentication
		}
		ts, err := checkTimestamp(b[tsOff:], cfg.Now())
		if err != nil {
			return nil, nil, err
		}
		k, err := cfg.Registry.Authenticate(client, ts)
		if err != nil {
			if !errors.Is(err, ErrNotRegistered) && !errors.Is(err, ErrStale) {
				return nil, nil, fmt.Errorf("gwproto: registry: %w", err)
			}
			return nil, nil, err
		}
		gwNonce, err := randomNonce(cfg.Rand)
		if err != nil {
			return nil, nil, err
		}
		confirm := authConfirm(k, b, gwNonce)
		resp := append(append([]byte{tagAuthResponse}, gwNonce[:]...), confirm[:]...)
		if err := ws.WriteMessage(websocket.BinaryMessage, resp); err != nil {
			return nil, nil, fmt.Errorf("gwproto: sending authentication response: %w", err)
		}
		s, err := newSession(ws, k, nonce, gwNonce, false)
		return bytesClone(client), s, err
	}
}

func bytesClone(b []byte) ed25519.PublicKey { return append(ed25519.PublicKey(nil), b...) }
