// Package x25519 provides the Curve25519 operations Sphinx needs, without the
// hidden costs of the general-purpose APIs.
//
// crypto/ecdh and golang.org/x/crypto/curve25519 compute a public key (a
// second Montgomery ladder) whenever a private key is made from bytes, and
// they allocate. Sphinx makes a fresh scalar for every hop of every packet, so
// this package offers:
//
//   - ScalarMult: one constant-time Montgomery ladder over all 255 bits of a
//     scalar used exactly as given (no clamping), allocation-free;
//   - ScalarBaseMult: a fixed-base multiplication through edwards25519's
//     precomputed tables, about three times faster than a ladder;
//   - Clamp and scalar arithmetic modulo the group order (through
//     filippo.io/edwards25519), so a sender can blind scalars instead of
//     points.
//
// Every point handled here is a Montgomery u-coordinate in the 32-byte
// little-endian encoding of RFC 7748.
package x25519

import (
	"crypto/subtle"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// Size is the length of scalars and u-coordinates.
const Size = 32

// Clamp applies RFC 7748 clamping to k in place.
func Clamp(k *[Size]byte) {
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64
}

// ScalarMult sets dst to the u-coordinate of scalar·P, where P has
// u-coordinate point. The scalar is used exactly as given: callers that need
// X25519 semantics clamp it first. The top bit of point is ignored, as RFC 7748
// requires. It runs in constant time and does not allocate. The result is all
// zeroes when P has small order.
func ScalarMult(dst, scalar, point *[Size]byte) {
	var x1, x2, z2, x3, z3, tmp0, tmp1 field.Element
	x1.SetBytes(point[:])
	x2.One()
	x3.Set(&x1)
	z3.One()

	swap := 0
	for pos := 254; pos >= 0; pos-- {
		b := int(scalar[pos/8]>>uint(pos&7)) & 1
		swap ^= b
		x2.Swap(&x3, swap)
		z2.Swap(&z3, swap)
		swap = b

		tmp0.Subtract(&x3, &z3)
		tmp1.Subtract(&x2, &z2)
		x2.Add(&x2, &z2)
		z2.Add(&x3, &z3)
		z3.Multiply(&tmp0, &x2)
		z2.Multiply(&z2, &tmp1)
		tmp0.Square(&tmp1)
		tmp1.Square(&x2)
		x3.Add(&z3, &z2)
		z2.Subtract(&z3, &z2)
		x2.Multiply(&tmp1, &tmp0)
		tmp1.Subtract(&tmp1, &tmp0)
		z2.Square(&z2)

		z3.Mult32(&tmp1, 121666)
		x3.Square(&x3)
		tmp0.Add(&tmp0, &z3)
		z3.Multiply(&x1, &z2)
		z2.Multiply(&tmp1, &tmp0)
	}
	x2.Swap(&x3, swap)
	z2.Swap(&z3, swap)

	z2.Invert(&z2)
	x2.Multiply(&x2, &z2)
	copy(dst[:], x2.Bytes())
}

// ScalarBaseMult sets dst to the u-coordinate of s·B, where B is the
// generator of the prime-order subgroup (u = 9). It is constant time.
func ScalarBaseMult(dst *[Size]byte, s *edwards25519.Scalar) {
	var p edwards25519.Point
	p.ScalarBaseMult(s)
	copy(dst[:], p.BytesMontgomery())
}

// ClampedScalar returns clamp(k) reduced modulo the group order. For any
// point P of the prime-order subgroup, ClampedScalar(k)·P equals the X25519
// function of k and P.
func ClampedScalar(k *[Size]byte) *edwards25519.Scalar {
	s, err := edwards25519.NewScalar().SetBytesWithClamping(k[:])
	if err != nil {
		panic("x25519: SetBytesWithClamping rejected a 32-byte input") // unreachable
	}
	return s
}

// IsZero reports in constant time whether u is all zeroes, which is what a
// Diffie-Hellman output is when the peer's point has small order.
func IsZero(u *[Size]byte) bool {
	var zero [Size]byte
	return subtle.ConstantTimeCompare(u[:], zero[:]) == 1
}

// fieldPrime is 2^255 - 19 in little-endian bytes.
var fieldPrime = [Size]byte{
	0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
}

// IsCanonical reports whether u is the canonical encoding of a field element:
// the top bit clear and the value below 2^255 - 19. X25519 silently accepts
// the other 2^255 + 19 encodings; Sphinx refuses them so that no bit of a
// packet's group element can be flipped without changing the shared secret.
// It runs in constant time.
func IsCanonical(u *[Size]byte) bool {
	// Compare u < p from the most significant byte down, without branches.
	var lt, eq int = 0, 1
	for i := Size - 1; i >= 0; i-- {
		a, b := int(u[i]), int(fieldPrime[i])
		lt |= eq & ((a - b) >> 31 & 1)
		eq &= subtle.ConstantTimeByteEq(u[i], fieldPrime[i])
	}
	return lt == 1
}
