package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/peapod-mixnet/peapod/sphinx"
)

func TestMaxPacketLenIsTheLargestSize(t *testing.T) {
	largest := 0
	for _, s := range sphinx.PacketSizes {
		largest = max(largest, s.Len())
	}
	if MaxPacketLen != largest {
		t.Fatalf("MaxPacketLen = %d, the largest packet is %d bytes", MaxPacketLen, largest)
	}
	if MaxFrameLen != HeaderSize+largest {
		t.Fatalf("MaxFrameLen = %d", MaxFrameLen)
	}
}

// TestAppendFrameLayout checks the bytes against the layout of Nym's
// framing codec at packet version 8.
func TestAppendFrameLayout(t *testing.T) {
	packet := randomPacket(sphinx.AckPacket)
	h := Header{Size: sphinx.AckPacket, Type: PacketTypeMix, KeyRotation: KeyRotationEven}
	got := AppendFrame([]byte("prefix"), h, packet)
	want := append([]byte("prefix"), 8, 2, 0, 2)
	want = append(want, packet...)
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendFrame = %x..., want %x...", got[:10], want[:10])
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, size := range sphinx.PacketSizes {
		for _, rot := range []KeyRotation{KeyRotationUnknown, KeyRotationOdd, KeyRotationEven} {
			h := Header{Size: size, Type: PacketTypeMix, KeyRotation: rot}
			packet := randomPacket(size)
			enc := AppendFrame(nil, h, packet)
			enc = append(enc, "next"...)
			gh, gp, rest, err := DecodeFrame(enc)
			if err != nil {
				t.Fatalf("%+v: %v", h, err)
			}
			if gh != h || !bytes.Equal(gp, packet) || string(rest) != "next" {
				t.Fatalf("%+v: decoded %+v, %d packet bytes, rest %q", h, gh, len(gp), rest)
			}
		}
	}
}

func TestHeaderFor(t *testing.T) {
	for _, size := range sphinx.PacketSizes {
		h, err := HeaderFor(make([]byte, size.Len()))
		if err != nil || h != mixHeader(size) {
			t.Fatalf("HeaderFor(%v) = %+v, %v", size, h, err)
		}
	}
	if _, err := HeaderFor(make([]byte, 100)); err == nil {
		t.Fatal("HeaderFor accepted 100 bytes")
	}
}

// badHeaders are headers each decoder must refuse, with the field and the
// message it must name.
var badHeaders = []struct {
	name   string
	header []byte
	field  string
	msg    string
}{
	{"version 0", []byte{0, 1, 0, 0}, FieldVersion, "wire: unknown version 0"},
	{"Nym's legacy two-byte header", []byte{1, 0, 0, 0}, FieldVersion, "wire: unknown version 1"},
	{"Nym's version 7", []byte{7, 1, 0, 0}, FieldVersion, "wire: unknown version 7"},
	{"version 255", []byte{255, 1, 0, 0}, FieldVersion, "wire: unknown version 255"},
	{"size tag 0", []byte{8, 0, 0, 0}, FieldSizeTag, "wire: unknown size tag 0"},
	{"outfox size tag 6", []byte{8, 6, 0, 0}, FieldSizeTag, "wire: unknown size tag 6"},
	{"size tag 9", []byte{8, 9, 0, 0}, FieldSizeTag, "wire: unknown size tag 9"},
	{"vpn type", []byte{8, 1, 1, 0}, FieldPacketType, "wire: unsupported packet type 1 (vpn)"},
	{"outfox type", []byte{8, 1, 2, 0}, FieldPacketType, "wire: unsupported packet type 2 (outfox)"},
	{"type 9", []byte{8, 1, 9, 0}, FieldPacketType, "wire: unknown packet type 9"},
	{"key rotation 3", []byte{8, 1, 0, 3}, FieldKeyRotation, "wire: unknown key rotation 3"},
	{"first bad field wins", []byte{8, 9, 9, 9}, FieldSizeTag, "wire: unknown size tag 9"},
}

func TestParseHeaderRefuses(t *testing.T) {
	for _, tc := range badHeaders {
		t.Run(tc.name, func(t *testing.T) {
			_, rest, err := ParseHeader(tc.header)
			var herr *HeaderError
			if !errors.As(err, &herr) {
				t.Fatalf("error %v is not a *HeaderError", err)
			}
			if herr.Field != tc.field || err.Error() != tc.msg {
				t.Fatalf("error names %q: %q, want %q: %q", herr.Field, err, tc.field, tc.msg)
			}
			if len(rest) != len(tc.header) {
				t.Fatal("a refused header consumed bytes")
			}
			// ReadFrame refuses it the same way.
			r := bufio.NewReader(bytes.NewReader(append(tc.header, make([]byte, MaxPacketLen)...)))
			if _, _, err := ReadFrame(r, make([]byte, MaxPacketLen)); err == nil || err.Error() != tc.msg {
				t.Fatalf("ReadFrame: %v, want %q", err, tc.msg)
			}
		})
	}
}

func TestParseHeaderShort(t *testing.T) {
	for n := range HeaderSize {
		_, _, err := ParseHeader(make([]byte, n))
		var herr *HeaderError
		if err == nil || errors.As(err, &herr) {
			t.Fatalf("%d bytes: %v, want a length error", n, err)
		}
	}
}

func TestDecodeFrameShortPacket(t *testing.T) {
	enc := AppendFrame(nil, mixHeader(sphinx.AckPacket), randomPacket(sphinx.AckPacket))
	_, _, rest, err := DecodeFrame(enc[:len(enc)-1])
	if err == nil || !strings.Contains(err.Error(), "385 bytes of a 386-byte ack packet") {
		t.Fatalf("DecodeFrame of a short frame: %v", err)
	}
	if len(rest) != len(enc)-1 {
		t.Fatal("a short frame consumed bytes")
	}
}

func TestReadFrameSequence(t *testing.T) {
	var stream []byte
	var want [][]byte
	for _, size := range sphinx.PacketSizes {
		p := randomPacket(size)
		want = append(want, p)
		stream = AppendFrame(stream, mixHeader(size), p)
	}
	// A small read buffer makes ReadFrame cross many buffer refills.
	r := bufio.NewReaderSize(bytes.NewReader(stream), 16)
	buf := make([]byte, MaxPacketLen)
	for i, p := range want {
		h, got, err := ReadFrame(r, buf)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if h.Size != sphinx.PacketSizes[i] || !bytes.Equal(got, p) {
			t.Fatalf("frame %d: wrong header or packet", i)
		}
	}
	if _, _, err := ReadFrame(r, buf); err != io.EOF {
		t.Fatalf("at the end of the stream: %v, want io.EOF", err)
	}
}

func TestReadFrameTruncated(t *testing.T) {
	enc := AppendFrame(nil, mixHeader(sphinx.RegularPacket), randomPacket(sphinx.RegularPacket))
	for _, n := range []int{1, HeaderSize - 1, HeaderSize, HeaderSize + 1, len(enc) - 1} {
		r := bufio.NewReader(bytes.NewReader(enc[:n]))
		_, _, err := ReadFrame(r, make([]byte, MaxPacketLen))
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("stream ending after %d bytes: %v, want io.ErrUnexpectedEOF", n, err)
		}
	}
}

func TestReadFrameSmallBuffer(t *testing.T) {
	enc := AppendFrame(nil, mixHeader(sphinx.RegularPacket), randomPacket(sphinx.RegularPacket))
	r := bufio.NewReader(bytes.NewReader(enc))
	if _, _, err := ReadFrame(r, make([]byte, 100)); err == nil {
		t.Fatal("ReadFrame read a 2413-byte packet into 100 bytes")
	}
	// The stream is intact: a big enough buffer reads the frame.
	if _, _, err := ReadFrame(r, make([]byte, MaxPacketLen)); err != nil {
		t.Fatal(err)
	}
}

func TestReadFrameAllocatesNothing(t *testing.T) {
	one := AppendFrame(nil, mixHeader(sphinx.RegularPacket), randomPacket(sphinx.RegularPacket))
	src := bytes.NewReader(nil)
	r := bufio.NewReader(src)
	buf := make([]byte, MaxPacketLen)
	allocs := testing.AllocsPerRun(100, func() {
		src.Reset(one)
		r.Reset(src)
		if _, _, err := ReadFrame(r, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ReadFrame allocates %v times per frame", allocs)
	}
}

func TestHeaderValidate(t *testing.T) {
	if err := mixHeader(sphinx.RegularPacket).Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []Header{
		{Size: 0, Type: PacketTypeMix},
		{Size: sphinx.RegularPacket, Type: PacketTypeOutfox},
		{Size: sphinx.RegularPacket, Type: PacketTypeMix, KeyRotation: 3},
	}
	for _, h := range bad {
		if h.Validate() == nil {
			t.Errorf("%+v passed Validate", h)
		}
	}
}
