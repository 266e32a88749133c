package sphinx

import (
	"fmt"
	"io"
)

// ReplyKeySize is the size of the key that seals a reply's content.
const ReplyKeySize = 16

// ReplyKey is the secret a SURB's creator keeps to open replies that come
// back on it. It also travels inside the SURB, so the replier can seal the
// reply's content, which the last hop (the creator's gateway) then cannot
// read.
type ReplyKey [ReplyKeySize]byte

// SURB is a single-use reply block: a prepared header for a route back to its
// creator, the address of the route's first hop, and the payload key seeds
// with which whoever holds it layers the reply's payload. Using a SURB twice
// gets the second packet refused by the first hop's replay filter.
type SURB struct {
	// Key seals the reply's content (see SealReply).
	Key ReplyKey
	// Header is the prepared Sphinx header.
	Header [HeaderSize]byte
	// FirstHop is where a packet made from the SURB must be sent.
	FirstHop NodeAddress
	// Seeds holds one payload key seed per hop of the route, first hop first.
	Seeds [][PayloadKeySeedSize]byte
}

// SURBSize is the serialized size of a SURB for a route of hops hops:
// key ‖ header ‖ first hop ‖ one payload key seed per hop (Nym's compact
// form).
func SURBSize(hops int) int {
	return ReplyKeySize + HeaderSize + NodeAddressSize + hops*PayloadKeySeedSize
}

// NewSURB makes a SURB for route, whose last hop delivers replies to dest and
// reports id. It reads the packet secret, padding and the reply key from
// rand.
func NewSURB(rand io.Reader, route []Hop, dest Destination, id SURBID) (*SURB, error) {
	if err := checkRoute(route); err != nil {
		return nil, err
	}
	s := getScratch()
	defer putScratch(s)
	var rk routeKeys
	defer rk.wipe()
	if err := s.deriveRouteKeys(&rk, rand, route); err != nil {
		return nil, err
	}
	surb := &SURB{FirstHop: route[0].Address, Seeds: make([][PayloadKeySeedSize]byte, rk.n)}
	if err := s.buildHeader(&surb.Header, &rk, rand, route, finalSlotInfo{dest, id, Version}); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(rand, surb.Key[:]); err != nil {
		return nil, fmt.Errorf("sphinx: reading randomness: %w", err)
	}
	for i := range rk.n {
		surb.Seeds[i] = *rk.keys[i].payloadSeed()
	}
	return surb, nil
}

// Hops is the length of the SURB's route.
func (s *SURB) Hops() int { return len(s.Seeds) }

// Size is the SURB's serialized size.
func (s *SURB) Size() int { return SURBSize(len(s.Seeds)) }

// AppendBinary appends the serialized SURB to dst.
func (s *SURB) AppendBinary(dst []byte) ([]byte, error) {
	if len(s.Seeds) == 0 || len(s.Seeds) > MaxHops {
		return dst, fmt.Errorf("%w: %d payload key seeds", ErrSURB, len(s.Seeds))
	}
	dst = append(dst, s.Key[:]...)
	dst = append(dst, s.Header[:]...)
	dst = append(dst, s.FirstHop[:]...)
	for i := range s.Seeds {
		dst = append(dst, s.Seeds[i][:]...)
	}
	return dst, nil
}

// ParseSURB decodes a SURB for a route of hops hops from the start of b and
// returns the bytes after it. The hop count is not part of the encoding (Nym's
// compact form): it is a parameter of the network, and every SURB in a
// message has the same one.
func ParseSURB(b []byte, hops int) (*SURB, []byte, error) {
	if hops < 1 || hops > MaxHops {
		return nil, b, fmt.Errorf("%w: %d hops, want 1 to %d", ErrSURB, hops, MaxHops)
	}
	n := SURBSize(hops)
	if len(b) < n {
		return nil, b, fmt.Errorf("%w: %d bytes, a %d-hop SURB takes %d", ErrSURB, len(b), hops, n)
	}
	s := &SURB{Seeds: make([][PayloadKeySeedSize]byte, hops)}
	off := copy(s.Key[:], b)
	off += copy(s.Header[:], b[off:])
	off += copy(s.FirstHop[:], b[off:])
	for i := range s.Seeds {
		off += copy(s.Seeds[i][:], b[off:])
	}
	if _, err := s.FirstHop.AddrPort(); err != nil {
		return nil, b, fmt.Errorf("%w: first hop: %v", ErrSURB, err)
	}
	return s, b[n:], nil
}

// NewPacket wraps msg into a packet of the given size on the SURB's header.
// Send it to s.FirstHop. A SURB must be used once only.
func (s *SURB) NewPacket(size PacketSize, msg []byte) ([]byte, error) {
	return s.AppendPacket(nil, size, msg)
}

// AppendPacket is like NewPacket but appends the packet to dst.
func (s *SURB) AppendPacket(dst []byte, size PacketSize, msg []byte) ([]byte, error) {
	if !size.Valid() {
		return dst, fmt.Errorf("%w: unknown size tag %d", ErrPacketSize, size)
	}
	if len(msg) > size.PlaintextLen() {
		return dst, fmt.Errorf("%w: %d bytes, a %v packet carries %d", ErrMessageTooLong, len(msg), size, size.PlaintextLen())
	}
	if len(s.Seeds) == 0 || len(s.Seeds) > MaxHops {
		return dst, fmt.Errorf("%w: %d payload key seeds", ErrSURB, len(s.Seeds))
	}
	sc := getScratch()
	defer putScratch(sc)
	all, out := grow(dst, size.Len())
	copy(out, s.Header[:])
	var seeds [MaxHops]*[PayloadKeySeedSize]byte
	for i := range s.Seeds {
		seeds[i] = &s.Seeds[i]
	}
	p := out[HeaderSize:]
	encodePayload(p, msg)
	sc.encryptPayload(p, seeds[:len(s.Seeds)])
	return all, nil
}
