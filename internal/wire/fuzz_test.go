package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

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

// FuzzNoiseHeader checks the noise frame header's strict decoding: every
// header it accepts re-encodes to the same bytes, and every byte it refuses
// is named.
func FuzzNoiseHeader(f *testing.F) {
	f.Add(appendNoiseHeader(nil, noiseTypeData, 100))
	f.Add(appendNoiseHeader(nil, noiseTypeHandshake, 48))
	f.Add([]byte{1, 1, 1, 0, 0, 0, 0, 1})
	f.Add([]byte{8, 1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range []uint8{noiseTypeHandshake, noiseTypeData} {
			h, err := parseNoiseHeader(data, typ)
			if err != nil {
				continue
			}
			if h.typ != typ || !bytes.Equal(appendNoiseHeader(nil, typ, h.len), data[:NoiseHeaderSize]) {
				t.Fatalf("accepted %x as %+v, which encodes differently", data[:NoiseHeaderSize], h)
			}
		}
	})
}

// FuzzNoiseResponder sends arbitrary bytes to a Noise responder in place
// of a handshake, and, after a real handshake, in place of the data
// stream. The properties: no panic, no hang (a pipe and deadlines), and
// nothing but an error comes out of either: neither a handshake nor a
// byte of stream from bytes the initiator did not encrypt.
func FuzzNoiseResponder(f *testing.F) {
	key, sender := newTestKey(f), newTestKey(f)
	f.Add(appendNoiseHeader(nil, noiseTypeHandshake, 48), false)
	f.Add(append(appendNoiseHeader(nil, noiseTypeData, 20), make([]byte, 20)...), true)
	f.Add(AppendFrame(nil, mixHeader(sphinx.AckPacket), randomPacket(sphinx.AckPacket)), true)
	f.Fuzz(func(t *testing.T, data []byte, afterHandshake bool) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		deadline := time.Now().Add(2 * time.Second)
		done := make(chan error, 1)
		go func() {
			if afterHandshake {
				if _, err := Initiate(a, sender, key.pub, deadline); err != nil {
					done <- err
					return
				}
			}
			a.SetWriteDeadline(deadline)
			a.Write(data)
			a.Close()
			done <- nil
		}()
		nc, err := Respond(b, key, deadline)
		if !afterHandshake {
			if err == nil {
				t.Fatal("a handshake succeeded on arbitrary bytes")
			}
			b.Close() // unblocks the writer
			<-done
			return
		}
		if err != nil {
			t.Fatalf("a real handshake failed: %v", err)
		}
		b.SetReadDeadline(deadline)
		if n, err := nc.Read(make([]byte, 1<<16)); err == nil || n != 0 {
			t.Fatalf("read %d bytes of stream from bytes nobody encrypted (err %v)", n, err)
		}
		b.Close()
		<-done
	})
}
