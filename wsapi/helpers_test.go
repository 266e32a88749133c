package wsapi

import (
	"reflect"
	"testing"

	"github.com/peapod-mixnet/peapod/address"
)

// nymExample is the address used throughout Nym's tests.
const nymExample = "CytBseW6yFXUMzz4SGAKdNLGR7q3sJLLYxyBGvutNEQV.4QXYyEVc5fUDjmmi8PrHN9tdUFV4PCvSJE1278cHyvoe@4sBbL1ngf1vtNqykydQKTFh26sQCw888GpUqvPvyNB4f"

// mockRecipient is mock_recipient() from Nym's addressing tests, 96 bytes.
var mockRecipient = []byte{
	67, 5, 132, 146, 3, 236, 116, 89, 254, 57, 131, 159, 69, 181, 55, 208, 12, 108, 136,
	83, 58, 76, 171, 195, 31, 98, 92, 64, 68, 53, 156, 184, 100, 189, 73, 3, 238, 103, 156,
	108, 124, 199, 42, 79, 172, 98, 81, 177, 182, 100, 167, 164, 74, 183, 199, 213, 162,
	173, 102, 112, 30, 159, 148, 66, 44, 75, 230, 182, 138, 114, 170, 163, 209, 82, 204,
	100, 118, 91, 57, 150, 212, 147, 151, 135, 148, 16, 213, 223, 182, 164, 242, 37, 40,
	73, 137, 228,
}

// testTag is the sender tag 0x10 0x11 ... 0x1f; testTagText is its base58.
var testTag = address.SenderTag{0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f}

const testTagText = "2z57mqVKV81ov6EoKXKtP8"

func mockAddress(t testing.TB) address.Address {
	t.Helper()
	a, err := address.FromBytes(mockRecipient)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func nymAddress(t testing.TB) address.Address {
	t.Helper()
	a, err := address.Parse(nymExample)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// normalize replaces nil Data with an empty slice, so that messages compare
// by content.
func normalize(m any) any {
	switch v := m.(type) {
	case Send:
		v.Data = nonNil(v.Data)
		return v
	case SendAnonymous:
		v.Data = nonNil(v.Data)
		return v
	case Reply:
		v.Data = nonNil(v.Data)
		return v
	case Received:
		v.Data = nonNil(v.Data)
		return v
	}
	return m
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func sameMessage(a, b any) bool {
	return reflect.DeepEqual(normalize(a), normalize(b))
}

// kindOf returns the kind of a *ProtocolError, or fails the test.
func kindOf(t testing.TB, err error) ErrorKind {
	t.Helper()
	pe, ok := err.(*ProtocolError)
	if !ok {
		t.Fatalf("error %v (%T) is not a *ProtocolError", err, err)
	}
	return pe.Kind
}
