package fragment

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
)

// header builds a header from the layout written out in the reference:
//
//	1 bit set ‖ 31-bit set id ‖ total u8 ‖ index u8 ‖ (0x00 | 1 bit ‖ 31-bit linked set id)
func header(setID uint32, total, index uint8, link uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, 1<<31|setID)
	b = append(b, total, index)
	if link == 0 {
		return append(b, 0x00)
	}
	return binary.BigEndian.AppendUint32(b, 1<<31|link)
}

func TestHeaderGolden(t *testing.T) {
	payload := []byte("payload")
	tests := []struct {
		name   string
		frag   Fragment
		golden string // header bytes, hex
		layout []byte
	}{
		{
			name:   "unlinked",
			frag:   Fragment{SetID: 0x12345678, Total: 10, Index: 3},
			golden: "92345678" + "0a" + "03" + "00",
			layout: header(0x12345678, 10, 3, 0),
		},
		{
			name:   "single fragment, largest set id",
			frag:   Fragment{SetID: MaxSetID, Total: 1, Index: 1},
			golden: "ffffffff" + "01" + "01" + "00",
			layout: header(MaxSetID, 1, 1, 0),
		},
		{
			name:   "previous link on fragment 1",
			frag:   Fragment{SetID: 1, Total: 255, Index: 1, PreviousSetID: 0x7fffffff},
			golden: "80000001" + "ff" + "01" + "ffffffff",
			layout: header(1, 255, 1, 0x7fffffff),
		},
		{
			name:   "previous link on a one-fragment last set",
			frag:   Fragment{SetID: 0x00abcdef, Total: 1, Index: 1, PreviousSetID: 2},
			golden: "80abcdef" + "01" + "01" + "80000002",
			layout: header(0x00abcdef, 1, 1, 2),
		},
		{
			name:   "next link on fragment 255 of 255",
			frag:   Fragment{SetID: 0x0abcdef0, Total: 255, Index: 255, NextSetID: 0x102},
			golden: "8abcdef0" + "ff" + "ff" + "80000102",
			layout: header(0x0abcdef0, 255, 255, 0x102),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden, err := hex.DecodeString(tt.golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(golden, tt.layout) {
				t.Fatalf("golden %x does not match the written-out layout %x", golden, tt.layout)
			}
			if len(golden) != tt.frag.HeaderLen() {
				t.Fatalf("HeaderLen = %d, golden header has %d bytes", tt.frag.HeaderLen(), len(golden))
			}
			tt.frag.Payload = payload
			prefix := []byte("prefix")
			got := tt.frag.AppendBinary(bytes.Clone(prefix))
			want := append(append(bytes.Clone(prefix), golden...), payload...)
			if !bytes.Equal(got, want) {
				t.Fatalf("AppendBinary = %x, want %x", got, want)
			}
			if tt.frag.WireLen() != len(want)-len(prefix) {
				t.Fatalf("WireLen = %d, want %d", tt.frag.WireLen(), len(want)-len(prefix))
			}
			parsed, err := Parse(got[len(prefix):])
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !equalFragments(parsed, tt.frag) {
				t.Fatalf("Parse = %+v, want %+v", parsed, tt.frag)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		bytes []byte
		want  string // substring of the error naming the field
	}{
		{"empty", nil, "header: 0 bytes"},
		{"short header", header(5, 1, 1, 0)[:6], "header: 6 bytes"},
		{"flag bit clear", []byte{0x00, 0, 0, 5, 1, 1, 0}, "set id: flag bit"},
		{"set id 0", header(0, 1, 1, 0), "set id 0"},
		{"total 0", header(5, 0, 0, 0), "total is 0"},
		{"index 0", header(5, 3, 0, 0), "index 0 outside 1..3"},
		{"index above total", header(5, 3, 4, 0), "index 4 outside 1..3"},
		{"short linked header", header(5, 3, 1, 9)[:9], "linked header: 9 bytes"},
		{"link flag clear", append(header(5, 3, 1, 0)[:6], 0x01, 0, 0, 9), "linked set id: flag bit"},
		{"linked id 0", append(header(5, 3, 1, 0)[:6], 0x80, 0, 0, 0), "linked set id is 0"},
		{"previous link to itself", header(5, 3, 1, 5), "equals the set id"},
		{"next link to itself", header(5, 255, 255, 5), "equals the set id"},
		{"link on a middle fragment", header(5, 3, 2, 9), "next set id on fragment 2 of 3"},
		{"next link on a short set", header(5, 200, 200, 9), "next set id on fragment 200 of 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.bytes)
			if err == nil {
				t.Fatalf("Parse(%x) = %+v, want an error", tt.bytes, f)
			}
			if !strings.HasPrefix(err.Error(), "fragment: ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse(%x) error %q, want it to mention %q", tt.bytes, err, tt.want)
			}
		})
	}
}

func TestParsePayloadAliases(t *testing.T) {
	b := append(header(7, 2, 2, 0), 1, 2, 3)
	f, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Payload) != 3 || &f.Payload[0] != &b[UnlinkedHeaderLen] {
		t.Fatalf("payload %x does not alias the input", f.Payload)
	}
	// An empty payload is a valid fragment; the Reassembler enforces sizes.
	f, err = Parse(header(7, 1, 1, 0))
	if err != nil || len(f.Payload) != 0 {
		t.Fatalf("Parse(header only) = %+v, %v", f, err)
	}
}

func TestValidate(t *testing.T) {
	bad := []struct {
		name string
		frag Fragment
		want string
	}{
		{"negative set id", Fragment{SetID: -1, Total: 1, Index: 1}, "set id -1"},
		{"both links", Fragment{SetID: 1, Total: 1, Index: 1, PreviousSetID: 2, NextSetID: 3}, "both"},
		{"negative previous", Fragment{SetID: 1, Total: 1, Index: 1, PreviousSetID: -2}, "previous set id -2"},
		{"previous on fragment 2", Fragment{SetID: 1, Total: 2, Index: 2, PreviousSetID: 2}, "previous set id on fragment 2"},
		{"negative next", Fragment{SetID: 1, Total: 255, Index: 255, NextSetID: -3}, "next set id -3"},
		{"next on fragment 1", Fragment{SetID: 1, Total: 255, Index: 1, NextSetID: 3}, "next set id on fragment 1 of 255"},
	}
	for _, tt := range bad {
		if err := tt.frag.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want an error mentioning %q", tt.name, err, tt.want)
		}
	}
	good := []Fragment{
		{SetID: 1, Total: 1, Index: 1},
		{SetID: MaxSetID, Total: 255, Index: 255, NextSetID: 1},
		{SetID: 2, Total: 1, Index: 1, PreviousSetID: 1},
		{SetID: 2, Total: 255, Index: 255},
	}
	for _, f := range good {
		if err := f.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", f, err)
		}
	}
}

func TestID(t *testing.T) {
	id := ID{Set: 0x01020304, Index: 0xfe}
	b := id.AppendBinary([]byte{0xaa})
	if want := []byte{0xaa, 0x01, 0x02, 0x03, 0x04, 0xfe}; !bytes.Equal(b, want) {
		t.Fatalf("AppendBinary = %x, want %x", b, want)
	}
	got, err := ParseID(b[1:])
	if err != nil || got != id {
		t.Fatalf("ParseID = %v, %v; want %v", got, err, id)
	}
	if got, err := ParseID(CoverID.AppendBinary(nil)); err != nil || got != CoverID {
		t.Fatalf("ParseID(cover) = %v, %v", got, err)
	}
	if id.String() != "16909060@254" {
		t.Fatalf("String = %q", id.String())
	}
	f := Fragment{SetID: 9, Total: 4, Index: 2}
	if f.ID() != (ID{Set: 9, Index: 2}) {
		t.Fatalf("Fragment.ID = %v", f.ID())
	}
	for _, b := range [][]byte{nil, {1, 2, 3, 4}, {0, 0, 0, 1, 1, 0}, {0x80, 0, 0, 1, 1}} {
		if _, err := ParseID(b); err == nil {
			t.Errorf("ParseID(%x) accepted", b)
		}
	}
}

func equalFragments(a, b Fragment) bool {
	return a.SetID == b.SetID && a.Total == b.Total && a.Index == b.Index &&
		a.PreviousSetID == b.PreviousSetID && a.NextSetID == b.NextSetID &&
		bytes.Equal(a.Payload, b.Payload)
}
