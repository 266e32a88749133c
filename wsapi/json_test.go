package wsapi

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestJSONRequestGolden(t *testing.T) {
	a := nymAddress(t)
	cases := []struct {
		name   string
		req    Request
		golden string
	}{
		{"send", Send{Recipient: a, Data: []byte("hello")},
			`{"type":"send","message":"hello","recipient":"` + nymExample + `","connectionId":null}`},
		{"send with connection", Send{Recipient: a, ConnectionID: 18446744073709551615, Data: []byte("x")},
			`{"type":"send","message":"x","recipient":"` + nymExample + `","connectionId":18446744073709551615}`},
		{"send binary data", Send{Recipient: a, Data: []byte{0xFF, 0x00, 0x01}},
			`{"type":"send","messageBase64":"/wAB","recipient":"` + nymExample + `","connectionId":null}`},
		{"send anonymous", SendAnonymous{ReplySURBs: 10, Recipient: a, ConnectionID: 7, Data: []byte("hi")},
			`{"type":"sendAnonymous","recipient":"` + nymExample + `","message":"hi","replySurbs":10,"connectionId":7}`},
		{"reply", Reply{SenderTag: testTag, Data: []byte("re")},
			`{"type":"reply","senderTag":"` + testTagText + `","message":"re","connectionId":null}`},
		{"self address", SelfAddress{}, `{"type":"selfAddress"}`},
		{"closed connection", ClosedConnection{ConnectionID: 9}, `{"type":"closedConnection","connectionId":9}`},
		{"closed connection zero", ClosedConnection{}, `{"type":"closedConnection","connectionId":0}`},
		{"get lane queue length", GetLaneQueueLength{ConnectionID: 3}, `{"type":"getLaneQueueLength","connectionId":3}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := MarshalJSONRequest(c.req)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.golden {
				t.Fatalf("MarshalJSONRequest:\n got %s\nwant %s", got, c.golden)
			}
			back, err := ParseJSONRequest([]byte(c.golden))
			if err != nil {
				t.Fatal(err)
			}
			if !sameMessage(back, c.req) {
				t.Fatalf("ParseJSONRequest = %#v, want %#v", back, c.req)
			}
		})
	}
}

func TestJSONResponseGolden(t *testing.T) {
	a := nymAddress(t)
	tag := testTag
	cases := []struct {
		name   string
		resp   Response
		golden string
	}{
		{"received", Received{Data: []byte("hello")}, `{"type":"received","message":"hello","senderTag":null}`},
		{"received with tag", Received{SenderTag: &tag, Data: []byte("hi")},
			`{"type":"received","message":"hi","senderTag":"` + testTagText + `"}`},
		{"received binary", Received{Data: []byte("a\xffb")},
			`{"type":"received","message":"a` + "\uFFFD" + `b","senderTag":null,"messageBase64":"Yf9i"}`},
		{"self address", SelfAddressResponse{Address: a}, `{"type":"selfAddress","address":"` + nymExample + `"}`},
		{"lane queue length", LaneQueueLength{Lane: 7, QueueLength: 3}, `{"type":"laneQueueLength","lane":7,"queue_length":3}`},
		{"error", Error{Kind: KindMalformedRequest, Message: "missing field `recipient`"},
			`{"type":"error","message":"malformed request:missing field ` + "`recipient`" + `"}`},
		{"error other", Error{Kind: KindOther, Message: "send failed"}, `{"type":"error","message":"other:send failed"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := MarshalJSONResponse(c.resp)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.golden {
				t.Fatalf("MarshalJSONResponse:\n got %s\nwant %s", got, c.golden)
			}
			back, err := ParseJSONResponse([]byte(c.golden))
			if err != nil {
				t.Fatal(err)
			}
			if !sameMessage(back, c.resp) {
				t.Fatalf("ParseJSONResponse = %#v, want %#v", back, c.resp)
			}
		})
	}
}

// JSON as other programs write it: spacing, field order, extra fields,
// missing optional fields, escapes.
func TestJSONRequestAcceptsNymForms(t *testing.T) {
	a := nymAddress(t)
	cases := []struct {
		in   string
		want Request
	}{
		{`{"type":"send","message":"hi","recipient":"` + nymExample + `"}`, Send{Recipient: a, Data: []byte("hi")}},
		{` { "recipient" : "` + nymExample + `" , "connectionId" : 5, "message":"hi", "type":"send" } `,
			Send{Recipient: a, ConnectionID: 5, Data: []byte("hi")}},
		{`{"type":"send","message":"\u00e9\ud83d\ude00\n\/","recipient":"` + nymExample + `","connectionId":0,"extra":{"x":[1,2]}}`,
			Send{Recipient: a, LaneZero: true, Data: []byte("é😀\n/")}},
		{`{"type":"send","message":"hi","recipient":"` + nymExample + `","connectionId":null}`, Send{Recipient: a, Data: []byte("hi")}},
		{`{"type":"reply","senderTag":"` + testTagText + `","message":"","connectionId":0}`, Reply{SenderTag: testTag, LaneZero: true, Data: []byte{}}},
		{`{"type":"sendAnonymous","recipient":"` + nymExample + `","message":"","replySurbs":0}`,
			SendAnonymous{Recipient: a, Data: []byte{}}},
		{`{"type":"sendAnonymous","recipient":"` + nymExample + `","messageBase64":"AAEC","replySurbs":4294967295}`,
			SendAnonymous{ReplySURBs: 4294967295, Recipient: a, Data: []byte{0, 1, 2}}},
		{`{"type":"reply","senderTag":"` + testTagText + `","messageBase64":""}`, Reply{SenderTag: testTag, Data: []byte{}}},
		{`{"type":"selfAddress","ignored":true}`, SelfAddress{}},
	}
	for _, c := range cases {
		got, err := ParseJSONRequest([]byte(c.in))
		if err != nil {
			t.Errorf("ParseJSONRequest(%s): %v", c.in, err)
			continue
		}
		if !sameMessage(got, c.want) {
			t.Errorf("ParseJSONRequest(%s) = %#v, want %#v", c.in, got, c.want)
		}
	}
}

func TestJSONRequestErrors(t *testing.T) {
	r := `"recipient":"` + nymExample + `"`
	cases := []struct {
		name, in string
		kind     ErrorKind
		detail   string
	}{
		{"empty", ``, KindMalformedRequest, "invalid JSON"},
		{"not json", `hello`, KindMalformedRequest, "invalid JSON"},
		{"truncated", `{"type":"send"`, KindMalformedRequest, "invalid JSON"},
		{"array", `["send"]`, KindMalformedRequest, "expected a JSON object"},
		{"string", `"send"`, KindMalformedRequest, "expected a JSON object"},
		{"trailing", `{"type":"selfAddress"} {}`, KindMalformedRequest, "trailing data"},
		{"trailing junk", `{"type":"selfAddress"}x`, KindMalformedRequest, "invalid JSON"},
		{"invalid utf8", "{\"type\":\"send\",\"message\":\"\xff\"}", KindMalformedRequest, "not valid UTF-8"},
		{"no type", `{"message":"hi"}`, KindMalformedRequest, "missing field `type` at line 1 column 16"},
		{"null type", `{"type":null}`, KindMalformedRequest, "field `type`: invalid type: null"},
		{"numeric type", `{"type":3}`, KindMalformedRequest, "field `type`: invalid type"},
		{"unknown type", `{"type":"sendLater","message":"hi"}`, KindMalformedRequest,
			"unknown variant `sendLater`, expected one of `send`, `sendAnonymous`, `reply`, `selfAddress` at line 1 column 19"},
		{"type case", `{"message":"hi",` + r + `,` + "\n" + ` "type":"Send"}`, KindMalformedRequest,
			"unknown variant `Send`, expected one of `send`, `sendAnonymous`, `reply`, `selfAddress` at line 2 column 14"},
		{"duplicate field", `{"type":"send","message":"a","message":"b",` + r + `}`, KindMalformedRequest, `duplicate field "message"`},
		{"send no message", `{"type":"send",` + r + `}`, KindMalformedRequest, "missing field `message`"},
		{"send null message", `{"type":"send","message":null,` + r + `}`, KindMalformedRequest, "field `message`: invalid type: null"},
		{"send both messages", `{"type":"send","message":"a","messageBase64":"YQ==",` + r + `}`, KindMalformedRequest, "both present"},
		{"send null base64", `{"type":"send","messageBase64":null,` + r + `}`, KindMalformedRequest, "field `messageBase64`: invalid type: null"},
		{"send bad base64", `{"type":"send","messageBase64":"YQ",` + r + `}`, KindMalformedRequest, "field `messageBase64`: invalid base64"},
		{"send base64 line break", `{"type":"send","messageBase64":"YQ==\n",` + r + `}`, KindMalformedRequest, "line break"},
		{"send base64 url alphabet", `{"type":"send","messageBase64":"_w==",` + r + `}`, KindMalformedRequest, "invalid base64"},
		{"send message not string", `{"type":"send","message":5,` + r + `}`, KindMalformedRequest, "field `message`: invalid type"},
		{"send lone surrogate", `{"type":"send","message":"\ud800x",` + r + `}`, KindMalformedRequest, "lone surrogate"},
		{"send lone low surrogate", `{"type":"send","message":"\udc00",` + r + `}`, KindMalformedRequest, "lone surrogate"},
		{"send no recipient", `{"type":"send","message":"hi"}`, KindMalformedRequest, "missing field `recipient`"},
		{"send bad recipient", `{"type":"send","message":"hi","recipient":"abc"}`, KindMalformedRequest, "field `recipient`: address: missing '@'"},
		{"send recipient wrong key", `{"type":"send","message":"hi","recipient":"` + strings.Replace(nymExample, ".4QX", ".4QXX", 1) + `"}`,
			KindMalformedRequest, "field `recipient`: address: encryption key"},
		{"send negative connection", `{"type":"send","message":"hi",` + r + `,"connectionId":-1}`, KindMalformedRequest, "field `connectionId`: invalid value"},
		{"send float connection", `{"type":"send","message":"hi",` + r + `,"connectionId":1.0}`, KindMalformedRequest, "field `connectionId`: invalid value"},
		{"send string connection", `{"type":"send","message":"hi",` + r + `,"connectionId":"1"}`, KindMalformedRequest, "field `connectionId`: invalid value"},
		{"send huge connection", `{"type":"send","message":"hi",` + r + `,"connectionId":18446744073709551616}`, KindMalformedRequest, "out of range for u64"},
		{"anonymous no surbs", `{"type":"sendAnonymous","message":"hi",` + r + `}`, KindMalformedRequest, "missing field `replySurbs`"},
		{"anonymous null surbs", `{"type":"sendAnonymous","message":"hi","replySurbs":null,` + r + `}`, KindMalformedRequest, "field `replySurbs`: invalid value"},
		{"anonymous surbs too big", `{"type":"sendAnonymous","message":"hi","replySurbs":4294967296,` + r + `}`, KindMalformedRequest, "out of range for u32"},
		{"reply no tag", `{"type":"reply","message":"hi"}`, KindMalformedRequest, "missing field `senderTag`"},
		{"reply bad tag", `{"type":"reply","message":"hi","senderTag":"abc"}`, KindMalformedRequest, "field `senderTag`: address: sender tag: decodes to"},
		{"closed connection no id", `{"type":"closedConnection"}`, KindMalformedRequest, "missing field `connectionId`"},
		{"lane null id", `{"type":"getLaneQueueLength","connectionId":null}`, KindMalformedRequest, "field `connectionId`: invalid value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseJSONRequest([]byte(c.in))
			if err == nil {
				t.Fatalf("accepted: %#v", got)
			}
			if k := kindOf(t, err); k != c.kind {
				t.Fatalf("kind %v, want %v (%v)", k, c.kind, err)
			}
			if !strings.Contains(err.Error(), c.detail) {
				t.Fatalf("error %q does not contain %q", err, c.detail)
			}
		})
	}
}

func TestJSONResponseErrors(t *testing.T) {
	cases := []struct {
		name, in string
		kind     ErrorKind
		detail   string
	}{
		{"empty", ``, KindMalformedResponse, "invalid JSON"},
		{"unknown type", `{"type":"send"}`, KindUnknownResponse, `unknown variant "send"`},
		{"received no message", `{"type":"received","senderTag":null}`, KindMalformedResponse, "missing field `message`"},
		{"received only base64", `{"type":"received","messageBase64":"AA=="}`, KindMalformedResponse, "missing field `message`"},
		{"received bad tag", `{"type":"received","message":"","senderTag":"0"}`, KindMalformedResponse, "field `senderTag`"},
		{"received tag not string", `{"type":"received","message":"","senderTag":7}`, KindMalformedResponse, "field `senderTag`: invalid type"},
		{"received bad base64", `{"type":"received","message":"","messageBase64":"%%"}`, KindMalformedResponse, "field `messageBase64`"},
		{"self address no address", `{"type":"selfAddress"}`, KindMalformedResponse, "missing field `address`"},
		{"self address bad", `{"type":"selfAddress","address":"a.b@c"}`, KindMalformedResponse, "field `address`: address: identity"},
		{"lane camel case", `{"type":"laneQueueLength","lane":1,"queueLength":2}`, KindMalformedResponse, "missing field `queue_length`"},
		{"lane no lane", `{"type":"laneQueueLength","queue_length":2}`, KindMalformedResponse, "missing field `lane`"},
		{"error no message", `{"type":"error"}`, KindMalformedResponse, "missing field `message`"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseJSONResponse([]byte(c.in))
			if err == nil {
				t.Fatalf("accepted: %#v", got)
			}
			if k := kindOf(t, err); k != c.kind {
				t.Fatalf("kind %v, want %v (%v)", k, c.kind, err)
			}
			if !strings.Contains(err.Error(), c.detail) {
				t.Fatalf("error %q does not contain %q", err, c.detail)
			}
		})
	}
}

func TestJSONReceivedExtension(t *testing.T) {
	// A plain Nym received message: no messageBase64, the text is the data.
	r, err := ParseJSONResponse([]byte(`{"type":"received","message":"plain","senderTag":null}`))
	if err != nil || string(r.(Received).Data) != "plain" {
		t.Fatalf("plain received: %#v, %v", r, err)
	}
	// messageBase64, when present, carries the exact bytes.
	r, err = ParseJSONResponse([]byte(`{"type":"received","message":"\ufffd","senderTag":null,"messageBase64":"/w=="}`))
	if err != nil || string(r.(Received).Data) != "\xff" {
		t.Fatalf("received with messageBase64: %#v, %v", r, err)
	}
	// Valid UTF-8 data gets no messageBase64, so the output is exactly Nym's.
	out, _ := MarshalJSONResponse(Received{Data: []byte("ünïcode")})
	if strings.Contains(string(out), "messageBase64") {
		t.Fatalf("messageBase64 on valid UTF-8: %s", out)
	}
	// An empty message has no invalid bytes either.
	out, _ = MarshalJSONResponse(Received{})
	if string(out) != `{"type":"received","message":"","senderTag":null}` {
		t.Fatalf("empty received: %s", out)
	}
}

func TestJSONErrorMessageSplit(t *testing.T) {
	cases := []struct {
		in   string
		want Error
	}{
		{"malformed request:x: y", Error{Kind: KindMalformedRequest, Message: "x: y"}},
		{"received response did not contain enough data:", Error{Kind: KindTooShortResponse}},
		{"other:", Error{Kind: KindOther}},
		{"something went wrong", Error{Kind: KindOther, Message: "something went wrong"}},
		{"malformed request", Error{Kind: KindOther, Message: "malformed request"}},
	}
	for _, c := range cases {
		in, _ := MarshalJSONResponse(Error{Kind: KindOther}) // shape only
		in = []byte(strings.Replace(string(in), `"other:"`, string(appendJSONString(nil, c.in)), 1))
		got, err := ParseJSONResponse(in)
		if err != nil || got != c.want {
			t.Errorf("ParseJSONResponse(%s) = %#v, %v; want %#v", in, got, err, c.want)
		}
	}
}

// The escaping and lossy conversion must be serde_json's and Rust's, not
// Go's, for the output to match Nym byte for byte.
func TestJSONStringLikeSerde(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", `"plain"`},
		{"q\"b\\s/", `"q\"b\\s/"`},
		{"\b\t\n\f\r", `"\b\t\n\f\r"`},
		{"\x00\x01\x1f\x7f", `"\u0000\u0001\u001f` + "\x7f" + `"`},
		{"<>&\u2028\u2029", "\"<>&\u2028\u2029\""},
		{"é😀", `"é😀"`},
	}
	for _, c := range cases {
		if got := string(appendJSONString(nil, c.in)); got != c.want {
			t.Errorf("appendJSONString(%q) = %s, want %s", c.in, got, c.want)
		}
		back, err := unquoteJSONString([]byte(c.want))
		if err != nil || back != c.in {
			t.Errorf("unquoteJSONString(%s) = %q, %v", c.want, back, err)
		}
	}
}

func TestLossyUTF8LikeRust(t *testing.T) {
	const r = "\uFFFD"
	cases := []struct{ in, want string }{
		// The example of Rust's String::from_utf8_lossy documentation.
		{"Hello \xF0\x90\x80World", "Hello " + r + "World"},
		// The example of the Unicode Standard, section 3.9 ("U+FFFD
		// Substitution of Maximal Subparts").
		{"\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64", "a" + r + r + r + "b" + r + "c" + r + r + "d"},
		{"\xE2\x82", r},             // truncated at the end: one
		{"\xF0\x80\x80", r + r + r}, // overlong lead: each byte
		{"\xED\xA0\x80", r + r + r}, // surrogate: each byte
		{"\xF4\x90\x80\x80", r + r + r + r},
		{"\xC0\xAF", r + r},
		{"\xFF", r},
		{"ok\u00e9\U0001F600", "ok\u00e9\U0001F600"},
	}
	for _, c := range cases {
		if got := string(appendLossyUTF8(nil, c.in)); got != c.want {
			t.Errorf("lossy(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMarshalNil(t *testing.T) {
	if _, err := MarshalJSONRequest(nil); err == nil {
		t.Error("MarshalJSONRequest(nil) succeeded")
	}
	if _, err := MarshalJSONResponse(nil); err == nil {
		t.Error("MarshalJSONResponse(nil) succeeded")
	}
}

// An error repeats at most maxEcho bytes of a value from the request (cut
// at a character boundary), so that its answer stays small however large
// the request.
func TestJSONErrorsClipEchoedValues(t *testing.T) {
	long := strings.Repeat("é", 10<<10) // two bytes a character
	cases := map[string]string{
		"unknown type":    `{"type":"` + long + `"}`,
		"duplicate field": `{"type":"selfAddress","` + long + `":1,"` + long + `":2}`,
		"out of range":    `{"type":"send","message":"x","recipient":"` + nymExample + `","connectionId":` + strings.Repeat("9", 20<<10) + `}`,
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseJSONRequest([]byte(req))
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if len(msg) > 512 {
				t.Fatalf("error of %d bytes for a request of %d: %.200s", len(msg), len(req), msg)
			}
			if !strings.Contains(msg, " bytes)") || !utf8.ValidString(msg) {
				t.Fatalf("error does not say the value was cut, or cuts a character: %s", msg)
			}
		})
	}
}
