package client

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestConversationAcrossRotations runs a network whose keys rotate every
// two epochs of five seconds. a sends b one message with 40 SURBs, then a
// message every 200 ms with none; b replies to each on the SURBs it holds,
// made before the rotations that follow, for two rotations. Every reply
// arrives, in order: b drops the SURBs whose keys expire, and asks a for
// fresh ones before they do.
func TestConversationAcrossRotations(t *testing.T) {
	const epoch = 5 * time.Second
	n := startTestNet(t, netOptions{epoch: epoch, rotationEpochs: 2})
	a := startClient(t, testConfig(t, n, 0))
	cb := testConfig(t, n, 1)
	cb.Logger = cb.Logger.Level(zerolog.DebugLevel)
	b := startClient(t, cb)
	ctx := timeout(t, 2*time.Minute)
	sched := n.Directory().Schedule()
	start := sched.RotationAt(time.Now())
	if _, err := a.SendAnonymous(ctx, b.Address(), []byte("q 0"), 40); err != nil {
		t.Fatal(err)
	}
	var ds []*Delivery
	for i := 0; sched.RotationAt(time.Now()) < start+2; i++ {
		q := receive(t, ctx, b)
		if want := fmt.Sprintf("q %d", i); string(q.Data) != want || q.SenderTag == nil {
			t.Fatalf("b got %q (tag %v), want %q", q.Data, q.SenderTag, want)
		}
		d, err := b.Reply(ctx, *q.SenderTag, fmt.Appendf(nil, "a %d", i))
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		ds = append(ds, d)
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		m, err := a.Receive(rctx)
		cancel()
		if err != nil {
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			t.Fatalf("reply %d (made in epoch %d, rotation %d): %v; its delivery: %v", i, sched.Epoch(time.Now()), sched.RotationAt(time.Now()), err, d.Wait(wctx))
		}
		if string(m.Data) != fmt.Sprintf("a %d", i) {
			t.Fatalf("reply %d: a got %q", i, m.Data)
		}
		time.Sleep(200 * time.Millisecond)
		if _, err := a.SendAnonymous(ctx, b.Address(), fmt.Appendf(nil, "q %d", i+1), 0); err != nil {
			t.Fatal(err)
		}
	}
	for i, d := range ds {
		if err := d.Wait(ctx); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
	}
	t.Logf("%d replies over rotations %d to %d", len(ds), start, sched.RotationAt(time.Now()))
}
