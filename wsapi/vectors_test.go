package wsapi

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/internal/testvectors"
)

const vectorsFile = "testdata/vectors.json"

// requestVector is a binary request an application sends, with its fields.
type requestVector struct {
	Name string `json:"name"`
	// Type is "send_anonymous" or "self_address".
	Type         string `json:"type"`
	Recipient    string `json:"recipient,omitempty"`
	ReplySURBs   uint32 `json:"reply_surbs,omitempty"`
	ConnectionID uint64 `json:"connection_id,omitempty"`
	DataBase64   string `json:"data_base64,omitempty"`
	FrameHex     string `json:"frame_hex"`
}

// responseVector is a binary response frame and what an application must
// read from it; Type "invalid" must be refused.
type responseVector struct {
	Name     string `json:"name"`
	FrameHex string `json:"frame_hex"`
	// Type is "received", "self_address", "error", "lane_queue_length" or
	// "invalid".
	Type         string  `json:"type"`
	SenderTagHex *string `json:"sender_tag_hex,omitempty"`
	DataBase64   *string `json:"data_base64,omitempty"`
	Address      string  `json:"address,omitempty"`
	ErrorKind    *uint8  `json:"error_kind,omitempty"`
	ErrorMessage string  `json:"error_message,omitempty"`
	Lane         *uint64 `json:"lane,omitempty"`
	QueueLength  *uint64 `json:"queue_length,omitempty"`
}

type vectorFile struct {
	Comment   string           `json:"comment"`
	Requests  []requestVector  `json:"requests"`
	Responses []responseVector `json:"responses"`
}

// Example addresses: Nym's own test address, and one made of other keys.
const vectorAddress = "CytBseW6yFXUMzz4SGAKdNLGR7q3sJLLYxyBGvutNEQV.4QXYyEVc5fUDjmmi8PrHN9tdUFV4PCvSJE1278cHyvoe@4sBbL1ngf1vtNqykydQKTFh26sQCw888GpUqvPvyNB4f"

func makeVectors(t *testing.T) vectorFile {
	addr, err := address.Parse(vectorAddress)
	if err != nil {
		t.Fatal(err)
	}
	request := `{"v":1,"id":"4f2a","service":"echo","data":"aGVsbG8="}`
	reqs := []requestVector{
		{Name: "request with 10 SURBs", Type: "send_anonymous", Recipient: vectorAddress, ReplySURBs: 10,
			DataBase64: base64.StdEncoding.EncodeToString([]byte(request))},
		{Name: "empty data, a lane, many SURBs", Type: "send_anonymous", Recipient: vectorAddress, ReplySURBs: 70000, ConnectionID: 1 << 40},
		{Name: "self address", Type: "self_address"},
	}
	for i := range reqs {
		var r Request = SelfAddress{}
		if reqs[i].Type == "send_anonymous" {
			data, _ := base64.StdEncoding.DecodeString(reqs[i].DataBase64)
			r = SendAnonymous{Recipient: addr, ReplySURBs: reqs[i].ReplySURBs, ConnectionID: reqs[i].ConnectionID, Data: data}
		}
		reqs[i].FrameHex = hex.EncodeToString(AppendRequest(nil, r))
	}

	tag := address.SenderTag{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	reply := []byte(`{"v":1,"id":"4f2a","status":"ok","data":"aGVsbG8="}`)
	frames := []struct {
		name  string
		frame []byte
	}{
		{"received without a sender tag", AppendResponse(nil, Received{Data: reply})},
		{"received with a sender tag", AppendResponse(nil, Received{SenderTag: &tag, Data: []byte("hi")})},
		{"received, empty", AppendResponse(nil, Received{})},
		{"self address", AppendResponse(nil, SelfAddressResponse{Address: addr})},
		{"error, other", AppendResponse(nil, Error{Kind: KindOther, Message: "no SURBs left"})},
		{"error, malformed request", AppendResponse(nil, Error{Kind: KindMalformedRequest, Message: "x"})},
		{"lane queue length", AppendResponse(nil, LaneQueueLength{Lane: 7, QueueLength: 3})},
		{"empty frame", nil},
		{"unknown tag", []byte{0x09}},
		{"received, length longer than the data", AppendResponse(nil, Received{Data: []byte("abc")})[:12]},
		{"received, trailing byte", append(AppendResponse(nil, Received{Data: []byte("abc")}), 'x')},
		{"received, sender tag flag 2", append([]byte{0x01, 0x02}, make([]byte, 8)...)},
		{"received, too short for the tag", append([]byte{0x01, 0x01}, make([]byte, 8)...)},
		{"received, too short", []byte{0x01, 0x00, 0x00}},
		{"self address, trailing byte", append(AppendResponse(nil, SelfAddressResponse{Address: addr}), 0)},
		{"self address, short", AppendResponse(nil, SelfAddressResponse{Address: addr})[:96]},
		{"self address, identity not a point", append([]byte{0x02}, append(notAPoint(t), make([]byte, 64)...)...)},
		{"error, unknown kind", []byte{0x00, 0x42, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"error, message not UTF-8", []byte{0x00, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0xff}},
		{"lane queue length, short", AppendResponse(nil, LaneQueueLength{Lane: 7, QueueLength: 3})[:16]},
	}
	var resps []responseVector
	for _, f := range frames {
		v := responseVector{Name: f.name, FrameHex: hex.EncodeToString(f.frame)}
		r, err := ParseResponse(f.frame)
		switch r := r.(type) {
		case Received:
			v.Type = "received"
			d := base64.StdEncoding.EncodeToString(r.Data)
			v.DataBase64 = &d
			if r.SenderTag != nil {
				s := hex.EncodeToString(r.SenderTag[:])
				v.SenderTagHex = &s
			}
		case SelfAddressResponse:
			v.Type, v.Address = "self_address", r.Address.String()
		case Error:
			k := uint8(r.Kind)
			v.Type, v.ErrorKind, v.ErrorMessage = "error", &k, r.Message
		case LaneQueueLength:
			v.Type, v.Lane, v.QueueLength = "lane_queue_length", &r.Lane, &r.QueueLength
		default:
			if err == nil {
				t.Fatalf("%s: %T", f.name, r)
			}
			v.Type = "invalid"
		}
		resps = append(resps, v)
	}
	return vectorFile{
		Comment: "Nym's native-client WebSocket API in binary frames (docs/protocol.md, section 6): the requests " +
			"an application sends, byte for byte, and response frames with what they mean; type \"invalid\" must " +
			"be refused. Regenerate with go test ./wsapi -run TestVectors -update.",
		Requests:  reqs,
		Responses: resps,
	}
}

// notAPoint returns 32 bytes that are no ed25519 public key.
func notAPoint(t *testing.T) []byte {
	for i := range 256 {
		b := make([]byte, address.KeySize)
		b[0] = byte(i)
		var a address.Address
		copy(a.Identity[:], b)
		if a.Validate() != nil {
			return b
		}
	}
	t.Fatal("every candidate is a point")
	return nil
}

// TestVectors checks that testdata/vectors.json is what the code generates
// (regenerate with -update) and reads every frame in it back.
func TestVectors(t *testing.T) {
	stored := testvectors.Golden(t, vectorsFile, makeVectors(t))
	var file vectorFile
	if err := json.Unmarshal(stored, &file); err != nil {
		t.Fatal(err)
	}
	for _, v := range file.Requests {
		frame, _ := hex.DecodeString(v.FrameHex)
		r, err := ParseRequest(frame)
		if err != nil {
			t.Errorf("request %s: %v", v.Name, err)
			continue
		}
		if sa, ok := r.(SendAnonymous); ok {
			data, _ := base64.StdEncoding.DecodeString(v.DataBase64)
			if sa.Recipient.String() != v.Recipient || sa.ReplySURBs != v.ReplySURBs || sa.ConnectionID != v.ConnectionID || !bytes.Equal(sa.Data, data) {
				t.Errorf("request %s: reads back as %+v", v.Name, sa)
			}
		} else if _, ok := r.(SelfAddress); !ok || v.Type != "self_address" {
			t.Errorf("request %s: reads back as %T", v.Name, r)
		}
	}
	var invalid int
	for _, v := range file.Responses {
		frame, _ := hex.DecodeString(v.FrameHex)
		_, err := ParseResponse(frame)
		if (err != nil) != (v.Type == "invalid") {
			t.Errorf("response %s: %v", v.Name, err)
		}
		if v.Type == "invalid" {
			invalid++
		}
	}
	if invalid < 10 || !strings.Contains(string(stored), `"received"`) {
		t.Errorf("%d invalid frames: the parser's verdicts changed", invalid)
	}
}
