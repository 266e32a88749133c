package client

import (
	"context"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/peapod-mixnet/peapod/address"
)

// Attacks on what a replier keeps per anonymous sender, over a real local
// network: an attacker client picks a fresh sender tag for every message,
// which costs it nothing.

// freshTag makes c pick a new sender tag for its next anonymous message to
// to, as an attacker would.
func freshTag(c *Client, to address.Address) {
	c.mu.Lock()
	delete(c.tags, to)
	c.mu.Unlock()
}

// storedSURBs counts the SURBs in c's data folder, and their senders.
func storedSURBs(t *testing.T, c *Client) (surbs, senders int) {
	t.Helper()
	tags := map[address.SenderTag]bool{}
	err := c.state.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSURBs).ForEach(func(k, _ []byte) error {
			surbs++
			tags[address.SenderTag(k[:address.SenderTagSize])] = true
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return surbs, len(tags)
}

// replyStreams counts c's reply streams (one per sender it replied to).
func replyStreams(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k := range c.streams {
		if len(k) > 6 && k[:6] == "reply:" {
			n++
		}
	}
	return n
}

// However many sender tags an attacker uses, the victim keeps at most
// SURBs.MaxSenders pools and SURBs.MaxHeld SURBs, in memory and on disk;
// the senders it hears from least recently go first, so a sender that keeps
// writing keeps its pool and gets its replies.
//
// The regular sender writes after every second attack message, so at most
// three attacker pools are newer than its own (up to 10 SURBs) when the
// victim has to drop one. In "pools" the pool bound binds (an attacker pool
// holds 7 SURBs after the reply: 10 + 3 × 7 fit in 40); in "SURBs" the SURB
// bound does (11 each: 10 + 3 × 11 fit in 45, a fourth does not, and 16
// pools are never reached).
func TestSenderTagFlood(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		maxSenders, maxHeld   int
		attackSURBs           int
		wantSenders, wantHeld int // the bound that binds, reached at the end
	}{
		{name: "pools", maxSenders: 4, maxHeld: 40, attackSURBs: 8, wantSenders: 4},
		{name: "SURBs", maxSenders: 16, maxHeld: 45, attackSURBs: 12, wantHeld: 45 - 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := startTestNet(t, netOptions{})
			vcfg := testConfig(t, n, 0)
			vcfg.SURBs = SURBConfig{Min: 2, Max: 10, MaxSenders: tc.maxSenders, MaxHeld: tc.maxHeld}
			victim := startClient(t, vcfg)
			attacker := startClient(t, testConfig(t, n, 1))
			regular := startClient(t, testConfig(t, n, 1))
			ctx := timeout(t, 2*time.Minute)
			tagFlood(t, ctx, victim, attacker, regular, tc.attackSURBs, tc.maxSenders, tc.maxHeld)
			s := victim.Stats()
			if tc.wantSenders > 0 && s.SURBSenders != tc.wantSenders {
				t.Errorf("%d senders held at the end, want the bound %d", s.SURBSenders, tc.wantSenders)
			}
			if s.SURBsHeld < tc.wantHeld {
				t.Errorf("%d SURBs held at the end, want at least %d (near the bound %d)", s.SURBsHeld, tc.wantHeld, tc.maxHeld)
			}
		})
	}
}

// tagFlood sends victim 24 messages of attacker, each with a fresh tag and
// attackSURBs SURBs, and a message of regular after every second one;
// victim replies to every attack message. It checks the bounds after each
// round, and that the regular sender still gets a reply at the end.
func tagFlood(t *testing.T, ctx context.Context, victim, attacker, regular *Client, attackSURBs, maxSenders, maxHeld int) {
	t.Helper()
	const attacks = 24
	var regularTag address.SenderTag
	for i := range attacks {
		freshTag(attacker, victim.Address())
		if _, err := attacker.SendAnonymous(ctx, victim.Address(), fmt.Appendf(nil, "attack %d", i), attackSURBs); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if _, err := regular.SendAnonymous(ctx, victim.Address(), fmt.Appendf(nil, "regular %d", i), 3); err != nil {
				t.Fatal(err)
			}
		}
		// The victim replies to every attacker message, as a provider
		// does; its reply streams must not outlive the pools.
		for range 1 + boolInt(i%2 == 0) {
			m := receive(t, ctx, victim)
			if m.SenderTag == nil {
				t.Fatalf("message %q without a sender tag", m.Data)
			}
			if string(m.Data[:7]) == "regular" {
				regularTag = *m.SenderTag
				continue
			}
			if _, err := victim.Reply(ctx, *m.SenderTag, []byte("ok")); err != nil {
				t.Fatalf("replying to %q: %v", m.Data, err)
			}
		}
		s := victim.Stats()
		if s.SURBsHeld > maxHeld || s.SURBSenders > maxSenders {
			t.Fatalf("after %d attack messages: %d SURBs of %d senders held, bound %d of %d", i+1, s.SURBsHeld, s.SURBSenders, maxHeld, maxSenders)
		}
		if surbs, senders := storedSURBs(t, victim); surbs > maxHeld+attackSURBs || senders > maxSenders+1 {
			t.Fatalf("after %d attack messages: %d SURBs of %d senders on disk, bound %d of %d (and one message's)", i+1, surbs, senders, maxHeld, maxSenders)
		}
		if r := replyStreams(victim); r > maxSenders {
			t.Fatalf("after %d attack messages: %d reply streams kept, bound %d", i+1, r, maxSenders)
		}
	}
	if victim.SURBCount(regularTag) == 0 {
		t.Fatal("the regular sender's SURBs were evicted although it kept writing")
	}
	if _, err := victim.Reply(ctx, regularTag, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	for {
		if m := receive(t, ctx, regular); string(m.Data) == "still here" {
			break
		}
	}
}

// SURBs older than SURBs.Lifetime are dropped while the client runs, from
// memory and disk, with their pool.
func TestSURBsExpireByAge(t *testing.T) {
	n := startTestNet(t, netOptions{})
	vcfg := testConfig(t, n, 0)
	vcfg.SURBs = SURBConfig{Lifetime: 2 * time.Second}
	victim := startClient(t, vcfg)
	sender := startClient(t, testConfig(t, n, 1))
	ctx := timeout(t, time.Minute)
	if _, err := sender.SendAnonymous(ctx, victim.Address(), []byte("hello"), 5); err != nil {
		t.Fatal(err)
	}
	m := receive(t, ctx, victim)
	if got := victim.SURBCount(*m.SenderTag); got != 5 {
		t.Fatalf("%d SURBs held after the message, want 5", got)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := victim.Stats()
		surbs, _ := storedSURBs(t, victim)
		if s.SURBsHeld == 0 && s.SURBSenders == 0 && surbs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after a 2 s lifetime: %d SURBs of %d senders held, %d on disk", s.SURBsHeld, s.SURBSenders, surbs)
		}
		time.Sleep(100 * time.Millisecond) // the client's once-a-second clean-up has no signal
	}
	if _, err := victim.Reply(ctx, *m.SenderTag, []byte("late")); err == nil {
		t.Fatal("a reply on expired SURBs was accepted")
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// takeRawSURB takes one SURB of tag's pool out of c, for a test to use by
// hand.
func takeRawSURB(t *testing.T, c *Client, tag address.SenderTag) *storedSURB {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pools[tag]
	if p == nil || len(p.surbs) == 0 {
		t.Fatal("no SURB left to take")
	}
	s := p.surbs[0]
	p.surbs = p.surbs[1:]
	c.surbsHeld--
	return &s
}

// storedReplyKeys counts the reply keys in c's data folder.
func storedReplyKeys(t *testing.T, c *Client) int {
	t.Helper()
	n := 0
	if err := c.state.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketKeys).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// A recipient that asks an anonymous sender for SURBs again and again
// makes it keep at most SURBs.Max + 2 × SURBs.MaxRequest reply keys for
// that recipient, in memory and on disk: the oldest go first.
func TestRecipientCannotMakeSenderHoardKeys(t *testing.T) {
	n := startTestNet(t, netOptions{})
	scfg := testConfig(t, n, 0)
	scfg.SURBs = SURBConfig{Min: 2, Max: 20, MaxRequest: 50}
	bound := scfg.SURBs.Max + 2*scfg.SURBs.MaxRequest
	sender := startClient(t, scfg)
	// The greedy recipient keeps as many SURBs as the sender assumes.
	gcfg := testConfig(t, n, 1)
	gcfg.SURBs = SURBConfig{Min: 2, Max: scfg.SURBs.Max}
	greedy := startClient(t, gcfg)
	ctx := timeout(t, 2*time.Minute)
	if _, err := sender.SendAnonymous(ctx, greedy.Address(), []byte("hi"), 10); err != nil {
		t.Fatal(err)
	}
	m := receive(t, ctx, greedy)
	const asks = 5
	for i := range asks {
		before := greedy.SURBCount(*m.SenderTag)
		s := takeRawSURB(t, greedy, *m.SenderTag)
		if err := greedy.sendUntracked(s.surb, surbRequestMessage(greedy.Address(), 1000)); err != nil {
			t.Fatal(err)
		}
		// The answer (MaxRequest SURBs) arrives at the greedy recipient;
		// the sender answers one request a second.
		waitUntil(t, ctx, fmt.Sprintf("answer %d", i), func() bool { return greedy.SURBCount(*m.SenderTag) > before-1 })
		time.Sleep(requestCopyWindow) // the sender answers one request per window; nothing signals its end
	}
	sender.mu.Lock()
	held := sender.replyKeys.len()
	sender.mu.Unlock()
	if held > bound || storedReplyKeys(t, sender) > bound {
		t.Fatalf("after %d requests for SURBs: %d reply keys held, %d on disk; bound %d", asks, held, storedReplyKeys(t, sender), bound)
	}
	if held < bound {
		t.Fatalf("%d reply keys held after %d answers of %d: the answers did not all come", held, asks, scfg.SURBs.MaxRequest)
	}
	// The newest keys still open replies.
	if _, err := greedy.Reply(ctx, *m.SenderTag, []byte("reply")); err != nil {
		t.Fatal(err)
	}
	if r := receive(t, ctx, sender); string(r.Data) != "reply" {
		t.Fatalf("reply %q", r.Data)
	}
}

// waitUntil polls cond until it holds or ctx ends, for state that signals
// nothing.
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
