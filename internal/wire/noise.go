package wire

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/flynn/noise"
)

// The Noise layer of a link, as Nym's (common/nymnoise): a handshake
// Noise_XKpsk3_25519_AESGCM_SHA256 in which the initiator (the node that
// dials) knows the responder's static key from the topology and sends its
// own, encrypted, in the third message; then the byte stream of frames,
// cut into Noise transport messages. Every Noise message travels in a
// noise frame:
//
//	version u8 (1) ‖ pattern u8 (1, XKpsk3) ‖ type u8 (0 handshake, 1 data) ‖ length u16 ‖ reserved[3] (zero) ‖ message[length]
//
// The pre-shared key is Nym's: SHA-256("NYMTECH_NOISE_dQw4w9WgXcQ" ‖
// responder's static key). It is not secret; it binds the handshake to the
// responder's key and the protocol version. There is no prologue, and the
// handshake messages carry empty payloads.
const (
	// NoiseKeySize is the size of a Noise static key, private or public.
	NoiseKeySize = 32
	// NoiseHeaderSize is the size of a noise frame's header.
	NoiseHeaderSize = 8
	// NoiseVersion is the noise frame version peapod speaks (Nym's
	// NoiseVersion::V1).
	NoiseVersion uint8 = 1
	// NoisePatternXKpsk3 is the pattern byte of Noise_XKpsk3 (Nym's
	// NoisePattern::XKpsk3); the only pattern a link accepts.
	NoisePatternXKpsk3 uint8 = 1

	noiseTypeHandshake uint8 = 0
	noiseTypeData      uint8 = 1

	// MaxNoiseMessage is the longest Noise message a noise frame carries.
	MaxNoiseMessage = noise.MaxMsgLen
	// noiseTagSize is the AEAD tag of every transport message.
	noiseTagSize = 16
	// maxNoisePlaintext is the most stream bytes one data message carries.
	maxNoisePlaintext = MaxNoiseMessage - noiseTagSize
	// maxHandshakeMessage bounds a handshake message (Nym's
	// HANDSHAKE_MAX_LEN); XK's longest is 64 bytes.
	maxHandshakeMessage = 1024
)

// noisePSKPrefix is Nym's NOISE_PSK_PREFIX.
var noisePSKPrefix = []byte("NYMTECH_NOISE_dQw4w9WgXcQ")

var noiseSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherAESGCM, noise.HashSHA256)

// StaticKey is a node's Noise static key pair: an X25519 key whose public
// half the topology publishes as the node's noise_key.
// *internal/node.NoiseKey implements it.
type StaticKey interface {
	// Public is the public key.
	Public() [NoiseKeySize]byte
	// Private returns a copy of the private key; the caller clears it.
	Private() []byte
}

// Peers says which nodes a node's links may reach and accept: the nodes of
// the current topology around the node's layer. Implementations must be
// safe for concurrent use. All but AwaitPeer answer at once (no I/O): a
// Server asks on every connection, a Pool on every dial.
type Peers interface {
	// PeerKey returns the Noise static key of the node listening at addr,
	// and false when addr is no node this node may send to.
	PeerKey(addr netip.AddrPort) ([NoiseKeySize]byte, bool)
	// AcceptsAddr reports whether ip is the address of a node allowed to
	// send to this node. It is asked before anything is read or allocated
	// for a connection: a connection from an address it does not accept
	// gets only the few handshake slots MaxUnlistedHandshakes allows.
	AcceptsAddr(ip netip.Addr) bool
	// AcceptsPeer reports whether the node whose Noise static key is key,
	// connecting from ip, may send to this node.
	AcceptsPeer(ip netip.Addr, key [NoiseKeySize]byte) bool
	// AwaitPeer answers as AcceptsPeer, except that before it answers no
	// it may look at a newer topology (one made since the call began, so
	// that a node that joined a moment ago is let in), waiting for at most
	// as long as ctx allows. It is asked once a handshake has proved that
	// the peer holds key's private half.
	AwaitPeer(ctx context.Context, ip netip.Addr, key [NoiseKeySize]byte) bool
}

// DefaultHandshakeTimeout bounds a Noise handshake.
const DefaultHandshakeTimeout = 5 * time.Second

// NoiseConfig secures a [Server]'s or a [Pool]'s links with Noise.
type NoiseConfig struct {
	// Key is this node's static key. Required.
	Key StaticKey
	// Peers says whom the links may reach and accept. Required.
	Peers Peers
	// HandshakeTimeout bounds each handshake. Default
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
}

func (c *NoiseConfig) applyDefaults() error {
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	switch {
	case c.Key == nil || c.Peers == nil:
		return errors.New("wire: NoiseConfig.Key and NoiseConfig.Peers are required")
	case c.HandshakeTimeout < 0:
		return fmt.Errorf("wire: NoiseConfig.HandshakeTimeout %s is negative", c.HandshakeTimeout)
	}
	return nil
}

// Errors of the Noise layer that callers branch on.
var (
	// ErrNoiseAuthentication is the one error for every message that fails
	// authentication: a handshake message that does not decrypt (a peer
	// that does not hold the key it claims, or expects another), or a data
	// message that was altered, injected, replayed or dropped.
	ErrNoiseAuthentication = errors.New("wire: Noise authentication failed")
	// ErrPeerRefused means the handshake succeeded but the peer's key is
	// not one this node accepts links from.
	ErrPeerRefused = errors.New("wire: peer's key is not in the topology's previous layer")
)

// The fields a HeaderError can name in a noise frame header.
const (
	FieldNoiseVersion  = "noise version"
	FieldNoisePattern  = "noise pattern"
	FieldNoiseType     = "noise message type"
	FieldNoiseReserved = "noise reserved byte"
)

// noiseHeader is a decoded noise frame header.
type noiseHeader struct {
	typ uint8
	len int
}

// appendNoiseHeader appends the header of an n-byte message of type typ.
func appendNoiseHeader(dst []byte, typ uint8, n int) []byte {
	dst = append(dst, NoiseVersion, NoisePatternXKpsk3, typ)
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	return append(dst, 0, 0, 0)
}

// parseNoiseHeader decodes a noise frame header of type want. Every field
// is strict: a version, pattern or type it does not know, or a reserved
// byte that is not zero, is a *HeaderError.
func parseNoiseHeader(b []byte, want uint8) (noiseHeader, error) {
	switch {
	case len(b) < NoiseHeaderSize:
		return noiseHeader{}, fmt.Errorf("wire: noise header is %d bytes, want %d", len(b), NoiseHeaderSize)
	case b[0] != NoiseVersion:
		return noiseHeader{}, &HeaderError{Field: FieldNoiseVersion, Value: b[0]}
	case b[1] != NoisePatternXKpsk3:
		return noiseHeader{}, &HeaderError{Field: FieldNoisePattern, Value: b[1]}
	case b[2] != want:
		return noiseHeader{}, &HeaderError{Field: FieldNoiseType, Value: b[2]}
	}
	for _, r := range b[5:NoiseHeaderSize] {
		if r != 0 {
			return noiseHeader{}, &HeaderError{Field: FieldNoiseReserved, Value: r}
		}
	}
	return noiseHeader{typ: b[2], len: int(binary.BigEndian.Uint16(b[3:5]))}, nil
}

// noisePSK is Nym's pre-shared key for a responder with static key pub.
func noisePSK(pub [NoiseKeySize]byte) []byte {
	h := sha256.New()
	h.Write(noisePSKPrefix)
	h.Write(pub[:])
	return h.Sum(nil)
}

// NoiseConn is a link connection secured with Noise: it implements
// net.Conn, with Read and Write carrying the frame stream through Noise
// transport messages, and the rest passed to the TCP connection it wraps.
// One goroutine may Read while another Writes; neither may be called from
// two goroutines at once. After a Read error other than a timeout, or any
// Write error, the connection is unusable: close it.
type NoiseConn struct {
	net.Conn
	peer       [NoiseKeySize]byte
	send, recv *noise.CipherState

	br    *bufio.Reader // made after the handshake
	plain []byte        // decrypted and not yet read, in pbuf
	pbuf  []byte
	rerr  error

	wbuf []byte
	werr error
}

// PeerKey is the static key the peer proved it holds.
func (nc *NoiseConn) PeerKey() [NoiseKeySize]byte { return nc.peer }

// Initiate runs the initiator's side of the handshake on c, as the node
// with key local, with the node whose static key is remote. It fails with
// ErrNoiseAuthentication when the responder does not hold remote's private
// half, and with the connection's error when it ends or deadline passes
// first (a zero deadline sets none).
func Initiate(c net.Conn, local StaticKey, remote [NoiseKeySize]byte, deadline time.Time) (*NoiseConn, error) {
	return handshake(c, local, &remote, deadline)
}

// Respond runs the responder's side of the handshake on c as the node with
// key local. The peer's key is then NoiseConn.PeerKey; Respond does not
// judge it. Errors are as Initiate's, and a *HeaderError for a noise frame
// header it refuses.
func Respond(c net.Conn, local StaticKey, deadline time.Time) (*NoiseConn, error) {
	return handshake(c, local, nil, deadline)
}

// handshake runs either side: the initiator's when remote is set.
func handshake(c net.Conn, local StaticKey, remote *[NoiseKeySize]byte, deadline time.Time) (*NoiseConn, error) {
	if err := c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	priv := local.Private()
	defer clear(priv)
	pub := local.Public()
	cfg := noise.Config{
		CipherSuite:           noiseSuite,
		Pattern:               noise.HandshakeXK,
		Initiator:             remote != nil,
		PresharedKeyPlacement: 3,
		StaticKeypair:         noise.DHKey{Private: priv, Public: pub[:]},
	}
	if remote != nil {
		cfg.PeerStatic = remote[:]
		cfg.PresharedKey = noisePSK(*remote)
	} else {
		cfg.PresharedKey = noisePSK(pub)
	}
	hs, err := noise.NewHandshakeState(cfg)
	if err != nil {
		return nil, fmt.Errorf("wire: %w", err)
	}
	buf := make([]byte, 0, NoiseHeaderSize+maxHandshakeMessage)
	var cs1, cs2 *noise.CipherState
	for write := remote != nil; cs1 == nil; write = !write {
		if write {
			buf = appendNoiseHeader(buf[:0], noiseTypeHandshake, 0)
			if buf, cs1, cs2, err = hs.WriteMessage(buf, nil); err != nil {
				return nil, fmt.Errorf("wire: %w", err)
			}
			binary.BigEndian.PutUint16(buf[3:5], uint16(len(buf)-NoiseHeaderSize))
			if _, err := c.Write(buf); err != nil {
				return nil, fmt.Errorf("wire: Noise handshake: %w", err)
			}
			continue
		}
		msg, err := readHandshakeMessage(c, buf[:cap(buf)])
		if err != nil {
			return nil, err
		}
		if _, cs1, cs2, err = hs.ReadMessage(nil, msg); err != nil {
			return nil, ErrNoiseAuthentication
		}
	}
	nc := &NoiseConn{Conn: c}
	if remote != nil {
		nc.peer, nc.send, nc.recv = *remote, cs1, cs2
	} else {
		copy(nc.peer[:], hs.PeerStatic())
		nc.send, nc.recv = cs2, cs1
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return nc, nil
}

// readHandshakeMessage reads one handshake frame into buf, exactly: no
// byte past it, which may be the first of the data stream.
func readHandshakeMessage(c net.Conn, buf []byte) ([]byte, error) {
	hb := buf[:NoiseHeaderSize]
	if _, err := io.ReadFull(c, hb); err != nil {
		return nil, fmt.Errorf("wire: Noise handshake: %w", eofIsUnexpected(err))
	}
	h, err := parseNoiseHeader(hb, noiseTypeHandshake)
	if err != nil {
		return nil, err
	}
	if h.len > maxHandshakeMessage {
		return nil, fmt.Errorf("wire: Noise handshake message of %d bytes, longer than %d", h.len, maxHandshakeMessage)
	}
	msg := buf[NoiseHeaderSize : NoiseHeaderSize+h.len]
	if _, err := io.ReadFull(c, msg); err != nil {
		return nil, fmt.Errorf("wire: Noise handshake: %w", eofIsUnexpected(err))
	}
	return msg, nil
}

func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Read reads stream bytes from the next data messages.
func (nc *NoiseConn) Read(p []byte) (int, error) {
	for len(nc.plain) == 0 {
		if nc.rerr != nil {
			return 0, nc.rerr
		}
		if err := nc.readMessage(); err != nil {
			return 0, err
		}
	}
	n := copy(p, nc.plain)
	nc.plain = nc.plain[n:]
	return n, nil
}

// readMessage reads and decrypts the next data message into nc.plain. It
// consumes nothing until the whole message has arrived, so a timeout
// leaves the stream usable; any other failure is kept in nc.rerr.
func (nc *NoiseConn) readMessage() error {
	if nc.br == nil {
		nc.br = bufio.NewReaderSize(nc.Conn, NoiseHeaderSize+MaxNoiseMessage)
		nc.pbuf = make([]byte, 0, maxNoisePlaintext)
	}
	hb, err := nc.br.Peek(NoiseHeaderSize)
	if err == nil {
		var h noiseHeader
		if h, err = parseNoiseHeader(hb, noiseTypeData); err != nil {
			nc.rerr = err
			return err
		}
		var msg []byte
		if msg, err = nc.br.Peek(NoiseHeaderSize + h.len); err == nil {
			plain, derr := nc.recv.Decrypt(nc.pbuf[:0], nil, msg[NoiseHeaderSize:])
			if derr != nil {
				nc.rerr = ErrNoiseAuthentication
				return nc.rerr
			}
			nc.br.Discard(NoiseHeaderSize + h.len)
			nc.plain = plain
			return nil
		}
	}
	if errors.Is(err, io.EOF) && nc.br.Buffered() > 0 {
		err = io.ErrUnexpectedEOF
	}
	if !isTimeout(err) {
		nc.rerr = err // a timeout loses nothing: the bytes stay buffered
	}
	return err
}

// Write sends p in data messages of at most MaxNoiseMessage bytes each.
func (nc *NoiseConn) Write(p []byte) (int, error) {
	if nc.werr != nil {
		return 0, nc.werr
	}
	if nc.wbuf == nil {
		nc.wbuf = make([]byte, 0, NoiseHeaderSize+MaxNoiseMessage)
	}
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxNoisePlaintext)]
		b := appendNoiseHeader(nc.wbuf[:0], noiseTypeData, len(chunk)+noiseTagSize)
		b, err := nc.send.Encrypt(b, nil, chunk)
		if err == nil {
			_, err = nc.Conn.Write(b)
		}
		if err != nil {
			nc.werr = err
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
