package wsapi

import (
	"fmt"
	"unicode/utf8"

	"github.com/peapod-mixnet/peapod/address"
)

// Request is a message an application sends to its client: one of Send,
// SendAnonymous, Reply, SelfAddress, ClosedConnection and
// GetLaneQueueLength. The set is closed; no other type implements it.
type Request interface {
	appendBinary(dst []byte) []byte
	appendJSON(dst []byte) []byte
}

// Response is a message a client sends to its application: one of Error,
// Received, SelfAddressResponse and LaneQueueLength. The set is closed; no
// other type implements it.
type Response interface {
	appendBinary(dst []byte) []byte
	appendJSON(dst []byte) []byte
}

// Send asks the client to send Data to Recipient as a plain message: the
// recipient learns nothing about the sender and cannot answer.
type Send struct {
	Recipient address.Address
	// ConnectionID selects a sending lane; 0 is the general lane ("no
	// connection").
	ConnectionID uint64
	// LaneZero marks a JSON request that named "connectionId":0, which Nym
	// reads as lane 0 rather than as no connection (see Lane). Binary
	// frames cannot say it: their 0 is no connection.
	LaneZero bool
	Data     []byte
}

// Lane returns the request's lane and whether the request named one: then
// the client answers the send with that lane's LaneQueueLength, as Nym's
// does (a connection id other than 0, or LaneZero).
func (r Send) Lane() (lane uint64, named bool) {
	return r.ConnectionID, r.ConnectionID != 0 || r.LaneZero
}

// SendAnonymous asks the client to send Data to Recipient together with
// ReplySURBs single-use reply blocks, so that the recipient can answer
// through Reply without learning the sender's address. With ReplySURBs 0 the
// recipient must already hold SURBs from an earlier message.
type SendAnonymous struct {
	ReplySURBs   uint32
	Recipient    address.Address
	ConnectionID uint64
	LaneZero     bool // as in Send
	Data         []byte
}

// Lane is as Send.Lane.
func (r SendAnonymous) Lane() (lane uint64, named bool) {
	return r.ConnectionID, r.ConnectionID != 0 || r.LaneZero
}

// Reply asks the client to send Data back to the anonymous sender known by
// SenderTag, using reply SURBs it received from that sender.
type Reply struct {
	SenderTag    address.SenderTag
	ConnectionID uint64
	LaneZero     bool // as in Send
	Data         []byte
}

// Lane is as Send.Lane.
func (r Reply) Lane() (lane uint64, named bool) {
	return r.ConnectionID, r.ConnectionID != 0 || r.LaneZero
}

// SelfAddress asks the client for its own address; the client answers with a
// SelfAddressResponse.
type SelfAddress struct{}

// ClosedConnection tells the client that the application is done with the
// lane ConnectionID, so the client can drop what it queued for it.
type ClosedConnection struct {
	ConnectionID uint64
}

// GetLaneQueueLength asks how many packets the client still has queued on
// the lane ConnectionID; the client answers with a LaneQueueLength.
type GetLaneQueueLength struct {
	ConnectionID uint64
}

// Error reports that the client could not serve a request, or that a
// message could not be parsed. It also implements the error interface, so a
// caller can return an Error response as its error.
type Error struct {
	Kind ErrorKind
	// Message is the detail, UTF-8 text. Other bytes are replaced by U+FFFD
	// when the response is encoded.
	Message string
}

// Error returns the kind and the detail, as Nym prints them.
func (e Error) Error() string {
	return "wsapi: error response: " + e.Kind.String() + ":" + e.Message
}

// Received delivers a message that arrived from the mixnet.
type Received struct {
	// SenderTag names the anonymous sender when the message carried reply
	// SURBs (it was sent with SendAnonymous); it is nil otherwise.
	SenderTag *address.SenderTag
	Data      []byte
}

// SelfAddressResponse answers SelfAddress with the client's own address.
type SelfAddressResponse struct {
	Address address.Address
}

// LaneQueueLength answers GetLaneQueueLength, and a send or reply that named
// its lane (see Send.Lane): the client holds QueueLength packets on Lane.
type LaneQueueLength struct {
	Lane        uint64
	QueueLength uint64
}

// ErrorKind is the category of an Error, one byte on the wire. Values
// 0x01–0x7F concern requests, 0x80–0xFE responses.
type ErrorKind uint8

// The error kinds Nym defines, with its values.
const (
	// KindEmptyRequest: the request frame held no bytes.
	KindEmptyRequest ErrorKind = 0x01
	// KindTooShortRequest: the request ended before its fixed fields did.
	KindTooShortRequest ErrorKind = 0x02
	// KindUnknownRequest: the binary request tag is not defined. (An
	// unknown JSON "type" is KindMalformedRequest, as in Nym, where serde
	// refuses it.)
	KindUnknownRequest ErrorKind = 0x03
	// KindMalformedRequest: the request is invalid in any other way.
	KindMalformedRequest ErrorKind = 0x04

	// KindEmptyResponse: the response frame held no bytes.
	KindEmptyResponse ErrorKind = 0x80
	// KindTooShortResponse: the response ended before its fixed fields did.
	KindTooShortResponse ErrorKind = 0x81
	// KindUnknownResponse: the response tag (or JSON "type") is not defined.
	KindUnknownResponse ErrorKind = 0x82
	// KindMalformedResponse: the response is invalid in any other way.
	KindMalformedResponse ErrorKind = 0x83

	// KindOther: any error that is not about parsing, for example a send
	// that failed.
	KindOther ErrorKind = 0xFF
)

// kindText holds Nym's text for each kind (ErrorKind::as_str in
// websocket-requests/src/error.rs).
var kindText = map[ErrorKind]string{
	KindEmptyRequest:      "received request contained no data",
	KindTooShortRequest:   "received request did not contain enough data",
	KindUnknownRequest:    "unknown request type",
	KindMalformedRequest:  "malformed request",
	KindEmptyResponse:     "received response contained no data",
	KindTooShortResponse:  "received response did not contain enough data",
	KindUnknownResponse:   "unknown response type",
	KindMalformedResponse: "malformed response",
	KindOther:             "other",
}

// String returns Nym's text for the kind, the text that starts an error
// message in the JSON form.
func (k ErrorKind) String() string {
	if s, ok := kindText[k]; ok {
		return s
	}
	return fmt.Sprintf("unknown error kind 0x%02x", uint8(k))
}

func (k ErrorKind) known() bool {
	_, ok := kindText[k]
	return ok
}

// ProtocolError is returned by the parsers for a message that breaks the
// format. Kind is the kind a server puts in its Error response (Response
// builds that response) and Detail says what is wrong.
type ProtocolError struct {
	Kind   ErrorKind
	Detail string
}

// Error returns the kind's text and the detail, prefixed with the package.
func (e *ProtocolError) Error() string {
	return "wsapi: " + e.Kind.String() + ": " + e.Detail
}

// Response returns the Error response a server sends back for e.
func (e *ProtocolError) Response() Error {
	return Error{Kind: e.Kind, Message: e.Detail}
}

// maxEcho is the most of a peer's value an error message repeats; the
// rest is cut, so that an answer to a request stays small however large
// the request.
const maxEcho = 64

// clip shortens a value an error message repeats to maxEcho bytes (at a
// character boundary), saying how long it was.
func clip(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	cut := maxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:cut], len(s))
}

func protocolErrorf(kind ErrorKind, format string, args ...any) *ProtocolError {
	return &ProtocolError{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// Compile-time checks that every message type is in its set.
var (
	_ Request = Send{}
	_ Request = SendAnonymous{}
	_ Request = Reply{}
	_ Request = SelfAddress{}
	_ Request = ClosedConnection{}
	_ Request = GetLaneQueueLength{}

	_ Response = Error{}
	_ Response = Received{}
	_ Response = SelfAddressResponse{}
	_ Response = LaneQueueLength{}
)
