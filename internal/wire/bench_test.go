package wire

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/peapod-mixnet/peapod/sphinx"
)

// The codec's benchmarks report bytes/s over whole frames; the baseline is
// BenchmarkCopyFrame, a plain copy of the same bytes, which is the least any
// framing costs.

func BenchmarkCopyFrame(b *testing.B) {
	src := AppendFrame(nil, mixHeader(sphinx.RegularPacket), randomPacket(sphinx.RegularPacket))
	dst := make([]byte, len(src))
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		copy(dst, src)
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	packet := randomPacket(sphinx.RegularPacket)
	h := mixHeader(sphinx.RegularPacket)
	buf := make([]byte, 0, MaxFrameLen)
	b.SetBytes(int64(HeaderSize + len(packet)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendFrame(buf[:0], h, packet)
	}
}

func BenchmarkReadFrame(b *testing.B) {
	// A stream of 64 frames, read over and over.
	var stream []byte
	for range 64 {
		stream = AppendFrame(stream, mixHeader(sphinx.RegularPacket), randomPacket(sphinx.RegularPacket))
	}
	src := bytes.NewReader(stream)
	r := bufio.NewReaderSize(src, DefaultReadBufferSize)
	buf := make([]byte, MaxPacketLen)
	b.SetBytes(int64(len(stream) / 64))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ReadFrame(r, buf); err != nil {
			src.Reset(stream)
			r.Reset(src)
			if _, _, err := ReadFrame(r, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkDecodeFrame(b *testing.B) {
	frame := AppendFrame(nil, mixHeader(sphinx.RegularPacket), randomPacket(sphinx.RegularPacket))
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := DecodeFrame(frame); err != nil {
			b.Fatal(err)
		}
	}
}
