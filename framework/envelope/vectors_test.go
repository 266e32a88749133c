package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/peapod-mixnet/peapod/internal/testvectors"
)

const vectorsFile = "testdata/vectors.json"

// requestVector is a request a requester builds: its fields, and either
// the JSON the Go encoder writes (other encoders must write JSON that
// parses to the same members) or the reason no request may be built.
type requestVector struct {
	Name       string `json:"name"`
	ID         string `json:"id"`
	Service    string `json:"service"`
	DataBase64 string `json:"data_base64"`
	// JSON is the encoded request; empty when encoding must fail.
	JSON string `json:"json,omitempty"`
	// Error is "invalid_id" or "invalid_service" when encoding must fail.
	Error string `json:"error,omitempty"`
}

// replyVector is a reply body and what a requester must read from it.
type replyVector struct {
	Name string `json:"name"`
	// Body is the reply as text; BodyBase64 carries it instead when it is
	// not valid UTF-8.
	Body       string `json:"body,omitempty"`
	BodyBase64 string `json:"body_base64,omitempty"`
	Valid      bool   `json:"valid"`
	// For a valid reply: the id, and either the data (status "ok") or the
	// error's code and message (status "error").
	ID           string  `json:"id,omitempty"`
	Status       string  `json:"status,omitempty"`
	DataBase64   *string `json:"data_base64,omitempty"`
	ErrorCode    string  `json:"error_code,omitempty"`
	ErrorMessage string  `json:"error_message,omitempty"`
}

type vectorFile struct {
	Comment  string          `json:"comment"`
	Requests []requestVector `json:"requests"`
	Replies  []replyVector   `json:"replies"`
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// makeVectors builds the vectors with the current encoder and parser, so
// that the file says what this code does; TestVectors then checks each
// entry's expectation independently of how it was made.
func makeVectors(t *testing.T) vectorFile {
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	reqs := []requestVector{
		{Name: "echo", ID: "4f2a", Service: "echo", DataBase64: b64("hello")},
		{Name: "empty data", ID: "a", Service: "echo", DataBase64: ""},
		{Name: "every byte value", ID: "AAAAAAAAAAAAAAAAAAAAAA", Service: "kv", DataBase64: base64.StdEncoding.EncodeToString(every)},
		{Name: "kv put, JSON in data", ID: "id-1", Service: "kv", DataBase64: b64(`{"op":"put","key":"k","value":"<v&>"}`)},
		{Name: "unicode id of 64 code points", ID: strings.Repeat("é", 64), Service: "echo", DataBase64: b64("x")},
		{Name: "service with dots, dashes, underscores", ID: "x", Service: "a.b-c_d", DataBase64: ""},
		{Name: "empty id", ID: "", Service: "echo", Error: "invalid_id"},
		{Name: "id of 65 code points", ID: strings.Repeat("a", 65), Service: "echo", Error: "invalid_id"},
		{Name: "id with a control character", ID: "a\nb", Service: "echo", Error: "invalid_id"},
		{Name: "id with a C1 control character", ID: "a\u0085b", Service: "echo", Error: "invalid_id"},
		{Name: "upper-case service", ID: "x", Service: "Echo", Error: "invalid_service"},
		{Name: "empty service", ID: "x", Service: "", Error: "invalid_service"},
		{Name: "service starting with a dot", ID: "x", Service: ".echo", Error: "invalid_service"},
		{Name: "service of 65 bytes", ID: "x", Service: strings.Repeat("s", 65), Error: "invalid_service"},
	}
	for i := range reqs {
		if reqs[i].Error != "" {
			continue
		}
		data, _ := base64.StdEncoding.DecodeString(reqs[i].DataBase64)
		b, err := (&Request{ID: reqs[i].ID, Service: reqs[i].Service, Data: data}).AppendJSON(nil)
		if err != nil {
			t.Fatalf("%s: %v", reqs[i].Name, err)
		}
		reqs[i].JSON = string(b)
	}

	bodies := []struct{ name, body string }{
		{"ok", `{"v":1,"id":"4f2a","status":"ok","data":"aGVsbG8="}`},
		{"ok, empty data", `{"v":1,"id":"4f2a","status":"ok","data":""}`},
		{"error", `{"v":1,"id":"4f2a","status":"error","error":{"code":"not_found","message":"no such key"}}`},
		{"error with an empty message", `{"v":1,"id":"x","status":"error","error":{"code":"overloaded","message":""}}`},
		{"error to an unreadable request (empty id)", `{"v":1,"id":"","status":"error","error":{"code":"too_large","message":"request longer than 262144 bytes"}}`},
		{"members in another order, whitespace around", " \n{\"data\":\"aGk=\",\"status\":\"ok\",\"id\":\"z\",\"v\":1}\n "},
		{"unknown members are ignored", `{"v":1,"id":"x","status":"ok","data":"","later":{"a":[1,2]}}`},
		{"a member twice inside an unknown member is not looked at", `{"v":1,"id":"x","status":"ok","data":"","later":{"a":1,"a":2}}`},
		{"escaped id", `{"v":1,"id":"\u00e9\ud83d\ude00","status":"ok","data":""}`},
		{"duplicate member", `{"v":1,"id":"x","status":"ok","data":"","data":"aGk="}`},
		{"version 2", `{"v":2,"id":"x","status":"ok","data":""}`},
		{"version 1.0", `{"v":1.0,"id":"x","status":"ok","data":""}`},
		{"version as a string", `{"v":"1","id":"x","status":"ok","data":""}`},
		{"missing version", `{"id":"x","status":"ok","data":""}`},
		{"data after the object", `{"v":1,"id":"x","status":"ok","data":""}x`},
		{"two objects", `{"v":1,"id":"x","status":"ok","data":""}{}`},
		{"an array", `[{"v":1,"id":"x","status":"ok","data":""}]`},
		{"not JSON", `hello`},
		{"empty", ``},
		{"missing id", `{"v":1,"status":"ok","data":""}`},
		{"id not a string", `{"v":1,"id":7,"status":"ok","data":""}`},
		{"id too long", `{"v":1,"id":"` + strings.Repeat("a", 65) + `","status":"ok","data":""}`},
		{"id with a control character", `{"v":1,"id":"a\u0007","status":"ok","data":""}`},
		{"unknown status", `{"v":1,"id":"x","status":"maybe","data":""}`},
		{"missing status", `{"v":1,"id":"x","data":""}`},
		{"ok without data", `{"v":1,"id":"x","status":"ok"}`},
		{"ok with an error", `{"v":1,"id":"x","status":"ok","data":"","error":{"code":"a","message":""}}`},
		{"error with data", `{"v":1,"id":"x","status":"error","data":"","error":{"code":"a","message":""}}`},
		{"error without error", `{"v":1,"id":"x","status":"error"}`},
		{"error without a message", `{"v":1,"id":"x","status":"error","error":{"code":"a"}}`},
		{"error with an upper-case code", `{"v":1,"id":"x","status":"error","error":{"code":"NotFound","message":""}}`},
		{"error with a code of 33 bytes", `{"v":1,"id":"x","status":"error","error":{"code":"` + strings.Repeat("a", 33) + `","message":""}}`},
		{"error member twice inside error", `{"v":1,"id":"x","status":"error","error":{"code":"a","code":"b","message":""}}`},
		{"data without padding", `{"v":1,"id":"x","status":"ok","data":"aGk"}`},
		{"data with stray bits", `{"v":1,"id":"x","status":"ok","data":"aGl="}`},
		{"data with a line break", `{"v":1,"id":"x","status":"ok","data":"aGVs\nbG8="}`},
		{"data in URL-safe base64", `{"v":1,"id":"x","status":"ok","data":"-_8="}`},
		{"data not a string", `{"v":1,"id":"x","status":"ok","data":null}`},
		{"invalid UTF-8", "{\"v\":1,\"id\":\"x\xff\",\"status\":\"ok\",\"data\":\"\"}"},
	}
	var reps []replyVector
	for _, c := range bodies {
		v := replyVector{Name: c.name}
		if utf8.ValidString(c.body) {
			v.Body = c.body
		} else {
			v.BodyBase64 = base64.StdEncoding.EncodeToString([]byte(c.body))
		}
		rep, err := ParseReply([]byte(c.body))
		if err == nil {
			v.Valid, v.ID = true, rep.ID
			if rep.Err != nil {
				v.Status, v.ErrorCode, v.ErrorMessage = StatusError, rep.Err.Code, rep.Err.Message
			} else {
				d := base64.StdEncoding.EncodeToString(rep.Data)
				v.Status, v.DataBase64 = StatusOK, &d
			}
		}
		reps = append(reps, v)
	}
	return vectorFile{
		Comment: "peapod request protocol (docs/provider.md, section 2). requests: what a requester encodes; " +
			"another encoder's JSON must parse to the same members, and an entry with \"error\" must be refused. " +
			"replies: bodies a requester parses; \"valid\": false must be refused. Regenerate with " +
			"go test ./framework/envelope -run TestVectors -update.",
		Requests: reqs,
		Replies:  reps,
	}
}

// TestVectors checks that testdata/vectors.json is what the code generates
// (regenerate with -update), and checks every entry against the encoder
// and parser with expectations written here, so that a change of
// behaviour shows as a failure and not only as a new file.
func TestVectors(t *testing.T) {
	stored := testvectors.Golden(t, vectorsFile, makeVectors(t))
	var file vectorFile
	if err := json.Unmarshal(stored, &file); err != nil {
		t.Fatal(err)
	}
	var valid, invalid int
	for _, v := range file.Requests {
		data, err := base64.StdEncoding.DecodeString(v.DataBase64)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		_, err = (&Request{ID: v.ID, Service: v.Service, Data: data}).AppendJSON(nil)
		if (err != nil) != (v.Error != "") {
			t.Errorf("request %s: error %v, want %q", v.Name, err, v.Error)
		}
		if v.Error != "" {
			continue
		}
		req, err := ParseRequest([]byte(v.JSON))
		if err != nil || req.ID != v.ID || req.Service != v.Service || !bytes.Equal(req.Data, data) {
			t.Errorf("request %s: %s parses to %+v, %v", v.Name, v.JSON, req, err)
		}
	}
	for _, v := range file.Replies {
		body := []byte(v.Body)
		if v.BodyBase64 != "" {
			body, _ = base64.StdEncoding.DecodeString(v.BodyBase64)
		}
		rep, err := ParseReply(body)
		if !v.Valid {
			invalid++
			if err == nil {
				t.Errorf("reply %s: accepted", v.Name)
			}
			continue
		}
		valid++
		if err != nil {
			t.Errorf("reply %s: %v", v.Name, err)
			continue
		}
		switch {
		case rep.ID != v.ID:
			t.Errorf("reply %s: id %q, want %q", v.Name, rep.ID, v.ID)
		case v.Status == StatusOK && (rep.Err != nil || v.DataBase64 == nil || base64.StdEncoding.EncodeToString(rep.Data) != *v.DataBase64):
			t.Errorf("reply %s: %+v", v.Name, rep)
		case v.Status == StatusError && (rep.Err == nil || rep.Err.Code != v.ErrorCode || rep.Err.Message != v.ErrorMessage):
			t.Errorf("reply %s: %+v", v.Name, rep)
		}
	}
	// The hand-written cases above are mostly failures; a parser that
	// refused everything, or accepted everything, must not pass.
	if valid < 8 || invalid < 25 {
		t.Errorf("%d valid and %d invalid replies: the parser's verdicts changed", valid, invalid)
	}
}
