package sphinx

import (
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/peapod-mixnet/peapod/internal/x25519"
)

// Result is what processing a packet at one node yields.
type Result struct {
	// Final is true at the last hop: Destination, SURBID and Payload are set.
	// Otherwise NextHop, Delay and Packet are.
	Final bool

	// NextHop is where to send Packet.
	NextHop NodeAddress
	// Delay is how long to hold Packet before sending it on.
	Delay time.Duration
	// Packet is the re-wrapped packet, the same size as the one processed.
	Packet []byte

	// Destination is the recipient the sender named.
	Destination Destination
	// SURBID is the identifier the sender named (zero for forward messages).
	SURBID SURBID
	// Payload is the message the sender wrapped.
	Payload []byte

	// ReplayTag identifies the packet at this node.
	ReplayTag ReplayTag
}

// Processor peels packets with one node key. It is safe for concurrent use.
type Processor struct {
	key    *PrivateKey
	replay *ReplayFilter
}

// NewProcessor returns a Processor for key. Packets whose replay tag replay
// has seen before are refused with ErrReplay; replay may be nil for a node
// that keeps no filter (tests, benchmarks of the bare format).
func NewProcessor(key *PrivateKey, replay *ReplayFilter) *Processor {
	return &Processor{key: key, replay: replay}
}

// Key returns the processor's key.
func (p *Processor) Key() *PrivateKey { return p.key }

// Process peels one layer of packet. Its output (the re-wrapped packet at a
// forward hop, the payload plaintext at the last hop) is written into the
// capacity of dst after len(dst), or into a new buffer when dst has too
// little room; Result.Packet and Result.Payload point into it. Pass
// packet[:0] as dst to process in place; otherwise dst must not overlap
// packet. With enough
// capacity in dst, Process allocates only the AES key schedule that
// crypto/aes does not let a caller avoid.
//
// Errors: ErrPacketSize, ErrAuthentication, ErrUnknownVersion, ErrReplay,
// ErrPayload. On any error no output is returned, and whatever was written
// into dst's capacity is wiped.
func (p *Processor) Process(dst, packet []byte) (Result, error) {
	var res Result
	if _, ok := SizeOf(len(packet)); !ok {
		return res, fmt.Errorf("%w: %d bytes is not a packet size", ErrPacketSize, len(packet))
	}
	alpha := (*[AlphaSize]byte)(packet[:AlphaSize])
	mac := packet[AlphaSize : AlphaSize+MACSize]
	beta := packet[AlphaSize+MACSize : HeaderSize]
	if !x25519.IsCanonical(alpha) {
		return res, ErrAuthentication
	}

	s := getScratch()
	defer putScratch(s)

	// The shared secret lives in the scratch: hashing it through an
	// interface would move a local copy to the heap.
	x25519.ScalarMult(&s.shared, &p.key.clamped, alpha)
	if x25519.IsZero(&s.shared) {
		return res, ErrAuthentication
	}
	s.deriveHopKeys(&s.shared)

	s.hmacInit(s.keys.macKey())
	s.hmacWrite(beta)
	s.hmacSum(&s.mac)
	if subtle.ConstantTimeCompare(s.mac[:MACSize], mac) != 1 {
		return res, ErrAuthentication
	}
	res.ReplayTag = *s.keys.replayTag()

	// Decrypt the routing information, shifted by one slot.
	b := s.stream[:]
	copy(b, beta)
	clear(b[RoutingInfoSize:])
	s.xorAESCTR(s.keys.streamKey(), b)
	slot := b[:SlotSize]
	if slot[slotVersionOff] != 0 || binary.BigEndian.Uint16(slot[slotVersionOff+1:]) != Version {
		return res, ErrUnknownVersion
	}
	switch slot[slotFlagOff] {
	case flagForward:
		res.Final = false
		d := binary.BigEndian.Uint64(slot[slotDelayOff:])
		if d > math.MaxInt64 {
			return res, ErrUnknownVersion
		}
		res.Delay = time.Duration(d)
		copy(res.NextHop[:], slot[slotAddrOff:])
	case flagFinal:
		res.Final = true
		copy(res.Destination[:], slot[slotDestOff:])
		copy(res.SURBID[:], slot[slotSURBIDOff:])
	default:
		return res, ErrUnknownVersion
	}

	if p.replay != nil && p.replay.Seen(&res.ReplayTag) {
		return Result{}, ErrReplay
	}

	_, out := grow(dst, len(packet))
	payload := out[HeaderSize:]
	inPlace := &out[0] == &packet[0]
	if !inPlace {
		copy(payload, packet[HeaderSize:])
	}
	s.derivePayloadKey(s.keys.payloadSeed())
	s.lionessDecrypt(&s.payloadKey, payload)

	if res.Final {
		// The header is of no further use; the payload stays where it is so
		// that in-place processing needs no copy.
		msg, ok := decodePayload(payload)
		if !ok {
			clear(out)
			return Result{}, ErrPayload
		}
		clear(out[:HeaderSize])
		res.Payload = msg
		return res, nil
	}

	// Blind the group element for the next hop, then write the new header.
	var blind, next [KeySize]byte
	blind = *s.keys.blinding()
	x25519.Clamp(&blind)
	x25519.ScalarMult(&next, &blind, alpha)
	clear(blind[:])
	copy(out[:AlphaSize], next[:])
	copy(out[AlphaSize:AlphaSize+MACSize], slot[slotMACOff:slotMACOff+MACSize])
	copy(out[AlphaSize+MACSize:HeaderSize], b[SlotSize:])
	res.Packet = out
	return res, nil
}
