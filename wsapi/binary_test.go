package wsapi

import (
	"bytes"
	"strings"
	"testing"
)

func TestBinaryRequestGolden(t *testing.T) {
	a := mockAddress(t)
	cases := []struct {
		name   string
		req    Request
		golden []byte
	}{
		{"send", Send{Recipient: a, ConnectionID: 0x0102030405060708, Data: []byte("hi")}, cat(
			[]byte{0x00},
			mockRecipient,
			[]byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08},
			[]byte{0, 0, 0, 0, 0, 0, 0, 2},
			[]byte("hi"),
		)},
		{"send no connection empty data", Send{Recipient: a}, cat(
			[]byte{0x00}, mockRecipient, make([]byte, 8), make([]byte, 8),
		)},
		{"send anonymous", SendAnonymous{ReplySURBs: 0x0A0B0C0D, Recipient: a, ConnectionID: 0x1112131415161718, Data: []byte{0xFF, 0x00, 0xFE}}, cat(
			[]byte{0x01},
			[]byte{0x0A, 0x0B, 0x0C, 0x0D},
			mockRecipient,
			[]byte{0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18},
			[]byte{0, 0, 0, 0, 0, 0, 0, 3},
			[]byte{0xFF, 0x00, 0xFE},
		)},
		{"reply", Reply{SenderTag: testTag, ConnectionID: 0x2122232425262728, Data: []byte("abcd")}, cat(
			[]byte{0x02},
			[]byte{0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f},
			[]byte{0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28},
			[]byte{0, 0, 0, 0, 0, 0, 0, 4},
			[]byte("abcd"),
		)},
		{"self address", SelfAddress{}, []byte{0x03}},
		{"closed connection", ClosedConnection{ConnectionID: 0x3132333435363738}, []byte{0x04, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38}},
		{"get lane queue length", GetLaneQueueLength{ConnectionID: 0x4142434445464748}, []byte{0x05, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := AppendRequest([]byte{0xEE}, c.req)
			if got[0] != 0xEE || !bytes.Equal(got[1:], c.golden) {
				t.Fatalf("AppendRequest:\n got %x\nwant ee%x", got, c.golden)
			}
			back, err := ParseRequest(c.golden)
			if err != nil {
				t.Fatal(err)
			}
			if !sameMessage(back, c.req) {
				t.Fatalf("ParseRequest = %#v, want %#v", back, c.req)
			}
		})
	}
}

func TestBinaryResponseGolden(t *testing.T) {
	a := mockAddress(t)
	tag := testTag
	cases := []struct {
		name   string
		resp   Response
		golden []byte
	}{
		{"error", Error{Kind: KindMalformedRequest, Message: "bad"}, cat(
			[]byte{0x00, 0x04},
			[]byte{0, 0, 0, 0, 0, 0, 0, 3},
			[]byte("bad"),
		)},
		{"error other", Error{Kind: KindOther, Message: ""}, cat([]byte{0x00, 0xFF}, make([]byte, 8))},
		{"received without tag", Received{Data: []byte("hello")}, cat(
			[]byte{0x01, 0x00},
			[]byte{0, 0, 0, 0, 0, 0, 0, 5},
			[]byte("hello"),
		)},
		{"received with tag", Received{SenderTag: &tag, Data: []byte{0x80}}, cat(
			[]byte{0x01, 0x01},
			[]byte{0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f},
			[]byte{0, 0, 0, 0, 0, 0, 0, 1},
			[]byte{0x80},
		)},
		{"self address", SelfAddressResponse{Address: a}, cat([]byte{0x02}, mockRecipient)},
		{"lane queue length", LaneQueueLength{Lane: 0x0102030405060708, QueueLength: 0x1112131415161718}, []byte{
			0x03,
			0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
			0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := AppendResponse([]byte{0xEE}, c.resp)
			if got[0] != 0xEE || !bytes.Equal(got[1:], c.golden) {
				t.Fatalf("AppendResponse:\n got %x\nwant ee%x", got, c.golden)
			}
			back, err := ParseResponse(c.golden)
			if err != nil {
				t.Fatal(err)
			}
			if !sameMessage(back, c.resp) {
				t.Fatalf("ParseResponse = %#v, want %#v", back, c.resp)
			}
		})
	}
	if len(AppendResponse(nil, SelfAddressResponse{})) != selfAddressResponseSize {
		t.Fatal("self address response is not 97 bytes")
	}
}

func TestParseCopiesData(t *testing.T) {
	frame := AppendRequest(nil, Send{Recipient: mockAddress(t), Data: []byte("abc")})
	r, err := ParseRequest(frame)
	if err != nil {
		t.Fatal(err)
	}
	frame[len(frame)-1] = 'X'
	if string(r.(Send).Data) != "abc" {
		t.Fatal("parsed data aliases the frame")
	}
}

func TestErrorMessageIsMadeUTF8(t *testing.T) {
	frame := AppendResponse(nil, Error{Kind: KindOther, Message: "a\xffb"})
	r, err := ParseResponse(frame)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.(Error).Message; got != "a\uFFFDb" {
		t.Fatalf("message %q", got)
	}
}

func TestBinaryRequestErrors(t *testing.T) {
	a := mockAddress(t)
	send := AppendRequest(nil, Send{Recipient: a, ConnectionID: 1, Data: []byte("data")})
	anon := AppendRequest(nil, SendAnonymous{ReplySURBs: 5, Recipient: a, Data: []byte("data")})
	reply := AppendRequest(nil, Reply{SenderTag: testTag, Data: []byte("data")})
	offCurve := append([]byte(nil), send...)
	copy(offCurve[1:], bytes.Repeat([]byte{0x02}, 32)) // y = 2 is not on the curve
	offCurveGateway := append([]byte(nil), anon...)
	copy(offCurveGateway[1+4+64:], bytes.Repeat([]byte{0x02}, 32))

	cases := []struct {
		name   string
		in     []byte
		kind   ErrorKind
		detail string
	}{
		{"empty", nil, KindEmptyRequest, "no data provided"},
		{"unknown tag", []byte{0x06}, KindUnknownRequest, "6 does not correspond to any valid request tag"},
		{"unknown tag 0xff", []byte{0xFF, 1, 2}, KindUnknownRequest, "255 does not"},
		{"send short", send[:sendHeaderSize-1], KindTooShortRequest, "'send'"},
		{"send tag only", []byte{0x00}, KindTooShortRequest, "'send'"},
		{"send anonymous short", anon[:sendAnonymousHeaderSize-1], KindTooShortRequest, "'send_anonymous'"},
		{"reply short", reply[:replyHeaderSize-1], KindTooShortRequest, "'reply'"},
		{"send data missing", send[:len(send)-1], KindMalformedRequest, "specified: 4 got: 3"},
		{"send trailing byte", append(append([]byte(nil), send...), 0), KindMalformedRequest, "specified: 4 got: 5"},
		{"send anonymous trailing", append(append([]byte(nil), anon...), 'x'), KindMalformedRequest, "specified: 4 got: 5"},
		{"reply length too big", func() []byte {
			b := append([]byte(nil), reply...)
			b[replyHeaderSize-8] = 0x80 // length 2^63 + 4
			return b
		}(), KindMalformedRequest, "inconsistent length"},
		{"send bad recipient", offCurve, KindMalformedRequest, "malformed recipient: address: identity"},
		{"send anonymous bad gateway", offCurveGateway, KindMalformedRequest, "malformed recipient: address: gateway"},
		{"reply length off", append(append([]byte(nil), reply...), 'x'), KindMalformedRequest, "message len has inconsistent length. specified: 4 got: 5"},
		{"closed connection short", []byte{0x04, 1, 2, 3}, KindMalformedRequest, "The received closed connection has invalid length"},
		{"closed connection long", append([]byte{0x04}, make([]byte, 9)...), KindMalformedRequest, "The received closed connection has invalid length"},
		{"lane queue length short", []byte{0x05}, KindMalformedRequest, "The received get lane queue lengths has invalid length"},
	}
	// Nym ignores what follows a SelfAddress tag; so does ParseRequest.
	for _, in := range [][]byte{{0x03, 0x00}, append([]byte{0x03}, bytes.Repeat([]byte{0xff}, 200)...)} {
		if r, err := ParseRequest(in); err != nil || r != (SelfAddress{}) {
			t.Errorf("SelfAddress with %d trailing bytes: %#v, %v", len(in)-1, r, err)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseRequest(c.in)
			if err == nil {
				t.Fatalf("ParseRequest accepted it: %#v", r)
			}
			if k := kindOf(t, err); k != c.kind {
				t.Fatalf("kind %v, want %v (%v)", k, c.kind, err)
			}
			if !strings.Contains(err.Error(), c.detail) || !strings.HasPrefix(err.Error(), "wsapi: ") {
				t.Fatalf("error %q does not contain %q", err, c.detail)
			}
		})
	}
}

func TestBinaryResponseErrors(t *testing.T) {
	tag := testTag
	received := AppendResponse(nil, Received{Data: []byte("data")})
	tagged := AppendResponse(nil, Received{SenderTag: &tag, Data: []byte("data")})
	errResp := AppendResponse(nil, Error{Kind: KindOther, Message: "oops"})
	self := AppendResponse(nil, SelfAddressResponse{Address: mockAddress(t)})
	lane := AppendResponse(nil, LaneQueueLength{Lane: 1, QueueLength: 2})
	badSelf := append([]byte(nil), self...)
	copy(badSelf[1:], bytes.Repeat([]byte{0x02}, 32))

	cases := []struct {
		name   string
		in     []byte
		kind   ErrorKind
		detail string
	}{
		{"empty", []byte{}, KindEmptyResponse, "no data provided"},
		{"unknown tag", []byte{0x04}, KindUnknownResponse, "4 does not correspond to any valid response tag"},
		{"error short", errResp[:errorHeaderSize-1], KindTooShortResponse, "'error'"},
		{"error unknown kind", func() []byte {
			b := append([]byte(nil), errResp...)
			b[1] = 0x05
			return b
		}(), KindMalformedResponse, "unknown error kind 0x05"},
		{"error kind zero", func() []byte {
			b := append([]byte(nil), errResp...)
			b[1] = 0x00
			return b
		}(), KindMalformedResponse, "unknown error kind 0x00"},
		{"error length mismatch", errResp[:len(errResp)-1], KindMalformedResponse, "specified: 4 got: 3"},
		{"error not utf8", cat([]byte{0x00, 0xFF, 0, 0, 0, 0, 0, 0, 0, 2}, []byte{0xC3, 0x28}), KindMalformedResponse, "not valid UTF-8"},
		{"received short", received[:receivedMinSize-1], KindTooShortResponse, "'received'"},
		{"received bad flag", func() []byte {
			b := append([]byte(nil), received...)
			b[1] = 2
			return b
		}(), KindMalformedResponse, "invalid sender tag flag 2"},
		{"received tagged short", tagged[:receivedMinSize+5], KindTooShortResponse, "'received'"},
		{"received trailing", append(append([]byte(nil), tagged...), 0), KindMalformedResponse, "specified: 4 got: 5"},
		{"self address short", self[:len(self)-1], KindTooShortResponse, "'self_address'"},
		{"self address trailing", append(append([]byte(nil), self...), 0), KindMalformedResponse, "1 trailing bytes"},
		{"self address bad key", badSelf, KindMalformedResponse, "malformed recipient: address: identity"},
		{"lane short", lane[:len(lane)-1], KindTooShortResponse, "'lane_queue_length'"},
		{"lane trailing", append(append([]byte(nil), lane...), 0), KindMalformedResponse, "1 trailing bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseResponse(c.in)
			if err == nil {
				t.Fatalf("ParseResponse accepted it: %#v", r)
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

func TestErrorKinds(t *testing.T) {
	want := map[ErrorKind]string{
		0x01: "received request contained no data",
		0x02: "received request did not contain enough data",
		0x03: "unknown request type",
		0x04: "malformed request",
		0x80: "received response contained no data",
		0x81: "received response did not contain enough data",
		0x82: "unknown response type",
		0x83: "malformed response",
		0xFF: "other",
	}
	for k, text := range want {
		if k.String() != text {
			t.Errorf("kind 0x%02x text %q, want %q", uint8(k), k.String(), text)
		}
	}
	if got := ErrorKind(0x42).String(); got != "unknown error kind 0x42" {
		t.Errorf("unknown kind text %q", got)
	}
	pe := &ProtocolError{Kind: KindTooShortRequest, Detail: "x"}
	if pe.Response() != (Error{Kind: KindTooShortRequest, Message: "x"}) {
		t.Error("ProtocolError.Response lost a field")
	}
	if pe.Error() != "wsapi: received request did not contain enough data: x" {
		t.Errorf("ProtocolError text %q", pe.Error())
	}
	if got := (Error{Kind: KindOther, Message: "m"}).Error(); got != "wsapi: error response: other:m" {
		t.Errorf("Error text %q", got)
	}
}

func TestAppendNil(t *testing.T) {
	if got := AppendRequest([]byte{1}, nil); !bytes.Equal(got, []byte{1}) {
		t.Fatal("AppendRequest(nil) appended something")
	}
	if got := AppendResponse(nil, nil); len(got) != 0 {
		t.Fatal("AppendResponse(nil) appended something")
	}
}
