package gateway

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/internal/gwproto"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// A connected client gets a message at once; its SURB-ack goes out only
// after the client confirms it.
func TestLiveDeliveryAckAfterReceived(t *testing.T) {
	dir := startDirectory(t)
	mix := startSink(t, dir)
	g := startGateway(t, testConfig(t, t.TempDir(), dir, nil))
	c := newTestClient()
	c.register(t, g)

	ack := fakeAck(7)
	dialMix(t, g).send(t, dataPacket(t, g, c.identity(), mix.addr, ack, []byte("hello")))
	d := c.deliver(t)
	if d.Kind != gwproto.KindMessage || string(d.Payload) != "hello" {
		t.Fatalf("got %v %q, want message %q", d.Kind, d.Payload, "hello")
	}
	if s := g.Stats(); s.AcksSent != 0 || s.DeliveredLive != 1 || s.StoredMessages != 0 {
		t.Fatalf("before Received: %+v", s)
	}
	c.confirm(t, d.ID)
	if got := mix.next(t); !bytes.Equal(got, ack) {
		t.Fatal("the sink got something other than the SURB-ack")
	}
	waitStats(t, g, "the ack to be counted", func(s Stats) bool { return s.AcksSent == 1 && s.Confirmed == 1 })
}

// An ack packet's payload reaches the client whole, as KindAck, and sends
// nothing on.
func TestAckPacketDelivered(t *testing.T) {
	g := startGateway(t, testConfig(t, t.TempDir(), nil, nil))
	c := newTestClient()
	c.register(t, g)
	body := []byte("fragment-id-and-iv..!") // 21 bytes
	dialMix(t, g).send(t, ackPacket(t, g, c.identity(), body))
	d := c.deliver(t)
	if d.Kind != gwproto.KindAck || !bytes.Equal(d.Payload, body) {
		t.Fatalf("got %v %q, want ack %q", d.Kind, d.Payload, body)
	}
	c.confirm(t, d.ID)
	c.sync(t)
	if s := g.Stats(); s.AcksSent != 0 || s.Confirmed != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// Messages for an offline client are stored and acked after the commit;
// when it connects it gets them in pages, each deleted only once
// confirmed; a restart in between loses nothing.
func TestOfflineStoreThenPagesAcrossRestart(t *testing.T) {
	dir := startDirectory(t)
	mix := startSink(t, dir)
	data := t.TempDir()
	cfg := testConfig(t, data, dir, nil)
	cfg.PageSize = 3
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	c := newTestClient()
	c.register(t, g)
	c.disconnect()
	waitStats(t, g, "the client to leave", func(s Stats) bool { return s.ConnectedClients == 0 })

	const n = 7
	mc := dialMix(t, g)
	want := map[string]bool{}
	for i := range n {
		msg := fmt.Sprintf("stored message %d", i)
		want[msg] = true
		mc.send(t, dataPacket(t, g, c.identity(), mix.addr, fakeAck(byte(i)), []byte(msg)))
	}
	// Every ack arrives, and when it does, its message is on disk.
	for range n {
		ack := mix.next(t)
		msgs, err := g.store.page(c.identity(), n)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range msgs {
			found = found || want[string(m.payload)] && m.kind == gwproto.KindMessage && ack[0] < n
		}
		if !found {
			t.Fatal("an ack went out before its message was committed")
		}
	}
	waitStats(t, g, "every ack to be counted", func(s Stats) bool { return s.StoredMessages == n && s.Stored == n && s.AcksSent == n })

	// Restart on the same data folder.
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.MixListenAddr = g.MixAddr().String()
	g = startGateway(t, cfg)
	if s := g.Stats(); s.StoredMessages != n || s.RegisteredClients != 1 {
		t.Fatalf("after restart: %+v", s)
	}

	c.connect(t, g)
	got := map[string]bool{}
	remaining := n
	var seen []uint64
	for remaining > 0 {
		page := min(remaining, cfg.PageSize)
		var ids []uint64
		for range page {
			d := c.deliver(t)
			got[string(d.Payload)] = true
			ids = append(ids, d.ID)
		}
		// The next page waits for this one to be confirmed.
		if extra := c.sync(t); len(extra) != 0 {
			t.Fatalf("got %d more messages before confirming the page", len(extra))
		}
		if s := g.Stats(); s.StoredMessages != remaining {
			t.Fatalf("%d stored before confirming, want %d", s.StoredMessages, remaining)
		}
		seen = append(seen, ids...)
		c.confirm(t, ids...)
		remaining -= page
	}
	waitStats(t, g, "the last page to be deleted", func(s Stats) bool { return s.StoredMessages == 0 })
	if len(got) != n {
		t.Fatalf("got %d distinct messages, want %d", len(got), n)
	}
	for m := range want {
		if !got[m] {
			t.Fatalf("lost %q", m)
		}
	}
	slices.Sort(seen)
	if len(slices.Compact(seen)) != n {
		t.Fatal("ids are not unique")
	}
}

// A client that disconnects with messages unconfirmed finds them in the
// store, with the same ids, and their acks go out after the commit.
func TestDisconnectMovesPendingToStore(t *testing.T) {
	dir := startDirectory(t)
	mix := startSink(t, dir)
	g := startGateway(t, testConfig(t, t.TempDir(), dir, nil))
	c := newTestClient()
	c.register(t, g)
	dialMix(t, g).send(t, dataPacket(t, g, c.identity(), mix.addr, fakeAck(1), []byte("pending")))
	first := c.deliver(t)
	c.disconnect()
	mix.next(t) // the ack, once stored
	waitStats(t, g, "the ack to be counted", func(s Stats) bool { return s.StoredMessages == 1 && s.AcksSent == 1 })
	c.connect(t, g)
	again := c.deliver(t)
	if again.ID != first.ID || string(again.Payload) != "pending" {
		t.Fatalf("got %d %q, want %d %q", again.ID, again.Payload, first.ID, "pending")
	}
	c.confirm(t, again.ID)
	waitStats(t, g, "the message to be deleted", func(s Stats) bool { return s.StoredMessages == 0 })
	if s := g.Stats(); s.AcksSent != 1 {
		t.Fatalf("ack sent %d times", s.AcksSent)
	}
}

// A newer connection replaces the older one and inherits its unconfirmed
// messages.
func TestReplacementInheritsPending(t *testing.T) {
	dir := startDirectory(t)
	mix := startSink(t, dir)
	g := startGateway(t, testConfig(t, t.TempDir(), dir, nil))
	c := newTestClient()
	c.register(t, g)
	old := c.sess
	dialMix(t, g).send(t, dataPacket(t, g, c.identity(), mix.addr, fakeAck(1), []byte("inherited")))
	first := c.deliver(t)

	c.connect(t, g) // a second connection, same identity
	d := c.deliver(t)
	if d.ID != first.ID || string(d.Payload) != "inherited" {
		t.Fatalf("got %d %q on the new connection", d.ID, d.Payload)
	}
	old.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := old.Receive(); err == nil {
		t.Fatal("the replaced connection is still open")
	}
	if s := g.Stats(); s.ConnectedClients != 1 || s.StoredMessages != 0 {
		t.Fatalf("stats %+v", s)
	}
	c.confirm(t, d.ID)
	mix.next(t)
}

// Beyond MaxPendingPerClient, messages go through the store (acked after
// the commit) and still reach the connected client, a page at a time.
func TestPendingOverflowGoesThroughStore(t *testing.T) {
	dir := startDirectory(t)
	mix := startSink(t, dir)
	cfg := testConfig(t, t.TempDir(), dir, nil)
	cfg.MaxPendingPerClient = 2
	g := startGateway(t, cfg)
	c := newTestClient()
	c.register(t, g)
	const n = 5
	var packets [][]byte
	for i := range n {
		packets = append(packets, dataPacket(t, g, c.identity(), mix.addr, fakeAck(byte(i)), fmt.Appendf(nil, "m%d", i)))
	}
	dialMix(t, g).send(t, packets...)
	// The two live ones stay pending: the three stored ones are acked
	// after their commit.
	for range n - 2 {
		mix.next(t)
	}
	got := map[string]bool{}
	for range n {
		d := c.deliver(t)
		got[string(d.Payload)] = true
		c.confirm(t, d.ID)
	}
	if len(got) != n {
		t.Fatalf("got %d distinct messages, want %d", len(got), n)
	}
	for range 2 {
		mix.next(t) // the live ones, once confirmed
	}
	waitStats(t, g, "the store to empty", func(s Stats) bool {
		return s.StoredMessages == 0 && s.DeliveredLive == 2 && s.Stored == n-2 && s.DeliveredFromStore == n-2 && s.AcksSent == n
	})
}

// Expired messages are purged; younger ones stay.
func TestPurgeExpired(t *testing.T) {
	clock := &testClock{now: time.Now()}
	cfg := testConfig(t, t.TempDir(), nil, nil)
	cfg.Now = clock.Now
	cfg.MessageTTL = time.Hour
	g := startGateway(t, cfg)
	c := newTestClient()
	c.now = clock.Now
	c.register(t, g)
	c.disconnect()
	waitStats(t, g, "the client to leave", func(s Stats) bool { return s.ConnectedClients == 0 })

	mc := dialMix(t, g)
	mc.send(t, ackPacket(t, g, c.identity(), []byte("old")))
	waitStats(t, g, "the first message to be stored", func(s Stats) bool { return s.Stored == 1 })
	clock.Advance(40 * time.Minute)
	mc.send(t, ackPacket(t, g, c.identity(), []byte("young")))
	waitStats(t, g, "the second message to be stored", func(s Stats) bool { return s.Stored == 2 })
	clock.Advance(30 * time.Minute) // the first is 70 minutes old, the second 30

	if n, err := g.purge(); err != nil || n != 1 {
		t.Fatalf("purged %d (%v), want 1", n, err)
	}
	if s := g.Stats(); s.StoredMessages != 1 || s.Purged != 1 {
		t.Fatalf("stats %+v", s)
	}
	c.connect(t, g)
	if d := c.deliver(t); string(d.Payload) != "young" {
		t.Fatalf("got %q, want the young message", d.Payload)
	}
}

// A replayed packet is dropped; the client gets the message once.
func TestReplayDropped(t *testing.T) {
	g := startGateway(t, testConfig(t, t.TempDir(), nil, nil))
	c := newTestClient()
	c.register(t, g)
	p := ackPacket(t, g, c.identity(), []byte("once"))
	mc := dialMix(t, g)
	mc.send(t, p, p)
	c.deliver(t)
	waitStats(t, g, "the replay to be dropped", func(s Stats) bool { return s.Dropped[DropReplay] == 1 })
	if extra := c.sync(t); len(extra) != 0 {
		t.Fatalf("got the replayed message too")
	}
	if s := g.Stats(); s.Dropped[DropReplay] != 1 {
		t.Fatalf("replay drops %d, want 1", s.Dropped[DropReplay])
	}
}

// A packet the gateway processed before a restart on the same DataDir is
// dropped as a replay after it (the filter is saved by Close and loaded by
// New); a fresh packet is delivered.
func TestPacketReplayAfterRestart(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), nil, nil)
	cfg.ReplaySaveInterval = -1 // only Close saves
	g := startGateway(t, cfg)
	c := newTestClient()
	c.register(t, g)
	p := ackPacket(t, g, c.identity(), []byte("once"))
	dialMix(t, g).send(t, p)
	c.confirm(t, c.deliver(t).ID)
	c.sync(t)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}

	g = startGateway(t, cfg)
	c.connect(t, g)
	mc := dialMix(t, g)
	mc.send(t, p)
	waitStats(t, g, "the replay to be dropped", func(s Stats) bool { return s.Dropped[DropReplay] == 1 })
	mc.send(t, ackPacket(t, g, c.identity(), []byte("fresh")))
	if d := c.deliver(t); !bytes.HasPrefix(d.Payload, []byte("fresh")) {
		t.Fatalf("delivered %q, want the fresh packet", d.Payload)
	}
	if extra := c.sync(t); len(extra) != 0 {
		t.Fatalf("%d more messages: the replay got through", len(extra))
	}
}

func TestReplaySaveIntervalConfig(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), nil, nil)
	cfg.ReplaySaveInterval = time.Millisecond
	if _, err := New(cfg); err == nil || !strings.HasPrefix(err.Error(), "gateway: Config.ReplaySaveInterval") {
		t.Fatalf("a 1ms save interval: %v", err)
	}
	cfg.ReplaySaveInterval = 0
	if err := cfg.applyDefaults(); err != nil || cfg.ReplaySaveInterval != DefaultReplaySaveInterval {
		t.Fatalf("default save interval %v, %v", cfg.ReplaySaveInterval, err)
	}
}

// Packets the gateway must not deliver are dropped and counted by reason.
func TestExitDrops(t *testing.T) {
	dir := startDirectory(t)
	mix := startSink(t, dir)
	g := startGateway(t, testConfig(t, t.TempDir(), dir, nil))
	c := newTestClient()
	c.register(t, g)
	stranger := newTestClient()
	other := startSink(t, nil) // not in the topology

	tampered := dataPacket(t, g, c.identity(), mix.addr, fakeAck(1), []byte("x"))
	tampered[len(tampered)-1] ^= 1
	otherKey, _ := sphinx.GenerateKey(rand.Reader)
	wrongKey, _ := sphinx.NewPacket(rand.Reader, sphinx.AckPacket,
		[]sphinx.Hop{{Address: nodeAddr(t, g.MixAddr()), PublicKey: otherKey.PublicKey()}},
		sphinx.Destination(c.identity()), sphinx.SURBID{}, []byte("x"))
	notFinal, _ := sphinx.NewPacket(rand.Reader, sphinx.AckPacket,
		[]sphinx.Hop{gatewayHop(t, g), {Address: nodeAddr(t, mix.addr), PublicKey: otherKey.PublicKey()}},
		sphinx.Destination(c.identity()), sphinx.SURBID{}, []byte("x"))
	short, _ := sphinx.NewPacket(rand.Reader, sphinx.RegularPacket, []sphinx.Hop{gatewayHop(t, g)},
		sphinx.Destination(c.identity()), sphinx.SURBID{}, []byte("too short for a SURB-ack"))

	cases := []struct {
		reason DropReason
		packet []byte
	}{
		{DropUnknownClient, ackPacket(t, g, stranger.identity(), []byte("x"))},
		{DropAckHop, dataPacket(t, g, c.identity(), other.addr, fakeAck(1), []byte("x"))},
		{DropMalformedPayload, short},
		{DropNotFinal, notFinal},
		{DropAuthentication, wrongKey},
		{DropBadPacket, tampered},
	}
	mc := dialMix(t, g)
	for _, tc := range cases {
		mc.send(t, tc.packet)
	}
	s := waitStats(t, g, "every frame to be dropped", func(s Stats) bool {
		var n uint64
		for _, v := range s.Dropped {
			n += v
		}
		return n == uint64(len(cases))
	})
	for _, tc := range cases {
		if s.Dropped[tc.reason] != 1 {
			t.Errorf("%s drops: %d, want 1 (all: %v)", tc.reason, s.Dropped[tc.reason], s.Dropped)
		}
	}
	if got := c.sync(t); len(got) != 0 {
		t.Fatalf("the client got %d dropped messages", len(got))
	}
	if s.AcksSent != 0 || s.Stored != 0 || s.DeliveredLive != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A client's Forward reaches a layer-1 mixnode; one to any other address
// is refused with an Error and counted: the gateway is no open relay.
func TestForwardOnlyToLayer1(t *testing.T) {
	dir := startDirectory(t)
	mix := startSink(t, dir)
	g := startGateway(t, testConfig(t, t.TempDir(), dir, nil))
	late := startSink(t, dir) // registered after the gateway's first fetch
	other := startSink(t, nil)
	c := newTestClient()
	c.register(t, g)

	packet := bytes.Repeat([]byte{0xab}, sphinx.RegularPacket.Len())
	for _, to := range []*sink{mix, late} {
		if err := c.sess.Send(&gwproto.Forward{FirstHop: nodeAddr(t, to.addr), Packet: packet}); err != nil {
			t.Fatal(err)
		}
		if got := to.next(t); !bytes.Equal(got, packet) {
			t.Fatal("the mixnode got another packet")
		}
	}
	if err := c.sess.Send(&gwproto.Forward{FirstHop: nodeAddr(t, other.addr), Packet: packet}); err != nil {
		t.Fatal(err)
	}
	m := c.receive(t)
	if e, ok := m.(*gwproto.Error); !ok || e.Code != gwproto.CodeRefused {
		t.Fatalf("got %T %+v, want a refusal", m, m)
	}
	waitStats(t, g, "the forwards to be counted", func(s Stats) bool {
		return s.ForwardedForClients == 2 && s.Dropped[DropForwardRefused] == 1
	})
	select {
	case <-other.frames:
		t.Fatal("the gateway relayed a packet to a node outside layer 1")
	default:
	}
}

// Close moves unconfirmed live messages to the store, sends their acks and
// ends every goroutine; the messages are there after a restart.
func TestCloseFlushesPending(t *testing.T) {
	dir := startDirectory(t)
	mix := startSink(t, dir)
	data := t.TempDir()
	cfg := testConfig(t, data, dir, nil)
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	c := newTestClient()
	c.register(t, g)
	dialMix(t, g).send(t, dataPacket(t, g, c.identity(), mix.addr, fakeAck(5), []byte("in flight")))
	first := c.deliver(t)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if ack := mix.next(t); !bytes.Equal(ack, fakeAck(5)) {
		t.Fatal("wrong ack")
	}
	checkNoGoroutines(t, "gateway.(*Gateway)", "wire.(*Pool)")
	if err := g.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	g = startGateway(t, cfg)
	if s := g.Stats(); s.StoredMessages != 1 {
		t.Fatalf("%d stored after restart, want 1", s.StoredMessages)
	}
	c.connect(t, g)
	if d := c.deliver(t); d.ID != first.ID || string(d.Payload) != "in flight" {
		t.Fatalf("got %d %q", d.ID, d.Payload)
	}
}

// An ack hop that joined after the gateway's last fetch costs the first
// packet that names it (the exit path does not wait for the directory),
// and the gateway fetches the topology soon after, so that later packets
// get through.
func TestAckHopLearnedSoon(t *testing.T) {
	dir := startDirectory(t)
	g := startGateway(t, testConfig(t, t.TempDir(), dir, nil))
	late := startSink(t, dir)
	c := newTestClient()
	c.register(t, g)
	mc := dialMix(t, g)
	mc.send(t, dataPacket(t, g, c.identity(), late.addr, fakeAck(1), []byte("first")))
	waitUntil(t, "the gateway to learn the new mixnode", func() bool { return g.topo.known(late.addr) })
	mc.send(t, dataPacket(t, g, c.identity(), late.addr, fakeAck(2), []byte("second")))
	firstDelivered := false
	for {
		d := c.deliver(t)
		if string(d.Payload) == "second" {
			break
		}
		firstDelivered = true // on a machine slow enough that the gap had passed
	}
	if dropped := g.Stats().Dropped[DropAckHop]; (dropped == 1) == firstDelivered {
		t.Fatalf("first packet: delivered %v, dropped %d times", firstDelivered, dropped)
	}
}

// A client's inbox holds at most MaxStoredPerClient messages and the store
// at most MaxStored: beyond them a message is dropped without an ack (its
// sender retransmits), a reopened store counts what it holds, and room
// comes back as the client takes its messages.
func TestStoreQuotas(t *testing.T) {
	dir := startDirectory(t)
	mix := startSink(t, dir)
	cfg := testConfig(t, t.TempDir(), dir, nil)
	cfg.MaxStoredPerClient, cfg.MaxStored = 3, 5
	g := startGateway(t, cfg)
	a, b := newTestClient(), newTestClient()
	for _, c := range []*testClient{a, b} {
		c.register(t, g)
		c.disconnect()
	}
	waitStats(t, g, "the clients to leave", func(s Stats) bool { return s.ConnectedClients == 0 })

	mc := dialMix(t, g)
	send := func(c *testClient, i int) {
		mc.send(t, dataPacket(t, g, c.identity(), mix.addr, fakeAck(byte(i)), fmt.Appendf(nil, "message %d", i)))
	}
	full := func(s Stats) uint64 { return s.Dropped[DropStoreFull] }
	for i := range 4 { // the fourth is over a's quota
		send(a, i)
	}
	waitStats(t, g, "a's fourth message to be refused", func(s Stats) bool { return s.StoredMessages == 3 && full(s) == 1 })
	for i := range 3 { // the third is over the store's
		send(b, 10+i)
	}
	waitStats(t, g, "b's third message to be refused", func(s Stats) bool { return s.StoredMessages == 5 && full(s) == 2 })
	for range 5 {
		mix.next(t) // one ack for each stored message
	}
	// The sink can read the last ack before the gateway counts it.
	waitStats(t, g, "5 acks counted", func(s Stats) bool { return s.AcksSent >= 5 })
	if s := g.Stats(); s.AcksSent != 5 {
		t.Fatalf("%d acks sent, want 5 (none for the refused messages)", s.AcksSent)
	}

	// A restart counts the inboxes again.
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.MixListenAddr = g.MixAddr().String()
	g = startGateway(t, cfg)
	mc = dialMix(t, g)
	send(a, 4)
	waitStats(t, g, "a's message to be refused after the restart", func(s Stats) bool { return full(s) == 1 })

	// a takes its messages: room again.
	a.connect(t, g)
	var ids []uint64
	for range 3 {
		ids = append(ids, a.deliver(t).ID)
	}
	a.confirm(t, ids...)
	waitStats(t, g, "a's inbox to empty", func(s Stats) bool { return s.StoredMessages == 2 })
	a.disconnect()
	waitStats(t, g, "a to leave", func(s Stats) bool { return s.ConnectedClients == 0 })
	send(a, 5)
	waitStats(t, g, "a's next message to be stored", func(s Stats) bool { return s.StoredMessages == 3 && full(s) == 1 })
}
