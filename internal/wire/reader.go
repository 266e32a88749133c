package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// ReadFrame reads the next frame from r. The packet is read into buf, which
// must be at least as long as the packet (MaxPacketLen always suffices), and
// the returned packet aliases buf, so it is valid until buf is reused.
// ReadFrame allocates nothing when it succeeds.
//
// Errors:
//   - io.EOF, unwrapped, when r ends cleanly before the first byte of a frame;
//   - an error wrapping io.ErrUnexpectedEOF when r ends inside a frame;
//   - a *HeaderError when a header field is refused;
//   - an error wrapping r's own error (a deadline, a reset connection).
//
// After any error the stream's position is lost: close the connection.
func ReadFrame(r *bufio.Reader, buf []byte) (Header, []byte, error) {
	hb, err := r.Peek(HeaderSize)
	if err != nil {
		if errors.Is(err, io.EOF) {
			if len(hb) == 0 {
				return Header{}, nil, io.EOF
			}
			err = io.ErrUnexpectedEOF
		}
		return Header{}, nil, fmt.Errorf("wire: reading frame header: %w", err)
	}
	h, _, err := ParseHeader(hb)
	if err != nil {
		return Header{}, nil, err
	}
	n := h.PacketLen()
	if len(buf) < n {
		return Header{}, nil, fmt.Errorf("wire: buffer of %d bytes cannot hold a %d-byte %v packet", len(buf), n, h.Size)
	}
	r.Discard(HeaderSize) // cannot fail: Peek returned these bytes
	packet := buf[:n:n]
	if _, err := io.ReadFull(r, packet); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Header{}, nil, fmt.Errorf("wire: reading a %d-byte %v packet: %w", n, h.Size, err)
	}
	return h, packet, nil
}

// frameBuffered reports whether r's buffer already holds a whole frame, or
// at least a header that ReadFrame will refuse, so that reading the frame
// needs no I/O.
func frameBuffered(r *bufio.Reader) bool {
	if r.Buffered() < HeaderSize {
		return false
	}
	hb, _ := r.Peek(HeaderSize)
	h, _, err := ParseHeader(hb)
	if err != nil {
		return true
	}
	return r.Buffered() >= HeaderSize+h.PacketLen()
}
