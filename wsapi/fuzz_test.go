package wsapi

import (
	"bytes"
	"testing"
)

// seedRequests and seedResponses are one of each message, for the fuzz
// corpora.
func seedRequests(t testing.TB) []Request {
	a := mockAddress(t)
	return []Request{
		Send{Recipient: a, ConnectionID: 1, Data: []byte("hello")},
		SendAnonymous{ReplySURBs: 10, Recipient: a, Data: []byte{0xFF}},
		Reply{SenderTag: testTag, ConnectionID: 2, Data: []byte("re")},
		SelfAddress{},
		ClosedConnection{ConnectionID: 3},
		GetLaneQueueLength{ConnectionID: 4},
	}
}

func seedResponses(t testing.TB) []Response {
	tag := testTag
	return []Response{
		Error{Kind: KindMalformedRequest, Message: "bad"},
		Received{Data: []byte("data")},
		Received{SenderTag: &tag, Data: []byte{0xC3, 0x28}},
		SelfAddressResponse{Address: mockAddress(t)},
		LaneQueueLength{Lane: 1, QueueLength: 2},
	}
}

// checkRequestKind fails unless err is a *ProtocolError of a request kind.
func checkRequestKind(t *testing.T, err error) {
	switch kindOf(t, err) {
	case KindEmptyRequest, KindTooShortRequest, KindUnknownRequest, KindMalformedRequest:
	default:
		t.Fatalf("request parser returned kind %v", kindOf(t, err))
	}
}

func checkResponseKind(t *testing.T, err error) {
	switch kindOf(t, err) {
	case KindEmptyResponse, KindTooShortResponse, KindUnknownResponse, KindMalformedResponse:
	default:
		t.Fatalf("response parser returned kind %v", kindOf(t, err))
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, r := range seedRequests(f) {
		f.Add(AppendRequest(nil, r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			checkRequestKind(t, err)
			return
		}
		// The binary form is canonical: what parses re-encodes to itself.
		if again := AppendRequest(nil, r); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x, parsed from %x", again, b)
		}
		// And every request survives the JSON form.
		j, err := MarshalJSONRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseJSONRequest(j)
		if err != nil || !sameMessage(back, r) {
			t.Fatalf("JSON %s parsed to %#v, %v; want %#v", j, back, err, r)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	for _, r := range seedResponses(f) {
		f.Add(AppendResponse(nil, r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResponse(b)
		if err != nil {
			checkResponseKind(t, err)
			return
		}
		if again := AppendResponse(nil, r); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x, parsed from %x", again, b)
		}
		j, err := MarshalJSONResponse(r)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseJSONResponse(j)
		if err != nil || !sameMessage(back, r) {
			t.Fatalf("JSON %s parsed to %#v, %v; want %#v", j, back, err, r)
		}
	})
}

func FuzzParseJSONRequest(f *testing.F) {
	for _, r := range seedRequests(f) {
		j, _ := MarshalJSONRequest(r)
		f.Add(j)
	}
	f.Add([]byte(`{"type":"send","message":"\ud83d\ude00\u0000","recipient":"` + nymExample + `","connectionId":5,"x":null}`))
	f.Add([]byte(`{"type":"reply","messageBase64":"AAE=","senderTag":"` + testTagText + `"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseJSONRequest(b)
		if err != nil {
			checkRequestKind(t, err)
			return
		}
		j, err := MarshalJSONRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseJSONRequest(j)
		if err != nil || !sameMessage(back, r) {
			t.Fatalf("%s parsed to %#v; its encoding %s parsed to %#v, %v", b, r, j, back, err)
		}
		// Our own encoding is a fixed point.
		if j2, _ := MarshalJSONRequest(back); !bytes.Equal(j2, j) {
			t.Fatalf("encoding not stable: %s then %s", j, j2)
		}
		// And the binary form carries the same value.
		bin, err := ParseRequest(AppendRequest(nil, r))
		if err != nil || !sameMessage(bin, r) {
			t.Fatalf("binary round trip of %#v: %#v, %v", r, bin, err)
		}
	})
}

func FuzzParseJSONResponse(f *testing.F) {
	for _, r := range seedResponses(f) {
		j, _ := MarshalJSONResponse(r)
		f.Add(j)
	}
	f.Add([]byte(`{"type":"error","message":"unknown request type:x"}`))
	f.Add([]byte(`{"type":"received","message":"?","senderTag":null,"messageBase64":"/w=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseJSONResponse(b)
		if err != nil {
			checkResponseKind(t, err)
			return
		}
		j, err := MarshalJSONResponse(r)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseJSONResponse(j)
		if err != nil || !sameMessage(back, r) {
			t.Fatalf("%s parsed to %#v; its encoding %s parsed to %#v, %v", b, r, j, back, err)
		}
		if j2, _ := MarshalJSONResponse(back); !bytes.Equal(j2, j) {
			t.Fatalf("encoding not stable: %s then %s", j, j2)
		}
		bin, err := ParseResponse(AppendResponse(nil, r))
		if err != nil || !sameMessage(bin, r) {
			t.Fatalf("binary round trip of %#v: %#v, %v", r, bin, err)
		}
	})
}
