package nymapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/wsapi"
)

// TestSendRequests checks that every sending request, in both forms, reaches
// the backend with its recipient or tag, data, SURB count and lane.
func TestSendRequests(t *testing.T) {
	ts := startServer(t, Config{})
	to := mustParse(t, nymExample)
	cases := []struct {
		name  string
		frame func(r *raw)
		want  call
	}{
		{"binary send", func(r *raw) {
			r.binary(wsapi.Send{Recipient: to, ConnectionID: 7, Data: []byte("hello")})
		}, call{method: "send", to: to, lane: 7, data: []byte("hello")}},
		{"binary send, general lane, empty", func(r *raw) {
			r.binary(wsapi.Send{Recipient: to})
		}, call{method: "send", to: to, data: []byte{}}},
		{"binary send anonymous", func(r *raw) {
			r.binary(wsapi.SendAnonymous{ReplySURBs: 20, Recipient: to, ConnectionID: 1 << 60, Data: []byte{0, 0xff, 1}})
		}, call{method: "sendAnonymous", to: to, surbs: 20, lane: 1 << 60, data: []byte{0, 0xff, 1}}},
		{"binary reply", func(r *raw) {
			r.binary(wsapi.Reply{SenderTag: testTag, ConnectionID: 3, Data: []byte("re")})
		}, call{method: "reply", tag: testTag, lane: 3, data: []byte("re")}},
		{"json send, Nym's form", func(r *raw) {
			r.json(`{"type":"send","message":"hi","recipient":"` + nymExample + `","connectionId":null}`)
		}, call{method: "send", to: to, data: []byte("hi")}},
		{"json send without connectionId", func(r *raw) {
			r.json(`{"type":"send","message":"hi \u00e9","recipient":"` + nymExample + `"}`)
		}, call{method: "send", to: to, data: []byte("hi é")}},
		{"json send, messageBase64", func(r *raw) {
			r.json(`{"type":"send","messageBase64":"AP8B","recipient":"` + nymExample + `","connectionId":9}`)
		}, call{method: "send", to: to, lane: 9, data: []byte{0, 0xff, 1}}},
		{"json send anonymous", func(r *raw) {
			r.json(`{"type":"sendAnonymous","recipient":"` + nymExample + `","message":"anon","replySurbs":10,"connectionId":7}`)
		}, call{method: "sendAnonymous", to: to, surbs: 10, lane: 7, data: []byte("anon")}},
		{"json reply", func(r *raw) {
			r.json(`{"type":"reply","senderTag":"` + testTag.String() + `","message":"back","connectionId":null}`)
		}, call{method: "reply", tag: testTag, data: []byte("back")}},
	}
	r := dialRaw(t, ts.url)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.frame(r)
			got := ts.fake.nextCall(t)
			if len(got.data) == 0 {
				got.data = []byte{}
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("backend got %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestAnsweredRequests checks SelfAddress, GetLaneQueueLength and
// ClosedConnection in both forms, byte for byte.
func TestAnsweredRequests(t *testing.T) {
	ts := startServer(t, Config{})
	self := mustParse(t, selfExample)
	ts.fake.lanes[7] = 3
	r := dialRaw(t, ts.url)

	r.write(websocket.BinaryMessage, []byte{0x03})
	_, frame := r.read()
	if want := append([]byte{0x02}, self.AppendBinary(nil)...); !bytes.Equal(frame, want) {
		t.Fatalf("binary self address: got %x, want %x", frame, want)
	}

	r.json(`{"type":"selfAddress"}`)
	if got, want := r.readText(), `{"type":"selfAddress","address":"`+selfExample+`"}`; got != want {
		t.Fatalf("JSON self address: got %s, want %s", got, want)
	}

	r.write(websocket.BinaryMessage, []byte{0x05, 0, 0, 0, 0, 0, 0, 0, 7})
	_, frame = r.read()
	want := []byte{0x03, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 3}
	if !bytes.Equal(frame, want) {
		t.Fatalf("binary lane queue length: got %x, want %x", frame, want)
	}

	r.json(`{"type":"getLaneQueueLength","connectionId":7}`)
	if got, want := r.readText(), `{"type":"laneQueueLength","lane":7,"queue_length":3}`; got != want {
		t.Fatalf("JSON lane queue length: got %s, want %s", got, want)
	}

	// ClosedConnection has no answer; the SelfAddress after it orders the
	// check, since one connection's requests are served in order.
	r.write(websocket.BinaryMessage, []byte{0x04, 0, 0, 0, 0, 0, 0, 0, 7})
	r.json(`{"type":"closedConnection","connectionId":8}`)
	r.json(`{"type":"selfAddress"}`)
	r.readText()
	ts.fake.mu.Lock()
	closed := ts.fake.closedLanes
	ts.fake.mu.Unlock()
	if !reflect.DeepEqual(closed, []uint64{7, 8}) {
		t.Fatalf("closed lanes %v, want [7 8]", closed)
	}
	r.binary(wsapi.GetLaneQueueLength{ConnectionID: 7})
	if got := r.readBinary(); got != (wsapi.LaneQueueLength{Lane: 7, QueueLength: 0}) {
		t.Fatalf("after ClosedConnection: %#v", got)
	}
}

// TestReceived checks that received messages reach the application in the
// frame type of its last request, with and without a sender tag, and that
// bytes that are not UTF-8 survive JSON through messageBase64.
func TestReceived(t *testing.T) {
	ts := startServer(t, Config{})
	tag := testTag
	binApp := dialRaw(t, ts.url)
	jsonApp := dialRaw(t, ts.url)
	jsonApp.json(`{"type":"selfAddress"}`)
	jsonApp.readText()
	pollUntil(t, "both connections are registered", func() bool { return ts.connCount() == 2 })

	ts.fake.inbox <- client.Message{Data: []byte("plain")}
	ts.fake.inbox <- client.Message{Data: []byte("tagged"), SenderTag: &tag}
	ts.fake.inbox <- client.Message{Data: []byte{'a', 0xff, 'b'}}
	ts.fake.inbox <- client.Message{Data: nil}

	wantBin := []wsapi.Response{
		wsapi.Received{Data: []byte("plain")},
		wsapi.Received{Data: []byte("tagged"), SenderTag: &tag},
		wsapi.Received{Data: []byte{'a', 0xff, 'b'}},
		wsapi.Received{Data: []byte{}},
	}
	for i, want := range wantBin {
		if got := binApp.readBinary(); !reflect.DeepEqual(got, want) {
			t.Fatalf("binary message %d: got %#v, want %#v", i, got, want)
		}
	}
	wantJSON := []string{
		`{"type":"received","message":"plain","senderTag":null}`,
		`{"type":"received","message":"tagged","senderTag":"` + tag.String() + `"}`,
		"{\"type\":\"received\",\"message\":\"a\ufffdb\",\"senderTag\":null,\"messageBase64\":\"Yf9i\"}",
		`{"type":"received","message":"","senderTag":null}`,
	}
	for i, want := range wantJSON {
		if got := jsonApp.readText(); got != want {
			t.Fatalf("JSON message %d: got %s, want %s", i, got, want)
		}
	}
}

// TestFrameTypeFollowsLastRequest switches one connection between binary
// and JSON and checks the frames that follow.
func TestFrameTypeFollowsLastRequest(t *testing.T) {
	ts := startServer(t, Config{})
	r := dialRaw(t, ts.url)

	ts.fake.inbox <- client.Message{Data: []byte("one")}
	if got := r.readBinary(); !reflect.DeepEqual(got, wsapi.Received{Data: []byte("one")}) {
		t.Fatalf("before any request: %#v, want binary Received", got)
	}
	r.json(`{"type":"selfAddress"}`)
	r.readText()
	ts.fake.inbox <- client.Message{Data: []byte("two")}
	if got := r.readText(); got != `{"type":"received","message":"two","senderTag":null}` {
		t.Fatalf("after a JSON request: %s", got)
	}
	r.binary(wsapi.SelfAddress{})
	r.readBinary()
	ts.fake.inbox <- client.Message{Data: []byte("three")}
	if got := r.readBinary(); !reflect.DeepEqual(got, wsapi.Received{Data: []byte("three")}) {
		t.Fatalf("after a binary request: %#v", got)
	}
	// An error is answered in the frame type of the request that caused it.
	r.json(`{"type":"nope"}`)
	r.wantTextError(wsapi.KindMalformedRequest, "unknown variant `nope`")
	r.write(websocket.BinaryMessage, nil)
	r.wantBinaryError(wsapi.KindEmptyRequest, "")
}

// TestBadRequests answers every kind of bad request with the right Error and
// keeps the connection usable.
func TestBadRequests(t *testing.T) {
	ts := startServer(t, Config{MaxFrameSize: 1 << 10})
	r := dialRaw(t, ts.url)
	to := mustParse(t, nymExample)

	badPoint := invalidAddressBytes(t)
	send := wsapi.AppendRequest(nil, wsapi.Send{Recipient: to, Data: []byte("abc")})

	binaryCases := []struct {
		name   string
		frame  []byte
		kind   wsapi.ErrorKind
		detail string
	}{
		{"empty", []byte{}, wsapi.KindEmptyRequest, "no data"},
		{"too short send", send[:50], wsapi.KindTooShortRequest, "send"},
		{"too short reply", []byte{0x02, 1, 2}, wsapi.KindTooShortRequest, "reply"},
		{"unknown tag", []byte{0x06}, wsapi.KindUnknownRequest, "6"},
		{"length mismatch", send[:len(send)-1], wsapi.KindMalformedRequest, "inconsistent length"},
		{"trailing byte", append(append([]byte{}, send...), 0), wsapi.KindMalformedRequest, "inconsistent length"},
		{"bad recipient", append(append([]byte{0x00}, badPoint...), make([]byte, 16)...), wsapi.KindMalformedRequest, "recipient"},
		{"lane request too short", []byte{0x05, 0}, wsapi.KindMalformedRequest, "The received get lane queue lengths has invalid length"},
		{"frame over the limit", append([]byte{0x03}, make([]byte, 2<<10)...), wsapi.KindMalformedRequest, "exceeds the limit of 1024 bytes"},
	}
	// One answer byte for byte: Error, kind, u64 length, message.
	r.write(websocket.BinaryMessage, nil)
	_, frame := r.read()
	want := append([]byte{0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 16}, "no data provided"...)
	if !bytes.Equal(frame, want) {
		t.Fatalf("empty request: got %x, want %x", frame, want)
	}
	r.json(`{"type":"selfAddress","connectionId":"x"}`)
	r.json(`{"type":"sendLater"}`)
	r.readText()
	if got, want := r.readText(), `{"type":"error","message":"malformed request:unknown variant `+"`sendLater`, expected one of `send`, `sendAnonymous`, `reply`, `selfAddress`"+` at line 1 column 19"}`; got != want {
		t.Fatalf("unknown JSON type: got %s, want %s", got, want)
	}

	for _, c := range binaryCases {
		t.Run("binary "+c.name, func(t *testing.T) {
			r.write(websocket.BinaryMessage, c.frame)
			r.wantBinaryError(c.kind, c.detail)
		})
	}

	jsonCases := []struct {
		name   string
		frame  string
		kind   wsapi.ErrorKind
		detail string
	}{
		{"empty", ``, wsapi.KindMalformedRequest, "invalid JSON"},
		{"malformed JSON", `{"type":"send",`, wsapi.KindMalformedRequest, "invalid JSON"},
		{"not an object", `[1]`, wsapi.KindMalformedRequest, "object"},
		{"unknown type", `{"type":"sendLater"}`, wsapi.KindMalformedRequest, "unknown variant `sendLater`"},
		{"missing recipient", `{"type":"send","message":"x"}`, wsapi.KindMalformedRequest, "recipient"},
		{"bad recipient", `{"type":"send","message":"x","recipient":"nope"}`, wsapi.KindMalformedRequest, "recipient"},
		{"bad sender tag", `{"type":"reply","message":"x","senderTag":"0OIl"}`, wsapi.KindMalformedRequest, "senderTag"},
		{"both message fields", `{"type":"send","message":"x","messageBase64":"eA==","recipient":"` + nymExample + `"}`, wsapi.KindMalformedRequest, "both"},
		{"SURBs out of range", `{"type":"sendAnonymous","message":"x","replySurbs":4294967296,"recipient":"` + nymExample + `"}`, wsapi.KindMalformedRequest, "replySurbs"},
		{"frame over the limit", `{"type":"selfAddress","pad":"` + strings.Repeat("x", 2<<10) + `"}`, wsapi.KindMalformedRequest, "exceeds the limit"},
	}
	for _, c := range jsonCases {
		t.Run("json "+c.name, func(t *testing.T) {
			r.json(c.frame)
			r.wantTextError(c.kind, c.detail)
		})
	}

	// A backend that refuses a send: an Error of kind "other" that names it.
	ts.fake.mu.Lock()
	ts.fake.sendErr = fmt.Errorf("%w for sender %s", client.ErrNoSURBs, testTag)
	ts.fake.mu.Unlock()
	r.binary(wsapi.Reply{SenderTag: testTag, ConnectionID: 4, Data: []byte("x")})
	ts.fake.nextCall(t)
	r.wantBinaryError(wsapi.KindOther, "reply to sender tag "+testTag.String()+" (connection id 4): client: no reply SURBs left")
	r.json(`{"type":"send","message":"x","recipient":"` + nymExample + `"}`)
	ts.fake.nextCall(t)
	r.wantTextError(wsapi.KindOther, "send to "+nymExample)

	// Still usable, and nothing else was sent to the backend.
	r.binary(wsapi.SelfAddress{})
	if got, ok := r.readBinary().(wsapi.SelfAddressResponse); !ok || got.Address != ts.fake.addr {
		t.Fatalf("after the bad requests: %#v", got)
	}
	select {
	case c := <-ts.fake.calls:
		t.Fatalf("a bad request reached the backend: %+v", c)
	default:
	}
}

// TestBroadcast gives every message to every connection, each in its frame
// type, and keeps serving the others when one leaves.
func TestBroadcast(t *testing.T) {
	ts := startServer(t, Config{})
	apps := []*raw{dialRaw(t, ts.url), dialRaw(t, ts.url), dialRaw(t, ts.url)}
	apps[1].json(`{"type":"selfAddress"}`)
	apps[1].readText()
	apps[2].binary(wsapi.SelfAddress{})
	apps[2].readBinary()
	pollUntil(t, "every connection is registered", func() bool { return ts.connCount() == 3 })

	const n = 50
	for i := range n {
		ts.fake.inbox <- client.Message{Data: fmt.Appendf(nil, "m%d", i)}
	}
	for i := range n {
		want := fmt.Sprintf("m%d", i)
		for _, k := range []int{0, 2} {
			if got := apps[k].readBinary(); !reflect.DeepEqual(got, wsapi.Received{Data: []byte(want)}) {
				t.Fatalf("app %d, message %d: %#v", k, i, got)
			}
		}
		if got := apps[1].readText(); got != `{"type":"received","message":"`+want+`","senderTag":null}` {
			t.Fatalf("app 1, message %d: %s", i, got)
		}
	}

	apps[0].ws.Close()
	pollUntil(t, "the server sees the connection close", func() bool { return ts.connCount() == 2 })
	ts.fake.inbox <- client.Message{Data: []byte("after")}
	if got := apps[2].readBinary(); !reflect.DeepEqual(got, wsapi.Received{Data: []byte("after")}) {
		t.Fatalf("after one app left: %#v", got)
	}
	apps[1].readText()
}

// TestMessagesWaitForAnApplication checks that the server does not read from
// the backend while no application is connected, and that the messages that
// waited go to the next one in its frame type.
func TestMessagesWaitForAnApplication(t *testing.T) {
	for _, c := range []struct {
		name  string
		query string
		first func(r *raw)
	}{
		{"first request shows JSON", "", func(r *raw) { r.json(`{"type":"selfAddress"}`) }},
		{"format=json in the handshake", "?format=json", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := startServer(t, Config{FormatWait: 5 * time.Second})
			select {
			case <-ts.fake.receiving:
				t.Fatal("the server reads from the backend with no application connected")
			default:
			}

			// An application comes and goes: the server reads while it is
			// there and stops when it leaves.
			r := dialRaw(t, ts.url)
			ts.fake.waitReceiving(t, true)
			r.ws.Close()
			ts.fake.waitReceiving(t, false)

			const n = 20
			for i := range n {
				ts.fake.inbox <- client.Message{Data: fmt.Appendf(nil, "waited %d", i)}
			}
			if got := len(ts.fake.inbox); got != n {
				t.Fatalf("%d messages left in the backend, want %d", got, n)
			}

			app := dialRaw(t, ts.url+c.query)
			if c.first != nil {
				c.first(app)
			}
			// The messages come in order, all in text frames; the answer
			// to the first request, if any, is among them.
			i := 0
			for i < n {
				got := app.readText()
				if c.first != nil && strings.Contains(got, `"selfAddress"`) {
					continue
				}
				want := fmt.Sprintf(`{"type":"received","message":"waited %d","senderTag":null}`, i)
				if got != want {
					t.Fatalf("message %d: got %s, want %s", i, got, want)
				}
				i++
			}
		})
	}
}

// TestMessageTakenAsTheLastAppLeaves checks that a message the server took
// from the backend just as the last application left goes to the next one.
func TestMessageTakenAsTheLastAppLeaves(t *testing.T) {
	ts := startServer(t, Config{})
	ts.fake.mu.Lock()
	ts.fake.ignoreCtx = true
	ts.fake.mu.Unlock()
	t.Cleanup(func() {
		// Release the Receive that ignores its context, so Close can end.
		ts.fake.mu.Lock()
		ts.fake.ignoreCtx = false
		ts.fake.mu.Unlock()
		ts.fake.inbox <- client.Message{}
	})
	first := dialRaw(t, ts.url)
	ts.fake.waitReceiving(t, true)
	first.ws.Close()
	pollUntil(t, "the server sees the connection close", func() bool { return ts.connCount() == 0 })

	ts.fake.inbox <- client.Message{Data: []byte("orphan")}
	pollUntil(t, "the server takes the message", func() bool { return len(ts.fake.inbox) == 0 })
	next := dialRaw(t, ts.url)
	if got := next.readBinary(); !reflect.DeepEqual(got, wsapi.Received{Data: []byte("orphan")}) {
		t.Fatalf("got %#v", got)
	}
}

// TestFormatWaitEnds checks that a connection that sends nothing gets its
// messages in binary once FormatWait has passed.
func TestFormatWaitEnds(t *testing.T) {
	ts := startServer(t, Config{FormatWait: 50 * time.Millisecond})
	ts.fake.inbox <- client.Message{Data: []byte("x")}
	app := dialRaw(t, ts.url)
	if got := app.readBinary(); !reflect.DeepEqual(got, wsapi.Received{Data: []byte("x")}) {
		t.Fatalf("got %#v", got)
	}
	if c := dialStatus(t, ts.url+"?format=xml", nil); c != http.StatusBadRequest {
		t.Fatalf("format=xml: status %d, want 400", c)
	}
}

// TestSlowConnectionIsClosed fills the queue of an application that never
// reads and checks that it is closed while another one gets every message.
func TestSlowConnectionIsClosed(t *testing.T) {
	ts := startServer(t, Config{QueueFrames: 4, SlowTimeout: time.Second})
	slow := dialRaw(t, ts.url)
	fast := dialRaw(t, ts.url)
	pollUntil(t, "both connections are registered", func() bool { return ts.connCount() == 2 })

	// Enough data to fill the socket buffers of the slow one, whatever
	// their size on this machine.
	const n, size = 64, 1 << 20
	done := make(chan error, 1)
	go func() {
		for i := range n {
			_, frame, err := fast.ws.ReadMessage()
			if err != nil {
				done <- err
				return
			}
			resp, err := wsapi.ParseResponse(frame)
			if err != nil {
				done <- err
				return
			}
			if got := resp.(wsapi.Received).Data; len(got) != size || got[0] != byte(i) {
				done <- fmt.Errorf("message %d: wrong data", i)
				return
			}
		}
		done <- nil
	}()
	for i := range n {
		data := make([]byte, size)
		data[0] = byte(i)
		ts.fake.inbox <- client.Message{Data: data}
	}
	if err := <-done; err != nil {
		t.Fatalf("fast application: %v\n%s", err, ts.logs)
	}
	pollUntil(t, "the slow connection is closed", func() bool { return ts.connCount() == 1 })
	if !strings.Contains(ts.logs.String(), "does not read") {
		t.Fatalf("no log line about the slow connection:\n%s", ts.logs)
	}
	_ = slow
}

// TestPings checks that an idle connection gets pings, and that one that
// answers nothing is closed after three intervals.
func TestPings(t *testing.T) {
	// Long enough that a loaded machine does not hold up a pong for three
	// intervals (the idle limit), short enough to keep the test quick.
	ts := startServer(t, Config{PingInterval: 200 * time.Millisecond})

	alive := dialRaw(t, ts.url)
	pings := make(chan struct{}, 100)
	alive.ws.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return alive.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		for {
			if _, _, err := alive.ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	for range 5 { // five intervals: longer than the idle limit
		select {
		case <-pings:
		case <-time.After(5 * time.Second):
			t.Fatal("no ping")
		}
	}

	mute := dialRaw(t, ts.url)
	mute.ws.SetPingHandler(func(string) error { return nil }) // no pong
	if code := mute.closeCode(); code != websocket.CloseGoingAway {
		t.Fatalf("mute connection ended with code %d, want %d", code, websocket.CloseGoingAway)
	}
	if ts.connCount() != 1 {
		t.Fatalf("%d connections open, want the answering one only", ts.connCount())
	}
}

// TestConnectionLimitAndOrigin refuses connections beyond MaxConnections and
// handshakes from foreign web pages.
func TestConnectionLimitAndOrigin(t *testing.T) {
	ts := startServer(t, Config{MaxConnections: 2})
	if c := dialStatus(t, ts.url, http.Header{"Origin": {"https://evil.example"}}); c != http.StatusForbidden {
		t.Fatalf("foreign origin: status %d, want 403", c)
	}
	dialRaw(t, ts.url)
	dialRaw(t, ts.url+"any/path")
	if c := dialStatus(t, ts.url, nil); c != http.StatusServiceUnavailable {
		t.Fatalf("third connection: status %d, want 503", c)
	}
	resp, err := http.Get("http" + strings.TrimPrefix(ts.url, "ws"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP: status %d, want 400", resp.StatusCode)
	}
}

// TestBackPressure checks that a send waiting in the backend holds back the
// requests of its connection only.
func TestBackPressure(t *testing.T) {
	ts := startServer(t, Config{})
	block := make(chan struct{})
	ts.fake.mu.Lock()
	ts.fake.block = block
	ts.fake.mu.Unlock()

	busy := dialRaw(t, ts.url)
	other := dialRaw(t, ts.url)
	busy.binary(wsapi.Send{Recipient: mustParse(t, nymExample), Data: []byte("x")})
	busy.binary(wsapi.SelfAddress{})
	other.binary(wsapi.SelfAddress{})
	other.readBinary()

	ts.fake.mu.Lock()
	ts.fake.block = nil
	ts.fake.mu.Unlock()
	close(block)
	ts.fake.nextCall(t)
	busy.readBinary()
}

// TestClose closes every connection with "going away", ends Serve, and
// cancels a send that waits in the backend.
func TestClose(t *testing.T) {
	fake := newFakeBackend(t)
	fake.block = make(chan struct{}) // never released
	s := New(Config{Backend: fake})
	ln := listen(t)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	url := "ws://" + ln.Addr().String()

	a, b := dialRaw(t, url), dialRaw(t, url)
	b.binary(wsapi.Send{Recipient: mustParse(t, nymExample), Data: []byte("stuck")})
	fake.waitReceiving(t, true)
	pollUntil(t, "both connections are registered", func() bool { return s.connCount() == 2 })

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
	for _, r := range []*raw{a, b} {
		if code := r.closeCode(); code != websocket.CloseGoingAway {
			t.Fatalf("close code %d, want %d", code, websocket.CloseGoingAway)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Serve(listen(t)); err == nil {
		t.Fatal("Serve after Close succeeded")
	}
}

// TestHandlerOnAnotherServer serves through Handler on an http.Server the
// caller owns; Close still ends the connection's goroutines.
func TestHandlerOnAnotherServer(t *testing.T) {
	fake := newFakeBackend(t)
	s := New(Config{Backend: fake, FormatWait: -1})
	ln := listen(t)
	hs := &http.Server{Handler: s.Handler()}
	go hs.Serve(ln)
	defer hs.Close()

	app, err := wsapi.Dial(context.Background(), "ws://"+ln.Addr().String()+"/nym", wsapi.WithJSON())
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := app.SelfAddress(ctx)
	if err != nil || got != fake.addr {
		t.Fatalf("SelfAddress: %v, %v", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Receive(ctx); err == nil {
		t.Fatal("the connection survived Close")
	}
}

// TestBackendStops checks that a backend whose ReceiveKept fails for good is
// logged and requests are still answered.
func TestBackendStops(t *testing.T) {
	ts := startServer(t, Config{})
	ts.fake.mu.Lock()
	ts.fake.receiveErr = client.ErrClosed
	ts.fake.mu.Unlock()
	app := dialRaw(t, ts.url)
	pollUntil(t, "the failure is logged", func() bool {
		return strings.Contains(ts.logs.String(), "stopped delivering messages")
	})
	app.binary(wsapi.SelfAddress{})
	app.readBinary()
}

// TestNoBackend refuses to serve without a backend.
func TestNoBackend(t *testing.T) {
	s := New(Config{})
	if err := s.Serve(listen(t)); !errors.Is(err, errNoBackend) {
		t.Fatalf("Serve: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOutQueue checks the queue's bounds and wake-ups directly.
func TestOutQueue(t *testing.T) {
	const patience = 20 * time.Millisecond
	q := newOutQueue(2, 10)
	if q.push(outFrame{size: 8}, patience) != pushed || q.push(outFrame{size: 2}, patience) != pushed {
		t.Fatal("pushes within the bounds failed")
	}
	if r := q.push(outFrame{size: 0}, patience); r != timedOut {
		t.Fatalf("third frame: %v, want timedOut", r)
	}
	if _, ok := q.pop(); !ok {
		t.Fatal("pop failed")
	}
	if r := q.push(outFrame{size: 9}, patience); r != timedOut {
		t.Fatalf("over the byte bound: %v, want timedOut", r)
	}
	// A waiting push goes in when a frame leaves.
	res := make(chan pushResult, 1)
	go func() { res <- q.push(outFrame{size: 9}, time.Hour) }()
	q.pop()
	if r := <-res; r != pushed {
		t.Fatalf("push after pop: %v", r)
	}
	// A frame larger than the byte bound goes into an empty queue.
	q.pop()
	if q.length() != 0 || q.push(outFrame{size: 100}, patience) != pushed {
		t.Fatal("a large frame did not go into the empty queue")
	}
	// Close wakes a waiting push and refuses later ones.
	go func() { res <- q.push(outFrame{}, time.Hour) }()
	if r := q.push(outFrame{}, patience); r != timedOut {
		t.Fatalf("full queue: %v, want timedOut", r)
	}
	q.close()
	if r := <-res; r != rejected {
		t.Fatalf("push during close: %v", r)
	}
	if r := q.push(outFrame{}, patience); r != rejected {
		t.Fatalf("push after close: %v", r)
	}
}

// TestBinaryResponseLayout pins the byte layout of a binary Received with a
// sender tag, as an application decoding it by hand sees it.
func TestBinaryResponseLayout(t *testing.T) {
	ts := startServer(t, Config{})
	app := dialRaw(t, ts.url)
	tag := testTag
	ts.fake.inbox <- client.Message{Data: []byte("ab"), SenderTag: &tag}
	_, frame := app.read()
	want := append(append([]byte{0x01, 0x01}, tag[:]...), binary.BigEndian.AppendUint64(nil, 2)...)
	want = append(want, 'a', 'b')
	if !bytes.Equal(frame, want) {
		t.Fatalf("got %x, want %x", frame, want)
	}
}

// TestMessageForgottenOnceWritten checks that the backend is told to forget
// a message only once it has been written to an application (so that a
// crash before then brings it back after the restart), once however many
// applications get it; and that a message whose only application left
// before it was written goes to the next applications, ahead of the
// messages after it.
func TestMessageForgottenOnceWritten(t *testing.T) {
	ts := startServer(t, Config{FormatWait: time.Hour})
	// An application that never shows its frame type has its frames held.
	gone := dialRaw(t, ts.url)
	ts.fake.waitReceiving(t, true)
	ts.fake.inbox <- client.Message{Data: []byte("held")}
	ts.fake.waitReceiving(t, true) // taken and queued; the server waits for the next
	gone.ws.Close()
	pollUntil(t, "the message comes back", func() bool { return ts.connCount() == 0 && ts.unsent(nil) == 1 })
	select {
	case m := <-ts.fake.forgotten:
		t.Fatalf("%q forgotten though it was never written", m)
	default:
	}
	received := func(data string) string {
		return `{"type":"received","message":"` + data + `","senderTag":null}`
	}

	a := dialRaw(t, ts.url+"?format=json")
	if got := a.readText(); got != received("held") {
		t.Fatalf("the next application got %s first, want %s", got, received("held"))
	}
	b := dialRaw(t, ts.url+"?format=json")
	pollUntil(t, "both connections are registered", func() bool { return ts.connCount() == 2 })
	ts.fake.inbox <- client.Message{Data: []byte("both")}
	for _, app := range []*raw{a, b} {
		if got := app.readText(); got != received("both") {
			t.Fatalf("got %s, want %s", got, received("both"))
		}
	}
	if err := ts.Close(); err != nil { // the writers have ended
		t.Fatal(err)
	}
	close(ts.fake.forgotten)
	var forgotten []string
	for m := range ts.fake.forgotten {
		forgotten = append(forgotten, m)
	}
	// Each once; in either order, since the writer of a forgets "held"
	// after the app has read it, and b's writer may forget "both" first.
	slices.Sort(forgotten)
	if !slices.Equal(forgotten, []string{"both", "held"}) {
		t.Fatalf("forgotten %q, want both and held, each once", forgotten)
	}
}
