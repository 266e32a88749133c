package wsapi

import (
	"encoding/binary"

	"github.com/peapod-mixnet/peapod/address"
)

// Request tags: the first byte of a binary request.
const (
	tagSend               byte = 0x00
	tagSendAnonymous      byte = 0x01
	tagReply              byte = 0x02
	tagSelfAddress        byte = 0x03
	tagClosedConnection   byte = 0x04
	tagGetLaneQueueLength byte = 0x05
)

// Response tags: the first byte of a binary response.
const (
	tagError           byte = 0x00
	tagReceived        byte = 0x01
	tagSelfAddressResp byte = 0x02
	tagLaneQueueLength byte = 0x03
)

// Field sizes, in bytes.
const (
	tagSize          = 1
	connectionIDSize = 8 // u64
	lengthSize       = 8 // u64 length before variable-size data
	replySURBsSize   = 4 // u32
	errorKindSize    = 1
	senderFlagSize   = 1 // 0 or 1: whether a sender tag follows
	laneSize         = 8 // u64
	queueLengthSize  = 8 // u64
)

// Sizes of whole binary messages, or of their fixed part before the data.
const (
	sendHeaderSize          = tagSize + address.Size + connectionIDSize + lengthSize                  // 113
	sendAnonymousHeaderSize = tagSize + replySURBsSize + address.Size + connectionIDSize + lengthSize // 117
	replyHeaderSize         = tagSize + address.SenderTagSize + connectionIDSize + lengthSize         // 33
	selfAddressRequestSize  = tagSize                                                                 // 1
	connectionRequestSize   = tagSize + connectionIDSize                                              // 9, ClosedConnection and GetLaneQueueLength

	errorHeaderSize         = tagSize + errorKindSize + lengthSize  // 10
	receivedMinSize         = tagSize + senderFlagSize + lengthSize // 10, without a sender tag
	selfAddressResponseSize = tagSize + address.Size                // 97
	laneQueueLengthSize     = tagSize + laneSize + queueLengthSize  // 17
)

// AppendRequest appends the binary form of r to dst and returns the
// extended slice. A nil r appends nothing.
func AppendRequest(dst []byte, r Request) []byte {
	if r == nil {
		return dst
	}
	return r.appendBinary(dst)
}

// AppendResponse appends the binary form of r to dst and returns the
// extended slice. A nil r appends nothing.
func AppendResponse(dst []byte, r Response) []byte {
	if r == nil {
		return dst
	}
	return r.appendBinary(dst)
}

func (r Send) appendBinary(dst []byte) []byte {
	dst = append(dst, tagSend)
	dst = r.Recipient.AppendBinary(dst)
	dst = binary.BigEndian.AppendUint64(dst, r.ConnectionID)
	return appendData(dst, r.Data)
}

func (r SendAnonymous) appendBinary(dst []byte) []byte {
	dst = append(dst, tagSendAnonymous)
	dst = binary.BigEndian.AppendUint32(dst, r.ReplySURBs)
	dst = r.Recipient.AppendBinary(dst)
	dst = binary.BigEndian.AppendUint64(dst, r.ConnectionID)
	return appendData(dst, r.Data)
}

func (r Reply) appendBinary(dst []byte) []byte {
	dst = append(dst, tagReply)
	dst = append(dst, r.SenderTag[:]...)
	dst = binary.BigEndian.AppendUint64(dst, r.ConnectionID)
	return appendData(dst, r.Data)
}

func (SelfAddress) appendBinary(dst []byte) []byte {
	return append(dst, tagSelfAddress)
}

func (r ClosedConnection) appendBinary(dst []byte) []byte {
	return binary.BigEndian.AppendUint64(append(dst, tagClosedConnection), r.ConnectionID)
}

func (r GetLaneQueueLength) appendBinary(dst []byte) []byte {
	return binary.BigEndian.AppendUint64(append(dst, tagGetLaneQueueLength), r.ConnectionID)
}

func (r Error) appendBinary(dst []byte) []byte {
	dst = append(dst, tagError, byte(r.Kind))
	lenAt := len(dst)
	dst = binary.BigEndian.AppendUint64(dst, 0)
	dst = appendLossyUTF8(dst, r.Message)
	binary.BigEndian.PutUint64(dst[lenAt:], uint64(len(dst)-lenAt-lengthSize))
	return dst
}

func (r Received) appendBinary(dst []byte) []byte {
	dst = append(dst, tagReceived)
	if r.SenderTag != nil {
		dst = append(dst, 1)
		dst = append(dst, r.SenderTag[:]...)
	} else {
		dst = append(dst, 0)
	}
	return appendData(dst, r.Data)
}

func (r SelfAddressResponse) appendBinary(dst []byte) []byte {
	return r.Address.AppendBinary(append(dst, tagSelfAddressResp))
}

func (r LaneQueueLength) appendBinary(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint64(append(dst, tagLaneQueueLength), r.Lane)
	return binary.BigEndian.AppendUint64(dst, r.QueueLength)
}

// appendData appends the u64 length of data, then data.
func appendData(dst, data []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(len(data)))
	return append(dst, data...)
}

// ParseRequest reads one binary request, the whole of b. The returned
// request owns its Data (a copy). On failure the error is a *ProtocolError
// whose Kind is the one Nym's client answers with: KindEmptyRequest for no
// bytes, KindUnknownRequest for an undefined tag, KindTooShortRequest when b
// ends inside the fixed fields, KindMalformedRequest for anything else (a
// length field that disagrees with the bytes that follow, trailing bytes, an
// invalid recipient). As in Nym, a SelfAddress request may carry trailing
// bytes, which are ignored.
func ParseRequest(b []byte) (Request, error) {
	if len(b) == 0 {
		return nil, protocolErrorf(KindEmptyRequest, "no data provided")
	}
	switch b[0] {
	case tagSend:
		if len(b) < sendHeaderSize {
			return nil, protocolErrorf(KindTooShortRequest, "not enough data provided to recover 'send'")
		}
		recipient, err := parseRecipient(b[tagSize:], KindMalformedRequest)
		if err != nil {
			return nil, err
		}
		rest := b[tagSize+address.Size:]
		data, err := parseData(rest[connectionIDSize:], KindMalformedRequest, "data")
		if err != nil {
			return nil, err
		}
		return Send{Recipient: recipient, ConnectionID: binary.BigEndian.Uint64(rest), Data: data}, nil

	case tagSendAnonymous:
		if len(b) < sendAnonymousHeaderSize {
			return nil, protocolErrorf(KindTooShortRequest, "not enough data provided to recover 'send_anonymous'")
		}
		surbs := binary.BigEndian.Uint32(b[tagSize:])
		recipient, err := parseRecipient(b[tagSize+replySURBsSize:], KindMalformedRequest)
		if err != nil {
			return nil, err
		}
		rest := b[tagSize+replySURBsSize+address.Size:]
		data, err := parseData(rest[connectionIDSize:], KindMalformedRequest, "data")
		if err != nil {
			return nil, err
		}
		return SendAnonymous{ReplySURBs: surbs, Recipient: recipient, ConnectionID: binary.BigEndian.Uint64(rest), Data: data}, nil

	case tagReply:
		if len(b) < replyHeaderSize {
			return nil, protocolErrorf(KindTooShortRequest, "not enough data provided to recover 'reply'")
		}
		var tag address.SenderTag
		copy(tag[:], b[tagSize:])
		rest := b[tagSize+address.SenderTagSize:]
		data, err := parseData(rest[connectionIDSize:], KindMalformedRequest, "message")
		if err != nil {
			return nil, err
		}
		return Reply{SenderTag: tag, ConnectionID: binary.BigEndian.Uint64(rest), Data: data}, nil

	case tagSelfAddress:
		// Nym reads the tag alone and ignores what follows; so does this.
		return SelfAddress{}, nil

	case tagClosedConnection:
		if len(b) != connectionRequestSize {
			return nil, protocolErrorf(KindMalformedRequest, "The received closed connection has invalid length")
		}
		return ClosedConnection{ConnectionID: binary.BigEndian.Uint64(b[tagSize:])}, nil

	case tagGetLaneQueueLength:
		if len(b) != connectionRequestSize {
			return nil, protocolErrorf(KindMalformedRequest, "The received get lane queue lengths has invalid length")
		}
		return GetLaneQueueLength{ConnectionID: binary.BigEndian.Uint64(b[tagSize:])}, nil
	}
	return nil, protocolErrorf(KindUnknownRequest, "%d does not correspond to any valid request tag", b[0])
}

// ParseResponse reads one binary response, the whole of b. The returned
// response owns its Data (a copy). On failure the error is a *ProtocolError
// with KindEmptyResponse, KindUnknownResponse, KindTooShortResponse (b ends
// inside the fixed fields) or KindMalformedResponse (anything else: length
// mismatch, trailing bytes, a sender-tag flag other than 0 or 1, an unknown
// error kind, an error message that is not UTF-8, an invalid address).
func ParseResponse(b []byte) (Response, error) {
	if len(b) == 0 {
		return nil, protocolErrorf(KindEmptyResponse, "no data provided")
	}
	switch b[0] {
	case tagError:
		if len(b) < errorHeaderSize {
			return nil, protocolErrorf(KindTooShortResponse, "not enough data provided to recover 'error'")
		}
		kind := ErrorKind(b[tagSize])
		if !kind.known() {
			return nil, protocolErrorf(KindMalformedResponse, "unknown error kind 0x%02x", b[tagSize])
		}
		msg, err := parseData(b[tagSize+errorKindSize:], KindMalformedResponse, "message")
		if err != nil {
			return nil, err
		}
		if !validUTF8(msg) {
			return nil, protocolErrorf(KindMalformedResponse, "malformed error message: not valid UTF-8")
		}
		return Error{Kind: kind, Message: string(msg)}, nil

	case tagReceived:
		if len(b) < receivedMinSize {
			return nil, protocolErrorf(KindTooShortResponse, "not enough data provided to recover 'received'")
		}
		rest := b[tagSize+senderFlagSize:]
		var tag *address.SenderTag
		switch flag := b[tagSize]; flag {
		case 0:
		case 1:
			if len(rest) < address.SenderTagSize+lengthSize {
				return nil, protocolErrorf(KindTooShortResponse, "not enough data provided to recover 'received'")
			}
			tag = new(address.SenderTag)
			copy(tag[:], rest)
			rest = rest[address.SenderTagSize:]
		default:
			return nil, protocolErrorf(KindMalformedResponse, "invalid sender tag flag %d", flag)
		}
		data, err := parseData(rest, KindMalformedResponse, "message")
		if err != nil {
			return nil, err
		}
		return Received{SenderTag: tag, Data: data}, nil

	case tagSelfAddressResp:
		if len(b) < selfAddressResponseSize {
			return nil, protocolErrorf(KindTooShortResponse, "not enough data provided to recover 'self_address'")
		}
		if len(b) > selfAddressResponseSize {
			return nil, protocolErrorf(KindMalformedResponse, "self address response has %d trailing bytes", len(b)-selfAddressResponseSize)
		}
		a, err := parseRecipient(b[tagSize:], KindMalformedResponse)
		if err != nil {
			return nil, err
		}
		return SelfAddressResponse{Address: a}, nil

	case tagLaneQueueLength:
		if len(b) < laneQueueLengthSize {
			return nil, protocolErrorf(KindTooShortResponse, "not enough data provided to recover 'lane_queue_length'")
		}
		if len(b) > laneQueueLengthSize {
			return nil, protocolErrorf(KindMalformedResponse, "lane queue length response has %d trailing bytes", len(b)-laneQueueLengthSize)
		}
		return LaneQueueLength{
			Lane:        binary.BigEndian.Uint64(b[tagSize:]),
			QueueLength: binary.BigEndian.Uint64(b[tagSize+laneSize:]),
		}, nil
	}
	return nil, protocolErrorf(KindUnknownResponse, "%d does not correspond to any valid response tag", b[0])
}

// parseRecipient reads an address from the first address.Size bytes of b,
// which the caller has checked are there.
func parseRecipient(b []byte, kind ErrorKind) (address.Address, error) {
	a, err := address.FromBytes(b[:address.Size])
	if err != nil {
		return address.Address{}, protocolErrorf(kind, "malformed recipient: %v", err)
	}
	return a, nil
}

// parseData reads a u64 length and exactly that many bytes, which must be
// the rest of b; the caller has checked that the length field is there. The
// data is copied.
// parseData reads a length-prefixed field; name is what Nym calls it in its
// error message ("data", or "message" in a reply).
func parseData(b []byte, kind ErrorKind, name string) ([]byte, error) {
	n := binary.BigEndian.Uint64(b)
	data := b[lengthSize:]
	if n != uint64(len(data)) {
		return nil, protocolErrorf(kind, "%s len has inconsistent length. specified: %d got: %d", name, n, len(data))
	}
	return append(make([]byte, 0, len(data)), data...), nil
}
