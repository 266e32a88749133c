package envelope

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/peapod-mixnet/peapod/handlers"
)

func TestRequestRoundTrip(t *testing.T) {
	for _, req := range []Request{
		{ID: "1", Service: "echo", Data: []byte("hello")},
		{ID: "ünïcödé-ид", Service: "kv", Data: nil},
		{ID: strings.Repeat("é", MaxIDLen), Service: "a.b_c-d", Data: bytes.Repeat([]byte{0, 0xff}, 1000)},
	} {
		b, err := req.AppendJSON([]byte("prefix"))
		if err != nil {
			t.Fatalf("AppendJSON(%+v): %v", req, err)
		}
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Fatalf("AppendJSON dropped dst")
		}
		got, err := ParseRequest(b[len("prefix"):])
		if err != nil {
			t.Fatalf("ParseRequest(%s): %v", b, err)
		}
		if got.ID != req.ID || got.Service != req.Service || !bytes.Equal(got.Data, req.Data) {
			t.Errorf("round trip: got %+v, want %+v", got, req)
		}
	}
}

func TestRequestWireForm(t *testing.T) {
	b, err := (&Request{ID: "x", Service: "echo", Data: []byte("hi")}).AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":1,"id":"x","service":"echo","data":"aGk="}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}

func TestAppendRefusesInvalid(t *testing.T) {
	for _, req := range []Request{
		{ID: "", Service: "echo"},
		{ID: strings.Repeat("a", MaxIDLen+1), Service: "echo"},
		{ID: "a\nb", Service: "echo"},
		{ID: "ok", Service: "Echo"},
		{ID: "ok", Service: ""},
	} {
		if _, err := req.AppendJSON(nil); err == nil {
			t.Errorf("AppendJSON(%+v) accepted an invalid request", req)
		}
	}
	if _, err := (&Reply{ID: "ok", Err: &handlers.Error{Code: "Bad"}}).AppendJSON(nil); err == nil {
		t.Error("Reply.AppendJSON accepted an invalid code")
	}
	if _, err := (&Reply{ID: "a\x00"}).AppendJSON(nil); err == nil {
		t.Error("Reply.AppendJSON accepted an invalid id")
	}
}

// TestParseRequestErrors lists every kind of bad request: each must be a
// *RequestError, carrying the id exactly when a valid one was readable.
func TestParseRequestErrors(t *testing.T) {
	long := strings.Repeat("x", MaxIDLen+1)
	tests := []struct {
		name, in, id, reason string
	}{
		{"empty", ``, "", "not JSON"},
		{"not json", `hello`, "", "not JSON"},
		{"array", `[1,2]`, "", "not a JSON object"},
		{"string", `"x"`, "", "not a JSON object"},
		{"truncated", `{"v":1,"id":"a"`, "", "malformed JSON"},
		{"trailing", `{"v":1,"id":"a","service":"s","data":""}{}`, "", "data after"},
		{"trailing garbage", `{"v":1,"id":"a","service":"s","data":""} x`, "", "data after"},
		{"invalid utf-8", "{\"v\":1,\"id\":\"a\xff\",\"service\":\"s\",\"data\":\"\"}", "", "UTF-8"},
		{"duplicate", `{"v":1,"id":"a","id":"b","service":"s","data":""}`, "", "twice"},
		{"missing id", `{"v":1,"service":"s","data":""}`, "", `missing member "id"`},
		{"id not string", `{"v":1,"id":7,"service":"s","data":""}`, "", `"id" is not a string`},
		{"id empty", `{"v":1,"id":"","service":"s","data":""}`, "", "1 to 64"},
		{"id too long", `{"v":1,"id":"` + long + `","service":"s","data":""}`, "", "1 to 64"},
		{"id control", `{"v":1,"id":"a\u0007","service":"s","data":""}`, "", "control"},
		{"missing v", `{"id":"a","service":"s","data":""}`, "a", `missing member "v"`},
		{"v 2", `{"v":2,"id":"a","service":"s","data":""}`, "a", "unsupported version 2"},
		{"v 1.0", `{"v":1.0,"id":"a","service":"s","data":""}`, "a", "unsupported version"},
		{"v string", `{"v":"1","id":"a","service":"s","data":""}`, "a", "not a number"},
		{"missing service", `{"v":1,"id":"a","data":""}`, "a", `missing member "service"`},
		{"service null", `{"v":1,"id":"a","service":null,"data":""}`, "a", `"service" is not a string`},
		{"service empty", `{"v":1,"id":"a","service":"","data":""}`, "a", `"service" is empty`},
		{"missing data", `{"v":1,"id":"a","service":"s"}`, "a", `missing member "data"`},
		{"data number", `{"v":1,"id":"a","service":"s","data":5}`, "a", `"data" is not a string`},
		{"bad base64", `{"v":1,"id":"a","service":"s","data":"!!!!"}`, "a", "base64"},
		{"unpadded", `{"v":1,"id":"a","service":"s","data":"aGk"}`, "a", "base64"},
		{"url alphabet", `{"v":1,"id":"a","service":"s","data":"_-8="}`, "a", "base64"},
		{"non-canonical", `{"v":1,"id":"a","service":"s","data":"aGl="}`, "a", "base64"},
		{"line break", `{"v":1,"id":"a","service":"s","data":"aG\nk="}`, "a", "base64"},
		{"escaped line break", `{"v":1,"id":"a","service":"s","data":"aG\\nk="}`, "a", "base64"},
	}
	for _, tt := range tests {
		req, err := ParseRequest([]byte(tt.in))
		var rerr *RequestError
		if !errors.As(err, &rerr) {
			t.Errorf("%s: ParseRequest = %+v, %v; want a *RequestError", tt.name, req, err)
			continue
		}
		if rerr.ID != tt.id {
			t.Errorf("%s: ID = %q, want %q", tt.name, rerr.ID, tt.id)
		}
		if !strings.Contains(rerr.Reason, tt.reason) {
			t.Errorf("%s: reason %q does not mention %q", tt.name, rerr.Reason, tt.reason)
		}
		if strings.Contains(rerr.Reason, long) {
			t.Errorf("%s: reason repeats request data", tt.name)
		}
	}
}

func TestParseRequestLenient(t *testing.T) {
	// Unknown members (a later version's additions), whitespace and any
	// member order are fine; an unknown service name is the router's call.
	in := " {\n \"data\": \"\", \"extra\": {\"x\":[1,2]}, \"service\": \"No Such\", \"id\": \"a\", \"v\": 1 }\n"
	req, err := ParseRequest([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if req.ID != "a" || req.Service != "No Such" || len(req.Data) != 0 {
		t.Errorf("got %+v", req)
	}
}

func TestReplyRoundTrip(t *testing.T) {
	for _, rep := range []Reply{
		{ID: "1", Data: []byte("hello")},
		{ID: "2", Data: []byte{}},
		{ID: "", Err: &handlers.Error{Code: handlers.CodeBadRequest, Message: "not JSON"}},
		{ID: "3", Err: &handlers.Error{Code: "not_found", Message: ""}},
	} {
		b, err := rep.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseReply(b)
		if err != nil {
			t.Fatalf("ParseReply(%s): %v", b, err)
		}
		if got.ID != rep.ID || !bytes.Equal(got.Data, rep.Data) || (got.Err == nil) != (rep.Err == nil) {
			t.Errorf("round trip: got %+v, want %+v", got, rep)
		}
		if rep.Err != nil && *got.Err != *rep.Err {
			t.Errorf("error: got %+v, want %+v", got.Err, rep.Err)
		}
	}
}

func TestReplyWireForm(t *testing.T) {
	b, _ := (&Reply{ID: "x", Data: []byte("hi")}).AppendJSON(nil)
	if want := `{"v":1,"id":"x","status":"ok","data":"aGk="}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	b, _ = (&Reply{ID: "x", Err: handlers.Errorf(handlers.CodeTimeout, "slow")}).AppendJSON(nil)
	if want := `{"v":1,"id":"x","status":"error","error":{"code":"timeout","message":"slow"}}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	b, _ = (&Reply{ID: "x", Err: &handlers.Error{Code: "timeout", Message: "bad \xff byte"}}).AppendJSON(nil)
	if !bytes.Contains(b, []byte("bad \uFFFD byte")) {
		t.Errorf("invalid UTF-8 in a message not replaced: %s", b)
	}
}

func TestParseReplyErrors(t *testing.T) {
	for _, in := range []string{
		``,
		`{"v":1,"id":"a","status":"ok"}`,
		`{"v":1,"id":"a","status":"ok","data":"x"}`,
		`{"v":1,"id":"a","status":"ok","data":"","error":{"code":"x","message":""}}`,
		`{"v":1,"id":"a","status":"error"}`,
		`{"v":1,"id":"a","status":"error","error":{"code":"x"}}`,
		`{"v":1,"id":"a","status":"error","error":{"code":"BAD","message":""}}`,
		`{"v":1,"id":"a","status":"error","error":{"code":"x","code":"y","message":""}}`,
		`{"v":1,"id":"a","status":"error","error":"x"}`,
		`{"v":1,"id":"a","status":"error","data":"","error":{"code":"x","message":""}}`,
		`{"v":1,"id":"a","status":"maybe","data":""}`,
		`{"v":2,"id":"a","status":"ok","data":""}`,
		`{"id":"a","status":"ok","data":""}`,
		`{"v":1,"status":"ok","data":""}`,
		`{"v":1,"id":"a\u0000","status":"ok","data":""}`,
		`{"v":1,"id":"a","status":"ok","data":""} []`,
	} {
		if rep, err := ParseReply([]byte(in)); err == nil {
			t.Errorf("ParseReply(%s) = %+v, want an error", in, rep)
		}
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"a": true, strings.Repeat("ж", MaxIDLen): true, "with space": true,
		"": false, strings.Repeat("a", MaxIDLen+1): false, "tab\t": false, "\u0085": false, "\xff": false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

// FuzzParseRequest: no panic; whatever parses encodes and parses back to
// the same request (when it is encodable), and errors are *RequestError.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"a","service":"echo","data":"aGk="}`))
	f.Add([]byte(`{"v":1,"id":"a","service":"s","data":""} `))
	f.Add([]byte(`{"v":2,"id":"a"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParseRequest(b)
		if err != nil {
			var rerr *RequestError
			if !errors.As(err, &rerr) {
				t.Fatalf("error %v is not a *RequestError", err)
			}
			if rerr.ID != "" && !ValidID(rerr.ID) {
				t.Fatalf("RequestError carries an invalid id %q", rerr.ID)
			}
			return
		}
		if !ValidID(req.ID) || req.Service == "" {
			t.Fatalf("accepted %+v", req)
		}
		if !handlers.ValidServiceName(req.Service) {
			return
		}
		enc, err := req.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseRequest(enc)
		if err != nil || again.ID != req.ID || again.Service != req.Service || !bytes.Equal(again.Data, req.Data) {
			t.Fatalf("re-parse of %s = %+v, %v; want %+v", enc, again, err, req)
		}
	})
}

// FuzzParseReply: no panic, and decode(encode(x)) == x for what parses.
func FuzzParseReply(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"x","status":"ok","data":"aGk="}`))
	f.Add([]byte(`{"v":1,"id":"","status":"error","error":{"code":"bad_request","message":"m"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := ParseReply(b)
		if err != nil {
			return
		}
		if (rep.Err == nil) == (rep.Data == nil) {
			t.Fatalf("reply %+v has both or neither of data and error", rep)
		}
		enc, err := rep.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseReply(enc)
		if err != nil || again.ID != rep.ID || !bytes.Equal(again.Data, rep.Data) ||
			(rep.Err != nil && *again.Err != *rep.Err) {
			t.Fatalf("re-parse of %s = %+v, %v; want %+v", enc, again, err, rep)
		}
	})
}

// TestPeekID: the id of an oversized request is read from its head, as
// Request.AppendJSON writes it, and nothing is made up otherwise.
func TestPeekID(t *testing.T) {
	big, err := (&Request{ID: "req-1", Service: "kv", Data: make([]byte, 1<<20)}).AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := PeekID(big); got != "req-1" {
		t.Errorf("PeekID of a 1 MiB request = %q, want req-1", got)
	}
	for _, b := range []string{
		`{"v":1,"service":"kv","data":"` + strings.Repeat("A", 400) + `","id":"late"}`, // id after data
		`{"v":1,"pad":"` + strings.Repeat("x", PeekLen) + `","id":"far"}`,              // id beyond the head
		`{"v":1,"id":"bad` + "\x01" + `"}`,                                             // control character
		`{"v":1,"id":5}`,
		`["id","x"]`,
		`{"v":1,"service":"kv"`,
		``,
	} {
		if got := PeekID([]byte(b)); got != "" {
			t.Errorf("PeekID(%.60q) = %q, want none", b, got)
		}
	}
}

func FuzzPeekID(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"a","service":"echo","data":"aGk="}`))
	f.Add([]byte(`{"v":1,"x":{"id":"no"},"id":"yes"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		id := PeekID(b)
		if id != "" && !ValidID(id) {
			t.Fatalf("PeekID returned the invalid id %q", id)
		}
		// A request that parses and names its id within the head is peeked
		// right.
		if req, err := ParseRequest(b); err == nil && len(b) <= PeekLen && id != "" && id != req.ID {
			t.Fatalf("PeekID = %q, ParseRequest's id %q", id, req.ID)
		}
	})
}
