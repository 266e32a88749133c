package sphinx

import (
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"filippo.io/edwards25519"

	"github.com/peapod-mixnet/peapod/internal/x25519"
)

// Header construction.
//
// The sender draws one scalar x and never touches a point twice: alpha0 is
// x·G by fixed-base multiplication, the shared secret of hop i is x_i·P_i (one
// ladder per hop), and the blinding of hop i is folded into the scalar,
// x_{i+1} = x_i·clamp(b_i) mod ℓ. A node computes the same values from the
// point: X25519(node key, alpha_i) and alpha_{i+1} = X25519(b_i, alpha_i).
// The test file holds a slow reference that blinds points instead, and checks
// that both give the same bytes.

// routeKeys is what a sender derives for a route.
type routeKeys struct {
	n      int
	alpha  [AlphaSize]byte
	keys   [MaxHops]hopKeys
	stream [MaxHops][RoutingInfoSize + SlotSize]byte
}

func (r *routeKeys) wipe() {
	for i := range r.keys {
		clear(r.keys[i].raw[:])
		clear(r.stream[i][:])
	}
}

func checkRoute(route []Hop) error {
	if len(route) == 0 || len(route) > MaxHops {
		return fmt.Errorf("%w: %d hops, want 1 to %d", ErrRoute, len(route), MaxHops)
	}
	for i, h := range route {
		if !x25519.IsCanonical((*[KeySize]byte)(&h.PublicKey)) {
			return fmt.Errorf("%w: hop %d has a non-canonical public key", ErrRoute, i)
		}
		if h.Delay < 0 {
			return fmt.Errorf("%w: hop %d has a negative delay", ErrRoute, i)
		}
	}
	return nil
}

// deriveRouteKeys draws the packet's secret scalar from rand and derives every
// hop's keys and routing-info keystream.
func (s *scratch) deriveRouteKeys(rk *routeKeys, rand io.Reader, route []Hop) error {
	var seed [KeySize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return fmt.Errorf("sphinx: reading randomness: %w", err)
	}
	x := x25519.ClampedScalar(&seed)
	clear(seed[:])
	x25519.ScalarBaseMult(&rk.alpha, x)

	rk.n = len(route)
	var xb [KeySize]byte
	var blind edwards25519.Scalar
	for i := range route {
		copy(xb[:], x.Bytes())
		x25519.ScalarMult(&s.shared, &xb, (*[KeySize]byte)(&route[i].PublicKey))
		if x25519.IsZero(&s.shared) {
			return fmt.Errorf("%w: hop %d has a small-order public key", ErrRoute, i)
		}
		s.deriveHopKeys(&s.shared)
		rk.keys[i] = s.keys
		s.xorAESCTR(rk.keys[i].streamKey(), rk.stream[i][:])
		if i < len(route)-1 {
			if _, err := blind.SetBytesWithClamping(rk.keys[i].blinding()[:]); err != nil {
				panic("sphinx: clamping rejected 32 bytes") // unreachable
			}
			x.Multiply(x, &blind)
		}
	}
	clear(xb[:])
	return nil
}

// finalSlotInfo is what the last hop of a route learns, and the version
// the slots carry (always Version, except in tests of unknown versions).
type finalSlotInfo struct {
	dest    Destination
	id      SURBID
	version uint16
}

func putVersion(slot []byte, v uint16) {
	slot[slotVersionOff] = 0
	binary.BigEndian.PutUint16(slot[slotVersionOff+1:], v)
}

// buildHeader writes the header for route into h, drawing the final slot's
// random padding from rand.
func (s *scratch) buildHeader(h *[HeaderSize]byte, rk *routeKeys, rand io.Reader, route []Hop, final finalSlotInfo) error {
	n := rk.n
	var beta [RoutingInfoSize]byte

	// The filler: what the routing information of the last hop must end with
	// so that each hop's shifted-in zeroes decrypt to it.
	var filler [RoutingInfoSize - SlotSize]byte
	for i := 0; i < n-1; i++ {
		fl := (i + 1) * SlotSize
		stream := rk.stream[i][RoutingInfoSize+SlotSize-fl:]
		subtle.XORBytes(filler[:fl], filler[:fl], stream)
	}
	fillerLen := (n - 1) * SlotSize

	// The last hop: final slot, random padding, encrypted, then the filler.
	inner := RoutingInfoSize - fillerLen
	beta[slotFlagOff] = flagFinal
	putVersion(beta[:], final.version)
	copy(beta[slotDestOff:], final.dest[:])
	copy(beta[slotSURBIDOff:], final.id[:])
	if _, err := io.ReadFull(rand, beta[finalSlotUsed:inner]); err != nil {
		return fmt.Errorf("sphinx: reading randomness: %w", err)
	}
	subtle.XORBytes(beta[:inner], beta[:inner], rk.stream[n-1][:inner])
	copy(beta[inner:], filler[:fillerLen])
	var mac [MACSize]byte
	s.headerMAC(&mac, rk.keys[n-1].macKey(), beta[:])

	// Earlier hops, from the last but one back to the first.
	var slot [SlotSize]byte
	for i := n - 2; i >= 0; i-- {
		slot[slotFlagOff] = flagForward
		putVersion(slot[:], final.version)
		copy(slot[slotAddrOff:], route[i+1].Address[:])
		binary.BigEndian.PutUint64(slot[slotDelayOff:], uint64(route[i].Delay/time.Nanosecond))
		copy(slot[slotMACOff:], mac[:])
		copy(beta[SlotSize:], beta[:RoutingInfoSize-SlotSize])
		copy(beta[:SlotSize], slot[:])
		subtle.XORBytes(beta[:], beta[:], rk.stream[i][:RoutingInfoSize])
		s.headerMAC(&mac, rk.keys[i].macKey(), beta[:])
	}

	copy(h[:AlphaSize], rk.alpha[:])
	copy(h[AlphaSize:], mac[:])
	copy(h[AlphaSize+MACSize:], beta[:])
	return nil
}

// headerMAC computes HMAC-SHA256(key, beta) truncated to MACSize.
func (s *scratch) headerMAC(out *[MACSize]byte, key, beta []byte) {
	s.hmacInit(key)
	s.hmacWrite(beta)
	s.hmacSum(&s.mac)
	copy(out[:], s.mac[:MACSize])
}
