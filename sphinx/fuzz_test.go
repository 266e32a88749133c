package sphinx

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
)

// fuzzRoute is a fixed five-node route, so every fuzz input is judged
// against the same keys.
func fuzzRoute(t testing.TB) ([]*Processor, []Hop) {
	return vectorRoute(t, vectorHops(MaxHops))
}

// FuzzProcess feeds arbitrary bytes to Process (no panic; a failure is one of
// the documented errors) and checks that a packet built from the fuzzed
// message, route length and size round-trips, before and after a fuzzed bit
// flip.
func FuzzProcess(f *testing.F) {
	procs, route := fuzzRoute(f)
	for _, s := range []PacketSize{RegularPacket, AckPacket} {
		pkt, err := NewPacket(detReader("fuzz seed"), s, route[:3], Destination{1}, SURBID{2}, []byte("seed"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(pkt, []byte("seed"), uint8(3), uint8(s), uint32(0))
	}
	f.Add([]byte{}, []byte{}, uint8(1), uint8(1), uint32(7))
	f.Fuzz(func(t *testing.T, raw, msg []byte, hops, sizeTag uint8, flip uint32) {
		// Arbitrary input never panics and fails cleanly.
		if _, err := NewProcessor(procs[0].Key(), nil).Process(nil, raw); err != nil {
			known := false
			for _, s := range []error{ErrPacketSize, ErrAuthentication, ErrUnknownVersion, ErrPayload} {
				known = known || errors.Is(err, s)
			}
			if !known {
				t.Fatalf("undocumented error %v", err)
			}
		}

		n := int(hops%MaxHops) + 1
		// The small sizes cover every code path; the big ones only slow the
		// fuzzer down.
		size := []PacketSize{AckPacket, RegularPacket}[sizeTag%2]
		if len(msg) > size.PlaintextLen() {
			msg = msg[:size.PlaintextLen()]
		}
		seed := sha256.Sum256(append(append([]byte{}, raw...), msg...))
		pkt, err := NewPacket(detReader(string(seed[:])), size, route[:n], Destination{3}, SURBID{4}, msg)
		if err != nil {
			t.Fatal(err)
		}
		flipped := bytes.Clone(pkt)
		bit := int(flip) % (len(pkt) * 8)
		flipped[bit/8] ^= 1 << (bit % 8)
		for _, p := range [][]byte{pkt, flipped} {
			cur := p
			for i := range n {
				res, err := NewProcessor(procs[i].Key(), nil).Process(nil, cur)
				if err != nil {
					if &p[0] == &pkt[0] {
						t.Fatalf("hop %d of an untouched packet: %v", i, err)
					}
					break
				}
				if res.Final {
					if i != n-1 {
						t.Fatalf("final at hop %d of %d", i, n)
					}
					if &p[0] == &pkt[0] && !bytes.Equal(res.Payload, msg) {
						t.Fatal("round trip changed the message")
					}
					if &p[0] != &pkt[0] {
						t.Fatal("a flipped bit went undetected")
					}
					break
				}
				cur = res.Packet
			}
		}
	})
}

// FuzzParseSURB checks that SURB decoding never panics and that whatever
// decodes re-encodes to the same bytes.
func FuzzParseSURB(f *testing.F) {
	_, route := fuzzRoute(f)
	surb, err := NewSURB(detReader("fuzz surb"), route[:4], Destination{5}, SURBID{6})
	if err != nil {
		f.Fatal(err)
	}
	enc, _ := surb.AppendBinary(nil)
	f.Add(enc, uint8(4))
	f.Add(enc[:100], uint8(4))
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, hops uint8) {
		s, rest, err := ParseSURB(b, int(hops))
		if err != nil {
			if !errors.Is(err, ErrSURB) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		re, err := s.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(re, b[:len(b)-len(rest)]) {
			t.Fatal("re-encoding differs from the input")
		}
		if _, err := s.NewPacket(RegularPacket, []byte("x")); err != nil {
			t.Fatal(err)
		}
	})
}
