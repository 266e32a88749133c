package sphinx

import (
	"crypto/subtle"
	"fmt"
	"io"
)

// Payload encoding: 16 zero bytes ‖ message ‖ 0x01 ‖ zero padding, then one
// Lioness layer per hop, the last hop's innermost.

// encodePayload writes the payload plaintext for msg into p.
func encodePayload(p, msg []byte) {
	clear(p[:PayloadZeroPrefix])
	copy(p[PayloadZeroPrefix:], msg)
	end := PayloadZeroPrefix + len(msg)
	p[end] = 0x01
	clear(p[end+1:])
}

// decodePayload checks a payload plaintext and returns its message. The
// prefix check runs in constant time; the padding scan does not need to, as
// the message is no secret from the hop that decodes it.
func decodePayload(p []byte) ([]byte, bool) {
	var zero [PayloadZeroPrefix]byte
	if subtle.ConstantTimeCompare(p[:PayloadZeroPrefix], zero[:]) != 1 {
		return nil, false
	}
	i := len(p) - 1
	for i >= PayloadZeroPrefix && p[i] == 0 {
		i--
	}
	if i < PayloadZeroPrefix || p[i] != 0x01 {
		return nil, false
	}
	return p[PayloadZeroPrefix:i], true
}

// encryptPayload layers the payload for hops whose payload key seeds are
// given, innermost (last hop) first.
func (s *scratch) encryptPayload(p []byte, seeds []*[PayloadKeySeedSize]byte) {
	for i := len(seeds) - 1; i >= 0; i-- {
		s.derivePayloadKey(seeds[i])
		s.lionessEncrypt(&s.payloadKey, p)
	}
}

func grow(dst []byte, n int) (all, out []byte) {
	if cap(dst)-len(dst) >= n {
		all = dst[:len(dst)+n]
	} else {
		all = make([]byte, len(dst)+n, len(dst)+n)
		copy(all, dst)
	}
	return all, all[len(dst):]
}

// NewPacket builds a packet of the given size that travels along route to
// dest, which the last hop reports together with id. msg must fit the size's
// PlaintextLen. It reads 32 bytes of randomness for the packet's secret and a
// few more for padding from rand (crypto/rand.Reader in production; a
// deterministic reader only in tests).
func NewPacket(rand io.Reader, size PacketSize, route []Hop, dest Destination, id SURBID, msg []byte) ([]byte, error) {
	return AppendPacket(nil, rand, size, route, dest, id, msg)
}

// AppendPacket is like NewPacket but appends the packet to dst.
func AppendPacket(dst []byte, rand io.Reader, size PacketSize, route []Hop, dest Destination, id SURBID, msg []byte) ([]byte, error) {
	return appendPacket(dst, rand, size, route, finalSlotInfo{dest, id, Version}, msg)
}

func appendPacket(dst []byte, rand io.Reader, size PacketSize, route []Hop, final finalSlotInfo, msg []byte) ([]byte, error) {
	if !size.Valid() {
		return dst, fmt.Errorf("%w: unknown size tag %d", ErrPacketSize, size)
	}
	if len(msg) > size.PlaintextLen() {
		return dst, fmt.Errorf("%w: %d bytes, a %v packet carries %d", ErrMessageTooLong, len(msg), size, size.PlaintextLen())
	}
	if err := checkRoute(route); err != nil {
		return dst, err
	}
	s := getScratch()
	defer putScratch(s)
	var rk routeKeys
	defer rk.wipe()
	if err := s.deriveRouteKeys(&rk, rand, route); err != nil {
		return dst, err
	}
	all, out := grow(dst, size.Len())
	if err := s.buildHeader((*[HeaderSize]byte)(out), &rk, rand, route, final); err != nil {
		clear(out)
		return dst, err
	}
	var seeds [MaxHops]*[PayloadKeySeedSize]byte
	for i := range rk.n {
		seeds[i] = rk.keys[i].payloadSeed()
	}
	p := out[HeaderSize:]
	encodePayload(p, msg)
	s.encryptPayload(p, seeds[:rk.n])
	return all, nil
}
