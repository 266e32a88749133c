package gwproto

import (
	"fmt"
	"io"

	"github.com/flynn/noise"
	"github.com/gorilla/websocket"
)

// The Noise layer of the handshake: before anything that names the client
// is sent, the client runs Noise_NK_25519_ChaChaPoly_SHA256 with the
// gateway's Noise static key from the topology (its noise_key), in two
// frames:
//
//	hello        0x06 ‖ version u8 ‖ Noise NK message 1 (e ‖ es; empty payload) [48]
//	hello reply  0x07 ‖ Noise NK message 2 (e ‖ ee; empty payload) [48]
//
// with the prologue "peapod-gateway-noise-v2" ‖ version. The request and
// its answer (or a handshake error) then travel as the first Noise
// transport message each way, padded to handshakePadSize, so that a link
// observer sees neither the client's identity nor whether it registers or
// authenticates. The transport keys come from both ephemeral keys (ee) and
// from the gateway's static key (es): only the gateway that holds that key
// reads the request, and a recording of the link stays unreadable when the
// gateway's key is stolen later. The handshake hash (channelBinding) goes
// into every signature and key the handshake makes, which binds them to
// this one channel.
const (
	NoiseKeySize = 32 // an X25519 public key

	tagHello      = 0x06
	tagHelloReply = 0x07

	noiseMessageSize = NoiseKeySize + 16 // e and the tag of an empty payload
	helloSize        = 1 + 1 + noiseMessageSize
	helloReplySize   = 1 + noiseMessageSize
	noiseTagSize     = 16

	// handshakePadSize is the least plaintext of a sealed handshake
	// message: zero bytes after the message fill it, so that requests,
	// answers and short errors all look alike.
	handshakePadSize = 160
	// maxSealedHandshake bounds a sealed handshake frame (a refusal's
	// text is the longest).
	maxSealedHandshake = 1 + 3 + maxErrorText + noiseTagSize
)

var (
	noiseSuite    = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashSHA256)
	noisePrologue = append([]byte("peapod-gateway-noise-v2"), Version)
)

// NoiseKey is a gateway's Noise static key pair; *internal/node.NoiseKey
// implements it.
type NoiseKey interface {
	// Public is the public key, published in the topology.
	Public() [NoiseKeySize]byte
	// Private returns a copy of the private key; the caller clears it.
	Private() []byte
}

// GatewayKeys are the keys a client knows its gateway by, from the
// topology.
type GatewayKeys struct {
	// Identity is the gateway's ed25519 identity key: it signs
	// registrations, and requests are bound to it.
	Identity []byte
	// Noise is the gateway's Noise static public key: the handshake is
	// encrypted to it.
	Noise [NoiseKeySize]byte
}

// channel is the Noise channel of one handshake: it seals and opens the
// request and its answer.
type channel struct {
	ws         *websocket.Conn
	send, recv *noise.CipherState
	binding    []byte // the Noise handshake hash
}

// openChannel runs the client's side of the Noise handshake on ws with the
// gateway whose Noise static key is gw. A gateway that does not hold the
// key's private half fails with ErrAuthentication.
func openChannel(ws *websocket.Conn, gw [NoiseKeySize]byte, rand io.Reader) (*channel, error) {
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: noiseSuite, Pattern: noise.HandshakeNK, Initiator: true,
		Prologue: noisePrologue, PeerStatic: gw[:], Random: rand,
	})
	if err != nil {
		return nil, fmt.Errorf("gwproto: %w", err)
	}
	hello, _, _, err := hs.WriteMessage([]byte{tagHello, Version}, nil)
	if err != nil {
		return nil, fmt.Errorf("gwproto: %w", err)
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, hello); err != nil {
		return nil, fmt.Errorf("gwproto: sending the hello: %w", err)
	}
	b, err := readFrame(ws)
	if err != nil {
		return nil, err
	}
	if len(b) > 0 && b[0] == tagHandshakeError {
		return nil, remoteError(b)
	}
	if len(b) != helloReplySize || b[0] != tagHelloReply {
		return nil, malformed("unexpected hello reply (%d bytes)", len(b))
	}
	_, send, recv, err := hs.ReadMessage(nil, b[1:])
	if err != nil || send == nil {
		return nil, ErrAuthentication
	}
	return &channel{ws: ws, send: send, recv: recv, binding: hs.ChannelBinding()}, nil
}

// acceptChannel runs the gateway's side of the Noise handshake on ws,
// whose first frame, the hello, is b.
func acceptChannel(ws *websocket.Conn, key NoiseKey, rand io.Reader, b []byte) (*channel, error) {
	if len(b) < 2 || b[0] != tagHello {
		if len(b) > 0 && (b[0] == tagRegisterRequest || b[0] == tagAuthRequest) {
			return nil, fmt.Errorf("%w: a handshake in the clear (version 1), this gateway speaks %d with a Noise hello first", ErrVersion, Version)
		}
		return nil, malformed("handshake starts with %d bytes, tag 0x%02x; want a hello", len(b), firstByte(b))
	}
	if b[1] != Version {
		return nil, fmt.Errorf("%w: version %d, this gateway speaks %d", ErrVersion, b[1], Version)
	}
	if len(b) != helloSize {
		return nil, malformed("hello of %d bytes, want %d", len(b), helloSize)
	}
	priv := key.Private()
	defer clear(priv)
	pub := key.Public()
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: noiseSuite, Pattern: noise.HandshakeNK, Prologue: noisePrologue,
		StaticKeypair: noise.DHKey{Private: priv, Public: pub[:]}, Random: rand,
	})
	if err != nil {
		return nil, fmt.Errorf("gwproto: %w", err)
	}
	if _, _, _, err := hs.ReadMessage(nil, b[2:]); err != nil {
		return nil, ErrAuthentication // sealed to another key
	}
	reply, recv, send, err := hs.WriteMessage([]byte{tagHelloReply}, nil)
	if err != nil || send == nil {
		return nil, fmt.Errorf("gwproto: Noise handshake: %v", err)
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, reply); err != nil {
		return nil, fmt.Errorf("gwproto: sending the hello reply: %w", err)
	}
	return &channel{ws: ws, send: send, recv: recv, binding: hs.ChannelBinding()}, nil
}

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// write seals m, padded, as one frame.
func (c *channel) write(m []byte) error {
	plain := make([]byte, max(len(m), handshakePadSize))
	copy(plain, m)
	frame, err := c.send.Encrypt(nil, nil, plain)
	clear(plain)
	if err != nil {
		return fmt.Errorf("gwproto: %w", err)
	}
	if err := c.ws.WriteMessage(websocket.BinaryMessage, frame); err != nil {
		return fmt.Errorf("gwproto: writing: %w", err)
	}
	return nil
}

// read opens the next frame. The plaintext keeps its padding: the parser
// of what it holds checks it.
func (c *channel) read() ([]byte, error) {
	b, err := readFrame(c.ws)
	if err != nil {
		return nil, err
	}
	if len(b) > maxSealedHandshake {
		return nil, malformed("sealed handshake message of %d bytes, longer than %d", len(b), maxSealedHandshake)
	}
	plain, err := c.recv.Decrypt(nil, nil, b)
	if err != nil {
		return nil, ErrAuthentication
	}
	return plain, nil
}

// unpad returns b's first n bytes, once it has checked that b has them and
// that every byte after them is zero.
func unpad(b []byte, n int, what string) ([]byte, error) {
	if len(b) < n {
		return nil, malformed("%s of %d bytes, want %d", what, len(b), n)
	}
	for _, p := range b[n:] {
		if p != 0 {
			return nil, malformed("%s: padding is not zero", what)
		}
	}
	return b[:n], nil
}
