package framework

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/framework/descriptor"
	"github.com/peapod-mixnet/peapod/framework/envelope"
)

// nymPeer stands in for a Nym native client. It is written from reference
// §1 alone, encoding and decoding frames by hand rather than with package
// wsapi, so that it checks the transport against the reference and not
// against a shared codec:
//
//	request  0x02 Reply        sender_tag[16] ‖ connection_id u64 ‖ length u64 ‖ data
//	request  0x03 SelfAddress  (nothing)
//	response 0x01 Received     has_sender_tag u8 ‖ [sender_tag[16]] ‖ length u64 ‖ data
//	response 0x02 SelfAddress  recipient[96]
//	response 0x00 Error        kind u8 ‖ length u64 ‖ message
//
// Like Nym, it accepts one WebSocket at a time. Any frame outside the
// reference (text frames, unknown tags, wrong lengths) is reported on bad.
type nymPeer struct {
	t        *testing.T
	hostport string

	mu      sync.Mutex
	addr    address.Address
	srv     *http.Server
	ws      *websocket.Conn
	writeMu sync.Mutex

	conns   chan struct{} // one value per accepted connection
	replies chan peerReply
	bad     chan string
	silent  atomic.Bool // stop answering SelfAddress
}

type peerReply struct {
	tag          address.SenderTag
	connectionID uint64
	data         []byte
}

// Frame layout constants from reference §1.
const (
	peerTagReply         = 0x02
	peerTagSelfAddress   = 0x03
	peerRespReceived     = 0x01
	peerRespSelfAddress  = 0x02
	peerRespError        = 0x00
	peerKindUnknown      = 0x03
	peerReplyHeaderSize  = 1 + address.SenderTagSize + 8 + 8
	peerSelfAddrRespSize = 1 + address.Size
)

func newNymPeer(t *testing.T) *nymPeer {
	p := &nymPeer{
		t:        t,
		hostport: "127.0.0.1:0",
		conns:    make(chan struct{}, 16),
		replies:  make(chan peerReply, 64),
		bad:      make(chan string, 64),
	}
	p.addr, _ = newAddress(t)
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *nymPeer) url() string { return "ws://" + p.hostport }

// start listens on hostport (the same port again after a stop).
func (p *nymPeer) start() {
	p.t.Helper()
	var ln net.Listener
	var err error
	deadline := time.Now().Add(testTimeout)
	for {
		if ln, err = net.Listen("tcp", p.hostport); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the port may linger for a moment after a stop
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.hostport = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(p.serve)}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
	go srv.Serve(ln)
}

// stop closes the listener and the connection, as a client that exits.
func (p *nymPeer) stop() {
	p.mu.Lock()
	srv, ws := p.srv, p.ws
	p.srv, p.ws = nil, nil
	p.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
	if ws != nil {
		ws.Close()
	}
}

func (p *nymPeer) address() address.Address {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

func (p *nymPeer) setAddress(a address.Address) {
	p.mu.Lock()
	p.addr = a
	p.mu.Unlock()
}

var upgrader = websocket.Upgrader{}

func (p *nymPeer) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	busy := p.ws != nil
	p.mu.Unlock()
	if busy {
		// Nym's client serves one WebSocket at a time and refuses others.
		// A transport that has just dropped its connection may come back
		// before this side has noticed the close; it must cope with the
		// refusal (and retry), so this is not a protocol violation.
		http.Error(w, "one connection at a time", http.StatusServiceUnavailable)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.ws = ws
	p.mu.Unlock()
	p.conns <- struct{}{}
	defer func() {
		p.mu.Lock()
		if p.ws == ws {
			p.ws = nil
		}
		p.mu.Unlock()
		ws.Close()
	}()
	for {
		typ, frame, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if typ != websocket.BinaryMessage {
			p.bad <- fmt.Sprintf("a frame of type %d, want binary", typ)
			continue
		}
		if len(frame) == 0 {
			p.bad <- "an empty frame"
			continue
		}
		switch frame[0] {
		case peerTagSelfAddress:
			if len(frame) != 1 {
				p.bad <- "SelfAddress with trailing bytes"
			}
			if p.silent.Load() {
				continue
			}
			a := p.address()
			resp := append([]byte{peerRespSelfAddress}, a.Identity[:]...)
			resp = append(append(resp, a.Encryption[:]...), a.Gateway[:]...)
			if len(resp) != peerSelfAddrRespSize {
				panic("bad self address size")
			}
			p.write(ws, resp)
		case peerTagReply:
			if len(frame) < peerReplyHeaderSize {
				p.bad <- "Reply shorter than its header"
				continue
			}
			var rep peerReply
			copy(rep.tag[:], frame[1:17])
			rep.connectionID = binary.BigEndian.Uint64(frame[17:25])
			n := binary.BigEndian.Uint64(frame[25:33])
			if n != uint64(len(frame)-peerReplyHeaderSize) {
				p.bad <- fmt.Sprintf("Reply length %d, but %d bytes follow", n, len(frame)-peerReplyHeaderSize)
				continue
			}
			rep.data = append([]byte(nil), frame[peerReplyHeaderSize:]...)
			p.replies <- rep
		default:
			p.bad <- fmt.Sprintf("request tag 0x%02x", frame[0])
			msg := "unknown request"
			resp := []byte{peerRespError, peerKindUnknown}
			resp = binary.BigEndian.AppendUint64(resp, uint64(len(msg)))
			p.write(ws, append(resp, msg...))
		}
	}
}

func (p *nymPeer) write(ws *websocket.Conn, frame []byte) {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	_ = ws.WriteMessage(websocket.BinaryMessage, frame)
}

// deliver sends a Received frame, with a sender tag when tag is not nil.
func (p *nymPeer) deliver(t *testing.T, tag *address.SenderTag, data []byte) {
	t.Helper()
	frame := []byte{peerRespReceived, 0}
	if tag != nil {
		frame[1] = 1
		frame = append(frame, tag[:]...)
	}
	frame = binary.BigEndian.AppendUint64(frame, uint64(len(data)))
	frame = append(frame, data...)
	p.mu.Lock()
	ws := p.ws
	p.mu.Unlock()
	if ws == nil {
		t.Fatal("the provider is not connected to the peer")
	}
	p.write(ws, frame)
}

func (p *nymPeer) waitConn(t *testing.T) {
	t.Helper()
	select {
	case <-p.conns:
	case <-time.After(testTimeout):
		t.Fatal("the provider did not connect")
	}
}

func (p *nymPeer) reply(t *testing.T) peerReply {
	t.Helper()
	select {
	case r := <-p.replies:
		return r
	case b := <-p.bad:
		t.Fatalf("protocol violation: %s", b)
	case <-time.After(testTimeout):
		t.Fatal("no Reply frame")
	}
	return peerReply{}
}

func (p *nymPeer) checkClean(t *testing.T) {
	t.Helper()
	select {
	case b := <-p.bad:
		t.Errorf("protocol violation: %s", b)
	default:
	}
}

// roundTrip delivers a request from tag and returns the envelope reply.
func (p *nymPeer) roundTrip(t *testing.T, tag address.SenderTag, id string, data string) *envelope.Reply {
	t.Helper()
	p.deliver(t, &tag, request(t, id, "echo", []byte(data)))
	r := p.reply(t)
	if r.tag != tag {
		t.Fatalf("Reply to tag %s, want %s", r.tag, tag)
	}
	if r.connectionID != 0 {
		t.Errorf("Reply on connection %d, want 0 (no connection)", r.connectionID)
	}
	rep, err := envelope.ParseReply(r.data)
	if err != nil {
		t.Fatalf("reply %q: %v", r.data, err)
	}
	return rep
}

func nymHost(t *testing.T, p *nymPeer, dataDir string) *Host {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	cfg := Config{
		DataDir:      dataDir,
		NymClientURL: p.url(),
		Nym:          NymTransportConfig{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, PingInterval: 2 * time.Second, DialTimeout: 2 * time.Second},
		Services:     []Service{echoService},
		HTTP:         HTTPConfig{Addr: "127.0.0.1:0"},
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestNymClientMode: the provider behind a Nym client. Requests arrive as
// Received frames with a sender tag, replies leave as Reply frames to that
// tag, in binary frames; the provider survives the client restarting (with
// a new address, even) and a client that stops answering.
func TestNymClientMode(t *testing.T) {
	p := newNymPeer(t)
	h := nymHost(t, p, "")
	p.waitConn(t)
	if h.Address() != p.address() {
		t.Fatalf("address %s, want the client's %s", h.Address(), p.address())
	}

	tag := newTag(t)
	wantOK(t, p.roundTrip(t, tag, "1", "hello"), "hello")

	// A message without a sender tag cannot be answered: no Reply for it.
	p.deliver(t, nil, request(t, "untagged", "echo", []byte("x")))
	if rep := p.roundTrip(t, tag, "2", "after"); rep.ID != "2" {
		t.Fatalf("got a reply to %q first", rep.ID)
	}
	// A malformed request with a tag gets an error reply.
	p.deliver(t, &tag, []byte("not json"))
	r := p.reply(t)
	rep, err := envelope.ParseReply(r.data)
	if err != nil || rep.Err == nil || rep.Err.Code != "bad_request" {
		t.Fatalf("reply to garbage: %s, %v", r.data, err)
	}

	// The endpoint publishes the Nym network and a descriptor signed with
	// the provider's key (not self-certifying: Nym keeps its identity key).
	status, doc := get(t, h, PathDescriptor)
	if status != http.StatusOK {
		t.Fatalf("descriptor: %d %s", status, doc)
	}
	d, err := descriptor.Verify(doc, descriptor.VerifyOptions{Key: h.Key()})
	if err != nil {
		t.Fatal(err)
	}
	if d.Network.Type != descriptor.NetworkNym || d.SelfCertifying || d.Address != p.address() {
		t.Errorf("descriptor %+v self-certifying %v", d.Info, d.SelfCertifying)
	}

	// The client restarts, with another identity.
	p.stop()
	eventually(t, "the transport to notice", func() bool { return !h.transport.Connected() })
	if status, _ := get(t, h, PathHealth); status != http.StatusServiceUnavailable {
		t.Errorf("health while the client is gone: %d", status)
	}
	newAddr, _ := newAddress(t)
	p.setAddress(newAddr)
	p.start()
	p.waitConn(t)
	eventually(t, "the new address", func() bool { return h.Address() == newAddr })
	wantOK(t, p.roundTrip(t, tag, "3", "again"), "again")
	_, body := get(t, h, PathAddress)
	var info struct{ Address string }
	if err := json.Unmarshal(body, &info); err != nil || info.Address != newAddr.String() {
		t.Errorf("/address after the restart: %s", body)
	}

	// The client stops answering (a hung process): the ping notices and
	// the transport reconnects.
	p.silent.Store(true)
	eventually(t, "the transport to give up on the silent client", func() bool { return !h.transport.Connected() })
	p.silent.Store(false)
	p.waitConn(t) // the silent connection was the first; drain until the next
	eventually(t, "the transport to reconnect", func() bool { return h.transport.Connected() })
	wantOK(t, p.roundTrip(t, tag, "4", "alive"), "alive")
	p.checkClean(t)
}

// TestNymReplyWaitsForConnection: a reply made while the client is away is
// sent once the transport is connected again.
func TestNymReplyWaitsForConnection(t *testing.T) {
	p := newNymPeer(t)
	tr, err := NewNymTransport(NymTransportConfig{URL: p.url(), MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	p.waitConn(t)
	p.stop()
	eventually(t, "the transport to notice", func() bool { return !tr.Connected() })

	tag := newTag(t)
	sent := make(chan error, 1)
	go func() { sent <- tr.Reply(ctx, tag, []byte("late reply")) }()
	p.start()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if r := p.reply(t); r.tag != tag || string(r.data) != "late reply" {
		t.Errorf("reply %+v", r)
	}

	// A reply whose context ends while disconnected fails.
	p.stop()
	eventually(t, "the transport to notice", func() bool { return !tr.Connected() })
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if err := tr.Reply(short, tag, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("reply while disconnected: %v", err)
	}
	tr.Close()
	if err := tr.Reply(ctx, tag, []byte("x")); !errors.Is(err, ErrTransportClosed) {
		t.Errorf("reply after Close: %v", err)
	}
	if _, err := tr.Receive(ctx); !errors.Is(err, ErrTransportClosed) {
		t.Errorf("receive after Close: %v", err)
	}
}

// TestNymStartTimesOut: Start gives up when no client answers in time.
func TestNymStartTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	tr, err := NewNymTransport(NymTransportConfig{URL: "ws://" + addr, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := tr.Start(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNymConfig(t *testing.T) {
	for name, cfg := range map[string]NymTransportConfig{
		"no url":       {},
		"http url":     {URL: "http://127.0.0.1:1977"},
		"negative":     {URL: "ws://127.0.0.1:1977", PingInterval: -1},
		"backoff":      {URL: "ws://127.0.0.1:1977", MinBackoff: time.Second, MaxBackoff: time.Millisecond},
		"negative box": {URL: "ws://127.0.0.1:1977", InboxSize: -1},
	} {
		if _, err := NewNymTransport(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
