package testnet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"filippo.io/edwards25519"
	"github.com/gorilla/websocket"

	"github.com/peapod-mixnet/peapod/internal/gwproto"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
	"github.com/peapod-mixnet/peapod/wsapi"
)

// Short timeouts for slow peers, so that the test sees them act, and how
// many slow connections each listener gets.
const (
	slowPerListener      = 20
	testFrameTimeout     = 2 * time.Second
	testHandshakeTimeout = 2 * time.Second
)

// TestBadInput is scenario 7: random bytes, truncated and oversized
// frames, malformed requests and slow-loris connections at every listener
// (directory HTTP, mixnode and gateway TCP, gateway WebSocket, client
// WebSocket, provider HTTP, and the request envelope through the mixnet).
// Each bad input gets a clear error where the protocol can say one, every
// slow connection is closed by the server's timeout, every process stays
// up, and the network keeps serving a well-behaved client throughout.
func TestBadInput(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{
		MixnodeArgs: func(int, int) []string { return []string{"--frame-timeout", testFrameTimeout.String()} },
		GatewayArgs: func(int) []string { return []string{"--handshake-timeout", testHandshakeTimeout.String()} },
	})
	ctx := ctxFor(t, 4*time.Minute)
	needProvider(t, n.cfg.Bin)
	p := startProvider(t, ctx, n, ProviderOptions{})
	good := newWorkload()
	rGood := newRequester(t, ctx, n, "client-good", p, good.tr, ClientOptions{})
	clientB, err := n.StartClient(ctx, "client-b", ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A well-behaved requester keeps going while the rest misbehaves.
	stopGood := make(chan struct{})
	goodDone := make(chan int)
	go func() {
		i := 0
		defer func() { goodDone <- i }()
		for {
			select {
			case <-stopGood:
				return
			case <-time.After(100 * time.Millisecond):
			}
			good.echo(t, ctx, rGood, fmt.Sprintf("good-%04d", i))
			i++
		}
	}()

	// Slow-loris connections first, so that they are old by the end.
	mix, gw := n.Mixnode(1, 0), n.Gateway(0)
	hdr := wire.AppendFrame(nil, wire.Header{Size: sphinx.RegularPacket, Type: wire.PacketTypeMix}, make([]byte, 10))
	// The start of a Noise handshake's frame (version 1, pattern XKpsk3,
	// type handshake) and nothing more: closed by the handshake timeout.
	noiseStart := []byte{wire.NoiseVersion, wire.NoisePatternXKpsk3, 0}
	type slowSpec struct {
		addr   netip.AddrPort
		prefix []byte
		within time.Duration
	}
	var slow []*slowConn
	for _, sp := range []slowSpec{
		{n.DirectoryAddr(), []byte("GET /v1/topology HTTP/1.1\r\nHost: x\r\n"), 12 * time.Second},
		{mix.Listen, noiseStart, wire.DefaultHandshakeTimeout + 3*time.Second},
		{gw.Listen, noiseStart, wire.DefaultHandshakeTimeout + 3*time.Second},
		{gw.ClientListen, []byte("GET / HTTP/1.1\r\nHost: x\r\n"), 12 * time.Second},
		{addrOf(t, clientB.WS), []byte("GET / HTTP/1.1\r\nHost: x\r\n"), 12 * time.Second},
		{addrOf(t, p.HTTP), []byte("GET /address HTTP/1.1\r\nHost: x\r\n"), 8 * time.Second},
	} {
		for range slowPerListener {
			slow = append(slow, slowLoris(t, sp.addr, sp.prefix, sp.within))
		}
	}
	// Half a frame inside an authenticated link: closed by the frame
	// timeout. The gateway's mix listener has the wire package's default
	// (30 s): `mixnet gateway` has no flag for it.
	for _, sp := range []struct {
		to     *Node
		within time.Duration
	}{{mix, testFrameTimeout + 3*time.Second}, {gw, wire.DefaultFrameTimeout + 3*time.Second}} {
		c, nc := dialAs(t, n.prevOf(sp.to), sp.to)
		if _, err := nc.Write(hdr); err != nil {
			t.Fatal(err)
		}
		slow = append(slow, &slowConn{name: sp.to.Name() + " (half a frame over Noise)", c: c, within: sp.within, since: time.Now()})
	}
	slowWS := slowWebSocket(t, "ws://"+gw.ClientListen.String(), testHandshakeTimeout+3*time.Second)

	t.Run("directory", func(t *testing.T) {
		base := n.DirectoryURL()
		garbageTCP(t, n.DirectoryAddr(), "HTTP/1.1 400")
		expectStatus(t, "POST", base+"/v1/register", "application/json", []byte("{not json"), 400)
		expectStatus(t, "POST", base+"/v1/register", "application/json",
			[]byte(`{"role":"mixnode","layer":1,"address":"127.0.0.1:1","identity":"x","sphinx_key":"y","timestamp":1}`), 400)
		expectStatusRange(t, "POST", base+"/v1/register", "application/json", bytes.Repeat([]byte("A"), 8<<20), 400, 499)
		expectStatus(t, "DELETE", base+"/v1/topology", "", nil, 405)
	})

	t.Run("mixnode", func(t *testing.T) {
		before := closedByReason(t, ctx, mix)
		// Random bytes in place of a Noise handshake.
		junk := randomBytes(4096)
		junk[0] = 0x42
		expectClosedAfter(t, mix.Listen, junk)
		// The rest over an authenticated link, as a gateway (layer 1's
		// previous layer) would send them. Random bytes: the version
		// byte is wrong.
		expectClosedAs(t, n, mix, junk)
		// A truncated frame: a header and half a packet, then EOF.
		trunc := wire.AppendFrame(nil, wire.Header{Size: sphinx.RegularPacket, Type: wire.PacketTypeMix}, make([]byte, sphinx.RegularPacket.Len()))
		writeAs(t, n, mix, trunc[:len(trunc)/2])
		// An oversized frame: a size tag no packet has.
		expectClosedAs(t, n, mix, []byte{wire.Version, 9, 0, 0, 1, 2, 3})
		// Refused packet types and key rotations.
		expectClosedAs(t, n, mix, []byte{wire.Version, 1, byte(wire.PacketTypeOutfox), 0})
		expectClosedAs(t, n, mix, []byte{wire.Version, 1, 0, 7})
		// Well-framed garbage: every size, dropped as unauthenticated.
		writeAs(t, n, mix, garbageFrames())
		err := pollUntil(ctx, 50*time.Millisecond, func() (bool, error) {
			after := closedByReason(t, ctx, mix)
			auth, err := mix.Metric(ctx, "peapod_mixnode_packets_dropped_total", "reason", "authentication")
			return after["malformed"] >= before["malformed"]+4 && after["truncated"] >= before["truncated"]+1 &&
				after["handshake_failed"] >= before["handshake_failed"]+1 &&
				auth >= float64(len(sphinx.PacketSizes)), err
		})
		if err != nil {
			t.Errorf("%s's counters never showed the bad frames: %v (now %v)", mix.Name(), err, closedByReason(t, ctx, mix))
		}
		if tail := mix.Tail(200); !strings.Contains(tail, "unknown size tag 9") && !strings.Contains(tail, "size tag") {
			t.Logf("note: %s logs no line naming the bad size tag (info level)", mix.Name())
		}
	})

	t.Run("gateway-tcp", func(t *testing.T) {
		junk := randomBytes(4096)
		junk[0] = 0x42
		expectClosedAfter(t, gw.Listen, junk)
		expectClosedAs(t, n, gw, junk)
		expectClosedAs(t, n, gw, []byte{wire.Version, 9, 0, 0})
		writeAs(t, n, gw, garbageFrames())
		err := pollUntil(ctx, 50*time.Millisecond, func() (bool, error) {
			v, err := gw.Metric(ctx, "peapod_gateway_dropped_total", "reason", "authentication")
			return v >= float64(len(sphinx.PacketSizes)), err
		})
		if err != nil {
			t.Errorf("%s never counted the garbage packets: %v", gw.Name(), err)
		}
	})

	t.Run("gateway-websocket", func(t *testing.T) {
		url := "ws://" + gw.ClientListen.String()
		garbageTCP(t, gw.ClientListen, "HTTP/1.1 400")
		expectStatus(t, "GET", "http://"+gw.ClientListen.String()+"/", "", nil, 400)
		// The first frame must be a Noise hello (gwproto's channel.go).
		for name, c := range map[string]struct {
			frame []byte
			code  gwproto.ErrorCode
		}{
			"empty":                     {[]byte{}, gwproto.CodeMalformed},
			"unknown tag":               {[]byte{0x7f, 1, 2, 3}, gwproto.CodeMalformed},
			"random":                    {append([]byte{0x7f}, randomBytes(300)...), gwproto.CodeMalformed},
			"short hello":               {[]byte{0x06, gwproto.Version, 1, 2}, gwproto.CodeMalformed},
			"hello of another version":  {append([]byte{0x06, 9}, randomBytes(48)...), gwproto.CodeVersion},
			"registration in the clear": {[]byte{0x01, 1, 2, 3}, gwproto.CodeVersion},
			"hello to another key":      {append([]byte{0x06, gwproto.Version}, randomBytes(48)...), gwproto.CodeAuthentication},
		} {
			if code := wsHandshakeError(t, url, websocket.BinaryMessage, c.frame); code != int(c.code) {
				t.Errorf("%s first frame: handshake error code %d, want %d (%v)", name, code, c.code, c.code)
			}
		}
		// A text frame and an oversized frame end the connection.
		wsExpectClosed(t, url, websocket.TextMessage, []byte("hello"))
		wsExpectClosed(t, url, websocket.BinaryMessage, make([]byte, 100<<10))
	})

	t.Run("client-websocket", func(t *testing.T) {
		garbageTCP(t, addrOf(t, clientB.WS), "HTTP/1.1 400")
		ws, _, err := websocket.DefaultDialer.DialContext(ctx, clientB.WS, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		cases := []struct {
			name string
			typ  int
			msg  []byte
			kind wsapi.ErrorKind
		}{
			{"empty", websocket.BinaryMessage, []byte{}, wsapi.KindEmptyRequest},
			{"unknown tag", websocket.BinaryMessage, []byte{0x7f}, wsapi.KindUnknownRequest},
			{"too short", websocket.BinaryMessage, []byte{0x00, 1, 2, 3}, wsapi.KindTooShortRequest},
			{"bad recipient", websocket.BinaryMessage, badRecipientSend(), wsapi.KindMalformedRequest},
			{"random", websocket.BinaryMessage, append([]byte{0x00}, randomBytes(200)...), wsapi.KindMalformedRequest},
			{"malformed JSON", websocket.TextMessage, []byte(`{"type":"send",`), wsapi.KindMalformedRequest},
			// Nym's client answers an unknown JSON type as malformed (serde's
			// "unknown variant").
			{"unknown JSON type", websocket.TextMessage, []byte(`{"type":"launch"}`), wsapi.KindMalformedRequest},
			{"JSON bad recipient", websocket.TextMessage, []byte(`{"type":"send","message":"x","recipient":"nope","connectionId":null}`), wsapi.KindMalformedRequest},
		}
		for _, c := range cases {
			if err := ws.WriteMessage(c.typ, c.msg); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			typ, b, err := ws.ReadMessage()
			if err != nil {
				t.Fatalf("%s: no answer: %v", c.name, err)
			}
			var resp wsapi.Response
			if typ == websocket.TextMessage {
				resp, err = wsapi.ParseJSONResponse(b)
			} else {
				resp, err = wsapi.ParseResponse(b)
			}
			e, ok := resp.(wsapi.Error)
			if err != nil || !ok || e.Kind != c.kind {
				t.Errorf("%s: answered %#v (%v), want an error of kind %v", c.name, resp, err, c.kind)
			}
			if (typ == websocket.TextMessage) != (c.typ == websocket.TextMessage) {
				t.Errorf("%s: answered in the other frame type", c.name)
			}
		}
		// The connection is still usable.
		ws.WriteMessage(websocket.BinaryMessage, []byte{0x03}) // SelfAddress
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, b, err := ws.ReadMessage(); err != nil || len(b) == 0 || b[0] != 0x02 {
			t.Errorf("self address after the errors: %x, %v", b, err)
		}
		// A frame over the API's limit (16 MiB) is read, dropped and
		// answered with an error; the connection stays usable.
		ws.WriteMessage(websocket.BinaryMessage, make([]byte, 17<<20))
		ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("no answer to a 17 MiB frame: %v", err)
		}
		if resp, err := wsapi.ParseResponse(b); err != nil || resp.(wsapi.Error).Kind != wsapi.KindMalformedRequest ||
			!strings.Contains(resp.(wsapi.Error).Message, "exceeds the limit") {
			t.Errorf("answer to a 17 MiB frame: %#v, %v", resp, err)
		}
		ws.WriteMessage(websocket.BinaryMessage, []byte{0x03})
		if _, b, err := ws.ReadMessage(); err != nil || len(b) == 0 || b[0] != 0x02 {
			t.Errorf("self address after a 17 MiB frame: %x, %v", b, err)
		}
	})

	t.Run("provider-http", func(t *testing.T) {
		garbageTCP(t, addrOf(t, p.HTTP), "HTTP/1.1 400")
		expectStatus(t, "POST", p.HTTP+"/address", "application/json", []byte("{}"), 405)
		expectStatus(t, "GET", p.HTTP+"/no-such-path", "", nil, 404)
		expectStatusRange(t, "GET", p.HTTP+"/address?"+strings.Repeat("a", 2<<20), "", nil, 400, 499)
	})

	t.Run("envelope", func(t *testing.T) {
		w := newWorkload()
		r := newRequester(t, ctx, n, "client-bad", p, w.tr, ClientOptions{})
		// Bodies the provider does not read an id from: the reply carries
		// no id, so each goes alone and is matched by order.
		for i, c := range []struct {
			body []byte
			code string
		}{
			{[]byte("not json at all"), "bad_request"},
			{[]byte{0xff, 0xfe, 0x00}, "bad_request"},
			{[]byte(`{"v":1,"id":"` + strings.Repeat("i", 65) + `","service":"echo","data":""}`), "bad_request"},
			{[]byte(`{"v":1,"id":"junk","service":"echo","data":""} x`), "bad_request"},
		} {
			id := fmt.Sprintf("unparsable-%d", i)
			w.tr.Sent("") // the reply's id is empty
			if err := r.RequestRaw(ctx, id, c.body); err != nil {
				t.Fatal(err)
			}
			w.tr.Forget(id)
			rep, err := r.Await(ctx, "")
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			if rep.Err == nil || rep.Err.Code != c.code {
				t.Errorf("%s: reply %+v, want %s", id, rep, c.code)
			}
			r.Forget("")
			w.tr.Forget("")
		}
		// Requests with a readable id get their error under that id (one
		// over the size limit too: the provider reads its id from its
		// first bytes).
		for id, c := range map[string]struct {
			body []byte
			code string
		}{
			"v2":          {[]byte(`{"v":2,"id":"v2","service":"echo","data":""}`), "bad_request"},
			"bad-base64":  {[]byte(`{"v":1,"id":"bad-base64","service":"echo","data":"***"}`), "bad_request"},
			"no-service":  {[]byte(`{"v":1,"id":"no-service","data":""}`), "bad_request"},
			"unknown-svc": {[]byte(`{"v":1,"id":"unknown-svc","service":"nope","data":""}`), "unknown_service"},
			"kv-bad-op":   {[]byte(`{"v":1,"id":"kv-bad-op","service":"kv","data":"eyJvcCI6Inp6eiJ9"}`), "bad_request"},
			"too-large":   {tooLargeRequest("too-large"), "too_large"},
		} {
			w.expect[id] = expectation{codes: []string{c.code}}
			if err := r.RequestRaw(ctx, id, c.body); err != nil {
				t.Fatal(err)
			}
		}
		w.echo(t, ctx, r, "fine-after")
		rep := w.check(t, ctx, r)
		for id, e := range w.expect {
			if len(e.codes) == 0 {
				continue
			}
			if reps := r.Replies(id); len(reps) > 0 && (reps[0].Err == nil || reps[0].Err.Code != e.codes[0]) {
				t.Errorf("%s: reply %+v, want %s", id, reps[0], e.codes[0])
			}
		}
		_ = rep
	})

	t.Run("slow-loris", func(t *testing.T) {
		for _, s := range append(slow, slowWS) {
			s.expectClosed(t)
		}
	})

	close(stopGood)
	sent := <-goodDone
	rep := good.check(t, ctx, rGood)
	if sent < 10 || rep.Delivered != rep.Sent {
		t.Errorf("the well-behaved requester sent %d requests during the abuse: %v", sent, rep)
	}
	// Everyone else is still served: a new client reaches the provider.
	w := newWorkload()
	rNew := newRequester(t, ctx, n, "client-after", p, w.tr, ClientOptions{})
	w.echo(t, ctx, rNew, "after-all")
	w.put(t, ctx, rNew, "put-after-all", "after", "all")
	w.check(t, ctx, rNew)
	if u := n.UnexpectedExits(); len(u) > 0 {
		t.Errorf("processes died: %v", u)
	}
	for _, pr := range n.Processes() {
		if !pr.Running() {
			t.Errorf("%s is not running", pr.Name())
		}
	}
}

// tooLargeRequest is a valid request whose data is over the provider's
// 256 KiB request limit (--max-request).
func tooLargeRequest(id string) []byte {
	return []byte(`{"v":1,"id":"` + id + `","service":"echo","data":"` + strings.Repeat("QUFB", 90<<10) + `"}`)
}

// badRecipientSend is a binary Send whose recipient is not a valid
// address (identity and gateway keys that are not curve points).
func badRecipientSend() []byte {
	var notPoint []byte
	for y := byte(2); ; y++ {
		notPoint = append(make([]byte, 0, 32), y)
		notPoint = append(notPoint, make([]byte, 31)...)
		if _, err := new(edwards25519.Point).SetBytes(notPoint); err != nil {
			break
		}
	}
	b := []byte{0x00}
	b = append(b, notPoint...)
	b = append(b, bytes.Repeat([]byte{9}, 32)...)
	b = append(b, notPoint...)
	b = binary.BigEndian.AppendUint64(b, 0)
	b = binary.BigEndian.AppendUint64(b, 2)
	return append(b, 'h', 'i')
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// addrOf returns the ip:port of a URL.
func addrOf(t testing.TB, url string) netip.AddrPort {
	t.Helper()
	_, rest, ok := strings.Cut(url, "://")
	if !ok {
		t.Fatalf("not a URL: %q", url)
	}
	host, _, _ := strings.Cut(rest, "/")
	ap, err := netip.ParseAddrPort(host)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// garbageTCP sends random bytes to an HTTP listener and expects an answer
// starting with want, or the connection closed.
func garbageTCP(t *testing.T, addr netip.AddrPort, want string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	junk := randomBytes(2048)
	junk[0] = '\x16' // a TLS handshake byte: not HTTP
	c.Write(append(junk, "\r\n\r\n"...))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(io.LimitReader(c, 4096))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("%s neither answered nor closed random bytes", addr)
		return
	}
	if len(b) > 0 && !strings.HasPrefix(string(b), want) {
		t.Errorf("%s answered random bytes with %q, want %q", addr, truncate(b, 60), want)
	}
}

func expectStatus(t *testing.T, method, url, ctype string, body []byte, want int) {
	t.Helper()
	expectStatusRange(t, method, url, ctype, body, want, want)
}

func expectStatusRange(t *testing.T, method, url, ctype string, body []byte, lo, hi int) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		// A server may close a connection that sends too much at once.
		if lo >= 400 && (strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "broken pipe") || errors.Is(err, io.EOF)) {
			return
		}
		t.Errorf("%s %s: %v", method, truncate([]byte(url), 80), err)
		return
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < lo || resp.StatusCode > hi {
		t.Errorf("%s %s: %s %q, want %d..%d", method, truncate([]byte(url), 80), resp.Status, msg, lo, hi)
	}
}

// expectClosedAfter writes b and expects the server to close the
// connection.
func expectClosedAfter(t *testing.T, addr netip.AddrPort, b []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(b)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("%s kept a connection open after %d bad bytes (%x…)", addr, len(b), truncate(b, 8))
	}
}

// writeAndClose writes b and closes the connection.
func writeAndClose(t *testing.T, addr netip.AddrPort, b []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// closedByReason reads a mixnode's inbound_connections_closed_total by
// reason.
func closedByReason(t *testing.T, ctx context.Context, node *Node) map[string]float64 {
	t.Helper()
	out := make(map[string]float64)
	for _, r := range []string{"malformed", "truncated", "frame_timeout", "idle_timeout", "handshake_failed"} {
		v, err := node.Metric(ctx, "peapod_mixnode_inbound_connections_closed_total", "reason", r)
		if err != nil {
			t.Fatal(err)
		}
		out[r] = v
	}
	return out
}

// slowConn is a connection that sent part of a request and then nothing.
type slowConn struct {
	name   string
	c      net.Conn
	ws     *websocket.Conn
	within time.Duration
	since  time.Time
}

func slowLoris(t *testing.T, addr netip.AddrPort, prefix []byte, within time.Duration) *slowConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(prefix); err != nil {
		t.Fatal(err)
	}
	return &slowConn{name: addr.String(), c: c, within: within, since: time.Now()}
}

// slowWebSocket upgrades to a WebSocket and then never starts the
// handshake.
func slowWebSocket(t *testing.T, url string, within time.Duration) *slowConn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return &slowConn{name: url + " (no handshake)", ws: ws, within: within, since: time.Now()}
}

// expectClosed expects the server to have closed the connection within
// the time its timeout allows, counted from when it was opened.
func (s *slowConn) expectClosed(t *testing.T) {
	t.Helper()
	// A deadline already past fails a read before it looks at the
	// connection: leave a moment to read the EOF of one closed long ago.
	deadline := s.since.Add(s.within)
	if soon := time.Now().Add(200 * time.Millisecond); deadline.Before(soon) {
		deadline = soon
	}
	if s.ws != nil {
		s.ws.SetReadDeadline(deadline)
		for {
			if _, _, err := s.ws.ReadMessage(); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Errorf("%s still open after %v", s.name, s.within)
				}
				return
			}
		}
	}
	s.c.SetReadDeadline(deadline)
	_, err := io.Copy(io.Discard, bufio.NewReader(s.c))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("%s: a slow-loris connection is still open after %v", s.name, s.within)
	}
}

// wsHandshakeError sends one frame as the first of a gateway handshake and
// returns the code of the handshake error the gateway answers with.
func wsHandshakeError(t *testing.T, url string, typ int, frame []byte) int {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(typ, frame)
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Errorf("no handshake error for a bad first frame: %v", err)
		return -1
	}
	if len(b) < 4 || b[0] != 0x05 {
		t.Errorf("answer %x is not a handshake error", truncate(b, 16))
		return -1
	}
	if l := int(binary.BigEndian.Uint16(b[2:4])); len(b) != 4+l || (b[1] == 4 && l == 0) {
		t.Errorf("handshake error %x: bad length or no text for a malformed frame", truncate(b, 32))
	}
	// The gateway closes the connection after it.
	if _, _, err := ws.ReadMessage(); err == nil {
		t.Error("the connection stayed open after a handshake error")
	}
	return int(b[1])
}

// wsExpectClosed sends one frame and expects the gateway to close the
// connection.
func wsExpectClosed(t *testing.T, url string, typ int, frame []byte) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteMessage(typ, frame)
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("a %d-byte frame of type %d did not end the connection", len(frame), typ)
			}
			return
		}
	}
}

// garbageFrames is one well-framed packet of random bytes of every size: a
// node drops each as unauthenticated.
func garbageFrames() []byte {
	var frames []byte
	for _, s := range sphinx.PacketSizes {
		frames = wire.AppendFrame(frames, wire.Header{Size: s, Type: wire.PacketTypeMix}, randomBytes(s.Len()))
	}
	return frames
}
