package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/internal/gwproto"
	"github.com/peapod-mixnet/peapod/mixnode"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// startMixnode starts a real mixnode of the given layer, registered with
// dir.
func startMixnode(t *testing.T, dir *testDirectory, layer int) *mixnode.Node {
	t.Helper()
	n, err := mixnode.New(mixnode.Config{
		ListenAddr:     "127.0.0.1:0",
		Layer:          layer,
		DataDir:        t.TempDir(),
		DirectoryURL:   dir.url,
		ReplayCapacity: 10000,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func mixHop(t *testing.T, n *mixnode.Node, delay time.Duration) sphinx.Hop {
	return sphinx.Hop{Address: nodeAddr(t, n.Addr()), PublicKey: n.SphinxKey(), Delay: delay}
}

// A data packet goes from client A through gateway A (entry), three real
// mixnodes and gateway B (exit) to client B, which gets the message
// intact; its SURB-ack goes on through three mixnodes to gateway A and
// reaches client A as an ack.
func TestEndToEndThroughMixnodes(t *testing.T) {
	dir := startDirectory(t)
	mixes := []*mixnode.Node{startMixnode(t, dir, 1), startMixnode(t, dir, 2), startMixnode(t, dir, 3)}
	waitUntil(t, "the mixnodes to register", func() bool { return len(dir.srv.Topology().Mixnodes) == 3 })
	gwA := startGateway(t, testConfig(t, t.TempDir(), dir, nil))
	gwB := startGateway(t, testConfig(t, t.TempDir(), dir, nil))
	top := dir.srv.Topology()
	for _, g := range []*Gateway{gwA, gwB} {
		if _, ok := top.Gateway(address.EncodeKey(g.Identity())); !ok {
			t.Fatal("a gateway is not in the topology after Start")
		}
	}
	alice, bob := newTestClient(), newTestClient()
	alice.register(t, gwA)
	bob.register(t, gwB)

	const d = time.Millisecond
	ackBody := []byte("iv+encrypted frag id!") // 21 bytes
	surbAck, err := sphinx.NewPacket(rand.Reader, sphinx.AckPacket,
		[]sphinx.Hop{mixHop(t, mixes[0], d), mixHop(t, mixes[1], d), mixHop(t, mixes[2], d), gatewayHop(t, gwA)},
		sphinx.Destination(alice.identity()), sphinx.SURBID{}, ackBody)
	if err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte("end-to-end encrypted fragment "), 40)
	payload, err := appendPayload(nil, mixes[0].Addr(), surbAck, secret)
	if err != nil {
		t.Fatal(err)
	}
	packet, err := sphinx.NewPacket(rand.Reader, sphinx.RegularPacket,
		[]sphinx.Hop{mixHop(t, mixes[0], d), mixHop(t, mixes[1], d), mixHop(t, mixes[2], d), gatewayHop(t, gwB)},
		sphinx.Destination(bob.identity()), sphinx.SURBID{}, payload)
	if err != nil {
		t.Fatal(err)
	}

	if err := alice.sess.Send(&gwproto.Forward{FirstHop: nodeAddr(t, mixes[0].Addr()), Packet: packet}); err != nil {
		t.Fatal(err)
	}
	got := bob.deliver(t)
	if got.Kind != gwproto.KindMessage || !bytes.Equal(got.Payload, secret) {
		t.Fatalf("bob got %v of %d bytes, want the message of %d bytes", got.Kind, len(got.Payload), len(secret))
	}
	bob.confirm(t, got.ID) // releases the SURB-ack
	ack := alice.deliver(t)
	if ack.Kind != gwproto.KindAck || !bytes.Equal(ack.Payload, ackBody) {
		t.Fatalf("alice got %v %q, want ack %q", ack.Kind, ack.Payload, ackBody)
	}
	alice.confirm(t, ack.ID)

	waitStats(t, gwB, "gateway B's ack", func(s Stats) bool { return s.AcksSent == 1 })
	if s := gwA.Stats(); s.ForwardedForClients != 1 || s.DeliveredLive != 1 {
		t.Fatalf("gateway A: %+v", s)
	}
	for _, m := range mixes {
		// The counter moves once the packet is flushed, which may be just
		// after the next hop has it.
		waitUntil(t, "each mixnode to forward the packet and its ack", func() bool { return m.Stats().Forwarded == 2 })
	}
}
