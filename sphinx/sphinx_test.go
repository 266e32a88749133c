package sphinx

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// testNode is a node of a test route.
type testNode struct {
	key  *PrivateKey
	proc *Processor
	hop  Hop
}

// newTestRoute makes n nodes with fresh keys and replay filters.
func newTestRoute(t testing.TB, n int) []testNode {
	t.Helper()
	nodes := make([]testNode, n)
	for i := range nodes {
		k, err := GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		addr, err := NewNodeAddress(netip.MustParseAddrPort(fmt.Sprintf("10.0.0.%d:%d", i+1, 1789+i)))
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = testNode{
			key:  k,
			proc: NewProcessor(k, NewReplayFilter(1000, 1e-5)),
			hop:  Hop{Address: addr, PublicKey: k.PublicKey(), Delay: time.Duration(i+1) * time.Millisecond},
		}
	}
	return nodes
}

func hopsOf(nodes []testNode) []Hop {
	hops := make([]Hop, len(nodes))
	for i, n := range nodes {
		hops[i] = n.hop
	}
	return hops
}

// traverse processes pkt through every node and returns the final result,
// checking every forward result on the way.
func traverse(t testing.TB, nodes []testNode, pkt []byte) Result {
	t.Helper()
	for i, n := range nodes {
		res, err := n.proc.Process(nil, pkt)
		if err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
		if i == len(nodes)-1 {
			if !res.Final {
				t.Fatalf("hop %d: last hop did not get a final result", i)
			}
			return res
		}
		if res.Final {
			t.Fatalf("hop %d: final result before the last hop", i)
		}
		if res.NextHop != nodes[i+1].hop.Address {
			t.Fatalf("hop %d: next hop %v, want %v", i, res.NextHop, nodes[i+1].hop.Address)
		}
		if res.Delay != n.hop.Delay {
			t.Fatalf("hop %d: delay %v, want %v", i, res.Delay, n.hop.Delay)
		}
		if len(res.Packet) != len(pkt) {
			t.Fatalf("hop %d: packet size changed from %d to %d", i, len(pkt), len(res.Packet))
		}
		pkt = res.Packet
	}
	panic("unreachable")
}

func TestRoundTripEverySizeAndLength(t *testing.T) {
	for hops := 1; hops <= MaxHops; hops++ {
		for _, size := range PacketSizes {
			t.Run(fmt.Sprintf("%d-hops/%v", hops, size), func(t *testing.T) {
				nodes := newTestRoute(t, hops)
				var dest Destination
				var id SURBID
				rand.Read(dest[:])
				rand.Read(id[:])
				for _, msgLen := range []int{0, 1, size.PlaintextLen() / 2, size.PlaintextLen()} {
					msg := make([]byte, msgLen)
					rand.Read(msg)
					pkt, err := NewPacket(rand.Reader, size, hopsOf(nodes), dest, id, msg)
					if err != nil {
						t.Fatal(err)
					}
					if len(pkt) != size.Len() {
						t.Fatalf("packet is %d bytes, want %d", len(pkt), size.Len())
					}
					res := traverse(t, nodes, pkt)
					if res.Destination != dest || res.SURBID != id {
						t.Fatal("destination or SURB id changed")
					}
					if !bytes.Equal(res.Payload, msg) {
						t.Fatalf("payload of %d bytes came back different", msgLen)
					}
				}
			})
		}
	}
}

func TestPacketSizes(t *testing.T) {
	want := map[PacketSize]int{
		RegularPacket: 2413, AckPacket: 386, Extended8Packet: 8557, Extended16Packet: 16749, Extended32Packet: 33133,
	}
	for s, n := range want {
		if s.Len() != n {
			t.Errorf("%v: %d bytes, want %d", s, s.Len(), n)
		}
		if got, ok := SizeOf(n); !ok || got != s {
			t.Errorf("SizeOf(%d) = %v, %v", n, got, ok)
		}
	}
	if HeaderSize != 348 || PayloadOverhead != 17 {
		t.Fatalf("header %d, payload overhead %d", HeaderSize, PayloadOverhead)
	}
	if RegularPacket.PlaintextLen() != 2048 || AckPacket.PlaintextLen() != 21 {
		t.Fatal("plaintext lengths differ from Nym's")
	}
}

func TestMessageTooLong(t *testing.T) {
	nodes := newTestRoute(t, 3)
	_, err := NewPacket(rand.Reader, AckPacket, hopsOf(nodes), Destination{}, SURBID{}, make([]byte, 22))
	if !errors.Is(err, ErrMessageTooLong) {
		t.Fatalf("err = %v, want ErrMessageTooLong", err)
	}
}

func TestBadRoutes(t *testing.T) {
	nodes := newTestRoute(t, 6)
	for _, route := range [][]Hop{nil, hopsOf(nodes)} {
		if _, err := NewPacket(rand.Reader, RegularPacket, route, Destination{}, SURBID{}, nil); !errors.Is(err, ErrRoute) {
			t.Errorf("%d hops: err = %v, want ErrRoute", len(route), err)
		}
	}
	hops := hopsOf(nodes[:3])
	hops[1].PublicKey = PublicKey{} // small order: u = 0
	if _, err := NewPacket(rand.Reader, RegularPacket, hops, Destination{}, SURBID{}, nil); !errors.Is(err, ErrRoute) {
		t.Errorf("small-order key: err = %v, want ErrRoute", err)
	}
	hops = hopsOf(nodes[:3])
	hops[2].PublicKey[31] |= 0x80
	if _, err := NewPacket(rand.Reader, RegularPacket, hops, Destination{}, SURBID{}, nil); !errors.Is(err, ErrRoute) {
		t.Errorf("non-canonical key: err = %v, want ErrRoute", err)
	}
}

func TestProcessInPlace(t *testing.T) {
	nodes := newTestRoute(t, 4)
	msg := []byte("in place")
	pkt, err := NewPacket(rand.Reader, RegularPacket, hopsOf(nodes), Destination{1}, SURBID{}, msg)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		res, err := n.proc.Process(pkt[:0], pkt)
		if err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
		if res.Final {
			if !bytes.Equal(res.Payload, msg) {
				t.Fatal("payload differs")
			}
			return
		}
		if &res.Packet[0] != &pkt[0] {
			t.Fatal("in-place processing wrote elsewhere")
		}
	}
	t.Fatal("no final result")
}

func TestReplayRefused(t *testing.T) {
	nodes := newTestRoute(t, 3)
	pkt, err := NewPacket(rand.Reader, RegularPacket, hopsOf(nodes), Destination{}, SURBID{}, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	first, err := nodes[0].proc.Process(nil, pkt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].proc.Process(nil, pkt); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: err = %v, want ErrReplay", err)
	}
	// The replay tag is what identifies it: the same packet gives the same tag.
	fresh := NewProcessor(nodes[0].key, nil)
	again, err := fresh.Process(nil, pkt)
	if err != nil {
		t.Fatal(err)
	}
	if again.ReplayTag != first.ReplayTag {
		t.Fatal("the same packet gave two replay tags")
	}
}

func TestWrongKeyFailsAuthentication(t *testing.T) {
	nodes := newTestRoute(t, 3)
	pkt, err := NewPacket(rand.Reader, RegularPacket, hopsOf(nodes), Destination{}, SURBID{}, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 0, len(pkt))
	if _, err := nodes[1].proc.Process(dst, pkt); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("err = %v, want ErrAuthentication", err)
	}
	if !bytes.Equal(dst[:cap(dst)], make([]byte, cap(dst))) {
		t.Fatal("failed processing left output behind")
	}
}

// TestWipedKeyPeelsNothing checks that a wiped key no longer peels the
// packets made for it (forward secrecy once a node wipes an expired key),
// while its public half is still readable.
func TestWipedKeyPeelsNothing(t *testing.T) {
	nodes := newTestRoute(t, 1)
	pkt, err := NewPacket(rand.Reader, RegularPacket, hopsOf(nodes), Destination{}, SURBID{}, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	key := nodes[0].proc.Key()
	pub := key.PublicKey()
	key.Wipe()
	if !bytes.Equal(key.Bytes(), make([]byte, KeySize)) {
		t.Fatal("Wipe left private key bytes")
	}
	if key.PublicKey() != pub {
		t.Fatal("Wipe changed the public key")
	}
	if _, err := nodes[0].proc.Process(nil, pkt); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("a wiped key: err = %v, want ErrAuthentication", err)
	}
}

func TestBadSize(t *testing.T) {
	nodes := newTestRoute(t, 1)
	for _, n := range []int{0, 1, HeaderSize, RegularPacket.Len() - 1, RegularPacket.Len() + 1} {
		if _, err := nodes[0].proc.Process(nil, make([]byte, n)); !errors.Is(err, ErrPacketSize) {
			t.Errorf("%d bytes: err = %v, want ErrPacketSize", n, err)
		}
	}
}

// No 16-byte window of what a node receives appears in what it sends on.
func TestUnlinkability(t *testing.T) {
	nodes := newTestRoute(t, 5)
	msg := make([]byte, 1000) // a zero message is the worst case for leaks
	pkt, err := NewPacket(rand.Reader, RegularPacket, hopsOf(nodes), Destination{}, SURBID{}, msg)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes[:len(nodes)-1] {
		res, err := n.proc.Process(nil, pkt)
		if err != nil {
			t.Fatal(err)
		}
		windows := make(map[[16]byte]bool, len(pkt))
		for j := 0; j+16 <= len(pkt); j++ {
			windows[[16]byte(pkt[j:j+16])] = true
		}
		for j := 0; j+16 <= len(res.Packet); j++ {
			if windows[[16]byte(res.Packet[j:j+16])] {
				t.Fatalf("hop %d: output bytes %d..%d appear in its input", i, j, j+16)
			}
		}
		pkt = res.Packet
	}
}

// Any single flipped bit of the header makes processing fail at that hop; a
// flipped payload bit is detected at the destination.
func TestTagging(t *testing.T) {
	nodes := newTestRoute(t, 3)
	hops := hopsOf(nodes)
	pkt, err := NewPacket(rand.Reader, AckPacket, hops, Destination{}, SURBID{}, []byte("tag"))
	if err != nil {
		t.Fatal(err)
	}
	fresh := func() *Processor { return NewProcessor(nodes[0].key, NewReplayFilter(10, 1e-5)) }
	for bit := 0; bit < HeaderSize*8; bit++ {
		tampered := bytes.Clone(pkt)
		tampered[bit/8] ^= 1 << (bit % 8)
		if _, err := fresh().Process(nil, tampered); !errors.Is(err, ErrAuthentication) {
			t.Fatalf("header bit %d flipped: err = %v, want ErrAuthentication", bit, err)
		}
	}
	r := mrand.New(mrand.NewPCG(1, 2))
	for range 200 {
		bit := HeaderSize*8 + r.IntN((len(pkt)-HeaderSize)*8)
		tampered := bytes.Clone(pkt)
		tampered[bit/8] ^= 1 << (bit % 8)
		cur := tampered
		var err error
		for i, n := range nodes {
			var res Result
			res, err = NewProcessor(n.key, nil).Process(nil, cur)
			if i < len(nodes)-1 {
				if err != nil {
					t.Fatalf("payload bit %d: intermediate hop %d failed: %v", bit, i, err)
				}
				cur = res.Packet
			}
		}
		if !errors.Is(err, ErrPayload) {
			t.Fatalf("payload bit %d flipped: final err = %v, want ErrPayload", bit, err)
		}
	}
}

func TestSURBRoundTrip(t *testing.T) {
	for hops := 1; hops <= MaxHops; hops++ {
		nodes := newTestRoute(t, hops)
		dest := Destination{7}
		id := SURBID{9}
		surb, err := NewSURB(rand.Reader, hopsOf(nodes), dest, id)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := surb.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(enc) != 16+348+32+16*hops {
			t.Fatalf("%d-hop SURB is %d bytes, want %d", hops, len(enc), 16+348+32+16*hops)
		}
		held, rest, err := ParseSURB(append(enc, 0xAA), hops)
		if err != nil {
			t.Fatal(err)
		}
		if len(rest) != 1 || rest[0] != 0xAA {
			t.Fatal("ParseSURB did not return the bytes after the SURB")
		}
		if held.FirstHop != nodes[0].hop.Address {
			t.Fatal("first hop lost")
		}
		content := []byte("the reply")
		sealed := SealReply(nil, &held.Key, content)
		pkt, err := held.NewPacket(RegularPacket, sealed)
		if err != nil {
			t.Fatal(err)
		}
		res := traverse(t, nodes, pkt)
		if res.Destination != dest || res.SURBID != id {
			t.Fatal("SURB destination or id lost")
		}
		opened, err := OpenReply(nil, &surb.Key, res.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(opened, content) {
			t.Fatal("reply content differs")
		}
		var other ReplyKey
		if _, err := OpenReply(nil, &other, res.Payload); !errors.Is(err, ErrReply) {
			t.Fatalf("wrong key: err = %v, want ErrReply", err)
		}
		// Using the SURB again is refused at its first hop.
		again, err := held.NewPacket(RegularPacket, sealed)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nodes[0].proc.Process(nil, again); !errors.Is(err, ErrReplay) {
			t.Fatalf("SURB reuse: err = %v, want ErrReplay", err)
		}
	}
}

func TestParseSURBRejects(t *testing.T) {
	nodes := newTestRoute(t, 4)
	surb, err := NewSURB(rand.Reader, hopsOf(nodes), Destination{}, SURBID{})
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := surb.AppendBinary(nil)
	if _, _, err := ParseSURB(enc[:len(enc)-1], 4); !errors.Is(err, ErrSURB) {
		t.Errorf("truncated: err = %v", err)
	}
	if _, _, err := ParseSURB(enc, 0); !errors.Is(err, ErrSURB) {
		t.Errorf("0 hops: err = %v", err)
	}
	bad := bytes.Clone(enc)
	bad[ReplyKeySize+HeaderSize] = 9 // unknown address family
	if _, _, err := ParseSURB(bad, 4); !errors.Is(err, ErrSURB) {
		t.Errorf("bad first hop: err = %v", err)
	}
}

func TestNodeAddress(t *testing.T) {
	for _, s := range []string{"127.0.0.1:1789", "[::1]:9000", "[2001:db8::7]:65535", "0.0.0.0:0"} {
		a, err := ParseNodeAddress(s)
		if err != nil {
			t.Fatal(err)
		}
		ap, err := a.AddrPort()
		if err != nil || ap.String() != s {
			t.Fatalf("%s round-tripped to %v, %v", s, ap, err)
		}
	}
	a, _ := ParseNodeAddress("1.2.3.4:258")
	want := NodeAddress{4, 1, 2, 1, 2, 3, 4}
	if a != want {
		t.Fatalf("encoding %x, want %x", a, want)
	}
	a[20] = 1
	if _, err := a.AddrPort(); err == nil {
		t.Fatal("non-zero padding accepted")
	}
	if _, err := ParseNodeAddress("example.com:80"); err == nil {
		t.Fatal("host name accepted")
	}
}
