package address

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"filippo.io/edwards25519"
)

// nymExample is the address used throughout Nym's own tests.
const nymExample = "CytBseW6yFXUMzz4SGAKdNLGR7q3sJLLYxyBGvutNEQV.4QXYyEVc5fUDjmmi8PrHN9tdUFV4PCvSJE1278cHyvoe@4sBbL1ngf1vtNqykydQKTFh26sQCw888GpUqvPvyNB4f"

// nymMockRecipient is mock_recipient() from Nym's addressing/src/clients.rs
// tests: 96 bytes Nym accepts as a recipient.
var nymMockRecipient = []byte{
	67, 5, 132, 146, 3, 236, 116, 89, 254, 57, 131, 159, 69, 181, 55, 208, 12, 108, 136,
	83, 58, 76, 171, 195, 31, 98, 92, 64, 68, 53, 156, 184, 100, 189, 73, 3, 238, 103, 156,
	108, 124, 199, 42, 79, 172, 98, 81, 177, 182, 100, 167, 164, 74, 183, 199, 213, 162,
	173, 102, 112, 30, 159, 148, 66, 44, 75, 230, 182, 138, 114, 170, 163, 209, 82, 204,
	100, 118, 91, 57, 150, 212, 147, 151, 135, 148, 16, 213, 223, 182, 164, 242, 37, 40,
	73, 137, 228,
}

func TestNymExampleRoundTrip(t *testing.T) {
	a, err := Parse(nymExample)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.String(); got != nymExample {
		t.Fatalf("String() = %q, want %q", got, nymExample)
	}
	parts := strings.FieldsFunc(nymExample, func(r rune) bool { return r == '.' || r == '@' })
	for i, key := range [][KeySize]byte{a.Identity, a.Encryption, a.Gateway} {
		if EncodeKey(key[:]) != parts[i] {
			t.Errorf("part %d is %q, want %q", i, EncodeKey(key[:]), parts[i])
		}
	}
	raw := a.Bytes()
	if !bytes.Equal(raw[:KeySize], a.Identity[:]) || !bytes.Equal(raw[KeySize:2*KeySize], a.Encryption[:]) ||
		!bytes.Equal(raw[2*KeySize:], a.Gateway[:]) {
		t.Fatalf("binary form is not identity ‖ encryption ‖ gateway: %x", raw)
	}
	if got := a.AppendBinary([]byte{0xAA}); got[0] != 0xAA || !bytes.Equal(got[1:], raw[:]) {
		t.Fatalf("AppendBinary did not append after the prefix: %x", got)
	}
	back, err := FromBytes(raw[:])
	if err != nil || back != a {
		t.Fatalf("FromBytes(Bytes()) = %v, %v", back, err)
	}
	if a.IsZero() {
		t.Fatal("IsZero on a real address")
	}
}

func TestNymMockRecipientBytes(t *testing.T) {
	a, err := FromBytes(nymMockRecipient)
	if err != nil {
		t.Fatalf("Nym accepts these bytes, FromBytes refused them: %v", err)
	}
	back, err := Parse(a.String())
	if err != nil || back != a {
		t.Fatalf("Parse(String()) = %v, %v", back, err)
	}
}

// invalidPoint returns 32 bytes that are not an ed25519 point.
func invalidPoint(t *testing.T) [KeySize]byte {
	t.Helper()
	var b [KeySize]byte
	for i := 1; i < 256; i++ {
		b[0] = byte(i)
		if _, err := new(edwards25519.Point).SetBytes(b[:]); err != nil {
			return b
		}
	}
	t.Fatal("no invalid point encoding found")
	return b
}

func TestParseRejects(t *testing.T) {
	a, err := Parse(nymExample)
	if err != nil {
		t.Fatal(err)
	}
	id := EncodeKey(a.Identity[:])
	enc := EncodeKey(a.Encryption[:])
	gw := EncodeKey(a.Gateway[:])
	short := EncodeKey(make([]byte, 31)) // 31 '1's: 31 zero bytes
	bad := invalidPoint(t)

	cases := []struct {
		name, in, want string
	}{
		{"empty", "", "missing '@'"},
		{"no at", id + "." + enc + gw, "missing '@'"},
		{"two ats", id + "." + enc + "@" + gw + "@" + gw, "more than one '@'"},
		{"no dot", id + enc + "@" + gw, "missing '.'"},
		{"two dots", id + "." + enc + "." + enc + "@" + gw, "more than one '.'"},
		{"dot after at", id + "@" + gw + "." + enc, "missing '.'"},
		{"leading space", " " + nymExample, "address: identity: invalid base58 character ' ' at offset 0"},
		{"trailing newline", nymExample + "\n", "address: gateway: invalid base58 character '\\n'"},
		{"space in encryption", id + ". " + enc + "@" + gw, "address: encryption key: invalid base58"},
		{"empty identity", "." + enc + "@" + gw, "address: identity: empty"},
		{"empty encryption", id + ".@" + gw, "address: encryption key: empty"},
		{"empty gateway", id + "." + enc + "@", "address: gateway: empty"},
		{"short identity", short + "." + enc + "@" + gw, "address: identity: decodes to 31 bytes, want 32"},
		{"short encryption", id + "." + short + "@" + gw, "address: encryption key: decodes to 31 bytes, want 32"},
		{"long gateway", id + "." + enc + "@1" + gw, "address: gateway: decodes to 33 bytes, want 32"},
		{"very long gateway", id + "." + enc + "@" + strings.Repeat("z", 1000), "address: gateway: too long"},
		{"zero digit", id + "." + enc + "@0" + gw[1:], "address: gateway: invalid base58 character '0'"},
		{"capital O", "O" + id[1:] + "." + enc + "@" + gw, "address: identity: invalid base58 character 'O'"},
		{"capital I", id + ".I" + enc[1:] + "@" + gw, "address: encryption key: invalid base58 character 'I'"},
		{"small l", id + "." + enc + "@l" + gw[1:], "address: gateway: invalid base58 character 'l'"},
		{"non-ascii", id + "." + enc + "@é" + gw[2:], "address: gateway: invalid base58 byte 0xc3"},
		{"identity off curve", EncodeKey(bad[:]) + "." + enc + "@" + gw, "address: identity: not a valid ed25519 public key"},
		{"gateway off curve", id + "." + enc + "@" + EncodeKey(bad[:]), "address: gateway: not a valid ed25519 public key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse(c.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", c.in, got)
			}
			if !strings.HasPrefix(err.Error(), "address: ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestEncryptionKeyIsNotCheckedAsAPoint(t *testing.T) {
	a, err := Parse(nymExample)
	if err != nil {
		t.Fatal(err)
	}
	a.Encryption = invalidPoint(t)
	if _, err := Parse(a.String()); err != nil {
		t.Fatalf("any 32 bytes are an X25519 key, got %v", err)
	}
}

func TestFromBytesRejects(t *testing.T) {
	for _, n := range []int{0, 1, Size - 1, Size + 1} {
		if _, err := FromBytes(make([]byte, n)); err == nil || !strings.Contains(err.Error(), "want 96") {
			t.Errorf("FromBytes(%d bytes) error = %v", n, err)
		}
	}
	bad := invalidPoint(t)
	raw := append([]byte(nil), nymMockRecipient...)
	copy(raw[2*KeySize:], bad[:])
	if _, err := FromBytes(raw); err == nil || err.Error() != "address: gateway: not a valid ed25519 public key" {
		t.Errorf("off-curve gateway: error = %v", err)
	}
	copy(raw, bad[:])
	if _, err := FromBytes(raw); err == nil || err.Error() != "address: identity: not a valid ed25519 public key" {
		t.Errorf("off-curve identity: error = %v", err)
	}
}

func TestZeroAddress(t *testing.T) {
	var zero Address
	if !zero.IsZero() {
		t.Fatal("zero Address is not IsZero")
	}
	ones := strings.Repeat("1", KeySize)
	want := ones + "." + ones + "@" + ones
	if zero.String() != want {
		t.Fatalf("zero address text %q, want %q", zero.String(), want)
	}
	back, err := Parse(want)
	if err != nil || !back.IsZero() {
		t.Fatalf("Parse(zero text) = %v, %v", back, err)
	}
}

func TestJSON(t *testing.T) {
	a, err := Parse(nymExample)
	if err != nil {
		t.Fatal(err)
	}
	type doc struct {
		Addr Address   `json:"addr"`
		Tag  SenderTag `json:"tag"`
	}
	in := doc{Addr: a, Tag: SenderTag{1, 2, 3}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"addr":"` + nymExample + `","tag":"` + in.Tag.String() + `"}`
	if string(b) != want {
		t.Fatalf("JSON %s, want %s", b, want)
	}
	var out doc
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("Unmarshal = %+v, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"addr":"x@y"}`), &out); err == nil {
		t.Fatal("bad address in JSON accepted")
	}
}

func TestDecodeKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xA5}, 32)
	s := EncodeKey(key)
	got, err := DecodeKey(s, 32)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("DecodeKey = %x, %v", got, err)
	}
	// Leading zero bytes are leading '1's, and count towards the size.
	withZero := append([]byte{0}, key[1:]...)
	if s := EncodeKey(withZero); s[0] != '1' {
		t.Fatalf("leading zero byte encoded as %q", s)
	} else if got, err := DecodeKey(s, 32); err != nil || !bytes.Equal(got, withZero) {
		t.Fatalf("DecodeKey(leading zero) = %x, %v", got, err)
	}
	for _, c := range []struct {
		s    string
		size int
		want string
	}{
		{EncodeKey(append(make([]byte, 31), 1)), 31, "address: key: decodes to 32 bytes, want 31"},
		{s, 31, "address: key: too long: 44 characters, a 31-byte key takes at most 43"},
		{s, 33, "address: key: decodes to 32 bytes, want 33"},
		{"", 32, "address: key: empty"},
		{s + " ", 32, "address: key: invalid base58 character ' ' at offset 44"},
		{strings.Repeat("2", 46), 32, "address: key: too long: 46 characters"},
		{s, 0, "address: key size 0 is not positive"},
	} {
		if _, err := DecodeKey(c.s, c.size); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("DecodeKey(%q, %d) error = %v, want %q", c.s, c.size, err, c.want)
		}
	}
}

func TestSenderTag(t *testing.T) {
	src := bytes.NewReader(bytes.Repeat([]byte{7}, 40))
	tag, err := NewSenderTag(src)
	if err != nil {
		t.Fatal(err)
	}
	if tag != (SenderTag{7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}) {
		t.Fatalf("tag %x did not come from the reader", tag)
	}
	back, err := ParseSenderTag(tag.String())
	if err != nil || back != tag {
		t.Fatalf("ParseSenderTag(String()) = %x, %v", back, err)
	}
	if _, err := NewSenderTag(bytes.NewReader(make([]byte, 15))); err == nil {
		t.Fatal("NewSenderTag accepted a short read")
	}
	a, _ := NewSenderTag(nil)
	b, _ := NewSenderTag(nil)
	if a == b {
		t.Fatal("two tags from crypto/rand are equal")
	}
	if _, err := ParseSenderTag(EncodeKey(make([]byte, 17))); err == nil ||
		err.Error() != "address: sender tag: decodes to 17 bytes, want 16" {
		t.Fatalf("17-byte tag: error = %v", err)
	}
	var parsed SenderTag
	if err := parsed.UnmarshalText([]byte("not base58!")); err == nil {
		t.Fatal("UnmarshalText accepted junk")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(nymExample)
	f.Add(EncodeKey(nymMockRecipient[:32]) + "." + EncodeKey(nymMockRecipient[32:64]) + "@" + EncodeKey(nymMockRecipient[64:]))
	f.Add("a.b@c")
	f.Add("..@@")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "address: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		if got := a.String(); got != s {
			t.Fatalf("Parse(%q).String() = %q", s, got)
		}
		raw := a.Bytes()
		back, err := FromBytes(raw[:])
		if err != nil || back != a {
			t.Fatalf("FromBytes(Bytes()) = %v, %v", back, err)
		}
	})
}

func FuzzFromBytes(f *testing.F) {
	f.Add(nymMockRecipient)
	f.Add(make([]byte, Size))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := FromBytes(b)
		if err != nil {
			return
		}
		if raw := a.Bytes(); !bytes.Equal(raw[:], b) {
			t.Fatalf("Bytes() = %x, want %x", raw, b)
		}
		back, err := Parse(a.String())
		if err != nil || back != a {
			t.Fatalf("Parse(String()) = %v, %v", back, err)
		}
	})
}

func FuzzParseSenderTag(f *testing.F) {
	f.Add(SenderTag{42}.String())
	f.Add("1111111111111111")
	f.Fuzz(func(t *testing.T, s string) {
		tag, err := ParseSenderTag(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "address: sender tag: ") {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if tag.String() != s {
			t.Fatalf("ParseSenderTag(%q).String() = %q", s, tag.String())
		}
	})
}
