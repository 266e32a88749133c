// Package fragment splits a message into fixed-size fragments in Nym's wire
// format and reassembles messages from fragments that arrive lost,
// duplicated and in any order.
//
// Each Sphinx packet carries one fragment. A fragment is a header followed by
// a slice of the padded message:
//
//	unlinked (7 bytes):  1 | set id (31 bits) | total u8 | index u8 | 0x00
//	linked   (10 bytes): 1 | set id (31 bits) | total u8 | index u8 | 1 | linked set id (31 bits)
//
// integers big-endian, index 1-based. A set holds at most 255 fragments; a
// longer message is a chain of sets. Only two fragments of a set may carry a
// link, as in Nym's nym-sphinx-chunking crate: fragment 1 names the previous
// set of the chain, and fragment 255 of a full set names the next one. Every
// other fragment has the 7-byte header.
//
// Split pads the message to `message ‖ 0x01 ‖ zero bytes` so that every
// fragment fills exactly the caller's capacity (the bytes a packet has left
// for the fragment), which keeps packets of one message indistinguishable by
// size. A Reassembler collects fragments, joins the sets of a chain, removes
// the padding and returns each message once.
//
// The fragment identifier that acknowledgements carry is an ID: the set id
// and the index, 5 bytes on the wire.
package fragment

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire sizes and limits of the fragment format.
const (
	// UnlinkedHeaderLen is the length of the header of a fragment that names
	// no other set.
	UnlinkedHeaderLen = 7
	// LinkedHeaderLen is the length of the header of a fragment that names
	// the previous or the next set of its chain.
	LinkedHeaderLen = 10
	// IDLen is the length of an encoded ID: set id i32 ‖ index u8.
	IDLen = 5
	// MaxSetFragments is the largest number of fragments in one set.
	MaxSetFragments = 255
	// MaxSetID is the largest set id; set ids of fragments are 1..MaxSetID.
	MaxSetID = 1<<31 - 1
	// PaddingOverhead is the one marker byte (0x01) Split always appends to
	// a message before the zero padding.
	PaddingOverhead = 1
	// MinCapacity is the smallest capacity Split accepts: the smallest
	// fragment size at which opening another set of a chain still adds
	// message bytes, although the fragment that opens it and the one that
	// closes the set before it both lose bytes to the longer linked header.
	MinCapacity = UnlinkedHeaderLen + 2*linkExtraLen + 1
	// MaxCapacity is the largest capacity Split accepts and the largest wire
	// length a Reassembler accepts. Nym's largest packet (extended32) has
	// 32768 plaintext bytes.
	MaxCapacity = 1 << 16

	// linkExtraLen is what a linked header costs over an unlinked one.
	linkExtraLen = LinkedHeaderLen - UnlinkedHeaderLen
)

// Offsets into a header.
const (
	setIDOff   = 0 // flag bit ‖ 31-bit set id, 4 bytes
	totalOff   = 4 // total u8
	indexOff   = 5 // index u8
	linkOff    = 6 // 0x00, or flag bit ‖ 31-bit linked set id (4 bytes)
	flagBit    = 1 << 31
	unlinkByte = 0x00
)

// ID identifies one fragment: the id of its set and its index in the set.
// Acknowledgements carry it, encoded as set id i32 ‖ index u8 (IDLen bytes).
type ID struct {
	Set   int32
	Index uint8
}

// CoverID is the identifier Nym uses in acknowledgements of loop cover
// packets, which carry no fragment: set 0, index 0.
var CoverID = ID{}

// AppendBinary appends the IDLen-byte encoding of id to dst and returns the
// extended slice.
func (id ID) AppendBinary(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(id.Set))
	return append(dst, id.Index)
}

// String formats id as "set@index".
func (id ID) String() string {
	return fmt.Sprintf("%d@%d", id.Set, id.Index)
}

// ParseID decodes an ID from exactly IDLen bytes. As in Nym, set id 0 is
// accepted (CoverID, replies) and any index is accepted; a negative set id is
// an error.
func ParseID(b []byte) (ID, error) {
	if len(b) != IDLen {
		return ID{}, fmt.Errorf("fragment: id: %d bytes, want %d", len(b), IDLen)
	}
	id := ID{Set: int32(binary.BigEndian.Uint32(b)), Index: b[4]}
	if id.Set < 0 {
		return ID{}, fmt.Errorf("fragment: id: set id %d is negative", id.Set)
	}
	return id, nil
}

// Fragment is one fragment of a message: its header fields and its payload,
// a slice of the padded message.
//
// PreviousSetID and NextSetID are 0 when the fragment names no other set
// (set ids are never 0). Only fragment 1 may name a previous set, and only
// fragment 255 of a set of 255 may name a next set; Validate enforces this.
type Fragment struct {
	// SetID is the id of the set this fragment belongs to, 1..MaxSetID.
	SetID int32
	// Total is the number of fragments in the set, 1..MaxSetFragments.
	Total uint8
	// Index is the 1-based position of this fragment in its set, 1..Total.
	Index uint8
	// PreviousSetID is the id of the set before this one in the chain, or 0.
	PreviousSetID int32
	// NextSetID is the id of the set after this one in the chain, or 0.
	NextSetID int32
	// Payload is this fragment's slice of the padded message.
	Payload []byte
}

// ID returns the identifier acknowledgements carry for f.
func (f Fragment) ID() ID {
	return ID{Set: f.SetID, Index: f.Index}
}

// Linked reports whether f names another set, and so has the longer header.
func (f Fragment) Linked() bool {
	return f.PreviousSetID != 0 || f.NextSetID != 0
}

// HeaderLen returns the length of f's header: UnlinkedHeaderLen or
// LinkedHeaderLen.
func (f Fragment) HeaderLen() int {
	if f.Linked() {
		return LinkedHeaderLen
	}
	return UnlinkedHeaderLen
}

// WireLen returns the length of f's encoding: header and payload.
func (f Fragment) WireLen() int {
	return f.HeaderLen() + len(f.Payload)
}

// Validate reports whether f's header fields are within range and consistent
// with each other, with an error that names the field. Fragments returned by
// Split and Parse are always valid.
func (f Fragment) Validate() error {
	if f.SetID < 1 {
		return fmt.Errorf("fragment: set id %d outside 1..%d", f.SetID, MaxSetID)
	}
	if f.Total == 0 {
		return errors.New("fragment: total is 0")
	}
	if f.Index == 0 || f.Index > f.Total {
		return fmt.Errorf("fragment: index %d outside 1..%d", f.Index, f.Total)
	}
	if f.PreviousSetID != 0 && f.NextSetID != 0 {
		return errors.New("fragment: both previous and next set id are set")
	}
	if p := f.PreviousSetID; p != 0 {
		switch {
		case p < 0:
			return fmt.Errorf("fragment: previous set id %d outside 1..%d", p, MaxSetID)
		case p == f.SetID:
			return fmt.Errorf("fragment: previous set id %d equals the set id", p)
		case f.Index != 1:
			return fmt.Errorf("fragment: previous set id on fragment %d (only fragment 1 may have one)", f.Index)
		}
	}
	if n := f.NextSetID; n != 0 {
		switch {
		case n < 0:
			return fmt.Errorf("fragment: next set id %d outside 1..%d", n, MaxSetID)
		case n == f.SetID:
			return fmt.Errorf("fragment: next set id %d equals the set id", n)
		case f.Index != MaxSetFragments || f.Total != MaxSetFragments:
			return fmt.Errorf("fragment: next set id on fragment %d of %d (only fragment %d of %d may have one)",
				f.Index, f.Total, MaxSetFragments, MaxSetFragments)
		}
	}
	return nil
}

// AppendBinary appends f's wire encoding (header, then payload) to dst and
// returns the extended slice. It does not validate f: a fragment built by
// hand should pass Validate first, or Parse will refuse the bytes.
func (f Fragment) AppendBinary(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(f.SetID)|flagBit)
	dst = append(dst, f.Total, f.Index)
	switch {
	case f.PreviousSetID != 0:
		dst = binary.BigEndian.AppendUint32(dst, uint32(f.PreviousSetID)|flagBit)
	case f.NextSetID != 0:
		dst = binary.BigEndian.AppendUint32(dst, uint32(f.NextSetID)|flagBit)
	default:
		dst = append(dst, unlinkByte)
	}
	return append(dst, f.Payload...)
}

// Parse decodes a fragment from b, the whole fragment as a packet carries
// it. Everything after the header is the payload, which aliases b. Parse
// accepts exactly the encodings AppendBinary produces for valid fragments
// and names the offending field otherwise.
func Parse(b []byte) (Fragment, error) {
	if len(b) < UnlinkedHeaderLen {
		return Fragment{}, fmt.Errorf("fragment: header: %d bytes, want at least %d", len(b), UnlinkedHeaderLen)
	}
	word := binary.BigEndian.Uint32(b[setIDOff:])
	if word&flagBit == 0 {
		return Fragment{}, errors.New("fragment: set id: flag bit is 0")
	}
	f := Fragment{
		SetID: int32(word &^ flagBit),
		Total: b[totalOff],
		Index: b[indexOff],
	}
	headerLen := UnlinkedHeaderLen
	if b[linkOff] != unlinkByte {
		if len(b) < LinkedHeaderLen {
			return Fragment{}, fmt.Errorf("fragment: linked header: %d bytes, want at least %d", len(b), LinkedHeaderLen)
		}
		link := binary.BigEndian.Uint32(b[linkOff:])
		if link&flagBit == 0 {
			return Fragment{}, errors.New("fragment: linked set id: flag bit is 0")
		}
		linked := int32(link &^ flagBit)
		if linked == 0 {
			return Fragment{}, errors.New("fragment: linked set id is 0")
		}
		// Nym reads the link by position: fragment 1 names its previous set,
		// the last fragment of a full set its next one.
		if f.Index == 1 {
			f.PreviousSetID = linked
		} else {
			f.NextSetID = linked
		}
		headerLen = LinkedHeaderLen
	}
	if err := f.Validate(); err != nil {
		return Fragment{}, err
	}
	f.Payload = b[headerLen:]
	return f, nil
}
