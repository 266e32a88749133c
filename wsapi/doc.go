// Package wsapi speaks the WebSocket API of Nym's native client, the API an
// application uses to send and receive mixnet messages through its local
// client (Nym serves it on ws://127.0.0.1:1977). peapod's client serves the
// same API, and peapod's provider can use either client through it.
//
// # Messages
//
// An application sends Requests (Send, SendAnonymous, Reply, SelfAddress,
// ClosedConnection, GetLaneQueueLength) and the client answers with
// Responses (Error, Received, SelfAddressResponse, LaneQueueLength). Each
// message travels in one WebSocket frame, in one of two forms.
//
// Binary frames, the default, hold a tag byte, then fixed fields, integers
// big-endian, variable data after a u64 length (AppendRequest, ParseRequest,
// AppendResponse, ParseResponse). The layouts are those of Nym's
// websocket-requests crate:
//
//	request  Send                0x00 ‖ recipient[96] ‖ connection_id u64 ‖ len u64 ‖ data
//	request  SendAnonymous       0x01 ‖ reply_surbs u32 ‖ recipient[96] ‖ connection_id u64 ‖ len u64 ‖ data
//	request  Reply               0x02 ‖ sender_tag[16] ‖ connection_id u64 ‖ len u64 ‖ data
//	request  SelfAddress         0x03
//	request  ClosedConnection    0x04 ‖ connection_id u64
//	request  GetLaneQueueLength  0x05 ‖ connection_id u64
//	response Error               0x00 ‖ kind u8 ‖ len u64 ‖ UTF-8 message
//	response Received            0x01 ‖ 0x00 ‖ len u64 ‖ data
//	                             0x01 ‖ 0x01 ‖ sender_tag[16] ‖ len u64 ‖ data
//	response SelfAddressResponse 0x02 ‖ address[96]
//	response LaneQueueLength     0x03 ‖ lane u64 ‖ queue_length u64
//
// Text frames hold JSON objects with a "type" field, written byte for byte
// as Nym's serde_json output (ParseJSONRequest, MarshalJSONRequest,
// ParseJSONResponse, MarshalJSONResponse):
//
//	{"type":"send","message":"hi","recipient":"<address>","connectionId":null}
//	{"type":"sendAnonymous","recipient":"<address>","message":"hi","replySurbs":10,"connectionId":7}
//	{"type":"reply","senderTag":"<base58>","message":"hi","connectionId":null}
//	{"type":"selfAddress"}
//	{"type":"received","message":"hi","senderTag":null}
//	{"type":"selfAddress","address":"<address>"}
//	{"type":"laneQueueLength","lane":7,"queue_length":3}
//	{"type":"error","message":"malformed request:missing field `recipient`"}
//
// A connection id of 0 means "no connection" (the general lane); in JSON it
// is written null, and a missing or null "connectionId" reads as 0. An error
// in JSON is Nym's text for its kind, a colon without a space, and the
// detail.
//
// A server answers each request in the frame type it came in, as Nym does:
// ReadRequest reports the frame type and WriteResponse writes in it.
//
// # Errors
//
// The parsers return a *ProtocolError whose Kind is the one Nym's client
// puts in its Error response for the same input (empty, too short, unknown
// tag or type, malformed), so a server answers ProtocolError.Response().
// Parsing is strict: binary messages must have exactly the length their
// fields announce, with no trailing bytes; JSON must be one object with
// unique keys, exactly named fields of the right types, and valid UTF-8.
// Fields a JSON parser does not know are ignored, as in Nym.
//
// # peapod's extensions to the JSON form
//
// Nym puts message data in a JSON string, which cannot carry bytes that are
// not UTF-8: it refuses such requests and replaces such received bytes with
// U+FFFD. peapod adds an optional field that leaves plain Nym JSON valid in
// both directions:
//
//   - In send, sendAnonymous and reply requests, an application may give
//     "messageBase64" (standard padded base64 of the exact bytes) instead of
//     "message". Exactly one of the two must be present; both or neither is a
//     malformed request. MarshalJSONRequest writes "message" when the data is
//     valid UTF-8 and "messageBase64" otherwise.
//   - In received responses "message" is always present, converted lossily to
//     UTF-8 exactly as Nym does it, and "messageBase64" follows with the exact
//     bytes whenever the data is not valid UTF-8. An application that knows
//     the field reads the bytes from it; one that does not sees Nym's output.
//
// peapod also gives ClosedConnection and GetLaneQueueLength a JSON form,
// {"type":"closedConnection","connectionId":7} and
// {"type":"getLaneQueueLength","connectionId":7}, which Nym's client does not
// have (it answers them with a malformed-request error); in binary frames
// they are Nym's.
//
// # Client
//
// Dial opens a Conn to a client for programs and tests: Send writes a
// request, Receive returns the next response, SelfAddress asks for the
// client's address and waits for the answer.
package wsapi
