// Package envelope is the request protocol of a peapod provider: the JSON
// objects a requester sends through the mixnet and the replies it gets back.
//
// A request is one mixnet message, sent anonymously with reply SURBs, whose
// body is a UTF-8 JSON object
//
//	{"v":1,"id":"<1 to 64 characters>","service":"<name>","data":"<base64>"}
//
// and its reply travels back over those SURBs as
//
//	{"v":1,"id":"<same id>","status":"ok","data":"<base64>"}
//	{"v":1,"id":"<same id>","status":"error","error":{"code":"<code>","message":"<text>"}}
//
// The provider host parses requests with [ParseRequest] and writes replies
// with [Reply.AppendJSON]; a requester does the opposite with
// [Request.AppendJSON] and [ParseReply]. Both parsers are strict in what
// can be wrong without meaning anything: the body must be valid UTF-8 and a
// single JSON object with nothing after it, no member may appear twice, "v"
// must be exactly 1, and base64 must be canonical standard base64 with
// padding. Members they do not know are ignored, so that later versions of
// the protocol can add members without breaking older peers.
//
// docs/provider.md describes the protocol for implementers in other
// languages.
package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/peapod-mixnet/peapod/handlers"
)

// Version is the protocol version, the value of "v" in every request and
// reply.
const Version = 1

// Limits of the protocol.
const (
	// MaxIDLen is the most characters (Unicode code points) a request id
	// may have.
	MaxIDLen = 64
	// MaxCodeLen is the longest error code, in bytes.
	MaxCodeLen = 32
)

// Reply statuses, the value of "status" in a reply.
const (
	StatusOK    = "ok"
	StatusError = "error"
)

// Request is one request to a provider's service.
type Request struct {
	// ID is chosen by the requester and echoed in the reply: 1 to MaxIDLen
	// characters, without control characters (see [ValidID]). Reusing an id
	// towards the same provider within the provider's idempotence window
	// returns the first reply again instead of running the request twice.
	ID string
	// Service names the service, e.g. "echo".
	Service string
	// Data is the request payload, in the service's own format.
	Data []byte
}

// Reply is a provider's answer to one request.
type Reply struct {
	// ID is the id of the request this answers. It is empty when the
	// provider could not read a valid id from the request.
	ID string
	// Err is nil for a success, and otherwise says what failed: one of the
	// codes of package handlers, or a code of the service's own.
	Err *handlers.Error
	// Data is the reply payload of a success; it is nil for a failure.
	Data []byte
}

// RequestError reports a request that breaks the protocol. The provider
// answers it with a [handlers.CodeBadRequest] reply carrying ID.
type RequestError struct {
	// ID is the request's id if it could be read and is valid, else "".
	ID string
	// Reason says what is wrong, in words that may be shown to the
	// requester; it never repeats request data.
	Reason string
}

// Error returns "envelope: bad request: " and the reason.
func (e *RequestError) Error() string { return "envelope: bad request: " + e.Reason }

// ValidID reports whether id is a valid request id: 1 to MaxIDLen
// characters of valid UTF-8, none of them a control character.
func ValidID(id string) bool {
	if id == "" || !utf8.ValidString(id) || utf8.RuneCountInString(id) > MaxIDLen {
		return false
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// ValidCode reports whether code has the form of an error code: 1 to
// MaxCodeLen bytes of lower-case ASCII letters, digits and underscores,
// starting with a letter.
func ValidCode(code string) bool {
	if len(code) == 0 || len(code) > MaxCodeLen {
		return false
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch {
		case 'a' <= c && c <= 'z':
		case ('0' <= c && c <= '9' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// The members of requests and replies, as JSON encodes them.
type wireRequest struct {
	V       int    `json:"v"`
	ID      string `json:"id"`
	Service string `json:"service"`
	Data    string `json:"data"`
}

type wireReply struct {
	V      int        `json:"v"`
	ID     string     `json:"id"`
	Status string     `json:"status"`
	Data   *string    `json:"data,omitempty"`
	Error  *wireError `json:"error,omitempty"`
}

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// AppendJSON appends the JSON form of r to dst. It fails if r.ID is not a
// valid id or r.Service is not a valid service name, since no provider would
// accept such a request.
func (r *Request) AppendJSON(dst []byte) ([]byte, error) {
	if !ValidID(r.ID) {
		return dst, errors.New("envelope: invalid request id")
	}
	if !handlers.ValidServiceName(r.Service) {
		return dst, fmt.Errorf("envelope: invalid service name %.80q", r.Service)
	}
	return appendJSON(dst, wireRequest{
		V: Version, ID: r.ID, Service: r.Service, Data: base64.StdEncoding.EncodeToString(r.Data),
	})
}

// AppendJSON appends the JSON form of r to dst. It fails if r.ID is neither
// empty nor a valid id, or if r.Err has an invalid code.
func (r *Reply) AppendJSON(dst []byte) ([]byte, error) {
	if r.ID != "" && !ValidID(r.ID) {
		return dst, errors.New("envelope: invalid request id in reply")
	}
	w := wireReply{V: Version, ID: r.ID}
	if r.Err != nil {
		if !ValidCode(r.Err.Code) {
			return dst, fmt.Errorf("envelope: invalid error code %.40q", r.Err.Code)
		}
		w.Status = StatusError
		w.Error = &wireError{Code: r.Err.Code, Message: strings.ToValidUTF8(r.Err.Message, "\uFFFD")}
	} else {
		w.Status = StatusOK
		data := base64.StdEncoding.EncodeToString(r.Data)
		w.Data = &data
	}
	return appendJSON(dst, w)
}

func appendJSON(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("envelope: %w", err)
	}
	return append(dst, b...), nil
}

// ParseRequest reads one request. Every failure is a *RequestError, whose
// ID holds the request's id when it was read and valid, so that the error
// reply can carry it.
//
// It requires a JSON object with "v" equal to 1, a valid "id" (see
// [ValidID]), a non-empty "service" string and a "data" string of
// canonical padded standard base64 (possibly empty). The service name is not
// checked against [handlers.ValidServiceName]: a name no service has is for
// the router to refuse, as unknown.
func ParseRequest(b []byte) (*Request, error) {
	var (
		req                           Request
		version, id, serviceRaw, data json.RawMessage
	)
	err := parseObject(b, func(key string, value json.RawMessage) {
		switch key {
		case "v":
			version = value
		case "id":
			id = value
		case "service":
			serviceRaw = value
		case "data":
			data = value
		}
	})
	if err != nil {
		return nil, &RequestError{Reason: err.Error()}
	}
	// Read the id first, so that every later failure can be answered with it.
	if id == nil {
		return nil, &RequestError{Reason: `missing member "id"`}
	}
	if err := decodeString(id, &req.ID); err != nil {
		return nil, &RequestError{Reason: `"id" is not a string`}
	}
	if !ValidID(req.ID) {
		return nil, &RequestError{Reason: fmt.Sprintf(`"id" must be 1 to %d characters, without control characters`, MaxIDLen)}
	}
	fail := func(format string, args ...any) (*Request, error) {
		return nil, &RequestError{ID: req.ID, Reason: fmt.Sprintf(format, args...)}
	}
	if version == nil {
		return fail(`missing member "v"`)
	}
	if err := checkVersion(version); err != nil {
		return fail("%s", err)
	}
	if serviceRaw == nil {
		return fail(`missing member "service"`)
	}
	if err := decodeString(serviceRaw, &req.Service); err != nil {
		return fail(`"service" is not a string`)
	}
	if req.Service == "" {
		return fail(`"service" is empty`)
	}
	if data == nil {
		return fail(`missing member "data"`)
	}
	var s string
	if err := decodeString(data, &s); err != nil {
		return fail(`"data" is not a string`)
	}
	if req.Data, err = decodeBase64(s); err != nil {
		return fail(`"data" is not canonical padded base64`)
	}
	return &req, nil
}

// ParseReply reads one reply. A reply with status "ok" must have "data" and
// no "error"; one with status "error" must have an "error" object with a
// valid "code" and a "message" string, and no "data".
func ParseReply(b []byte) (*Reply, error) {
	var (
		rep    Reply
		status string
		seen   = make(map[string]json.RawMessage)
	)
	err := parseObject(b, func(key string, value json.RawMessage) {
		seen[key] = value
	})
	if err != nil {
		return nil, fmt.Errorf("envelope: reply: %w", err)
	}
	version, idRaw, dataRaw, errorRaw := seen["v"], seen["id"], seen["data"], seen["error"]
	if version == nil {
		return nil, errors.New(`envelope: reply: missing member "v"`)
	}
	if err := checkVersion(version); err != nil {
		return nil, fmt.Errorf("envelope: reply: %w", err)
	}
	if idRaw == nil {
		return nil, errors.New(`envelope: reply: missing member "id"`)
	}
	if err := decodeString(idRaw, &rep.ID); err != nil {
		return nil, errors.New(`envelope: reply: "id" is not a string`)
	}
	if rep.ID != "" && !ValidID(rep.ID) {
		return nil, errors.New(`envelope: reply: invalid "id"`)
	}
	if seen["status"] == nil {
		return nil, errors.New(`envelope: reply: missing member "status"`)
	}
	if err := decodeString(seen["status"], &status); err != nil {
		return nil, errors.New(`envelope: reply: "status" is not a string`)
	}
	switch status {
	case StatusOK:
		if errorRaw != nil {
			return nil, errors.New(`envelope: reply: "error" in a success`)
		}
		if dataRaw == nil {
			return nil, errors.New(`envelope: reply: missing member "data"`)
		}
		var s string
		if err := decodeString(dataRaw, &s); err != nil {
			return nil, errors.New(`envelope: reply: "data" is not a string`)
		}
		if rep.Data, err = decodeBase64(s); err != nil {
			return nil, errors.New(`envelope: reply: "data" is not canonical padded base64`)
		}
		if rep.Data == nil {
			rep.Data = []byte{}
		}
	case StatusError:
		if dataRaw != nil {
			return nil, errors.New(`envelope: reply: "data" in a failure`)
		}
		if errorRaw == nil {
			return nil, errors.New(`envelope: reply: missing member "error"`)
		}
		e, err := parseError(errorRaw)
		if err != nil {
			return nil, err
		}
		rep.Err = e
	default:
		return nil, fmt.Errorf("envelope: reply: unknown status %.20q", status)
	}
	return &rep, nil
}

func parseError(b json.RawMessage) (*handlers.Error, error) {
	var codeRaw, msgRaw json.RawMessage
	err := parseObject(b, func(key string, value json.RawMessage) {
		switch key {
		case "code":
			codeRaw = value
		case "message":
			msgRaw = value
		}
	})
	if err != nil {
		return nil, fmt.Errorf(`envelope: reply: "error": %w`, err)
	}
	var e handlers.Error
	if codeRaw == nil || msgRaw == nil {
		return nil, errors.New(`envelope: reply: "error" needs "code" and "message"`)
	}
	if decodeString(codeRaw, &e.Code) != nil || !ValidCode(e.Code) {
		return nil, errors.New(`envelope: reply: invalid error "code"`)
	}
	if decodeString(msgRaw, &e.Message) != nil {
		return nil, errors.New(`envelope: reply: error "message" is not a string`)
	}
	return &e, nil
}

// parseObject checks that b is valid UTF-8 holding exactly one JSON object
// and calls member for each of its members, in order. A member that appears
// twice is an error.
func parseObject(b []byte, member func(key string, value json.RawMessage)) error {
	if !utf8.Valid(b) {
		return errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return errors.New("not JSON")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("not a JSON object")
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errors.New("malformed JSON")
		}
		key, ok := tok.(string)
		if !ok {
			return errors.New("malformed JSON")
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return errors.New("malformed JSON")
		}
		if seen[key] {
			return fmt.Errorf("member %.40q appears twice", key)
		}
		seen[key] = true
		member(key, value)
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return errors.New("malformed JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON object")
	}
	return nil
}

// checkVersion accepts exactly the JSON number 1.
func checkVersion(raw json.RawMessage) error {
	if string(raw) != "1" {
		if len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
			return fmt.Errorf("unsupported version %.20s", raw)
		}
		return errors.New(`"v" is not a number`)
	}
	return nil
}

// decodeString decodes a JSON string value; anything else is an error.
func decodeString(raw json.RawMessage, dst *string) error {
	if len(raw) == 0 || raw[0] != '"' {
		return errors.New("not a string")
	}
	return json.Unmarshal(raw, dst)
}

// decodeBase64 decodes canonical padded standard base64: Go's decoder
// skips '\r' and '\n', so the length is checked too.
func decodeBase64(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if base64.StdEncoding.EncodedLen(len(b)) != len(s) {
		return nil, errors.New("line breaks in base64")
	}
	return b, nil
}

// PeekLen is how much of a request PeekID reads.
const PeekLen = 256

// PeekID returns the id of a request the provider will not parse in full
// (one over its size limit), read from its first PeekLen bytes: the
// request's first members up to "id", skipping none longer than what is
// left, and stopping at "data". It returns "" when the id is not among
// them or not valid. Requesters that write "id" before "data", as
// Request.AppendJSON does, get their too_large answers with their id.
func PeekID(b []byte) string {
	if len(b) > PeekLen {
		b = b[:PeekLen]
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok || key == "data" {
			return ""
		}
		if key == "id" {
			tok, err := dec.Token()
			if id, ok := tok.(string); err == nil && ok && ValidID(id) {
				return id
			}
			return ""
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}
