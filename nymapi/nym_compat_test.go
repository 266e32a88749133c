package nymapi

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// The frames in these tests are written out by hand from Nym's source
// (nymtech/nym, clients/native/websocket-requests/src/{requests,responses,
// text,error}.rs and clients/native/src/websocket/handler.rs), not with
// package wsapi's encoders, so that they check the server against Nym's
// formats rather than against itself.

// nymFrame concatenates the parts of a binary frame.
func nymFrame(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// nymLaneQueueLength is ServerResponse::LaneQueueLength in binary:
// 0x03 ‖ lane u64 ‖ queue_length usize (8 bytes, big-endian).
func nymLaneQueueLength(lane, n uint64) []byte { return nymFrame([]byte{0x03}, u64(lane), u64(n)) }

// nymError is ServerResponse::Error in binary: 0x00 ‖ kind ‖ len u64 ‖ message.
func nymError(kind byte, msg string) []byte {
	return nymFrame([]byte{0x00, kind}, u64(uint64(len(msg))), []byte(msg))
}

// TestNymLaneQueueLengthAfterSends: like Nym's handler (handle_send,
// handle_send_anonymous, handle_reply), a send that names its connection
// id is answered with that lane's LaneQueueLength once queued, in the
// request's frame type; one without (binary 0, JSON null or missing) gets
// nothing. In JSON, "connectionId":0 is lane 0 (Some(0) in Nym), not "no
// connection".
func TestNymLaneQueueLengthAfterSends(t *testing.T) {
	ts := startServer(t, Config{})
	ts.fake.lanes[7] = 2
	ts.fake.lanes[0] = 5
	to := mustParse(t, nymExample)
	recipient := to.AppendBinary(nil)
	self := mustParse(t, selfExample).AppendBinary(nil)
	r := dialRaw(t, ts.url)

	// Binary Send: 0x00 ‖ recipient[96] ‖ connection_id u64 ‖ len u64 ‖ data.
	r.write(websocket.BinaryMessage, nymFrame([]byte{0x00}, recipient, u64(7), u64(2), []byte("hi")))
	if _, got := r.read(); !bytes.Equal(got, nymLaneQueueLength(7, 2)) {
		t.Fatalf("binary send on lane 7: answer %x, want %x", got, nymLaneQueueLength(7, 2))
	}
	// SendAnonymous: 0x01 ‖ reply_surbs u32 ‖ recipient ‖ connection_id ‖ len ‖ data.
	r.write(websocket.BinaryMessage, nymFrame([]byte{0x01, 0, 0, 0, 10}, recipient, u64(9), u64(0)))
	if _, got := r.read(); !bytes.Equal(got, nymLaneQueueLength(9, 0)) {
		t.Fatalf("binary anonymous send on lane 9: answer %x", got)
	}
	// Reply: 0x02 ‖ sender_tag[16] ‖ connection_id ‖ len ‖ data.
	r.write(websocket.BinaryMessage, nymFrame([]byte{0x02}, testTag[:], u64(7), u64(1), []byte("r")))
	if _, got := r.read(); !bytes.Equal(got, nymLaneQueueLength(7, 2)) {
		t.Fatalf("binary reply on lane 7: answer %x", got)
	}
	// connection_id 0 is None in binary: no answer. The SelfAddress after
	// it (with a trailing byte, which Nym ignores) is answered next: the
	// requests of one connection are served in order.
	r.write(websocket.BinaryMessage, nymFrame([]byte{0x00}, recipient, u64(0), u64(0)))
	r.write(websocket.BinaryMessage, []byte{0x03, 0xAA})
	if _, got := r.read(); !bytes.Equal(got, nymFrame([]byte{0x02}, self)) || len(got) != 97 {
		t.Fatalf("after a send without a lane: %x, want the 97-byte self address", got)
	}
	for range 4 {
		ts.fake.nextCall(t)
	}

	// JSON: "connectionId":0 is lane 0; null and missing are no lane.
	for _, c := range []struct{ req, want string }{
		{`{"type":"send","message":"hi","recipient":"` + nymExample + `","connectionId":0}`,
			`{"type":"laneQueueLength","lane":0,"queue_length":5}`},
		{`{"type":"sendAnonymous","recipient":"` + nymExample + `","message":"hi","replySurbs":3,"connectionId":7}`,
			`{"type":"laneQueueLength","lane":7,"queue_length":2}`},
		{`{"type":"reply","senderTag":"` + testTag.String() + `","message":"r","connectionId":0}`,
			`{"type":"laneQueueLength","lane":0,"queue_length":5}`},
		{`{"type":"send","message":"hi","recipient":"` + nymExample + `","connectionId":null}`, ``},
		{`{"type":"send","message":"hi","recipient":"` + nymExample + `"}`, ``},
	} {
		r.json(c.req)
		if c.want == "" {
			r.json(`{"type":"selfAddress"}`)
			c.want = `{"type":"selfAddress","address":"` + selfExample + `"}`
		}
		if got := r.readText(); got != c.want {
			t.Errorf("%s: answer %s, want %s", c.req, got, c.want)
		}
		if call := ts.fake.nextCall(t); call.lane != 0 && call.lane != 7 {
			t.Errorf("%s: sent on lane %d", c.req, call.lane)
		}
	}
}

// TestNymErrorAnswers: the errors Nym's client gives for the same bad
// requests, byte for byte: the binary Error frame, and in JSON
// "<ErrorKind::as_str>:<message>" (Display of websocket-requests' Error),
// where an unknown "type" is serde_json's unknown-variant error wrapped as
// a malformed request (ClientRequest::try_from_text).
func TestNymErrorAnswers(t *testing.T) {
	ts := startServer(t, Config{})
	r := dialRaw(t, ts.url)
	for _, c := range []struct {
		name  string
		frame []byte
		want  []byte
	}{
		{"empty", []byte{}, nymError(0x01, "no data provided")},
		{"unknown tag", []byte{0x06}, nymError(0x03, "6 does not correspond to any valid request tag")},
		{"send too short", []byte{0x00, 1}, nymError(0x02, "not enough data provided to recover 'send'")},
		{"send anonymous too short", []byte{0x01}, nymError(0x02, "not enough data provided to recover 'send_anonymous'")},
		{"reply too short", []byte{0x02}, nymError(0x02, "not enough data provided to recover 'reply'")},
		{"send length off", nymFrame([]byte{0x00}, mustParse(t, nymExample).AppendBinary(nil), u64(0), u64(3), []byte("ab")),
			nymError(0x04, "data len has inconsistent length. specified: 3 got: 2")},
		{"reply length off", nymFrame([]byte{0x02}, testTag[:], u64(0), u64(1)),
			nymError(0x04, "message len has inconsistent length. specified: 1 got: 0")},
		{"closed connection length", []byte{0x04, 1}, nymError(0x04, "The received closed connection has invalid length")},
		{"lane queue length length", append([]byte{0x05}, make([]byte, 9)...), nymError(0x04, "The received get lane queue lengths has invalid length")},
	} {
		r.write(websocket.BinaryMessage, c.frame)
		if typ, got := r.read(); typ != websocket.BinaryMessage || !bytes.Equal(got, c.want) {
			t.Errorf("%s: answer %q, want %q", c.name, got, c.want)
		}
	}
	for _, c := range []struct{ req, want string }{
		{`{"type":"x"}`, "malformed request:unknown variant `x`, expected one of `send`, `sendAnonymous`, `reply`, `selfAddress` at line 1 column 11"},
		{`{"message":"hi","type":"sendLater"}`, "malformed request:unknown variant `sendLater`, expected one of `send`, `sendAnonymous`, `reply`, `selfAddress` at line 1 column 34"},
		{`{"message":"hi"}`, "malformed request:missing field `type` at line 1 column 16"},
		{`{"type":"send","message":"hi"}`, "malformed request:missing field `recipient`"},
	} {
		r.json(c.req)
		want := `{"type":"error","message":"` + strings.ReplaceAll(c.want, `"`, `\"`) + `"}`
		if got := r.readText(); got != want {
			t.Errorf("%s: answer %s, want %s", c.req, got, want)
		}
	}
}

// TestAllowedOrigins: a web page of an allowed origin connects, in any
// spelling of the origin; other pages are refused (Nym accepts every
// origin; peapod does not, see docs/protocol.md) with a log line that says
// how to allow them; applications, which send no Origin, always connect.
func TestAllowedOrigins(t *testing.T) {
	ts := startServer(t, Config{AllowedOrigins: []string{"http://localhost:5173", "https://App.Example:443/"}})
	for origin, want := range map[string]int{
		"http://localhost:5173":    http.StatusSwitchingProtocols,
		"HTTP://LOCALHOST:5173":    http.StatusSwitchingProtocols,
		"https://app.example":      http.StatusSwitchingProtocols,
		"http://localhost:5174":    http.StatusForbidden,
		"https://localhost:5173":   http.StatusForbidden,
		"https://evil.example":     http.StatusForbidden,
		"null":                     http.StatusForbidden,
		"http://app.example:443":   http.StatusForbidden,
		"https://app.example.evil": http.StatusForbidden,
	} {
		if got := dialStatus(t, ts.url, http.Header{"Origin": {origin}}); got != want {
			t.Errorf("origin %s: status %d, want %d", origin, got, want)
		}
	}
	if got := dialStatus(t, ts.url, nil); got != http.StatusSwitchingProtocols {
		t.Errorf("no origin: status %d", got)
	}
	if logs := ts.logs.String(); !strings.Contains(logs, `"origin":"https://evil.example"`) || !strings.Contains(logs, "--allow-origin") {
		t.Errorf("no log line for a refused origin:\n%s", logs)
	}
}

func TestParseOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"http://localhost:5173":    "http://localhost:5173",
		"HTTPS://Example.ORG":      "https://example.org",
		"https://example.org:443/": "https://example.org",
		"http://example.org:80":    "http://example.org",
		"http://[::1]:8000":        "http://[::1]:8000",
	} {
		if got, err := ParseOrigin(in); err != nil || got != want {
			t.Errorf("ParseOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "localhost:5173", "example.org", "http://", "http://x/path", "http://u@x", "http://x?q", "*"} {
		if got, err := ParseOrigin(bad); err == nil {
			t.Errorf("ParseOrigin(%q) = %q, want an error", bad, got)
		}
	}
}
