package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/peapod-mixnet/peapod/sphinx"
)

// FuzzDecodeFrame feeds arbitrary bytes to DecodeFrame and ReadFrame. The
// properties: neither panics; they agree on every input; and whatever
// decodes re-encodes to exactly the bytes it consumed.
func FuzzDecodeFrame(f *testing.F) {
	for _, size := range sphinx.PacketSizes {
		f.Add(AppendFrame(nil, mixHeader(size), randomPacket(size)))
	}
	ack := AppendFrame(nil, mixHeader(sphinx.AckPacket), randomPacket(sphinx.AckPacket))
	f.Add(append(bytes.Clone(ack), ack...))
	f.Add(ack[:len(ack)-1])
	for _, tc := range badHeaders {
		f.Add(tc.header)
	}
	f.Add([]byte{})
	f.Add([]byte{8})

	buf := make([]byte, MaxPacketLen)
	f.Fuzz(func(t *testing.T, data []byte) {
		h, packet, rest, err := DecodeFrame(data)
		rh, rpacket, rerr := ReadFrame(bufio.NewReaderSize(bytes.NewReader(data), 16), buf)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("DecodeFrame: %v; ReadFrame: %v", err, rerr)
		}
		var herr, rherr *HeaderError
		if errors.As(err, &herr) != errors.As(rerr, &rherr) || (herr != nil && *herr != *rherr) {
			t.Fatalf("header errors differ: %v; %v", err, rerr)
		}
		if err != nil {
			if len(rest) != len(data) {
				t.Fatal("a failed decode consumed bytes")
			}
			if herr == nil && len(data) > 0 && !errors.Is(rerr, io.ErrUnexpectedEOF) {
				t.Fatalf("a short frame gave %v, want io.ErrUnexpectedEOF", rerr)
			}
			return
		}
		if h != rh || !bytes.Equal(packet, rpacket) {
			t.Fatal("DecodeFrame and ReadFrame decoded different frames")
		}
		if h.Validate() != nil || len(packet) != h.PacketLen() {
			t.Fatalf("decoded an invalid frame: %+v with %d bytes", h, len(packet))
		}
		enc := AppendFrame(nil, h, packet)
		if !bytes.Equal(enc, data[:len(data)-len(rest)]) {
			t.Fatal("re-encoding differs from the bytes consumed")
		}
	})
}

// FuzzFrameRoundTrip encodes frames made from fuzzed fields and checks that
// decode(encode(x)) == x for every valid x and that encode refuses (via
// Validate) every invalid one the decoder would refuse.
func FuzzFrameRoundTrip(f *testing.F) {
	f.Add(uint8(1), uint8(0), uint8(0), byte(0x5a))
	f.Add(uint8(2), uint8(0), uint8(2), byte(0))
	f.Add(uint8(9), uint8(2), uint8(3), byte(1))
	f.Fuzz(func(t *testing.T, size, typ, rot uint8, fill byte) {
		h := Header{Size: sphinx.PacketSize(size), Type: PacketType(typ), KeyRotation: KeyRotation(rot)}
		if h.Validate() != nil {
			// The decoder refuses the same header.
			hb := []byte{Version, size, typ, rot}
			if _, _, err := ParseHeader(hb); err == nil {
				t.Fatalf("ParseHeader accepted %+v, which Validate refuses", h)
			}
			return
		}
		packet := bytes.Repeat([]byte{fill}, h.PacketLen())
		gh, gp, rest, err := DecodeFrame(AppendFrame(nil, h, packet))
		if err != nil || gh != h || !bytes.Equal(gp, packet) || len(rest) != 0 {
			t.Fatalf("round trip of %+v: %+v, %v", h, gh, err)
		}
	})
}
