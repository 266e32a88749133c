package x25519

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"math/big"
	"testing"

	"golang.org/x/crypto/curve25519"
)

func randomPoint(t testing.TB) [Size]byte {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var p [Size]byte
	copy(p[:], k.PublicKey().Bytes())
	return p
}

// ScalarMult with a clamped scalar must agree with the standard X25519.
func TestScalarMultMatchesX25519(t *testing.T) {
	for i := 0; i < 50; i++ {
		var k [Size]byte
		rand.Read(k[:])
		p := randomPoint(t)
		want, err := curve25519.X25519(k[:], p[:])
		if err != nil {
			t.Fatal(err)
		}
		Clamp(&k)
		var got [Size]byte
		ScalarMult(&got, &k, &p)
		if !bytes.Equal(got[:], want) {
			t.Fatalf("ScalarMult = %x, X25519 = %x", got, want)
		}
	}
}

// ScalarBaseMult of clamp(k) mod l must agree with X25519(k, 9), and the
// ladder with an unclamped reduced scalar must agree with the clamped one.
func TestScalarBaseMultAndReducedScalars(t *testing.T) {
	for i := 0; i < 50; i++ {
		var k [Size]byte
		rand.Read(k[:])
		want, err := curve25519.X25519(k[:], curve25519.Basepoint)
		if err != nil {
			t.Fatal(err)
		}
		s := ClampedScalar(&k)
		var got [Size]byte
		ScalarBaseMult(&got, s)
		if !bytes.Equal(got[:], want) {
			t.Fatalf("ScalarBaseMult = %x, X25519 = %x", got, want)
		}
		// A reduced scalar used in the ladder gives the same result on
		// prime-order points.
		p := randomPoint(t)
		var reduced [Size]byte
		copy(reduced[:], s.Bytes())
		var viaReduced, viaClamped [Size]byte
		ScalarMult(&viaReduced, &reduced, &p)
		clamped := k
		Clamp(&clamped)
		ScalarMult(&viaClamped, &clamped, &p)
		if viaReduced != viaClamped {
			t.Fatal("reduced and clamped scalars disagree")
		}
	}
}

func TestSmallOrderPointGivesZero(t *testing.T) {
	var k, zero, out [Size]byte
	rand.Read(k[:])
	Clamp(&k)
	ScalarMult(&out, &k, &zero)
	if !IsZero(&out) {
		t.Fatal("u=0 did not give the all-zero output")
	}
	one := [Size]byte{1}
	ScalarMult(&out, &k, &one)
	if !IsZero(&out) {
		t.Fatal("u=1 (order 4) did not give the all-zero output")
	}
}

func TestIsCanonical(t *testing.T) {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	enc := func(v *big.Int) *[Size]byte {
		var out [Size]byte
		b := v.Bytes()
		for i := range b {
			out[i] = b[len(b)-1-i]
		}
		return &out
	}
	cases := []struct {
		v    *big.Int
		want bool
	}{
		{big.NewInt(0), true},
		{big.NewInt(9), true},
		{new(big.Int).Sub(p, big.NewInt(1)), true},
		{p, false},
		{new(big.Int).Add(p, big.NewInt(5)), false},
		{new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1)), false},
	}
	for _, c := range cases {
		if got := IsCanonical(enc(c.v)); got != c.want {
			t.Errorf("IsCanonical(%v) = %v, want %v", c.v, got, c.want)
		}
	}
	// A canonical point with its top bit set is not canonical.
	q := randomPoint(t)
	if !IsCanonical(&q) {
		t.Fatal("random public key reported non-canonical")
	}
	q[31] |= 0x80
	if IsCanonical(&q) {
		t.Fatal("top bit set accepted")
	}
}

func BenchmarkScalarMult(b *testing.B) {
	var k [Size]byte
	rand.Read(k[:])
	p := randomPoint(b)
	b.ReportAllocs()
	var out [Size]byte
	for b.Loop() {
		ScalarMult(&out, &k, &p)
	}
}

func BenchmarkScalarBaseMult(b *testing.B) {
	var k [Size]byte
	rand.Read(k[:])
	s := ClampedScalar(&k)
	b.ReportAllocs()
	var out [Size]byte
	for b.Loop() {
		ScalarBaseMult(&out, s)
	}
}
