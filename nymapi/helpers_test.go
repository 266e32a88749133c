package nymapi

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/wsapi"
)

// nymExample is the address used throughout Nym's tests.
const nymExample = "CytBseW6yFXUMzz4SGAKdNLGR7q3sJLLYxyBGvutNEQV.4QXYyEVc5fUDjmmi8PrHN9tdUFV4PCvSJE1278cHyvoe@4sBbL1ngf1vtNqykydQKTFh26sQCw888GpUqvPvyNB4f"

// selfExample is the fake backend's own address (Nym's example with the
// identity and gateway keys swapped).
const selfExample = "4sBbL1ngf1vtNqykydQKTFh26sQCw888GpUqvPvyNB4f.4QXYyEVc5fUDjmmi8PrHN9tdUFV4PCvSJE1278cHyvoe@CytBseW6yFXUMzz4SGAKdNLGR7q3sJLLYxyBGvutNEQV"

var testTag = address.SenderTag{0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f}

func mustParse(t testing.TB, s string) address.Address {
	t.Helper()
	a, err := address.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// call is one call of a send method of the fake backend.
type call struct {
	method string // "send", "sendAnonymous", "reply"
	to     address.Address
	tag    address.SenderTag
	surbs  int
	lane   uint64
	data   []byte
}

// fakeBackend is an in-memory Backend. Messages pushed into inbox come out
// of ReceiveKept, and those forgotten go to forgotten; the send methods
// record their calls on calls.
type fakeBackend struct {
	addr  address.Address
	inbox chan client.Message
	calls chan call
	// forgotten receives the data of each message passed to Forget.
	forgotten chan string

	// receiving reports each entry into ReceiveKept (true) and each return from
	// it without a message (false).
	receiving chan bool

	mu          sync.Mutex
	sendErr     error // returned by the send methods when set
	block       chan struct{}
	lanes       map[uint64]int
	closedLanes []uint64
	receiveErr  error
	// ignoreCtx makes ReceiveKept wait for a message even after its context
	// ends: a message that arrives just as the last application leaves.
	ignoreCtx bool
}

func newFakeBackend(t testing.TB) *fakeBackend {
	return &fakeBackend{
		addr:      mustParse(t, selfExample),
		inbox:     make(chan client.Message, 1024),
		calls:     make(chan call, 1024),
		forgotten: make(chan string, 1024),
		receiving: make(chan bool, 1024),
		lanes:     map[uint64]int{},
	}
}

var _ Backend = (*fakeBackend)(nil)

func (f *fakeBackend) Address() address.Address { return f.addr }

func (f *fakeBackend) record(ctx context.Context, c call, opts []client.SendOption) (*client.Delivery, error) {
	c.lane = laneOf(opts)
	f.mu.Lock()
	err, block := f.sendErr, f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.calls <- c
	return nil, err
}

func (f *fakeBackend) Send(ctx context.Context, to address.Address, data []byte, opts ...client.SendOption) (*client.Delivery, error) {
	return f.record(ctx, call{method: "send", to: to, data: data}, opts)
}

func (f *fakeBackend) SendAnonymous(ctx context.Context, to address.Address, data []byte, surbs int, opts ...client.SendOption) (*client.Delivery, error) {
	return f.record(ctx, call{method: "sendAnonymous", to: to, surbs: surbs, data: data}, opts)
}

func (f *fakeBackend) Reply(ctx context.Context, tag address.SenderTag, data []byte, opts ...client.SendOption) (*client.Delivery, error) {
	return f.record(ctx, call{method: "reply", tag: tag, data: data}, opts)
}

func (f *fakeBackend) Forget(m client.Message) { f.forgotten <- string(m.Data) }

func (f *fakeBackend) ReceiveKept(ctx context.Context) (client.Message, error) {
	f.mu.Lock()
	err := f.receiveErr
	f.mu.Unlock()
	if err != nil {
		return client.Message{}, err
	}
	f.signal(true)
	f.mu.Lock()
	done := ctx.Done()
	if f.ignoreCtx {
		done = nil
	}
	f.mu.Unlock()
	select {
	case m := <-f.inbox:
		return m, nil
	case <-done:
		f.signal(false)
		return client.Message{}, ctx.Err()
	}
}

// signal reports an entry into or a return from ReceiveKept, unless nobody
// listens (benchmarks) and the channel is full.
func (f *fakeBackend) signal(entered bool) {
	select {
	case f.receiving <- entered:
	default:
	}
}

func (f *fakeBackend) LaneQueueLength(lane uint64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lanes[lane]
}

func (f *fakeBackend) CloseLane(lane uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closedLanes = append(f.closedLanes, lane)
	delete(f.lanes, lane)
}

// laneOf reads the lane client.WithLane put in opts. client.SendOption
// offers no accessor, so this applies the options to a fresh options value
// by reflection and reads its unexported field "lane" (reading is allowed).
func laneOf(opts []client.SendOption) uint64 {
	if len(opts) == 0 {
		return 0
	}
	v := reflect.New(reflect.TypeOf(opts[0]).In(0).Elem())
	for _, o := range opts {
		reflect.ValueOf(o).Call([]reflect.Value{v})
	}
	return v.Elem().FieldByName("lane").Uint()
}

func (f *fakeBackend) nextCall(t testing.TB) call {
	t.Helper()
	select {
	case c := <-f.calls:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a call to the backend")
		return call{}
	}
}

// waitReceiving waits for the server to enter (true) or leave (false)
// ReceiveKept.
func (f *fakeBackend) waitReceiving(t testing.TB, want bool) {
	t.Helper()
	for {
		select {
		case got := <-f.receiving:
			if got == want {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("timed out waiting for ReceiveKept to be entered=%v", want)
		}
	}
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is a Server on a loopback listener.
type testServer struct {
	*Server
	fake *fakeBackend
	url  string // ws://127.0.0.1:port/
	logs *logBuffer
}

// startServer serves a fake backend on a loopback port. cfg.Backend and
// cfg.Logger are filled in; FormatWait defaults to "do not wait" so that
// tests choose it explicitly.
func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startServerOn(t, cfg, ln)
}

// startServerOn is startServer on ln.
func startServerOn(t testing.TB, cfg Config, ln net.Listener) *testServer {
	t.Helper()
	fake := newFakeBackend(t)
	logs := &logBuffer{}
	cfg.Backend = fake
	cfg.Logger = zerolog.New(logs)
	if cfg.FormatWait == 0 {
		cfg.FormatWait = -1
	}
	s := New(cfg)
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{Server: s, fake: fake, url: "ws://" + ln.Addr().String() + "/", logs: logs}
}

// raw is a test application speaking raw WebSocket frames.
type raw struct {
	t  testing.TB
	ws *websocket.Conn
}

func dialRaw(t testing.TB, url string) *raw {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		if resp != nil {
			t.Fatalf("dial %s: %v (%s)", url, err, resp.Status)
		}
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { ws.Close() })
	return &raw{t: t, ws: ws}
}

func (r *raw) write(typ int, frame []byte) {
	r.t.Helper()
	if err := r.ws.WriteMessage(typ, frame); err != nil {
		r.t.Fatalf("writing: %v", err)
	}
}

func (r *raw) binary(req wsapi.Request) {
	r.t.Helper()
	r.write(websocket.BinaryMessage, wsapi.AppendRequest(nil, req))
}

func (r *raw) json(s string) { r.t.Helper(); r.write(websocket.TextMessage, []byte(s)) }

// read reads the next data frame.
func (r *raw) read() (int, []byte) {
	r.t.Helper()
	r.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, frame, err := r.ws.ReadMessage()
	if err != nil {
		r.t.Fatalf("reading: %v", err)
	}
	return typ, frame
}

// readBinary reads a binary frame and parses it.
func (r *raw) readBinary() wsapi.Response {
	r.t.Helper()
	typ, frame := r.read()
	if typ != websocket.BinaryMessage {
		r.t.Fatalf("got a text frame %q, want a binary one", frame)
	}
	resp, err := wsapi.ParseResponse(frame)
	if err != nil {
		r.t.Fatalf("parsing %x: %v", frame, err)
	}
	return resp
}

// readText reads a text frame.
func (r *raw) readText() string {
	r.t.Helper()
	typ, frame := r.read()
	if typ != websocket.TextMessage {
		r.t.Fatalf("got a binary frame %x, want a text one", frame)
	}
	return string(frame)
}

// wantBinaryError reads a binary Error of the given kind.
func (r *raw) wantBinaryError(kind wsapi.ErrorKind, detail string) {
	r.t.Helper()
	resp := r.readBinary()
	e, ok := resp.(wsapi.Error)
	if !ok || e.Kind != kind || !strings.Contains(e.Message, detail) {
		r.t.Fatalf("got %#v, want an Error of kind %v containing %q", resp, kind, detail)
	}
}

// wantTextError reads a JSON error whose message starts with the kind's text.
func (r *raw) wantTextError(kind wsapi.ErrorKind, detail string) {
	r.t.Helper()
	got := r.readText()
	resp, err := wsapi.ParseJSONResponse([]byte(got))
	if err != nil {
		r.t.Fatalf("parsing %s: %v", got, err)
	}
	e, ok := resp.(wsapi.Error)
	if !ok || e.Kind != kind || !strings.Contains(e.Message, detail) {
		r.t.Fatalf("got %s, want an error of kind %v containing %q", got, kind, detail)
	}
}

// closeCode reads until the connection ends and returns the close code
// (-1 when it ended without a close frame).
func (r *raw) closeCode() int {
	r.t.Helper()
	r.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := r.ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.t.Fatal("timed out waiting for the connection to end")
		}
		return -1
	}
}

// dialStatus dials and returns the HTTP status of a refused handshake.
func dialStatus(t testing.TB, url string, header http.Header) int {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, header)
	if err == nil {
		ws.Close()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	return resp.StatusCode
}

// pollUntil polls cond until it holds or five seconds pass. For conditions
// that have no signal to wait on.
func pollUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// listen opens a loopback listener.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// invalidAddressBytes returns the binary form of an address whose identity
// key is not an ed25519 point.
func invalidAddressBytes(t testing.TB) []byte {
	t.Helper()
	b := make([]byte, address.Size)
	for i := 1; i < 256; i++ {
		b[0] = byte(i)
		if _, err := address.FromBytes(b); err != nil {
			return b
		}
	}
	t.Fatal("no invalid identity key found")
	return nil
}
