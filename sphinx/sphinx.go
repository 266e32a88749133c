// Package sphinx implements the Sphinx mix packet format as peapod's network
// uses it: Nym's parameters (X25519, AES-128-CTR routing information,
// HMAC-SHA256 truncated to 16 bytes, a Lioness-protected payload, 60-byte hop
// slots in a 348-byte header, up to five hops) with Nym's packet sizes.
//
// The package is pure: no I/O, no clocks, randomness only from the io.Reader
// a caller passes in.
//
// A sender builds a packet for a route of hops with [NewPacket]. Each node
// peels one layer with [Processor.Process], which reports either a forward
// result (the next hop, the delay to hold the packet, and the re-wrapped packet
// of the same size) or a final result (the destination, the SURB id, and the
// payload). Every processed packet exposes its replay tag; [ReplayFilter]
// lets a node refuse packets it has seen before.
//
// A single-use reply block ([SURB]) lets an anonymous party receive a reply:
// its creator makes one with [NewSURB] for a route back to itself, hands it
// out inside a message, and keeps its [ReplyKey]. Whoever holds the SURB seals
// a reply with [SealReply] and wraps it with [SURB.NewPacket]; the creator
// opens it with [OpenReply] once the last hop has delivered it.
//
// See docs/protocol.md for the byte layouts and where they depart from Nym.
package sphinx

import (
	"fmt"
	"time"
)

// Sizes of the header and its parts.
const (
	// AlphaSize is the size of the group element that starts a header.
	AlphaSize = 32
	// MACSize is the size of a header MAC (HMAC-SHA256 truncated).
	MACSize = 16
	// MaxHops is the longest route a header can carry.
	MaxHops = 5
	// SlotSize is the size of one hop's routing slot.
	SlotSize = 60
	// RoutingInfoSize is the size of the encrypted routing information.
	RoutingInfoSize = MaxHops * SlotSize
	// HeaderSize is the size of a whole header: alpha ‖ MAC ‖ routing info.
	HeaderSize = AlphaSize + MACSize + RoutingInfoSize

	// NodeAddressSize is the size of a node address inside a header.
	NodeAddressSize = 32
	// DestinationSize is the size of a final destination.
	DestinationSize = 32
	// SURBIDSize is the size of a SURB identifier.
	SURBIDSize = 16
	// DelaySize is the size of a per-hop delay (u64 big-endian nanoseconds).
	DelaySize = 8
	// ReplayTagSize is the size of a replay tag.
	ReplayTagSize = 32
	// KeySize is the size of X25519 private and public keys.
	KeySize = 32

	// PayloadZeroPrefix is how many zero bytes start every payload plaintext;
	// the last hop checks them to detect a tampered payload.
	PayloadZeroPrefix = 16
	// PayloadOverhead is what the payload encoding adds to a message: the
	// zero prefix and the 0x01 terminator before the zero padding.
	PayloadOverhead = PayloadZeroPrefix + 1
	// Overhead is what a packet adds to a message: header and payload overhead.
	Overhead = HeaderSize + PayloadOverhead
)

// Slot layout: flag ‖ version[3] ‖ then per kind.
const (
	flagForward = 0x01
	flagFinal   = 0x02

	slotFlagOff    = 0
	slotVersionOff = 1
	slotBodyOff    = 4
	// forward slot: next address ‖ delay ‖ next MAC
	slotAddrOff  = slotBodyOff
	slotDelayOff = slotAddrOff + NodeAddressSize
	slotMACOff   = slotDelayOff + DelaySize
	// final slot: destination ‖ SURB id ‖ padding
	slotDestOff   = slotBodyOff
	slotSURBIDOff = slotDestOff + DestinationSize
	finalSlotUsed = slotSURBIDOff + SURBIDSize
)

// Version is the packet version this package builds and accepts. It travels in
// every routing slot as the three bytes [0, hi, lo]. Nym's clients build 258;
// peapod's key schedule differs from Nym's (see docs/protocol.md), so it uses
// its own number rather than claim compatibility it does not have.
const Version uint16 = 0x5001

// PacketSize names one of the fixed packet sizes. Its value is the size tag
// that travels in the node-to-node frame header.
type PacketSize uint8

// The packet sizes of Nym's network.
const (
	RegularPacket    PacketSize = 1 // 2413 bytes, 2048 of message
	AckPacket        PacketSize = 2 // 386 bytes, 21 of message
	Extended32Packet PacketSize = 3 // 33133 bytes, 32768 of message
	Extended8Packet  PacketSize = 4 // 8557 bytes, 8192 of message
	Extended16Packet PacketSize = 5 // 16749 bytes, 16384 of message
)

// PacketSizes lists every valid size, smallest first.
var PacketSizes = []PacketSize{AckPacket, RegularPacket, Extended8Packet, Extended16Packet, Extended32Packet}

// PlaintextLen is how many message bytes a packet of this size carries, or 0
// for an unknown size.
func (s PacketSize) PlaintextLen() int {
	switch s {
	case RegularPacket:
		return 2048
	case AckPacket:
		return 21
	case Extended8Packet:
		return 8192
	case Extended16Packet:
		return 16384
	case Extended32Packet:
		return 32768
	}
	return 0
}

// PayloadLen is the size of the encrypted payload of a packet of this size.
func (s PacketSize) PayloadLen() int {
	if s.PlaintextLen() == 0 {
		return 0
	}
	return s.PlaintextLen() + PayloadOverhead
}

// Len is the total size in bytes of a packet of this size, or 0 for an
// unknown size.
func (s PacketSize) Len() int {
	if s.PlaintextLen() == 0 {
		return 0
	}
	return HeaderSize + s.PayloadLen()
}

// Valid reports whether s is one of the known sizes.
func (s PacketSize) Valid() bool { return s.PlaintextLen() != 0 }

func (s PacketSize) String() string {
	switch s {
	case RegularPacket:
		return "regular"
	case AckPacket:
		return "ack"
	case Extended8Packet:
		return "extended8"
	case Extended16Packet:
		return "extended16"
	case Extended32Packet:
		return "extended32"
	}
	return fmt.Sprintf("unknown(%d)", uint8(s))
}

// SizeOf returns the packet size whose total length is n.
func SizeOf(n int) (PacketSize, bool) {
	for _, s := range PacketSizes {
		if s.Len() == n {
			return s, true
		}
	}
	return 0, false
}

// Destination names the final recipient of a packet; in peapod it is the
// ed25519 identity of a client of the last hop (a gateway).
type Destination [DestinationSize]byte

// SURBID is an identifier the final hop reports with the payload. Forward
// packets to clients carry all zeroes.
type SURBID [SURBIDSize]byte

// ReplayTag identifies a packet at one node: the same packet processed twice
// by the same key yields the same tag.
type ReplayTag [ReplayTagSize]byte

// PublicKey is a node's X25519 public key.
type PublicKey [KeySize]byte

// Hop is one node of a route.
type Hop struct {
	// Address is where the node listens.
	Address NodeAddress
	// PublicKey is the node's Sphinx key.
	PublicKey PublicKey
	// Delay is how long the node holds the packet before forwarding it. It is
	// ignored for the last hop of a route.
	Delay time.Duration
}
