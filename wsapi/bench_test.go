package wsapi

import (
	"bytes"
	"testing"
)

// A regular Nym packet carries about 1.6 KB of message; benchmark with that.
var benchData = bytes.Repeat([]byte{0xAB}, 1600)

func BenchmarkAppendRequestSend(b *testing.B) {
	req := Send{Recipient: mockAddress(b), ConnectionID: 1, Data: benchData}
	buf := make([]byte, 0, 2048)
	b.SetBytes(int64(len(benchData)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRequest(buf[:0], req)
	}
}

func BenchmarkParseRequestSend(b *testing.B) {
	frame := AppendRequest(nil, Send{Recipient: mockAddress(b), ConnectionID: 1, Data: benchData})
	b.SetBytes(int64(len(benchData)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRequestReply(b *testing.B) {
	frame := AppendRequest(nil, Reply{SenderTag: testTag, ConnectionID: 1, Data: benchData})
	b.SetBytes(int64(len(benchData)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendResponseReceived(b *testing.B) {
	tag := testTag
	resp := Received{SenderTag: &tag, Data: benchData}
	buf := make([]byte, 0, 2048)
	b.SetBytes(int64(len(benchData)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendResponse(buf[:0], resp)
	}
}

func BenchmarkParseResponseReceived(b *testing.B) {
	tag := testTag
	frame := AppendResponse(nil, Received{SenderTag: &tag, Data: benchData})
	b.SetBytes(int64(len(benchData)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseResponse(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalJSONResponseReceived(b *testing.B) {
	resp := Received{Data: bytes.Repeat([]byte("text "), 320)}
	b.SetBytes(int64(len(resp.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MarshalJSONResponse(resp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseJSONRequestSend(b *testing.B) {
	frame, _ := MarshalJSONRequest(Send{Recipient: nymAddress(b), Data: bytes.Repeat([]byte("text "), 320)})
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseJSONRequest(frame); err != nil {
			b.Fatal(err)
		}
	}
}
