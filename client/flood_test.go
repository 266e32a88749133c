package client

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client/internal/fragment"
	"github.com/peapod-mixnet/peapod/gateway"
)

// Attacks on what a client takes from the mixnet before it knows who sent
// it (fragments, incomplete messages) and on what it keeps for its app,
// over a real local network. Anyone who knows an address can send to it.

// rawFragment is a hand-made fragment that fills a packet.
func rawFragment(set int32, total, index uint8, prev, next int32) fragment.Fragment {
	f := fragment.Fragment{SetID: set, Total: total, Index: index, PreviousSetID: prev, NextSetID: next}
	f.Payload = make([]byte, FragmentCapacity-f.HeaderLen())
	return f
}

// sendRaw sends hand-made fragments from c to to, as a modified client
// would, and waits until the recipient's gateway has acknowledged them.
func sendRaw(t *testing.T, ctx context.Context, c *Client, to address.Address, frags []fragment.Fragment) {
	t.Helper()
	d, err := c.queueFragments(ctx, target{to: to}, frags, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(ctx); err != nil {
		t.Fatalf("hand-made fragments: %v", err)
	}
}

// waitReceived waits until c has taken n data packets from its gateway.
func waitReceived(t *testing.T, ctx context.Context, c *Client, n uint64) {
	t.Helper()
	waitUntil(t, ctx, fmt.Sprintf("%d packets to reach the victim", n), func() bool { return c.Stats().Received >= n })
}

// A sender decides the fragment counts a recipient is told, so it can claim
// sets of 255 fragments and send one, or chain sets without end. The
// victim holds at most MaxIncompleteBytes for incomplete messages however
// many such sets come, drops a message as soon as its fragments name more
// than a message of MaxMessageSize takes, and still gets the messages of
// others, whole. Before MaxMessageSize and MaxIncompleteBytes the chain was
// kept (about 400 KB here) and the limit on incomplete messages was a fixed
// 64 MiB.
func TestAbsurdFragmentCounts(t *testing.T) {
	n := startTestNet(t, netOptions{})
	vcfg := testConfig(t, n, 0)
	const maxMessage, maxIncomplete = 16 << 10, 256 << 10
	vcfg.MaxMessageSize = maxMessage
	vcfg.MaxIncompleteBytes = maxIncomplete
	vcfg.MaxGapWait = time.Second // the dropped messages leave gaps in their sender's stream
	victim := startClient(t, vcfg)
	attacker := startClient(t, testConfig(t, n, 1))
	regular := startClient(t, testConfig(t, n, 1))
	ctx := timeout(t, 2*time.Minute)
	checkBound := func(when string) {
		t.Helper()
		if s := victim.Stats(); s.IncompleteBytes > maxIncomplete {
			t.Fatalf("%s: %d bytes held for incomplete messages, bound %d", when, s.IncompleteBytes, maxIncomplete)
		}
	}

	// A chain of 40 sets of 255, of which only the links are sent: fragment
	// 255 of set i names set i+1, fragment 1 of set i+1 names set i.
	const chain = 40
	var links []fragment.Fragment
	for i := range int32(chain) {
		links = append(links, rawFragment(1000+i, 255, 255, 0, 1001+i), rawFragment(1001+i, 255, 1, 1000+i, 0))
	}
	sendRaw(t, ctx, attacker, victim.Address(), links)
	waitReceived(t, ctx, victim, uint64(len(links)))
	checkBound("after a chain of 40 sets")
	waitUntil(t, ctx, "the chain to be refused", func() bool { return victim.Stats().TooLong >= 1 })

	// 100 sets that claim 255 fragments and send one (about 8 KB held each).
	for batch := range 10 {
		var claims []fragment.Fragment
		for i := range int32(10) {
			claims = append(claims, rawFragment(5000+int32(batch)*10+i, 255, 1, 0, 0))
		}
		sendRaw(t, ctx, attacker, victim.Address(), claims)
		checkBound(fmt.Sprintf("after %d sets of one fragment", (batch+1)*10))
	}
	waitReceived(t, ctx, victim, uint64(len(links)+100))
	checkBound("after 100 sets of one fragment")
	waitUntil(t, ctx, "incomplete messages to be dropped for memory", func() bool { return victim.Stats().IncompleteDropped > 0 })

	// Others still get through: a message of MaxMessageSize arrives whole.
	full := bytes.Repeat([]byte("x"), maxMessage)
	if _, err := regular.Send(ctx, victim.Address(), full); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, ctx, victim); !bytes.Equal(m.Data, full) {
		t.Fatalf("a message of MaxMessageSize: got %d bytes", len(m.Data))
	}
	checkBound("after a regular message")

	// A sender with a larger bound: a message whose data is too large,
	// although its fragments are not too many (the bound on those leaves
	// room for a message's SURBs), is dropped whole; the message after it
	// still comes, once the victim stops waiting for the one dropped.
	before := victim.Stats()
	if _, err := regular.Send(ctx, victim.Address(), make([]byte, maxMessage+1)); err != nil {
		t.Fatal(err)
	}
	if _, err := regular.Send(ctx, victim.Address(), []byte("after")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, ctx, victim); string(m.Data) != "after" {
		t.Fatalf("got %d bytes, want the short message after the one too large", len(m.Data))
	}
	if s := victim.Stats(); s.BadMessages != before.BadMessages+1 {
		t.Fatalf("bad messages %d → %d; want one more", before.BadMessages, s.BadMessages)
	}
	checkBound("at the end")

	// The victim's own sends are held to the same bound, with a clear error.
	_, err := victim.Send(ctx, regular.Address(), make([]byte, maxMessage+1))
	if err == nil || !strings.Contains(err.Error(), "MaxMessageSize") {
		t.Fatalf("sending more than MaxMessageSize: %v", err)
	}
}

// A client whose app takes nothing holds at most InboxBytes (and one
// message) of received messages in memory and in its data folder; the rest
// wait at its gateway and come, in order and whole, once the app reads.
// Before InboxBytes the client read on until it held InboxSize (4096)
// messages of any size.
func TestInboxBytesBound(t *testing.T) {
	// The gateway hands the victim at most 16 packets it has not confirmed
	// and keeps the rest in its store.
	n := startTestNet(t, netOptions{configureGateway: func(_ int, g *gateway.Config) { g.MaxPendingPerClient = 16 }})
	vcfg := testConfig(t, n, 0)
	const inboxBytes, size, count = 64 << 10, 16 << 10, 20
	vcfg.InboxBytes = inboxBytes
	victim := startClient(t, vcfg)
	sender := startClient(t, testConfig(t, n, 1))
	ctx := timeout(t, 2*time.Minute)

	var sent [][]byte
	for i := range count {
		m := bytes.Repeat([]byte{byte(i)}, size)
		sent = append(sent, m)
		if _, err := sender.Send(ctx, victim.Address(), m); err != nil {
			t.Fatal(err)
		}
	}
	perMessage, err := fragment.FragmentCount(size+1+streamIDSize+seqSize, FragmentCapacity)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, "the victim to stop reading", func() bool {
		s := victim.Stats()
		if s.InboxBytes > inboxBytes+size {
			t.Fatalf("%d bytes of messages held, bound %d and one message", s.InboxBytes, inboxBytes)
		}
		if s.Received == uint64(count*perMessage) {
			t.Fatalf("the victim read all %d messages (%d bytes held) although its app took none", count, s.InboxBytes)
		}
		return s.InboxFull
	})
	if s := victim.Stats(); s.InboxBytes < inboxBytes || s.InboxBytes > inboxBytes+size {
		t.Fatalf("stopped reading with %d bytes held, want %d to %d", s.InboxBytes, inboxBytes, inboxBytes+size)
	}
	// Every message arrives, whole. Not always in order: while the client
	// reads nothing, a message whose fragments wait at the gateway can
	// stay missing longer than the ordering layer waits for a gap (30 s;
	// on a loaded machine this happens), and is then handed over late.
	got := make(map[byte]bool)
	for range sent {
		m := receive(t, ctx, victim)
		if len(m.Data) != size || !bytes.Equal(m.Data, sent[m.Data[0]%count]) || got[m.Data[0]] {
			t.Fatalf("got %d bytes starting %x, want one of the %d messages of %d bytes, each once", len(m.Data), m.Data[:1], count, size)
		}
		got[m.Data[0]] = true
	}
	if s := victim.Stats(); s.InboxBytes != 0 || s.InboxFull {
		t.Fatalf("after reading everything: %d bytes held, full %v", s.InboxBytes, s.InboxFull)
	}
}
