package wsapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/peapod-mixnet/peapod/address"
)

// fakeClient is a tiny server of the API, built on ReadRequest and
// WriteResponse, that answers like a client would and echoes what it is
// asked to send.
type fakeClient struct {
	self address.Address
	tag  address.SenderTag

	// push carries frames the test wants the server to send unprompted.
	push chan pushFrame

	wg sync.WaitGroup
}

type pushFrame struct {
	resp Response
	raw  []byte // sent as a binary frame instead of resp when set
}

func newFakeClient(t *testing.T) (*fakeClient, string) {
	t.Helper()
	f := &fakeClient{self: nymAddress(t), tag: testTag, push: make(chan pushFrame)}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		srv.Close()
		f.wg.Wait()
	})
	return f, "ws" + strings.TrimPrefix(srv.URL, "http")
}

func (f *fakeClient) serve(w http.ResponseWriter, r *http.Request) {
	f.wg.Add(1)
	defer f.wg.Done()
	ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()

	var mu sync.Mutex // guards writes and lastText
	lastText := false
	done := make(chan struct{})
	defer close(done)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			select {
			case p := <-f.push:
				mu.Lock()
				if p.raw != nil {
					ws.WriteMessage(websocket.BinaryMessage, p.raw)
				} else {
					WriteResponse(ws, p.resp, lastText)
				}
				mu.Unlock()
			case <-done:
				return
			}
		}
	}()

	for {
		req, text, err := ReadRequest(ws)
		var perr *ProtocolError
		var resp Response
		switch {
		case errors.As(err, &perr):
			resp = perr.Response()
		case err != nil:
			return
		default:
			resp = f.answer(req)
		}
		mu.Lock()
		lastText = text
		err = WriteResponse(ws, resp, text)
		mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (f *fakeClient) answer(req Request) Response {
	switch r := req.(type) {
	case SelfAddress:
		return SelfAddressResponse{Address: f.self}
	case Send:
		return Received{Data: r.Data}
	case SendAnonymous:
		return Received{SenderTag: &f.tag, Data: r.Data}
	case Reply:
		return Received{Data: append([]byte("reply:"), r.Data...)}
	case GetLaneQueueLength:
		return LaneQueueLength{Lane: r.ConnectionID, QueueLength: 42}
	case ClosedConnection:
		return Error{Kind: KindOther, Message: fmt.Sprintf("closed %d", r.ConnectionID)}
	}
	return Error{Kind: KindOther, Message: "unexpected request"}
}

func dialFake(t *testing.T, url string, opts ...Option) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestConnRoundTrip(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts []Option
	}{{"binary", nil}, {"json", []Option{WithJSON()}}} {
		t.Run(mode.name, func(t *testing.T) {
			f, url := newFakeClient(t)
			c := dialFake(t, url, mode.opts...)
			ctx := testContext(t)

			got, err := c.SelfAddress(ctx)
			if err != nil || got != f.self {
				t.Fatalf("SelfAddress = %v, %v", got, err)
			}
			dest := mockAddress(t)
			binaryData := []byte{0xFF, 0xFE, 0x00, 'x'}
			cases := []struct {
				req  Request
				want Response
			}{
				{Send{Recipient: dest, Data: []byte("hello")}, Received{Data: []byte("hello")}},
				{Send{Recipient: dest, ConnectionID: 3, Data: binaryData}, Received{Data: binaryData}},
				{SendAnonymous{ReplySURBs: 5, Recipient: dest, Data: []byte("anon")}, Received{SenderTag: &f.tag, Data: []byte("anon")}},
				{Reply{SenderTag: testTag, Data: binaryData}, Received{Data: append([]byte("reply:"), binaryData...)}},
				{GetLaneQueueLength{ConnectionID: 9}, LaneQueueLength{Lane: 9, QueueLength: 42}},
				{ClosedConnection{ConnectionID: 4}, Error{Kind: KindOther, Message: "closed 4"}},
				{SelfAddress{}, SelfAddressResponse{Address: f.self}},
			}
			for _, tc := range cases {
				if err := c.Send(ctx, tc.req); err != nil {
					t.Fatal(err)
				}
				resp, err := c.Receive(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !sameMessage(resp, tc.want) {
					t.Fatalf("request %#v: response %#v, want %#v", tc.req, resp, tc.want)
				}
			}
		})
	}
}

// A server answers in the frame type of the request, with the right error
// kind for bad input.
func TestServerAnswersInFrameType(t *testing.T) {
	_, url := newFakeClient(t)
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	cases := []struct {
		typ      int
		in       []byte
		wantType int
		want     string // exact JSON, or hex of the binary answer's first two bytes
	}{
		{websocket.TextMessage, []byte(`{"type":"selfAddress"}`), websocket.TextMessage,
			`{"type":"selfAddress","address":"` + nymExample + `"}`},
		{websocket.TextMessage, []byte(`{"type":"nope"}`), websocket.TextMessage,
			`{"type":"error","message":"malformed request:unknown variant ` + "`nope`, expected one of `send`, `sendAnonymous`, `reply`, `selfAddress`" + ` at line 1 column 14"}`},
		{websocket.TextMessage, []byte(`{"type":"send","message":"x"}`), websocket.TextMessage,
			`{"type":"error","message":"malformed request:missing field ` + "`recipient`" + `"}`},
		{websocket.BinaryMessage, []byte{0x03}, websocket.BinaryMessage, "02"},
		{websocket.BinaryMessage, []byte{}, websocket.BinaryMessage, "0001"},
		{websocket.BinaryMessage, []byte{0x00, 0x01}, websocket.BinaryMessage, "0002"},
		{websocket.BinaryMessage, []byte{0x09}, websocket.BinaryMessage, "0003"},
		{websocket.BinaryMessage, []byte{0x04, 0x01}, websocket.BinaryMessage, "0004"},
	}
	for _, c := range cases {
		if err := ws.WriteMessage(c.typ, c.in); err != nil {
			t.Fatal(err)
		}
		typ, got, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if typ != c.wantType {
			t.Fatalf("request %q: answer in frame type %d, want %d", c.in, typ, c.wantType)
		}
		if typ == websocket.TextMessage && string(got) != c.want {
			t.Fatalf("request %q: answer %s, want %s", c.in, got, c.want)
		}
		if typ == websocket.BinaryMessage && !strings.HasPrefix(fmt.Sprintf("%x", got), c.want) {
			t.Fatalf("request %x: answer %x, want prefix %s", c.in, got, c.want)
		}
	}
}

// SelfAddress works while another goroutine is blocked in Receive, and no
// response is lost or duplicated on either side.
func TestConnSelfAddressWhileReceiving(t *testing.T) {
	f, url := newFakeClient(t)
	c := dialFake(t, url)
	ctx := testContext(t)

	const pushes = 50
	got := make(chan Response, pushes)
	recvErr := make(chan error, 1)
	go func() {
		for range pushes {
			r, err := c.Receive(ctx)
			if err != nil {
				recvErr <- err
				return
			}
			got <- r
		}
		recvErr <- nil
	}()

	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				a, err := c.SelfAddress(ctx)
				if err != nil || a != f.self {
					t.Errorf("SelfAddress = %v, %v", a, err)
					return
				}
			}
		}()
	}
	for i := range pushes {
		f.push <- pushFrame{resp: Received{Data: []byte(fmt.Sprint(i))}}
	}
	wg.Wait()
	if err := <-recvErr; err != nil {
		t.Fatal(err)
	}
	close(got)
	i := 0
	for r := range got {
		if rec, ok := r.(Received); !ok || string(rec.Data) != fmt.Sprint(i) {
			t.Fatalf("response %d is %#v", i, r)
		}
		i++
	}
	if i != pushes {
		t.Fatalf("received %d responses, want %d", i, pushes)
	}
}

// Responses that arrive while SelfAddress waits are kept for Receive, in
// order, parse errors included.
func TestConnSelfAddressKeepsOtherResponses(t *testing.T) {
	f, url := newFakeClient(t)
	c := dialFake(t, url)
	ctx := testContext(t)

	// The server's push goroutine writes one frame before it takes the
	// next, so the first two frames are on the wire before SelfAddress
	// sends its request and SelfAddress reads them; the third may come
	// after the answer. The order Receive sees must not depend on which.
	f.push <- pushFrame{resp: Received{Data: []byte("first")}}
	f.push <- pushFrame{raw: []byte{0x07}}
	f.push <- pushFrame{resp: LaneQueueLength{Lane: 1, QueueLength: 2}}
	a, err := c.SelfAddress(ctx)
	if err != nil || a != f.self {
		t.Fatalf("SelfAddress = %v, %v", a, err)
	}
	r, err := c.Receive(ctx)
	if err != nil || !sameMessage(r, Received{Data: []byte("first")}) {
		t.Fatalf("first Receive = %#v, %v", r, err)
	}
	_, err = c.Receive(ctx)
	if kindOf(t, err) != KindUnknownResponse {
		t.Fatalf("second Receive error %v", err)
	}
	r, err = c.Receive(ctx)
	if err != nil || r != (LaneQueueLength{Lane: 1, QueueLength: 2}) {
		t.Fatalf("third Receive = %#v, %v", r, err)
	}
	// The Conn still works after the bad frame.
	if err := c.Send(ctx, GetLaneQueueLength{ConnectionID: 5}); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Receive(ctx); err != nil || r != (LaneQueueLength{Lane: 5, QueueLength: 42}) {
		t.Fatalf("Receive after bad frame = %#v, %v", r, err)
	}
}

func TestConnContext(t *testing.T) {
	f, url := newFakeClient(t)
	c := dialFake(t, url)

	// A context that has already ended fails the call and nothing else.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Receive(done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Receive with a done context: %v", err)
	}
	if err := c.Send(done, SelfAddress{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send with a done context: %v", err)
	}
	if a, err := c.SelfAddress(testContext(t)); err != nil || a != f.self {
		t.Fatalf("SelfAddress after done contexts = %v, %v", a, err)
	}

	// A deadline that passes while Receive is blocked ends the call and
	// closes the Conn.
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Receive(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive past its deadline: %v", err)
	}
	if err := c.Send(testContext(t), SelfAddress{}); err == nil {
		t.Fatal("Send succeeded on a Conn aborted by a context")
	}
}

func TestConnClose(t *testing.T) {
	_, url := newFakeClient(t)
	c := dialFake(t, url)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Receive(context.Background())
		errc <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Receive after Close: %v", err)
	}
	if err := c.Send(context.Background(), SelfAddress{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	if _, err := c.SelfAddress(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("SelfAddress after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestDialError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("Dial to a non-WebSocket server: %v", err)
	}
}
