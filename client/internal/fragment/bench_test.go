package fragment

import (
	"bytes"
	"crypto/rand"
	"testing"
)

const benchMessageSize = 5 << 20

// BenchmarkCopy5MB is the baseline: one copy of the message.
func BenchmarkCopy5MB(b *testing.B) {
	msg := randomMessage(seeded(1), benchMessageSize)
	b.SetBytes(benchMessageSize)
	b.ReportAllocs()
	for b.Loop() {
		_ = bytes.Clone(msg)
	}
}

func BenchmarkSplit5MB(b *testing.B) {
	msg := randomMessage(seeded(1), benchMessageSize)
	b.SetBytes(benchMessageSize)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		frags, err := Split(msg, regularCapacity, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		n = len(frags)
	}
	b.ReportMetric(float64(n), "fragments/op")
}

// BenchmarkReassemble5MB adds the fragments of a 5 MB message in random
// order to a fresh Reassembler.
func BenchmarkReassemble5MB(b *testing.B) {
	rng := seeded(1)
	msg := randomMessage(rng, benchMessageSize)
	frags, err := Split(msg, regularCapacity, prngReader{rng})
	if err != nil {
		b.Fatal(err)
	}
	rng.Shuffle(len(frags), func(i, j int) { frags[i], frags[j] = frags[j], frags[i] })
	b.SetBytes(benchMessageSize)
	b.ReportAllocs()
	for b.Loop() {
		r := NewReassembler(Config{})
		var got []byte
		for _, f := range frags {
			m, complete, err := r.Add(t0, f)
			if err != nil {
				b.Fatal(err)
			}
			if complete {
				got = m
			}
		}
		if len(got) != len(msg) {
			b.Fatal("message did not complete")
		}
	}
	b.ReportMetric(float64(len(frags)), "fragments/op")
}

// BenchmarkParseAppend is the per-packet cost: decode a fragment and encode
// it again into a reused buffer.
func BenchmarkParseAppend(b *testing.B) {
	frag := Fragment{SetID: 7, Total: 255, Index: 9, Payload: make([]byte, regularCapacity-UnlinkedHeaderLen)}
	wire := frag.AppendBinary(nil)
	buf := make([]byte, 0, regularCapacity)
	b.SetBytes(regularCapacity)
	b.ReportAllocs()
	for b.Loop() {
		f, err := Parse(wire)
		if err != nil {
			b.Fatal(err)
		}
		buf = f.AppendBinary(buf[:0])
	}
}
