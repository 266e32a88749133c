package gwproto

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/crypto/chacha20poly1305"
)

// Session is an authenticated connection. Every frame is
// ChaCha20-Poly1305(session key of its direction, nonce = 4 zero bytes ‖
// frame counter u64, plaintext = one message), with counters starting at 0.
//
// Send may be called from several goroutines; Receive from one goroutine at a
// time. Close may be called at any time, from any goroutine.
type Session struct {
	ws *websocket.Conn

	wmu     sync.Mutex
	send    cipher.AEAD
	sendSeq uint64
	sendBuf []byte

	recv    cipher.AEAD
	recvSeq uint64
	recvBuf []byte

	closeOnce    sync.Once
	writeTimeout atomic.Int64 // nanoseconds; 0 = none
}

// DefaultWriteTimeout bounds each Send unless SetWriteTimeout changes it.
const DefaultWriteTimeout = 10 * time.Second

// newSession derives the session keys from K, both nonces and the Noise
// channel's binding.
func newSession(ws *websocket.Conn, k [KeySize]byte, clientNonce, gatewayNonce [NonceSize]byte, binding []byte, isClient bool) (*Session, error) {
	salt := append(append(clientNonce[:], gatewayNonce[:]...), binding...)
	keys, err := hkdf.Key(sha256.New, k[:], salt, infoSession, 2*KeySize)
	if err != nil {
		return nil, fmt.Errorf("gwproto: %w", err)
	}
	c2g, err := chacha20poly1305.New(keys[:KeySize])
	if err != nil {
		return nil, fmt.Errorf("gwproto: %w", err)
	}
	g2c, err := chacha20poly1305.New(keys[KeySize:])
	if err != nil {
		return nil, fmt.Errorf("gwproto: %w", err)
	}
	clear(keys)
	ws.SetReadLimit(MaxFrameSize)
	s := &Session{ws: ws}
	s.writeTimeout.Store(int64(DefaultWriteTimeout))
	if isClient {
		s.send, s.recv = c2g, g2c
	} else {
		s.send, s.recv = g2c, c2g
	}
	return s, nil
}

func seqNonce(seq uint64) [chacha20poly1305.NonceSize]byte {
	var n [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(n[4:], seq)
	return n
}

// Send seals m and writes it as one frame.
func (s *Session) Send(m Message) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	plain := m.appendTo(s.sendBuf[:0])
	nonce := seqNonce(s.sendSeq)
	// Seal in place: plaintext and ciphertext share the buffer.
	frame := s.send.Seal(plain[:0], nonce[:], plain, nil)
	s.sendBuf = frame[:0]
	if d := time.Duration(s.writeTimeout.Load()); d > 0 {
		s.ws.SetWriteDeadline(time.Now().Add(d))
	}
	if err := s.ws.WriteMessage(websocket.BinaryMessage, frame); err != nil {
		return fmt.Errorf("gwproto: writing: %w", err)
	}
	s.sendSeq++
	return nil
}

// SetWriteTimeout bounds each later Send (0: no bound).
func (s *Session) SetWriteTimeout(d time.Duration) { s.writeTimeout.Store(int64(d)) }

// SetReadDeadline bounds the next Receive calls.
func (s *Session) SetReadDeadline(t time.Time) error { return s.ws.SetReadDeadline(t) }

// Receive reads, opens and parses the next frame. Slices in the message stay
// valid until the next Receive. A frame that does not open is
// ErrAuthentication; the session is then unusable and should be closed.
func (s *Session) Receive() (Message, error) {
	kind, r, err := s.ws.NextReader()
	if err != nil {
		return nil, fmt.Errorf("gwproto: reading: %w", err)
	}
	if kind != websocket.BinaryMessage {
		return nil, malformed("a text frame; the protocol uses binary frames")
	}
	// Read into a buffer kept across frames (ReadMessage would allocate and
	// regrow one per frame).
	buf := s.recvBuf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("gwproto: reading: %w", err)
		}
	}
	s.recvBuf = buf
	nonce := seqNonce(s.recvSeq)
	plain, err := s.recv.Open(buf[:0], nonce[:], buf, nil)
	if err != nil {
		return nil, ErrAuthentication
	}
	s.recvSeq++
	return ParseMessage(plain)
}

// Close closes the connection.
func (s *Session) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.wmu.Lock()
		s.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		s.wmu.Unlock()
		err = s.ws.Close()
	})
	return err
}
