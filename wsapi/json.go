package wsapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/peapod-mixnet/peapod/address"
)

// JSON "type" values. Requests and responses each have their own set;
// "selfAddress" is in both.
const (
	jsonSend               = "send"
	jsonSendAnonymous      = "sendAnonymous"
	jsonReply              = "reply"
	jsonSelfAddress        = "selfAddress"
	jsonClosedConnection   = "closedConnection"   // peapod extension
	jsonGetLaneQueueLength = "getLaneQueueLength" // peapod extension

	jsonReceived        = "received"
	jsonLaneQueueLength = "laneQueueLength"
	jsonError           = "error"
)

// JSON field names, as Nym's serde attributes spell them.
const (
	fieldType          = "type"
	fieldMessage       = "message"
	fieldMessageBase64 = "messageBase64" // peapod extension
	fieldRecipient     = "recipient"
	fieldConnectionID  = "connectionId"
	fieldReplySURBs    = "replySurbs"
	fieldSenderTag     = "senderTag"
	fieldAddress       = "address"
	fieldLane          = "lane"
	fieldQueueLength   = "queue_length"
)

// MarshalJSONRequest returns the JSON form of r, byte for byte what Nym's
// serde_json would write for it, except that data that is not valid UTF-8
// goes in "messageBase64" instead of "message" (see the package doc).
func MarshalJSONRequest(r Request) ([]byte, error) {
	if r == nil {
		return nil, errors.New("wsapi: marshaling a nil request")
	}
	return r.appendJSON(nil), nil
}

// MarshalJSONResponse returns the JSON form of r, byte for byte what Nym
// writes for it, plus "messageBase64" in a Received response whose data is
// not valid UTF-8 (see the package doc).
func MarshalJSONResponse(r Response) ([]byte, error) {
	if r == nil {
		return nil, errors.New("wsapi: marshaling a nil response")
	}
	return r.appendJSON(nil), nil
}

func (r Send) appendJSON(dst []byte) []byte {
	dst = appendJSONType(dst, jsonSend)
	dst = appendJSONData(dst, r.Data)
	dst = appendJSONAddress(dst, fieldRecipient, r.Recipient)
	dst = appendJSONConnectionID(dst, r.ConnectionID, r.LaneZero)
	return append(dst, '}')
}

func (r SendAnonymous) appendJSON(dst []byte) []byte {
	dst = appendJSONType(dst, jsonSendAnonymous)
	dst = appendJSONAddress(dst, fieldRecipient, r.Recipient)
	dst = appendJSONData(dst, r.Data)
	dst = appendJSONUint(dst, fieldReplySURBs, uint64(r.ReplySURBs))
	dst = appendJSONConnectionID(dst, r.ConnectionID, r.LaneZero)
	return append(dst, '}')
}

func (r Reply) appendJSON(dst []byte) []byte {
	dst = appendJSONType(dst, jsonReply)
	dst = appendJSONKey(dst, fieldSenderTag)
	dst = appendJSONString(dst, r.SenderTag.String())
	dst = appendJSONData(dst, r.Data)
	dst = appendJSONConnectionID(dst, r.ConnectionID, r.LaneZero)
	return append(dst, '}')
}

func (SelfAddress) appendJSON(dst []byte) []byte {
	return append(appendJSONType(dst, jsonSelfAddress), '}')
}

func (r ClosedConnection) appendJSON(dst []byte) []byte {
	dst = appendJSONType(dst, jsonClosedConnection)
	return append(appendJSONUint(dst, fieldConnectionID, r.ConnectionID), '}')
}

func (r GetLaneQueueLength) appendJSON(dst []byte) []byte {
	dst = appendJSONType(dst, jsonGetLaneQueueLength)
	return append(appendJSONUint(dst, fieldConnectionID, r.ConnectionID), '}')
}

func (r Error) appendJSON(dst []byte) []byte {
	dst = appendJSONType(dst, jsonError)
	dst = appendJSONKey(dst, fieldMessage)
	// Nym prints an error as "<kind text>:<detail>", without a space.
	return append(appendJSONString(dst, r.Kind.String()+":"+r.Message), '}')
}

func (r Received) appendJSON(dst []byte) []byte {
	dst = appendJSONType(dst, jsonReceived)
	dst = appendJSONKey(dst, fieldMessage)
	dst = appendJSONString(dst, r.Data) // lossy, as Nym's from_utf8_lossy
	dst = appendJSONKey(dst, fieldSenderTag)
	if r.SenderTag != nil {
		dst = appendJSONString(dst, r.SenderTag.String())
	} else {
		dst = append(dst, "null"...)
	}
	if !utf8.Valid(r.Data) {
		dst = appendJSONKey(dst, fieldMessageBase64)
		dst = appendJSONBase64(dst, r.Data)
	}
	return append(dst, '}')
}

func (r SelfAddressResponse) appendJSON(dst []byte) []byte {
	dst = appendJSONType(dst, jsonSelfAddress)
	return append(appendJSONAddress(dst, fieldAddress, r.Address), '}')
}

func (r LaneQueueLength) appendJSON(dst []byte) []byte {
	dst = appendJSONType(dst, jsonLaneQueueLength)
	dst = appendJSONUint(dst, fieldLane, r.Lane)
	dst = appendJSONUint(dst, fieldQueueLength, r.QueueLength)
	return append(dst, '}')
}

// appendJSONType opens an object with its "type" field.
func appendJSONType(dst []byte, typ string) []byte {
	dst = append(dst, `{"type":`...)
	return appendJSONString(dst, typ)
}

// appendJSONKey appends a comma and the key of the next field.
func appendJSONKey(dst []byte, key string) []byte {
	dst = append(dst, ',')
	dst = appendJSONString(dst, key)
	return append(dst, ':')
}

func appendJSONUint(dst []byte, key string, v uint64) []byte {
	return strconv.AppendUint(appendJSONKey(dst, key), v, 10)
}

// appendJSONConnectionID writes Nym's optional connection id: null for no
// connection (0 without laneZero).
func appendJSONConnectionID(dst []byte, id uint64, laneZero bool) []byte {
	if id == 0 && !laneZero {
		return append(appendJSONKey(dst, fieldConnectionID), "null"...)
	}
	return appendJSONUint(dst, fieldConnectionID, id)
}

func appendJSONAddress(dst []byte, key string, a address.Address) []byte {
	dst = append(appendJSONKey(dst, key), '"')
	dst, _ = a.AppendText(dst) // base58 needs no JSON escaping
	return append(dst, '"')
}

// appendJSONData writes request data as "message" when it is valid UTF-8
// and as "messageBase64" otherwise.
func appendJSONData(dst, data []byte) []byte {
	if utf8.Valid(data) {
		return appendJSONString(appendJSONKey(dst, fieldMessage), data)
	}
	return appendJSONBase64(appendJSONKey(dst, fieldMessageBase64), data)
}

func appendJSONBase64(dst, data []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, data)
	return append(dst, '"')
}

// ParseJSONRequest reads a request from the JSON of a text frame. Field
// names are matched exactly and fields it does not know are ignored, as in
// Nym. On failure the error is a *ProtocolError of KindMalformedRequest, as
// Nym's (invalid JSON or UTF-8, a "type" it does not know, a missing or
// mistyped field, both or neither of "message" and "messageBase64", an
// invalid recipient or sender tag). The detail names the field; for an
// unknown type and a missing field it is serde_json's text, as Nym sends
// it.
func ParseJSONRequest(b []byte) (Request, error) {
	obj, typ, err := readJSONObject(b, KindMalformedRequest)
	if err != nil {
		return nil, err
	}
	switch typ {
	case jsonSend:
		data, err := obj.requestData()
		if err != nil {
			return nil, err
		}
		recipient, err := obj.address(fieldRecipient)
		if err != nil {
			return nil, err
		}
		id, zero, err := obj.connectionID()
		if err != nil {
			return nil, err
		}
		return Send{Recipient: recipient, ConnectionID: id, LaneZero: zero, Data: data}, nil

	case jsonSendAnonymous:
		recipient, err := obj.address(fieldRecipient)
		if err != nil {
			return nil, err
		}
		data, err := obj.requestData()
		if err != nil {
			return nil, err
		}
		surbs, err := obj.uint(fieldReplySURBs, 32)
		if err != nil {
			return nil, err
		}
		id, zero, err := obj.connectionID()
		if err != nil {
			return nil, err
		}
		return SendAnonymous{ReplySURBs: uint32(surbs), Recipient: recipient, ConnectionID: id, LaneZero: zero, Data: data}, nil

	case jsonReply:
		s, err := obj.string(fieldSenderTag)
		if err != nil {
			return nil, err
		}
		tag, err := address.ParseSenderTag(s)
		if err != nil {
			return nil, obj.errorf("field `%s`: %v", fieldSenderTag, err)
		}
		data, err := obj.requestData()
		if err != nil {
			return nil, err
		}
		id, zero, err := obj.connectionID()
		if err != nil {
			return nil, err
		}
		return Reply{SenderTag: tag, ConnectionID: id, LaneZero: zero, Data: data}, nil

	case jsonSelfAddress:
		return SelfAddress{}, nil

	case jsonClosedConnection:
		id, err := obj.uint(fieldConnectionID, 64)
		if err != nil {
			return nil, err
		}
		return ClosedConnection{ConnectionID: id}, nil

	case jsonGetLaneQueueLength:
		id, err := obj.uint(fieldConnectionID, 64)
		if err != nil {
			return nil, err
		}
		return GetLaneQueueLength{ConnectionID: id}, nil
	}
	// serde_json's words, as Nym's client answers (its variants only: the
	// two of peapod's extensions are not listed).
	return nil, protocolErrorf(KindMalformedRequest, "unknown variant `%s`, expected one of `%s`, `%s`, `%s`, `%s` at %s",
		clip(typ), jsonSend, jsonSendAnonymous, jsonReply, jsonSelfAddress, obj.typePosition(b))
}

// ParseJSONResponse reads a response from the JSON of a text frame, with the
// same rules as ParseJSONRequest and the response kinds
// (KindUnknownResponse, KindMalformedResponse). An "error" message is split
// back into its kind and detail when it starts with a kind's text and ':';
// otherwise the kind is KindOther and the whole text is the detail.
func ParseJSONResponse(b []byte) (Response, error) {
	obj, typ, err := readJSONObject(b, KindMalformedResponse)
	if err != nil {
		return nil, err
	}
	switch typ {
	case jsonReceived:
		msg, err := obj.string(fieldMessage)
		if err != nil {
			return nil, err
		}
		var tag *address.SenderTag
		if s, present, err := obj.optionalString(fieldSenderTag); err != nil {
			return nil, err
		} else if present {
			t, err := address.ParseSenderTag(s)
			if err != nil {
				return nil, obj.errorf("field `%s`: %v", fieldSenderTag, err)
			}
			tag = &t
		}
		data := []byte(msg)
		if b64, present, err := obj.extensionString(fieldMessageBase64); err != nil {
			return nil, err
		} else if present {
			if data, err = decodeBase64(b64); err != nil {
				return nil, obj.errorf("field `%s`: %v", fieldMessageBase64, err)
			}
		}
		return Received{SenderTag: tag, Data: data}, nil

	case jsonSelfAddress:
		a, err := obj.address(fieldAddress)
		if err != nil {
			return nil, err
		}
		return SelfAddressResponse{Address: a}, nil

	case jsonLaneQueueLength:
		lane, err := obj.uint(fieldLane, 64)
		if err != nil {
			return nil, err
		}
		n, err := obj.uint(fieldQueueLength, 64)
		if err != nil {
			return nil, err
		}
		return LaneQueueLength{Lane: lane, QueueLength: n}, nil

	case jsonError:
		msg, err := obj.string(fieldMessage)
		if err != nil {
			return nil, err
		}
		return splitErrorMessage(msg), nil
	}
	return nil, protocolErrorf(KindUnknownResponse, "unknown variant %q, expected one of %q, %q, %q, %q",
		clip(typ), jsonReceived, jsonSelfAddress, jsonLaneQueueLength, jsonError)
}

// splitErrorMessage undoes Error.appendJSON.
func splitErrorMessage(msg string) Error {
	for kind, text := range kindText {
		if detail, ok := strings.CutPrefix(msg, text+":"); ok {
			return Error{Kind: kind, Message: detail}
		}
	}
	return Error{Kind: KindOther, Message: msg}
}

// jsonObject is the top level of a JSON message: its fields, undecoded.
type jsonObject struct {
	fields    map[string]json.RawMessage
	malformed ErrorKind // KindMalformedRequest or KindMalformedResponse
	typeEnd   int64     // the offset just after the "type" value
}

// typePosition returns where serde_json reports an error in the "type"
// value of b (see serdePosition).
func (o jsonObject) typePosition(b []byte) string { return serdePosition(b, o.typeEnd) }

// serdePosition returns "line L column C" for the byte of b just before
// offset, as serde_json reports the position of an error found there:
// 1-based lines, and the column is the count of bytes since the line began.
func serdePosition(b []byte, offset int64) string {
	end := b[:min(int(offset), len(b))]
	start := bytes.LastIndexByte(end, '\n') + 1
	return fmt.Sprintf("line %d column %d", 1+bytes.Count(end[:start], []byte{'\n'}), len(end)-start)
}

// readJSONObject reads b as one JSON object with unique keys and a string
// "type", and returns its fields and the type.
func readJSONObject(b []byte, malformed ErrorKind) (jsonObject, string, error) {
	obj := jsonObject{fields: make(map[string]json.RawMessage), malformed: malformed}
	if !utf8.Valid(b) {
		return obj, "", obj.errorf("message is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return obj, "", obj.errorf("invalid JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return obj, "", obj.errorf("expected a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return obj, "", obj.errorf("invalid JSON: %v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return obj, "", obj.errorf("invalid JSON: object key is not a string")
		}
		if _, dup := obj.fields[key]; dup {
			return obj, "", obj.errorf("duplicate field %q", clip(key))
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return obj, "", obj.errorf("invalid JSON: %v", err)
		}
		obj.fields[key] = raw
		if key == fieldType {
			obj.typeEnd = dec.InputOffset()
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return obj, "", obj.errorf("invalid JSON: %v", err)
	}
	objEnd := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		return obj, "", obj.errorf("invalid JSON: trailing data after the object")
	}
	if _, ok := obj.fields[fieldType]; !ok {
		// serde_json finds it missing at the object's end.
		return obj, "", obj.errorf("missing field `%s` at %s", fieldType, serdePosition(b, objEnd))
	}
	typ, err := obj.string(fieldType)
	if err != nil {
		return obj, "", err
	}
	return obj, typ, nil
}

func (o jsonObject) errorf(format string, args ...any) *ProtocolError {
	return protocolErrorf(o.malformed, format, args...)
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// string returns a required string field.
func (o jsonObject) string(name string) (string, error) {
	s, present, err := o.optionalString(name)
	if err != nil {
		return "", err
	}
	if !present {
		if _, null := o.fields[name]; null {
			return "", o.errorf("field `%s`: invalid type: null, expected a string", name)
		}
		return "", o.errorf("missing field `%s`", name)
	}
	return s, nil
}

// optionalString returns a string field that may be missing or null.
func (o jsonObject) optionalString(name string) (s string, present bool, err error) {
	raw, ok := o.fields[name]
	if !ok || isNull(raw) {
		return "", false, nil
	}
	if len(raw) == 0 || raw[0] != '"' {
		return "", false, o.errorf("field `%s`: invalid type, expected a string", name)
	}
	s, err = unquoteJSONString(raw)
	if err != nil {
		return "", false, o.errorf("field `%s`: %v", name, err)
	}
	return s, true, nil
}

// uint returns a required unsigned integer field of the given width.
func (o jsonObject) uint(name string, bits int) (uint64, error) {
	raw, ok := o.fields[name]
	if !ok {
		return 0, o.errorf("missing field `%s`", name)
	}
	return o.parseUint(name, raw, bits)
}

func (o jsonObject) parseUint(name string, raw json.RawMessage, bits int) (uint64, error) {
	v, err := strconv.ParseUint(string(raw), 10, bits)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, o.errorf("field `%s`: %s out of range for u%d", name, clip(string(raw)), bits)
		}
		return 0, o.errorf("field `%s`: invalid value, expected u%d", name, bits)
	}
	return v, nil
}

// connectionID returns Nym's optional "connectionId": 0 when missing or
// null, and whether it was the number 0 (lane 0, in Nym).
func (o jsonObject) connectionID() (id uint64, zero bool, err error) {
	raw, ok := o.fields[fieldConnectionID]
	if !ok || isNull(raw) {
		return 0, false, nil
	}
	id, err = o.parseUint(fieldConnectionID, raw, 64)
	return id, err == nil && id == 0, err
}

func (o jsonObject) address(name string) (address.Address, error) {
	s, err := o.string(name)
	if err != nil {
		return address.Address{}, err
	}
	a, err := address.Parse(s)
	if err != nil {
		return address.Address{}, o.errorf("field `%s`: %v", name, err)
	}
	return a, nil
}

// extensionString returns a string field that may be missing but not null.
func (o jsonObject) extensionString(name string) (s string, present bool, err error) {
	if raw, ok := o.fields[name]; ok && isNull(raw) {
		return "", false, o.errorf("field `%s`: invalid type: null, expected a string", name)
	}
	return o.optionalString(name)
}

// requestData returns the data of a request: exactly one of "message" and
// "messageBase64" must be present.
func (o jsonObject) requestData() ([]byte, error) {
	msg, hasMsg, err := o.extensionString(fieldMessage)
	if err != nil {
		return nil, err
	}
	b64, hasB64, err := o.extensionString(fieldMessageBase64)
	if err != nil {
		return nil, err
	}
	switch {
	case hasMsg && hasB64:
		return nil, o.errorf("fields `%s` and `%s` are both present; send exactly one", fieldMessage, fieldMessageBase64)
	case hasB64:
		data, err := decodeBase64(b64)
		if err != nil {
			return nil, o.errorf("field `%s`: %v", fieldMessageBase64, err)
		}
		return data, nil
	case hasMsg:
		return []byte(msg), nil
	}
	return nil, o.errorf("missing field `%s`", fieldMessage)
}

// decodeBase64 reads standard, padded base64 (RFC 4648 section 4), refusing
// the line breaks and non-zero padding bits Go's decoder would let through.
func decodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("invalid base64: line break")
	}
	data, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("invalid base64: %w", err)
	}
	return data, nil
}
