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

// Handshake layouts. The hello and its reply (channel.go) travel in the
// clear; every message below travels sealed in the Noise channel they set
// up, padded with zeros to handshakePadSize (a handshake error also in the
// clear, in place of a hello reply):
//
//	register request  0x01 ‖ version u8 ‖ identity[32] ‖ ephemeral[32] ‖ nonce[16] ‖ timestamp u64 ‖ signature[64]
//	register response 0x02 ‖ ephemeral[32] ‖ nonce[16] ‖ signature[64]
//	auth request      0x03 ‖ version u8 ‖ identity[32] ‖ nonce[16] ‖ timestamp u64 ‖ signature[64]
//	auth response     0x04 ‖ nonce[16] ‖ confirm[32]
//	handshake error   0x05 ‖ code u8 ‖ length u16 ‖ text
//
// A request's signature is made with the client's identity key over
// context ‖ gateway identity ‖ channel binding ‖ the request up to the
// signature. The register response's signature is made with the gateway's
// identity key over context ‖ channel binding ‖ SHA-256(request) ‖
// ephemeral ‖ nonce. The auth response's confirm is HMAC-SHA256(K, context
// ‖ channel binding ‖ SHA-256(request) ‖ nonce). The channel binding is the
// Noise handshake hash (32 bytes).
const (
	registerRequestSize  = 1 + 1 + IdentitySize + EphemeralSize + NonceSize + TimestampSize + SignatureSize
	registerResponseSize = 1 + EphemeralSize + NonceSize + SignatureSize
	authRequestSize      = 1 + 1 + IdentitySize + NonceSize + TimestampSize + SignatureSize
	authResponseSize     = 1 + NonceSize + ConfirmSize
)

var (
	ctxRegisterRequest  = []byte("peapod-gateway-register-v2")
	ctxRegisterResponse = []byte("peapod-gateway-register-response-v2")
	ctxAuthRequest      = []byte("peapod-gateway-auth-v2")
	ctxAuthConfirm      = []byte("peapod-gateway-auth-confirm-v2")
	infoSharedKey       = "peapod-gateway-shared-key-v1"
	infoSession         = "peapod-gateway-session-v2"
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

// readHandshakeReply reads the gateway's sealed answer: a message of the
// given tag and size, or a handshake error.
func readHandshakeReply(ch *channel, tag byte, size int) ([]byte, error) {
	b, err := ch.read()
	if err != nil {
		return nil, err
	}
	if len(b) > 0 && b[0] == tagHandshakeError {
		return nil, remoteError(b)
	}
	if len(b) == 0 || b[0] != tag {
		return nil, malformed("unexpected handshake reply (tag 0x%02x)", firstByte(b))
	}
	return unpad(b, size, "handshake reply")
}

// remoteError decodes a handshake error frame, padded or not.
func remoteError(b []byte) error {
	if len(b) >= 4 {
		if n := 4 + int(binary.BigEndian.Uint16(b[2:4])); len(b) > n {
			var err error
			if b, err = unpad(b, n, "handshake error"); err != nil {
				return err
			}
		}
	}
	e, err := parseError(b[1:])
	if err != nil {
		return err
	}
	return &RemoteError{Code: e.Code, Message: e.Message}
}

func randomNonce(rand io.Reader) ([NonceSize]byte, error) {
	var n [NonceSize]byte
	if _, err := io.ReadFull(rand, n[:]); err != nil {
		return n, fmt.Errorf("gwproto: reading randomness: %w", err)
	}
	return n, nil
}

func signedPayload(context, gateway, binding, msg []byte) []byte {
	p := make([]byte, 0, len(context)+IdentitySize+len(binding)+len(msg))
	p = append(p, context...)
	p = append(p, gateway...)
	p = append(p, binding...)
	return append(p, msg...)
}

// responsePayload is what the gateway signs in a register response.
func responsePayload(binding, req, eph []byte, nonce [NonceSize]byte) []byte {
	reqHash := sha256.Sum256(req)
	p := make([]byte, 0, len(ctxRegisterResponse)+len(binding)+len(reqHash)+len(eph)+NonceSize)
	p = append(p, ctxRegisterResponse...)
	p = append(p, binding...)
	p = append(p, reqHash[:]...)
	p = append(p, eph...)
	return append(p, nonce[:]...)
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

// Register performs a registration on ws, as the client with identity id,
// with the gateway gw. It returns the shared key K, to be kept for later
// Authenticate calls, and the session.
func Register(ctx context.Context, ws *websocket.Conn, id ed25519.PrivateKey, gw GatewayKeys, rand io.Reader, now time.Time) ([KeySize]byte, *Session, error) {
	var zero [KeySize]byte
	defer withDeadline(ctx, ws)()
	ch, err := openChannel(ws, gw.Noise, rand)
	if err != nil {
		return zero, nil, err
	}
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
	req = append(req, ed25519.Sign(id, signedPayload(ctxRegisterRequest, gw.Identity, ch.binding, req))...)
	if err := ch.write(req); err != nil {
		return zero, nil, fmt.Errorf("gwproto: sending registration: %w", err)
	}

	resp, err := readHandshakeReply(ch, tagRegisterResponse, registerResponseSize)
	if err != nil {
		return zero, nil, err
	}
	gwEph := resp[1 : 1+EphemeralSize]
	var gwNonce [NonceSize]byte
	copy(gwNonce[:], resp[1+EphemeralSize:])
	sig := resp[1+EphemeralSize+NonceSize:]
	if len(gw.Identity) != ed25519.PublicKeySize || !ed25519.Verify(gw.Identity, responsePayload(ch.binding, req, gwEph, gwNonce), sig) {
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
	k, err := sharedKey(dh, nonce, gwNonce, id.Public().(ed25519.PublicKey), gw.Identity)
	clear(dh)
	if err != nil {
		return zero, nil, err
	}
	s, err := newSession(ws, k, nonce, gwNonce, ch.binding, true)
	if err != nil {
		return zero, nil, err
	}
	return k, s, nil
}

// Authenticate performs an authentication on ws with the shared key k from an
// earlier registration. ErrNotRegistered (through a *RemoteError) means the
// gateway no longer knows the client and it should register again.
func Authenticate(ctx context.Context, ws *websocket.Conn, id ed25519.PrivateKey, gw GatewayKeys, k [KeySize]byte, rand io.Reader, now time.Time) (*Session, error) {
	defer withDeadline(ctx, ws)()
	ch, err := openChannel(ws, gw.Noise, rand)
	if err != nil {
		return nil, err
	}
	nonce, err := randomNonce(rand)
	if err != nil {
		return nil, err
	}
	req := make([]byte, 0, authRequestSize)
	req = append(req, tagAuthRequest, Version)
	req = append(req, id.Public().(ed25519.PublicKey)...)
	req = append(req, nonce[:]...)
	req = binary.BigEndian.AppendUint64(req, uint64(now.UnixNano()))
	req = append(req, ed25519.Sign(id, signedPayload(ctxAuthRequest, gw.Identity, ch.binding, req))...)
	if err := ch.write(req); err != nil {
		return nil, fmt.Errorf("gwproto: sending authentication: %w", err)
	}
	resp, err := readHandshakeReply(ch, tagAuthResponse, authResponseSize)
	if err != nil {
		return nil, err
	}
	var gwNonce [NonceSize]byte
	copy(gwNonce[:], resp[1:])
	want := authConfirm(k, ch.binding, req, gwNonce)
	if subtle.ConstantTimeCompare(want[:], resp[1+NonceSize:]) != 1 {
		return nil, ErrAuthentication
	}
	return newSession(ws, k, nonce, gwNonce, ch.binding, true)
}

func authConfirm(k [KeySize]byte, binding, req []byte, gwNonce [NonceSize]byte) [ConfirmSize]byte {
	reqHash := sha256.Sum256(req)
	m := hmac.New(sha256.New, k[:])
	m.Write(ctxAuthConfirm)
	m.Write(binding)
	m.Write(reqHash[:])
	m.Write(gwNonce[:])
	var out [ConfirmSize]byte
	m.Sum(out[:0])
	return out
}

// AcceptConfig is what a gateway needs to accept handshakes.
type AcceptConfig struct {
	// Identity is the gateway's ed25519 identity key.
	Identity ed25519.PrivateKey
	// Noise is the gateway's Noise static key, whose public half the
	// topology publishes: clients encrypt their handshake to it.
	Noise    NoiseKey
	Registry Registry
	Rand     io.Reader
	Now      func() time.Time
}

// Accept runs the gateway side of a handshake on ws: a registration or an
// authentication. It returns the client's identity and the session. On
// failure it tells the client why (one opaque reason for every
// authentication failure; sealed once the Noise channel is up) and returns
// the error.
func Accept(ctx context.Context, ws *websocket.Conn, cfg AcceptConfig) (ed25519.PublicKey, *Session, error) {
	defer withDeadline(ctx, ws)()
	b, err := readFrame(ws)
	if err != nil {
		return nil, nil, err
	}
	ch, err := acceptChannel(ws, cfg.Noise, cfg.Rand, b)
	if err != nil {
		ws.WriteMessage(websocket.BinaryMessage, appendError(nil, tagHandshakeError, handshakeError(err)))
		return nil, nil, err
	}
	req, err := ch.read()
	if err != nil {
		return nil, nil, err // the channel failed: nothing can be said in it
	}
	client, s, err := accept(ch, cfg, req)
	if err != nil {
		ch.write(appendError(nil, tagHandshakeError, handshakeError(err)))
		return nil, nil, err
	}
	return client, s, nil
}

// handshakeError is what the gateway tells a client whose handshake failed
// with err: only malformed, version and refused errors say more than
// their code.
func handshakeError(err error) *Error {
	code := CodeOf(err)
	text := ""
	if code == CodeMalformed || code == CodeVersion || code == CodeRefused {
		text = err.Error()
	}
	return &Error{Code: code, Message: text}
}

func checkTimestamp(b []byte, now time.Time) (time.Time, error) {
	ts := time.Unix(0, int64(binary.BigEndian.Uint64(b)))
	if d := ts.Sub(now); d > MaxClockSkew || d < -MaxClockSkew {
		return ts, fmt.Errorf("%w: timestamp %v is %v from the gateway's clock", ErrStale, ts.UTC(), d.Round(time.Second))
	}
	return ts, nil
}

// accept answers the request b, read from ch and still padded.
func accept(ch *channel, cfg AcceptConfig, b []byte) (ed25519.PublicKey, *Session, error) {
	gateway := cfg.Identity.Public().(ed25519.PublicKey)
	if len(b) < 2 {
		return nil, nil, malformed("handshake of %d bytes", len(b))
	}
	if b[0] != tagRegisterRequest && b[0] != tagAuthRequest {
		return nil, nil, malformed("handshake starts with tag 0x%02x", b[0])
	}
	if b[1] != Version {
		return nil, nil, fmt.Errorf("%w: version %d, this gateway speaks %d", ErrVersion, b[1], Version)
	}
	switch b[0] {
	case tagRegisterRequest:
		b, err := unpad(b, registerRequestSize, "registration")
		if err != nil {
			return nil, nil, err
		}
		client := ed25519.PublicKey(b[2 : 2+IdentitySize])
		ephBytes := b[2+IdentitySize : 2+IdentitySize+EphemeralSize]
		var nonce [NonceSize]byte
		copy(nonce[:], b[2+IdentitySize+EphemeralSize:])
		tsOff := 2 + IdentitySize + EphemeralSize + NonceSize
		signed, sig := b[:tsOff+TimestampSize], b[tsOff+TimestampSize:]
		if !ed25519.Verify(client, signedPayload(ctxRegisterRequest, gateway, ch.binding, signed), sig) {
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
		clear(dh)
		if err != nil {
			return nil, nil, err
		}
		if err := cfg.Registry.Register(client, k, ts); err != nil {
			return nil, nil, err
		}
		resp := make([]byte, 0, registerResponseSize)
		resp = append(resp, tagRegisterResponse)
		resp = append(resp, eph.PublicKey().Bytes()...)
		resp = append(resp, gwNonce[:]...)
		resp = append(resp, ed25519.Sign(cfg.Identity, responsePayload(ch.binding, b, eph.PublicKey().Bytes(), gwNonce))...)
		if err := ch.write(resp); err != nil {
			return nil, nil, fmt.Errorf("gwproto: sending registration response: %w", err)
		}
		s, err := newSession(ch.ws, k, nonce, gwNonce, ch.binding, false)
		return bytesClone(client), s, err

	default: // tagAuthRequest
		b, err := unpad(b, authRequestSize, "authentication")
		if err != nil {
			return nil, nil, err
		}
		client := ed25519.PublicKey(b[2 : 2+IdentitySize])
		var nonce [NonceSize]byte
		copy(nonce[:], b[2+IdentitySize:])
		tsOff := 2 + IdentitySize + NonceSize
		signed, sig := b[:tsOff+TimestampSize], b[tsOff+TimestampSize:]
		if !ed25519.Verify(client, signedPayload(ctxAuthRequest, gateway, ch.binding, signed), sig) {
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
		confirm := authConfirm(k, ch.binding, b, gwNonce)
		resp := append(append([]byte{tagAuthResponse}, gwNonce[:]...), confirm[:]...)
		if err := ch.write(resp); err != nil {
			return nil, nil, fmt.Errorf("gwproto: sending authentication response: %w", err)
		}
		s, err := newSession(ch.ws, k, nonce, gwNonce, ch.binding, false)
		return bytesClone(client), s, err
	}
}

func bytesClone(b []byte) ed25519.PublicKey { return append(ed25519.PublicKey(nil), b...) }
