package client

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client/internal/fragment"
	"github.com/peapod-mixnet/peapod/sphinx"
)

type testHop struct {
	proc *sphinx.Processor
	hop  sphinx.Hop
}

func testRoute(t *testing.T, n int) []testHop {
	t.Helper()
	out := make([]testHop, n)
	for i := range out {
		k, err := sphinx.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := sphinx.NewNodeAddress(netip.MustParseAddrPort(fmt.Sprintf("127.0.0.%d:%d", i+1, 2000+i)))
		out[i] = testHop{proc: sphinx.NewProcessor(k, nil), hop: sphinx.Hop{Address: a, PublicKey: k.PublicKey()}}
	}
	return out
}

func hops(r []testHop) []sphinx.Hop {
	h := make([]sphinx.Hop, len(r))
	for i := range r {
		h[i] = r[i].hop
	}
	return h
}

func walk(t *testing.T, r []testHop, pkt []byte) sphinx.Result {
	t.Helper()
	for i, n := range r {
		res, err := n.proc.Process(nil, pkt)
		if err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
		if res.Final {
			return res
		}
		pkt = res.Packet
	}
	t.Fatal("no final hop")
	return sphinx.Result{}
}

func newTestKeys(t *testing.T) *keys {
	k, err := loadKeys(t.TempDir(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A data packet built by the client travels its route; the gateway's view
// of the payload holds the ack (whose route works) and an end-to-end sealed
// fragment that only the recipient opens.
func TestDataPacketLayout(t *testing.T) {
	sender, recipient := newTestKeys(t), newTestKeys(t)
	fwd, ack := testRoute(t, 4), testRoute(t, 4)
	frag := make([]byte, FragmentCapacity)
	rand.Read(frag)
	id := fragment.ID{Set: 12345, Index: 3}
	plan := &packetPlan{
		route: hops(fwd), dest: sphinx.Destination{1}, encKey: &recipient.encPub,
		ackPath: hops(ack), self: sphinx.Destination{2}, ackKey: sender.ackKey, id: id, frag: frag,
	}
	first, pkt, err := buildPacket(rand.Reader, plan)
	if err != nil {
		t.Fatal(err)
	}
	if first != fwd[0].hop.Address || len(pkt) != sphinx.RegularPacket.Len() {
		t.Fatal("wrong first hop or size")
	}
	res := walk(t, fwd, pkt)
	if res.Destination != (sphinx.Destination{1}) || len(res.Payload) != sphinx.RegularPacket.PlaintextLen() {
		t.Fatalf("final payload of %d bytes", len(res.Payload))
	}
	// The gateway's part: the ack's first hop and packet.
	var hop sphinx.NodeAddress
	copy(hop[:], res.Payload[:ackHopSize])
	if hop != ack[0].hop.Address {
		t.Fatal("ack first hop is wrong")
	}
	ackRes := walk(t, ack, res.Payload[ackHopSize:ackPartSize])
	got, err := parseAck(sender.ackKey, ackRes.Payload)
	if err != nil || got != id {
		t.Fatalf("ack carries %v, %v; want %v", got, err, id)
	}
	if g, err := parseAck(recipient.ackKey, ackRes.Payload); err == nil && g == id {
		t.Fatal("another client's ack key read the ack")
	}
	// The client's part.
	opened, err := openFragment(&recipient.encPriv, &recipient.encPub, res.Payload[ackPartSize:])
	if err != nil || !bytes.Equal(opened, frag) {
		t.Fatalf("recipient could not open its fragment: %v", err)
	}
	if _, err := openFragment(&sender.encPriv, &sender.encPub, res.Payload[ackPartSize:]); err == nil {
		t.Fatal("another key opened the fragment")
	}
	tampered := bytes.Clone(res.Payload[ackPartSize:])
	tampered[100] ^= 1
	if _, err := openFragment(&recipient.encPriv, &recipient.encPub, tampered); err == nil {
		t.Fatal("a tampered fragment opened")
	}
}

// A reply on a SURB: the SURB creator opens it with the key it kept.
func TestReplyPacketLayout(t *testing.T) {
	replier := newTestKeys(t)
	back, ack := testRoute(t, 4), testRoute(t, 4)
	surb, err := sphinx.NewSURB(rand.Reader, hops(back), sphinx.Destination{3}, sphinx.SURBID{})
	if err != nil {
		t.Fatal(err)
	}
	frag := make([]byte, FragmentCapacity)
	rand.Read(frag)
	plan := &packetPlan{surb: surb, ackPath: hops(ack), self: sphinx.Destination{4}, ackKey: replier.ackKey, id: fragment.ID{Set: 1, Index: 1}, frag: frag}
	first, pkt, err := buildPacket(rand.Reader, plan)
	if err != nil {
		t.Fatal(err)
	}
	if first != back[0].hop.Address {
		t.Fatal("reply does not go to the SURB's first hop")
	}
	res := walk(t, back, pkt)
	opened, err := sphinx.OpenReply(nil, &surb.Key, res.Payload[ackPartSize:])
	if err != nil || !bytes.Equal(opened, frag) {
		t.Fatalf("creator could not open the reply: %v", err)
	}
}

// TestMaxFraming: the largest framing a message may carry, a repliable
// message with maxSURBsInMessage SURBs, is what maxFraming says, so a
// message of MaxMessageSize data with that many SURBs fits the
// reassembler's bound (maxFraming once counted the header 4 bytes short).
func TestMaxFraming(t *testing.T) {
	s, err := sphinx.NewSURB(rand.Reader, hops(testRoute(t, 4)), sphinx.Destination{}, sphinx.SURBID{})
	if err != nil {
		t.Fatal(err)
	}
	surbs := make([]*sphinx.SURB, maxSURBsInMessage)
	for i := range surbs {
		surbs[i] = s
	}
	data := []byte("data")
	m, err := repliableMessage(address.SenderTag{1}, surbBatch{rotation: 1, surbs: surbs}, streamPos{seq: 1}, data)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(m) - len(data); got != maxFraming {
		t.Fatalf("a repliable message with %d SURBs adds %d bytes to its data, maxFraming says %d", maxSURBsInMessage, got, maxFraming)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	route := testRoute(t, 4)
	var surbs []*sphinx.SURB
	for range 3 {
		s, err := sphinx.NewSURB(rand.Reader, hops(route), sphinx.Destination{}, sphinx.SURBID{})
		if err != nil {
			t.Fatal(err)
		}
		surbs = append(surbs, s)
	}
	tag := address.SenderTag{7}
	pos := streamPos{stream: [16]byte{1, 2}, seq: 99}
	var requester address.Address
	requester.Identity = x25519Point(t)
	requester.Gateway = x25519Point(t)
	cases := map[string][]byte{
		"plain":        plainMessage(pos, []byte("hello")),
		"reply":        replyMessage(pos, []byte("answer")),
		"surb request": surbRequestMessage(requester, 42),
	}
	batch := surbBatch{rotation: 123456, surbs: surbs}
	rep, err := repliableMessage(tag, batch, pos, []byte("anon"))
	if err != nil {
		t.Fatal(err)
	}
	cases["repliable"] = rep
	more, err := surbsMessage(tag, surbBatch{rotation: 7, surbs: surbs[:2]})
	if err != nil {
		t.Fatal(err)
	}
	cases["more surbs"] = more
	for name, raw := range cases {
		m, err := parseMessage(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch name {
		case "plain", "reply":
			if m.pos != pos || len(m.data) == 0 {
				t.Fatalf("%s: position or data lost", name)
			}
		case "repliable":
			if m.tag != tag || len(m.surbs.surbs) != 3 || m.surbs.rotation != 123456 || string(m.data) != "anon" || m.pos != pos {
				t.Fatalf("repliable: %+v", m)
			}
			enc, _ := m.surbs.surbs[1].AppendBinary(nil)
			want, _ := surbs[1].AppendBinary(nil)
			if !bytes.Equal(enc, want) {
				t.Fatal("SURB changed")
			}
		case "more surbs":
			if m.content != contentSURBs || len(m.surbs.surbs) != 2 || m.surbs.rotation != 7 {
				t.Fatalf("more surbs: %+v", m)
			}
		case "surb request":
			if m.requester != requester || m.amount != 42 {
				t.Fatalf("surb request: %+v", m)
			}
		}
		// Truncations never panic and fail cleanly.
		for i := range raw {
			parseMessage(raw[:i])
		}
	}
}

// x25519Point returns a valid ed25519-style point encoding for address
// tests (address.Parse checks identity keys are points).
func x25519Point(t *testing.T) [32]byte {
	k := newTestKeys(t)
	var p [32]byte
	copy(p[:], k.identityPublic())
	return p
}

func FuzzParseMessage(f *testing.F) {
	pos := streamPos{stream: [16]byte{1}, seq: 1}
	f.Add(plainMessage(pos, []byte("x")))
	f.Add(replyMessage(pos, nil))
	f.Add([]byte{kindRepliable})
	f.Add([]byte{kindReply, contentSURBRequest})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMessage(b)
		if err != nil {
			return
		}
		var re []byte
		switch {
		case m.kind == kindPlain:
			re = plainMessage(m.pos, m.data)
		case m.kind == kindReply && m.content == contentData:
			re = replyMessage(m.pos, m.data)
		case m.kind == kindReply:
			re = surbRequestMessage(m.requester, m.amount)
		case m.content == contentData:
			re, err = repliableMessage(m.tag, m.surbs, m.pos, m.data)
		default:
			re, err = surbsMessage(m.tag, m.surbs)
		}
		if err != nil || !bytes.Equal(re, b) {
			t.Fatalf("decode then encode differs: %v", err)
		}
	})
}

func TestE2EKeyIsPerPacket(t *testing.T) {
	r := newTestKeys(t)
	frag := []byte("same fragment")
	a, err := sealFragment(nil, rand.Reader, &r.encPub, frag)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := sealFragment(nil, rand.Reader, &r.encPub, frag)
	if bytes.Equal(a, b) {
		t.Fatal("two packets of the same fragment look the same")
	}
	var small [32]byte // u = 0: small order
	if _, err := sealFragment(nil, rand.Reader, &small, frag); err == nil {
		t.Fatal("sealed to a small-order key")
	}
}

func TestReadAddressAndSigner(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadAddress(dir); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("empty folder: err = %v, want ErrNotRegistered", err)
	}
	k, err := loadKeys(dir, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadAddress(dir); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("unregistered client: err = %v, want ErrNotRegistered", err)
	}
	gw := newTestKeys(t).identityPublic()
	if err := saveBinding(dir, &gatewayBinding{identity: gw}); err != nil {
		t.Fatal(err)
	}
	a, err := ReadAddress(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Identity[:], k.identityPublic()) || a.Encryption != k.encPub || !bytes.Equal(a.Gateway[:], gw) {
		t.Fatal("ReadAddress disagrees with the keys")
	}
	c := &Client{keys: k}
	sig, err := c.Signer().Sign(rand.Reader, []byte("m"), crypto.Hash(0))
	if err != nil || !ed25519.Verify(a.Identity[:], []byte("m"), sig) {
		t.Fatal("Signer does not sign with the address's identity key")
	}
}

func TestDataDirInUse(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), DirectoryURL: "http://127.0.0.1:1"}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := New(cfg); !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second client on the folder: err = %v, want ErrDataDirInUse", err)
	}
}

func TestNewDeliveryAndLane(t *testing.T) {
	d, finish := NewDelivery()
	if d.Err() != nil {
		t.Fatal("a new delivery has failed")
	}
	finish(ErrNoSURBs)
	if !errors.Is(d.Err(), ErrNoSURBs) {
		t.Fatalf("Err = %v", d.Err())
	}
	if Lane() != 0 || Lane(WithLane(7)) != 7 {
		t.Fatal("Lane does not read WithLane")
	}
}

// The inbox as a restart finds it: a released message whose stream position
// was not saved yet, and a later message held behind it.
func TestInboxReload(t *testing.T) {
	dir := t.TempDir()
	st, err := openState(filepath.Join(dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	// Stream 9: seq 1 arrived (key 1) before seq 0 (key 2); both were
	// released, seq 0 first. Then seq 3 arrived and waits for seq 2.
	stream := [streamIDSize]byte{9}
	tag := address.SenderTag{4}
	early := &inboxItem{key: 1, pos: streamPos{stream: stream, seq: 1}, msg: Message{Data: []byte("second"), SenderTag: &tag}}
	late := &inboxItem{key: 2, pos: streamPos{stream: stream, seq: 0}, msg: Message{Data: []byte("first")}}
	held := &inboxItem{key: 3, pos: streamPos{stream: stream, seq: 3}, msg: Message{Data: []byte("fourth")}}
	if err := st.saveInbox(early, nil); err != nil {
		t.Fatal(err)
	}
	late.released, early.released = 1, 2
	if err := st.saveInbox(late, []*inboxItem{late, early}); err != nil {
		t.Fatal(err)
	}
	if err := st.saveInbox(held, nil); err != nil {
		t.Fatal(err)
	}
	st.close()

	c, err := New(Config{DataDir: dir, DirectoryURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.ctx = context.Background()
	for _, want := range []string{"first", "second"} {
		m, err := c.Receive(context.Background())
		if err != nil || string(m.Data) != want {
			t.Fatalf("got %q, %v; want %q", m.Data, err, want)
		}
		if want == "second" && (m.SenderTag == nil || *m.SenderTag != tag) {
			t.Fatal("the sender tag was lost")
		}
	}
	left, err := c.state.loadInbox()
	if err != nil || len(left) != 1 || left[0].key != held.key || left[0].released != 0 {
		t.Fatalf("after Receive the inbox holds %d items, %v; want the held one", len(left), err)
	}
	if next := c.order.Snapshot()[stream]; next != 2 {
		t.Fatalf("stream position %d after the reload, want 2", next)
	}
	// The held message still waits for seq 2.
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if m, err := c.Receive(short); err == nil {
		t.Fatalf("the held message came out before its gap: %q", m.Data)
	}
}

// A pool's reserve is always below SURBs.Max, so that a pool refilled to
// its limit can send a retransmission: a reserve at or above the limit
// would park a retransmission for ever, asking again and again.
func TestSURBReserveBelowMax(t *testing.T) {
	for _, max := range []int{2, 3, 4, 7, 12, 13, 200} {
		c := &Client{cfg: Config{SURBs: SURBConfig{Max: max}}}
		if r := c.surbReserve(); r < 1 || r >= max || r > surbReserve {
			t.Errorf("Max %d: reserve %d, want 1 ≤ reserve < Max and ≤ %d", max, r, surbReserve)
		}
	}
}
