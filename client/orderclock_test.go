package client

import (
	"context"
	"testing"
	"time"
)

// While the app takes nothing and the inbox is full, the client reads
// nothing from its gateway, so a message missing from a sender's stream may
// be waiting there: the gap wait stands still, and the gap is not skipped
// however long the app stays away. Once the app reads again the wait runs
// on from where it stopped. While the inbox is full only of messages that
// wait for a gap, the wait runs, since only its end can free the room.
func TestGapWaitStopsWhileAppAway(t *testing.T) {
	const gapWait = 200 * time.Millisecond
	c, err := New(Config{DataDir: t.TempDir(), DirectoryURL: "http://127.0.0.1:1", InboxBytes: 10, MaxGapWait: gapWait})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.ctx = context.Background()
	ctx := timeout(t, 10*time.Second)
	stream := [streamIDSize]byte{7}
	msg := func(seq uint64, data string) {
		c.ordered(streamPos{stream: stream, seq: seq}, Message{Data: []byte(data)})
	}
	msg(0, "zero-0000") // released: the app's to take
	msg(2, "two-22222") // waits for seq 1; the inbox is full (18 bytes)

	// The link's reader finds the inbox full and waits (as deliver does).
	waited := make(chan bool, 1)
	go func() { waited <- c.waitInboxRoom() }()
	waitUntil(t, ctx, "the reader to find the inbox full", func() bool { return c.Stats().InboxFull })

	// The app stays away for many gap waits.
	c.expire(time.Now().Add(10 * gapWait))
	if s := c.Stats(); s.OrderSkipped != 0 || s.OrderHeld != 1 {
		t.Fatalf("while the app was away: %d skipped, %d held; want 0 and 1", s.OrderSkipped, s.OrderHeld)
	}
	// The app reads; the reader goes on; the wait runs on from where it
	// stopped, so half a wait later the gap still waits.
	m, err := c.Receive(context.Background())
	if err != nil || string(m.Data) != "zero-0000" {
		t.Fatalf("got %q, %v", m.Data, err)
	}
	if !<-waited {
		t.Fatal("the reader did not go on")
	}
	c.expire(time.Now().Add(gapWait / 2))
	if s := c.Stats(); s.OrderSkipped != 0 || s.OrderHeld != 1 || s.InboxFull {
		t.Fatalf("after the app read: %d skipped, %d held, full %v; want 0, 1, false", s.OrderSkipped, s.OrderHeld, s.InboxFull)
	}
	// The missing message comes: both in order.
	msg(1, "one-11111")
	for _, want := range []string{"one-11111", "two-22222"} {
		if m, err := c.Receive(context.Background()); err != nil || string(m.Data) != want {
			t.Fatalf("got %q, %v; want %q", m.Data, err, want)
		}
	}

	// Now the inbox fills with messages that all wait for seq 3: the wait
	// runs, and its end hands them over.
	msg(4, "four-4444")
	msg(5, "five-5555")
	go func() { waited <- c.waitInboxRoom() }()
	waitUntil(t, ctx, "the reader to find the inbox full", func() bool { return c.Stats().InboxFull })
	c.expire(time.Now().Add(2 * gapWait))
	if s := c.Stats(); s.OrderSkipped != 1 || s.OrderHeld != 0 {
		t.Fatalf("inbox full of held messages: %d skipped, %d held; want 1 and 0", s.OrderSkipped, s.OrderHeld)
	}
	for _, want := range []string{"four-4444", "five-5555"} {
		if m, err := c.Receive(context.Background()); err != nil || string(m.Data) != want {
			t.Fatalf("got %q, %v; want %q", m.Data, err, want)
		}
	}
	if !<-waited {
		t.Fatal("the reader did not go on")
	}
}
