package client

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// The message layer: what a reassembled message holds. Nym's three kinds, with
// a stream id and sequence number added to every message that carries data
// (peapod delivers each sender's messages in order; see docs/protocol.md):
//
//	plain      0x00 ‖ stream[16] ‖ seq u64 ‖ data
//	repliable  0x01 ‖ sender tag[16] ‖ content
//	    data             0x00 ‖ SURB list ‖ stream[16] ‖ seq u64 ‖ data
//	    additional SURBs 0x01 ‖ SURB list
//	reply      0x02 ‖ content
//	    data             0x00 ‖ stream[16] ‖ seq u64 ‖ data
//	    SURB request     0x01 ‖ requester address[96] ‖ amount u32
//
// A SURB list is count u32 ‖ key rotation u32 ‖ SURBs: every SURB of a
// list is made with the Sphinx keys of that rotation, and is usable until
// those keys expire (see directory.Schedule). Every SURB is
// sphinx.SURBSize(SURBHops) bytes (Nym's compact form). The fragmentation
// layer adds Nym's 0x01 ‖ zero padding after the message.
const (
	kindPlain     = 0x00
	kindRepliable = 0x01
	kindReply     = 0x02

	contentData        = 0x00
	contentSURBs       = 0x01
	contentSURBRequest = 0x01

	streamIDSize = 16
	seqSize      = 8
	surbSize     = 16 + sphinx.HeaderSize + sphinx.NodeAddressSize + SURBHops*sphinx.PayloadKeySeedSize
	// repliableHeaderSize is what a repliable message holds before its
	// SURBs: kind ‖ sender tag ‖ content ‖ SURB count u32 ‖ key rotation u32.
	repliableHeaderSize = 2 + address.SenderTagSize + 8

	// maxSURBsInMessage bounds the count field of a message we accept.
	maxSURBsInMessage = 1000

	// maxFraming is the most a message adds to its data: a repliable
	// message with maxSURBsInMessage SURBs.
	maxFraming = repliableHeaderSize + maxSURBsInMessage*surbSize + streamIDSize + seqSize
	// maxMessageSize bounds Config.MaxMessageSize far from overflow.
	maxMessageSize = 1 << 40
)

var errMessage = errors.New("client: malformed message")

func malformedMessage(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMessage, fmt.Sprintf(format, args...))
}

// streamPos names one message of a sender's stream.
type streamPos struct {
	stream [streamIDSize]byte
	seq    uint64
}

func appendStream(dst []byte, p streamPos) []byte {
	return binary.BigEndian.AppendUint64(append(dst, p.stream[:]...), p.seq)
}

func appendSURBs(dst []byte, b surbBatch) ([]byte, error) {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b.surbs)))
	dst = binary.BigEndian.AppendUint32(dst, b.rotation)
	for _, s := range b.surbs {
		var err error
		if dst, err = s.AppendBinary(dst); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// surbBatch is a list of SURBs made together, with the keys of one
// rotation.
type surbBatch struct {
	rotation uint32
	surbs    []*sphinx.SURB
}

// parsedMessage is a decoded message.
type parsedMessage struct {
	kind      byte
	content   byte
	tag       address.SenderTag // repliable
	surbs     surbBatch         // repliable
	pos       streamPos         // data
	data      []byte            // data
	requester address.Address   // SURB request
	amount    uint32            // SURB request
}

func parseStream(b []byte) (streamPos, []byte, error) {
	if len(b) < streamIDSize+seqSize {
		return streamPos{}, nil, malformedMessage("%d bytes, too short for a stream position", len(b))
	}
	var p streamPos
	copy(p.stream[:], b)
	p.seq = binary.BigEndian.Uint64(b[streamIDSize:])
	return p, b[streamIDSize+seqSize:], nil
}

func parseSURBList(b []byte) (surbBatch, []byte, error) {
	if len(b) < 8 {
		return surbBatch{}, nil, malformedMessage("missing SURB count or key rotation")
	}
	n := binary.BigEndian.Uint32(b)
	batch := surbBatch{rotation: binary.BigEndian.Uint32(b[4:])}
	b = b[8:]
	if n > maxSURBsInMessage || uint64(n)*surbSize > uint64(len(b)) {
		return surbBatch{}, nil, malformedMessage("%d SURBs announced, %d bytes follow", n, len(b))
	}
	batch.surbs = make([]*sphinx.SURB, n)
	for i := range batch.surbs {
		s, rest, err := sphinx.ParseSURB(b, SURBHops)
		if err != nil {
			return surbBatch{}, nil, malformedMessage("SURB %d: %v", i, err)
		}
		batch.surbs[i], b = s, rest
	}
	return batch, b, nil
}

// parseMessage decodes a reassembled message. Slices alias b.
func parseMessage(b []byte) (*parsedMessage, error) {
	if len(b) == 0 {
		return nil, malformedMessage("empty")
	}
	m := &parsedMessage{kind: b[0]}
	b = b[1:]
	var err error
	switch m.kind {
	case kindPlain:
		m.pos, m.data, err = parseStream(b)
		return m, err
	case kindRepliable:
		if len(b) < address.SenderTagSize+1 {
			return nil, malformedMessage("repliable message of %d bytes", len(b))
		}
		copy(m.tag[:], b)
		m.content = b[address.SenderTagSize]
		b = b[address.SenderTagSize+1:]
		switch m.content {
		case contentData:
			if m.surbs, b, err = parseSURBList(b); err != nil {
				return nil, err
			}
			m.pos, m.data, err = parseStream(b)
			return m, err
		case contentSURBs:
			if m.surbs, b, err = parseSURBList(b); err != nil {
				return nil, err
			}
			if len(b) != 0 {
				return nil, malformedMessage("%d bytes after the SURBs", len(b))
			}
			return m, nil
		}
		return nil, malformedMessage("unknown repliable content %d", m.content)
	case kindReply:
		if len(b) < 1 {
			return nil, malformedMessage("empty reply")
		}
		m.content = b[0]
		b = b[1:]
		switch m.content {
		case contentData:
			m.pos, m.data, err = parseStream(b)
			return m, err
		case contentSURBRequest:
			if len(b) != address.Size+4 {
				return nil, malformedMessage("SURB request of %d bytes", len(b))
			}
			if m.requester, err = address.FromBytes(b[:address.Size]); err != nil {
				return nil, malformedMessage("SURB request: %v", err)
			}
			m.amount = binary.BigEndian.Uint32(b[address.Size:])
			return m, nil
		}
		return nil, malformedMessage("unknown reply content %d", m.content)
	}
	return nil, malformedMessage("unknown kind %d", m.kind)
}

func plainMessage(p streamPos, data []byte) []byte {
	out := make([]byte, 0, 1+streamIDSize+seqSize+len(data))
	return append(appendStream(append(out, kindPlain), p), data...)
}

func repliableMessage(tag address.SenderTag, surbs surbBatch, p streamPos, data []byte) ([]byte, error) {
	out := make([]byte, 0, repliableHeaderSize+len(surbs.surbs)*surbSize+streamIDSize+seqSize+len(data))
	out = append(append(append(out, kindRepliable), tag[:]...), contentData)
	out, err := appendSURBs(out, surbs)
	if err != nil {
		return nil, err
	}
	return append(appendStream(out, p), data...), nil
}

func surbsMessage(tag address.SenderTag, surbs surbBatch) ([]byte, error) {
	out := make([]byte, 0, repliableHeaderSize+len(surbs.surbs)*surbSize)
	out = append(append(append(out, kindRepliable), tag[:]...), contentSURBs)
	return appendSURBs(out, surbs)
}

func replyMessage(p streamPos, data []byte) []byte {
	out := make([]byte, 0, 2+streamIDSize+seqSize+len(data))
	return append(appendStream(append(out, kindReply, contentData), p), data...)
}

func surbRequestMessage(requester address.Address, amount uint32) []byte {
	out := make([]byte, 0, 2+address.Size+4)
	out = requester.AppendBinary(append(out, kindReply, contentSURBRequest))
	return binary.BigEndian.AppendUint32(out, amount)
}
