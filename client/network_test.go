package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
)

// Tests of the client over a real local network (real sockets between the
// directory, mixnodes, gateways and clients), with zero mix delay and cover
// traffic off so that they run fast.

func testConfig(t testing.TB, n *testNet, gw int) Config {
	return Config{
		DataDir: t.TempDir(), DirectoryURL: n.dirURL, NoDelay: true,
		Gateway: address.EncodeKey(n.gateway(gw).Identity()),
		Cover:   CoverConfig{Disabled: true},
		Logger:  zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}
}

func startClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func receive(t *testing.T, ctx context.Context, c *Client) Message {
	t.Helper()
	m, err := c.Receive(ctx)
	if err != nil {
		t.Fatalf("receiving: %v", err)
	}
	return m
}

// noMoreMessages checks that c receives nothing more for two seconds.
func noMoreMessages(t *testing.T, ctx context.Context, c *Client) {
	t.Helper()
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if m, err := c.Receive(short); err == nil {
		t.Fatalf("an extra message: %q", m.Data)
	}
}

func TestSendToSelf(t *testing.T) {
	n := startTestNet(t, netOptions{})
	c := startClient(t, testConfig(t, n, 0))
	ctx := timeout(t, 30*time.Second)
	d, err := c.Send(ctx, c.Address(), []byte("hello self"))
	if err != nil {
		t.Fatal(err)
	}
	if m := receive(t, ctx, c); string(m.Data) != "hello self" || m.SenderTag != nil {
		t.Fatalf("got %q (tag %v)", m.Data, m.SenderTag)
	}
	if err := d.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSendToAnotherClientInOrder(t *testing.T) {
	n := startTestNet(t, netOptions{})
	a := startClient(t, testConfig(t, n, 0))
	b := startClient(t, testConfig(t, n, 1))
	ctx := timeout(t, 60*time.Second)
	var ds []*Delivery
	for i := range 20 {
		d, err := a.Send(ctx, b.Address(), fmt.Appendf(nil, "message %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	for i := range 20 {
		if m := receive(t, ctx, b); string(m.Data) != fmt.Sprintf("message %d", i) {
			t.Fatalf("message %d: got %q", i, m.Data)
		}
	}
	for _, d := range ds {
		if err := d.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFiveMegabyteMessage(t *testing.T) {
	n := startTestNet(t, netOptions{})
	a := startClient(t, testConfig(t, n, 0))
	b := startClient(t, testConfig(t, n, 1))
	ctx := timeout(t, 5*time.Minute)
	big := make([]byte, 5<<20)
	rand.Read(big)
	d, err := a.Send(ctx, b.Address(), big)
	if err != nil {
		t.Fatal(err)
	}
	if m := receive(t, ctx, b); !bytes.Equal(m.Data, big) {
		t.Fatalf("received %d bytes, not the %d sent", len(m.Data), len(big))
	}
	if err := d.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAnonymousSendAndReply(t *testing.T) {
	n := startTestNet(t, netOptions{})
	a := startClient(t, testConfig(t, n, 0))
	b := startClient(t, testConfig(t, n, 1))
	ctx := timeout(t, 60*time.Second)
	if _, err := a.SendAnonymous(ctx, b.Address(), []byte("who am I?"), 12); err != nil {
		t.Fatal(err)
	}
	q := receive(t, ctx, b)
	if string(q.Data) != "who am I?" || q.SenderTag == nil {
		t.Fatalf("got %q with tag %v", q.Data, q.SenderTag)
	}
	d, err := b.Reply(ctx, *q.SenderTag, []byte("nobody knows"))
	if err != nil {
		t.Fatal(err)
	}
	if r := receive(t, ctx, a); string(r.Data) != "nobody knows" || r.SenderTag != nil {
		t.Fatalf("reply %q with tag %v", r.Data, r.SenderTag)
	}
	if err := d.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// One reply used one SURB (and one more for each retransmission, which
	// a loaded machine can cause) and asked for no more: a one-off reply
	// does not cost the sender a batch of SURBs.
	st := b.Stats()
	if got, want := b.SURBCount(*q.SenderTag), 11-int(st.Retransmits); got != want || st.SURBRequests != 0 {
		t.Fatalf("the replier holds %d SURBs after one reply (%d retransmissions), want %d; it asked for more %d times, want 0", got, st.Retransmits, want, st.SURBRequests)
	}
}

// A replier that sends more replies than it was given SURBs for asks for
// more and gets every reply through, in order.
func TestSURBTopUp(t *testing.T) {
	replyBurst(t, startTestNet(t, netOptions{}), 3, 40)
}

// replyBurst has a send b one anonymous message with surbs SURBs, and b
// answer it replies times at once; every reply must be delivered and
// arrive, in order. It returns the replier.
func replyBurst(t *testing.T, n *testNet, surbs, replies int) *Client {
	t.Helper()
	a := startClient(t, testConfig(t, n, 0))
	b := startClient(t, testConfig(t, n, 1))
	ctx := timeout(t, 2*time.Minute)
	if _, err := a.SendAnonymous(ctx, b.Address(), []byte("talk to me"), surbs); err != nil {
		t.Fatal(err)
	}
	q := receive(t, ctx, b)
	if q.SenderTag == nil {
		t.Fatal("no sender tag")
	}
	var ds []*Delivery
	for i := range replies {
		d, err := b.Reply(ctx, *q.SenderTag, fmt.Appendf(nil, "reply %d", i))
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		ds = append(ds, d)
	}
	for i, d := range ds {
		if err := d.Wait(ctx); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
	}
	for i := range replies {
		if m := receive(t, ctx, a); string(m.Data) != fmt.Sprintf("reply %d", i) {
			t.Fatalf("reply %d: got %q", i, m.Data)
		}
	}
	return b
}

// With a mixnode that drops a fifth of what it gets, every message still
// arrives, once, in order.
func TestLossyMixnode(t *testing.T) {
	n := startTestNet(t, netOptions{dropRate: 0.2})
	a := startClient(t, testConfig(t, n, 0))
	b := startClient(t, testConfig(t, n, 1))
	ctx := timeout(t, 2*time.Minute)
	const count = 40
	for i := range count {
		if _, err := a.Send(ctx, b.Address(), fmt.Appendf(nil, "lossy %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range count {
		if m := receive(t, ctx, b); string(m.Data) != fmt.Sprintf("lossy %d", i) {
			t.Fatalf("message %d: got %q", i, m.Data)
		}
	}
	if a.Stats().Retransmits == 0 {
		t.Fatal("no retransmission: the lossy mixnode dropped nothing?")
	}
	// Nothing more comes: no duplicate reached the app.
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if m, err := b.Receive(short); err == nil {
		t.Fatalf("an extra message arrived: %q", m.Data)
	}
}

// Messages for an offline client wait at its gateway, also across a restart
// of the gateway, and arrive in order when it comes back.
func TestOfflineRecipient(t *testing.T) {
	n := startTestNet(t, netOptions{})
	a := startClient(t, testConfig(t, n, 0))
	bcfg := testConfig(t, n, 1)
	b := startClient(t, bcfg)
	baddr := b.Address()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := timeout(t, 2*time.Minute)
	const count = 10
	for i := range count {
		d, err := a.Send(ctx, baddr, fmt.Appendf(nil, "while away %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	n.stopGateway(1)
	n.restartGateway(1)
	b = startClient(t, bcfg)
	if b.Address() != baddr {
		t.Fatal("the address changed across a restart")
	}
	for i := range count {
		if m := receive(t, ctx, b); string(m.Data) != fmt.Sprintf("while away %d", i) {
			t.Fatalf("message %d: got %q", i, m.Data)
		}
	}
}

// When the gateway goes away, the client reconnects by itself and sends what
// was queued meanwhile.
func TestReconnectKeepsQueuedMessages(t *testing.T) {
	n := startTestNet(t, netOptions{})
	a := startClient(t, testConfig(t, n, 0))
	b := startClient(t, testConfig(t, n, 1))
	ctx := timeout(t, 2*time.Minute)
	n.stopGateway(0)
	var ds []*Delivery
	for i := range 5 {
		d, err := a.Send(ctx, b.Address(), fmt.Appendf(nil, "queued %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	n.restartGateway(0)
	for i := range 5 {
		if m := receive(t, ctx, b); string(m.Data) != fmt.Sprintf("queued %d", i) {
			t.Fatalf("message %d: got %q", i, m.Data)
		}
	}
	for _, d := range ds {
		if err := d.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if a.Stats().Reconnects == 0 {
		t.Fatal("the client never reconnected")
	}
}

// A recipient that restarts neither loses its place in a sender's stream
// (the next message arrives at once, not after the gap wait) nor gets an old
// message again.
func TestRecipientRestartKeepsOrder(t *testing.T) {
	n := startTestNet(t, netOptions{})
	a := startClient(t, testConfig(t, n, 0))
	bcfg := testConfig(t, n, 1)
	bcfg.MaxGapWait = time.Minute
	b := startClient(t, bcfg)
	ctx := timeout(t, 40*time.Second)
	for i := range 3 {
		if _, err := a.Send(ctx, b.Address(), fmt.Appendf(nil, "before %d", i)); err != nil {
			t.Fatal(err)
		}
		if m := receive(t, ctx, b); string(m.Data) != fmt.Sprintf("before %d", i) {
			t.Fatalf("got %q", m.Data)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = startClient(t, bcfg)
	if _, err := a.Send(ctx, b.Address(), []byte("after")); err != nil {
		t.Fatal(err)
	}
	// Well within the minute a gap would wait.
	quick, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if m := receive(t, quick, b); string(m.Data) != "after" {
		t.Fatalf("got %q after the restart", m.Data)
	}
}

// SURBs a replier holds and reply keys a sender holds both survive restarts.
func TestRepliesSurviveRestarts(t *testing.T) {
	n := startTestNet(t, netOptions{})
	acfg, bcfg := testConfig(t, n, 0), testConfig(t, n, 1)
	a := startClient(t, acfg)
	b := startClient(t, bcfg)
	ctx := timeout(t, 60*time.Second)
	if _, err := a.SendAnonymous(ctx, b.Address(), []byte("ask"), 4); err != nil {
		t.Fatal(err)
	}
	q := receive(t, ctx, b)
	if q.SenderTag == nil {
		t.Fatal("no sender tag")
	}
	tag := *q.SenderTag
	if b.SURBCount(tag) != 4 {
		t.Fatalf("replier holds %d SURBs, want 4", b.SURBCount(tag))
	}
	// Both restart: the replier must still hold the SURBs, the sender the
	// keys to open what comes back on them.
	a.Close()
	b.Close()
	b = startClient(t, bcfg)
	if b.SURBCount(tag) != 4 {
		t.Fatalf("after a restart the replier holds %d SURBs, want 4", b.SURBCount(tag))
	}
	a = startClient(t, acfg)
	if _, err := b.Reply(ctx, tag, []byte("answer after restarts")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, ctx, a); string(m.Data) != "answer after restarts" {
		t.Fatalf("got %q", m.Data)
	}
}

// Messages that reached the client but were not taken by the app survive a
// restart of the client, in order and once.
func TestUnreadMessagesSurviveRestart(t *testing.T) {
	n := startTestNet(t, netOptions{})
	a := startClient(t, testConfig(t, n, 0))
	bcfg := testConfig(t, n, 1)
	b := startClient(t, bcfg)
	ctx := timeout(t, 60*time.Second)
	for i := range 3 {
		d, err := a.Send(ctx, b.Address(), fmt.Appendf(nil, "unread %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Delivered to b's inbox (and so confirmed to its gateway), never read.
	for b.Stats().Delivered < 3 {
		select {
		case <-ctx.Done():
			t.Fatal("the messages never reached the inbox")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = startClient(t, bcfg)
	for i := range 3 {
		if m := receive(t, ctx, b); string(m.Data) != fmt.Sprintf("unread %d", i) {
			t.Fatalf("message %d after the restart: %q", i, m.Data)
		}
	}
	noMoreMessages(t, ctx, b)
}

// Messages taken with ReceiveKept but not forgotten come again after a
// restart, in order; a forgotten one does not.
func TestKeptMessagesComeBackUntilForgotten(t *testing.T) {
	n := startTestNet(t, netOptions{})
	a := startClient(t, testConfig(t, n, 0))
	bcfg := testConfig(t, n, 1)
	b := startClient(t, bcfg)
	ctx := timeout(t, 60*time.Second)
	for i := range 3 {
		if _, err := a.Send(ctx, b.Address(), fmt.Appendf(nil, "kept %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var kept []Message
	for i := range 3 {
		m, err := b.ReceiveKept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Data) != fmt.Sprintf("kept %d", i) {
			t.Fatalf("message %d: %q", i, m.Data)
		}
		kept = append(kept, m)
	}
	b.Forget(kept[0])
	b.Forget(kept[0]) // twice does nothing
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = startClient(t, bcfg)
	for i := 1; i < 3; i++ {
		if m := receive(t, ctx, b); string(m.Data) != fmt.Sprintf("kept %d", i) {
			t.Fatalf("after the restart: got %q, want %q", m.Data, fmt.Sprintf("kept %d", i))
		}
	}
	noMoreMessages(t, ctx, b)
}

// Under loss on every mixnode, a replier that was given ten SURBs and
// answers 25 times gets every reply through: it asks for more before a
// burst empties its pool, on several SURBs at once, again while replies
// wait, and retransmissions leave SURBs to ask with.
func TestSURBTopUpUnderLoss(t *testing.T) {
	b := replyBurst(t, startTestNet(t, netOptions{dropEverywhere: 0.1}), 10, 25)
	if st := b.Stats(); st.Retransmits == 0 {
		t.Error("nothing was retransmitted: the loss did not happen")
	}
	b.mu.Lock()
	cost := b.replyCost.perFragment()
	b.mu.Unlock()
	if cost <= 1 {
		t.Errorf("the replier expects a reply fragment to spend %v SURBs after retransmitting under loss, want more than 1", cost)
	}
}

// A long reply on a few SURBs asks for enough SURBs for all of its fragments
// at once, as Nym's reply controller sizes a request by its pending queue:
// one request (and a retry or two if the answer is slow), not one per batch
// of SURBs.Request.
func TestLongReplyAsksOnce(t *testing.T) {
	n := startTestNet(t, netOptions{})
	a := startClient(t, testConfig(t, n, 0))
	b := startClient(t, testConfig(t, n, 1))
	ctx := timeout(t, 2*time.Minute)
	if _, err := a.SendAnonymous(ctx, b.Address(), []byte("send me a lot"), 5); err != nil {
		t.Fatal(err)
	}
	q := receive(t, ctx, b)
	long := bytes.Repeat([]byte("long reply "), 100*FragmentCapacity/11)
	frags := len(long)/FragmentCapacity + 1
	d, err := b.Reply(ctx, *q.SenderTag, long)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, ctx, a); !bytes.Equal(m.Data, long) {
		t.Fatalf("got %d bytes, want the %d-byte reply", len(m.Data), len(long))
	}
	perBatch := b.cfg.SURBs.Request
	if got := b.Stats().SURBRequests; got > 3 || frags <= 4*perBatch {
		t.Fatalf("%d requests for SURBs for a reply of %d fragments (a request per batch of %d would be %d)", got, frags, perBatch, frags/perBatch)
	}
}
