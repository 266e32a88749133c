package fragment

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// checkInvariants checks the Reassembler's bookkeeping against its contents.
func checkInvariants(t testing.TB, r *Reassembler) {
	t.Helper()
	if err := r.invariants(); err != nil {
		t.Fatal(err)
	}
}

func (r *Reassembler) invariants() error {
	seen := map[*pendingMessage]bool{}
	total, count, sets := 0, 0, 0
	var prev *pendingMessage
	for m := r.oldest; m != nil; m = m.newer {
		if seen[m] {
			return fmt.Errorf("message list has a loop")
		}
		seen[m] = true
		if m.older != prev {
			return fmt.Errorf("message list: broken back link")
		}
		prev = m
		count++
		total += m.cost
		sets += len(m.sets)
		complete, heads, unresolved, fragments, payload, cost := 0, 0, 0, 0, 0, 0
		for _, s := range m.sets {
			if r.sets[s.id] != s || s.msg != m {
				return fmt.Errorf("set %d: not indexed under its message", s.id)
			}
			received := 0
			for _, p := range s.payloads {
				if p != nil {
					received++
					payload += len(p)
					cost += len(p)
				}
			}
			if received != s.received {
				return fmt.Errorf("set %d: received %d, counted %d", s.id, received, s.received)
			}
			if received == s.total() {
				complete++
			}
			if s.prevKnown && s.prev == 0 {
				heads++
			}
			if s.prevKnown && s.prev != 0 && !s.prevResolved {
				unresolved++
			}
			if s.nextKnown && s.next != 0 && !s.nextResolved {
				unresolved++
			}
			fragments += s.total()
			cost += setBaseCost + fragmentSlotCost*s.total()
		}
		if complete != m.complete || heads != m.heads || unresolved != m.unresolved ||
			fragments != m.fragments || payload != m.payload || cost != m.cost {
			return fmt.Errorf("message counters: complete %d/%d heads %d/%d unresolved %d/%d fragments %d/%d payload %d/%d cost %d/%d",
				complete, m.complete, heads, m.heads, unresolved, m.unresolved, fragments, m.fragments, payload, m.payload, cost, m.cost)
		}
		if m.ready() {
			return fmt.Errorf("a ready message is still pending")
		}
	}
	if prev != r.newest {
		return fmt.Errorf("message list: newest is wrong")
	}
	if total != r.bytes || count != r.messages || sets != len(r.sets) {
		return fmt.Errorf("totals: bytes %d/%d messages %d/%d sets %d/%d", total, r.bytes, count, r.messages, sets, len(r.sets))
	}
	if r.bytes > r.cfg.MaxPendingBytes {
		return fmt.Errorf("pending bytes %d above the bound %d", r.bytes, r.cfg.MaxPendingBytes)
	}
	if len(r.done.ring) > r.done.capacity || len(r.done.ids) != len(r.done.ring) {
		return fmt.Errorf("completed ids: ring %d, map %d, capacity %d", len(r.done.ring), len(r.done.ids), r.done.capacity)
	}
	return nil
}

type sent struct {
	msg  int
	frag Fragment
}

// TestReassemblerLossDuplicatesReorder is the property test: several
// messages of random sizes, their fragments shuffled together, some lost and
// retransmitted in a later round, some duplicated. Every message must come
// out once, intact, and duplicates after delivery must be ignored.
func TestReassemblerLossDuplicatesReorder(t *testing.T) {
	for seed := range uint64(60) {
		rng := seeded(seed)
		capacity := MinCapacity + rng.IntN(40)
		u := capacity - UnlinkedHeaderLen
		var messages [][]byte
		var pending []sent
		for i := range 1 + rng.IntN(4) {
			size := rng.IntN(4 * 255 * u)
			if rng.IntN(3) == 0 {
				size = rng.IntN(3 * u)
			}
			msg := randomMessage(rng, size)
			frags, err := Split(msg, capacity, prngReader{rng})
			if err != nil {
				t.Fatal(err)
			}
			messages = append(messages, msg)
			for _, f := range frags {
				pending = append(pending, sent{i, f})
			}
		}
		all := append([]sent(nil), pending...)

		r := NewReassembler(Config{})
		delivered := make([]int, len(messages))
		now := t0
		add := func(s sent) {
			got, complete, err := r.Add(now, reparse(t, s.frag))
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			if complete {
				delivered[s.msg]++
				if !bytes.Equal(got, messages[s.msg]) {
					t.Fatalf("seed %d: message %d came out different", seed, s.msg)
				}
			}
		}
		inOrder := seed%3 == 0 // the first round as a sender sends: message by message
		for round := 0; len(pending) > 0; round++ {
			if round > 0 || !inOrder {
				rng.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
			}
			var lost, dups []sent
			for _, s := range pending {
				if rng.IntN(10) < 3 {
					lost = append(lost, s)
					continue
				}
				add(s)
				if rng.IntN(10) == 0 {
					dups = append(dups, s)
				}
			}
			for _, s := range dups {
				add(s)
			}
			checkInvariants(t, r)
			pending = lost
			now = now.Add(time.Second)
		}
		for i, n := range delivered {
			if n != 1 {
				t.Fatalf("seed %d: message %d delivered %d times", seed, i, n)
			}
		}
		// Late copies of every fragment: all ignored.
		before := r.Stats()
		for _, s := range all {
			add(s)
		}
		after := r.Stats()
		if after.PendingSets != 0 || after.Delivered != before.Delivered ||
			after.Duplicates != before.Duplicates+uint64(len(all)) {
			t.Fatalf("seed %d: late duplicates changed state: %+v -> %+v", seed, before, after)
		}
	}
}

// splitN splits a message of size bytes at capacity with a seeded source.
func splitN(t testing.TB, seed uint64, size, capacity int) ([]byte, []Fragment) {
	t.Helper()
	rng := seeded(seed)
	msg := randomMessage(rng, size)
	frags, err := Split(msg, capacity, prngReader{rng})
	if err != nil {
		t.Fatal(err)
	}
	return msg, frags
}

func mustAdd(t *testing.T, r *Reassembler, now time.Time, f Fragment) ([]byte, bool) {
	t.Helper()
	msg, complete, err := r.Add(now, f)
	if err != nil {
		t.Fatalf("Add(%v): %v", f.ID(), err)
	}
	checkInvariants(t, r)
	return msg, complete
}

func TestReassemblerMemoryBound(t *testing.T) {
	const capacity = 100
	// Three fragments a message; two of them cost 160 + 3*24 + 2*93 = 418.
	cfg := Config{MaxPendingBytes: 900}
	r := NewReassembler(cfg)
	msgs := make([][]byte, 3)
	frags := make([][]Fragment, 3)
	for i := range msgs {
		msgs[i], frags[i] = splitN(t, uint64(10+i), 250, capacity)
		if len(frags[i]) != 3 {
			t.Fatalf("%d fragments, want 3", len(frags[i]))
		}
	}
	for i := range msgs {
		mustAdd(t, r, t0, frags[i][0])
		mustAdd(t, r, t0, frags[i][1])
	}
	st := r.Stats()
	if st.DroppedForMemory != 1 || st.PendingMessages != 2 || st.PendingBytes != 836 {
		t.Fatalf("after three partial messages: %+v", st)
	}
	// The oldest (message 0) went; message 1 still completes.
	if got, complete := mustAdd(t, r, t0, frags[1][2]); !complete || !bytes.Equal(got, msgs[1]) {
		t.Fatal("message 1 did not complete")
	}
	if _, complete := mustAdd(t, r, t0, frags[0][2]); complete {
		t.Fatal("message 0 completed although its first fragments were dropped")
	}

	// A message larger than the bound never fits: it is dropped while it
	// grows and memory stays bounded.
	r = NewReassembler(cfg)
	_, big := splitN(t, 20, 2000, capacity)
	for _, f := range big {
		if _, complete := mustAdd(t, r, t0, f); complete {
			t.Fatal("a message above the memory bound completed")
		}
	}
	if st := r.Stats(); st.DroppedForMemory == 0 || st.PendingBytes > cfg.MaxPendingBytes {
		t.Fatalf("big message: %+v", st)
	}
}

// A message whose fragments name more fragments than a message of
// MaxMessageLen takes is dropped as soon as they do (a set's total, or the
// sets its links join), whatever order its fragments come in; its other
// fragments are then ignored and nothing of it is held.
func TestReassemblerMessageLength(t *testing.T) {
	const capacity = 100 // 93 payload bytes a fragment
	for _, tc := range []struct {
		name           string
		maxLen         int
		okLen, longLen int
		reverse        bool
	}{
		// 3 fragments carry 250 bytes and the marker; 280 bytes take 4.
		{name: "one set", maxLen: 250, okLen: 250, longLen: 280},
		// A chain of three sets (600 fragments) against a limit of about
		// 300: refused when the second set joins the first.
		{name: "chain", maxLen: 300 * 93, okLen: 300 * 93, longLen: 600 * 93},
		{name: "chain, last set first", maxLen: 300 * 93, okLen: 300 * 93, longLen: 600 * 93, reverse: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReassembler(Config{MaxMessageLen: tc.maxLen})
			ok, okFrags := splitN(t, 40, tc.okLen, capacity)
			var got []byte
			for _, f := range okFrags {
				if m, complete := mustAdd(t, r, t0, f); complete {
					got = m
				}
			}
			if !bytes.Equal(got, ok) {
				t.Fatalf("a message of MaxMessageLen bytes did not come out whole (%d bytes)", len(got))
			}
			_, long := splitN(t, 41, tc.longLen, capacity)
			if tc.reverse {
				slices.Reverse(long)
			}
			errs := 0
			for _, f := range long {
				_, complete, err := r.Add(t0, f)
				if complete {
					t.Fatal("a message longer than MaxMessageLen came out")
				}
				if err != nil {
					errs++
					if !strings.Contains(err.Error(), "more than the") {
						t.Fatalf("error %q does not say the message is too long", err)
					}
				}
				checkInvariants(t, r)
			}
			st := r.Stats()
			if errs != 1 || st.TooLong != 1 || st.Rejected != 1 {
				t.Fatalf("%d errors, stats %+v; want one refusal", errs, st)
			}
			if st.PendingSets != 0 || st.PendingBytes != 0 {
				t.Fatalf("after the whole long message: %d sets, %d bytes pending; want none", st.PendingSets, st.PendingBytes)
			}
		})
	}
}

func TestReassemblerExpire(t *testing.T) {
	const capacity = MinCapacity + 20
	u := capacity - UnlinkedHeaderLen
	r := NewReassembler(Config{Timeout: time.Minute})
	_, a := splitN(t, 30, 3*u-PaddingOverhead, capacity)
	msgB, b := splitN(t, 31, 3*u-PaddingOverhead, capacity)
	// C spans two sets; its two link fragments join them into one message.
	_, c := splitN(t, 32, 300*u, capacity)

	mustAdd(t, r, t0, a[0])
	mustAdd(t, r, t0, c[254])
	mustAdd(t, r, t0, c[255])
	mustAdd(t, r, t0.Add(30*time.Second), b[0])
	mustAdd(t, r, t0.Add(50*time.Second), a[1]) // refreshes A

	if n := r.Expire(t0.Add(61 * time.Second)); n != 2 {
		t.Fatalf("Expire dropped %d sets, want C's 2", n)
	}
	if n := r.Expire(t0.Add(90 * time.Second)); n != 0 {
		t.Fatalf("Expire at exactly the timeout dropped %d sets", n)
	}
	if got, complete := mustAdd(t, r, t0.Add(95*time.Second), b[1]); complete {
		t.Fatalf("B complete early: %q", got)
	}
	if n := r.Expire(t0.Add(111 * time.Second)); n != 1 {
		t.Fatalf("Expire dropped %d sets, want A's 1", n)
	}
	if got, complete := mustAdd(t, r, t0.Add(111*time.Second), b[2]); !complete || !bytes.Equal(got, msgB) {
		t.Fatal("B did not complete")
	}
	if _, complete := mustAdd(t, r, t0.Add(112*time.Second), a[2]); complete {
		t.Fatal("A completed after it expired")
	}
	if st := r.Stats(); st.Expired != 2 || st.PendingMessages != 1 || st.Delivered != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestReassemblerRememberCompleted(t *testing.T) {
	const capacity = 64
	r := NewReassembler(Config{RememberCompleted: 1})
	_, a := splitN(t, 40, 10, capacity)
	_, b := splitN(t, 41, 10, capacity)
	mustAdd(t, r, t0, a[0])
	if _, complete := mustAdd(t, r, t0, a[0]); complete {
		t.Fatal("a late duplicate was delivered again")
	}
	if st := r.Stats(); st.Delivered != 1 || st.Duplicates != 1 || st.PendingSets != 0 {
		t.Fatalf("after a late duplicate: %+v", st)
	}
	// Remembering one set id: B's delivery pushes A's out.
	mustAdd(t, r, t0, b[0])
	if _, complete := mustAdd(t, r, t0, a[0]); !complete {
		t.Fatal("A's id should have been forgotten")
	}
}

// TestReassemblerConflicts checks that a fragment contradicting what is
// known is refused with an error and changes nothing.
func TestReassemblerConflicts(t *testing.T) {
	const capacity = 20
	msg, frags := splitN(t, 50, 3400, capacity) // two sets
	if len(frags) < 256 {
		t.Fatalf("%d fragments, want two sets", len(frags))
	}
	set1, set2 := frags[0].SetID, frags[255].SetID
	r := NewReassembler(Config{})
	for _, i := range []int{1, 254, 255} {
		mustAdd(t, r, t0, frags[i])
	}
	// An unrelated set whose links are not known yet.
	const loose = int32(777)
	mustAdd(t, r, t0, Fragment{SetID: loose, Total: 255, Index: 5, Payload: frags[2].Payload})
	withPayload := func(f Fragment, p []byte) Fragment { f.Payload = p; return f }
	flipped := bytes.Clone(frags[1].Payload)
	flipped[0] ^= 1
	short := frags[2].Payload[:len(frags[2].Payload)-1]
	other := int32(12345)
	if other == set1 || other == set2 || loose == set1 || loose == set2 {
		t.Fatal("pick another id")
	}
	conflicts := []struct {
		name string
		frag Fragment
		want string
	}{
		{"different total", Fragment{SetID: set1, Total: 254, Index: 3, Payload: frags[2].Payload}, "total 254"},
		{"different copy", withPayload(frags[1], flipped), "differs from the copy"},
		{"different wire length", withPayload(frags[2], short), "wire length"},
		{"second next set", Fragment{SetID: other, Total: 1, Index: 1, PreviousSetID: set1, Payload: frags[255].Payload}, "names next set"},
		{"second previous set", Fragment{SetID: other, Total: 255, Index: 255, NextSetID: set2, Payload: frags[254].Payload}, "names previous set"},
		{"previous set not full", Fragment{SetID: other + 1, Total: 1, Index: 1, PreviousSetID: set2, Payload: frags[255].Payload}, "has"},
		{"wire length differs from the linked set", Fragment{SetID: other, Total: 1, Index: 1, PreviousSetID: loose, Payload: frags[255].Payload[1:]}, "previous set 777 has 20"},
		{"invalid", Fragment{SetID: 0, Total: 1, Index: 1, Payload: make([]byte, 20)}, "set id 0"},
		{"wire length too small", Fragment{SetID: 9, Total: 1, Index: 1, Payload: []byte{1}}, "wire length 8"},
		{"wire length too large", Fragment{SetID: 9, Total: 1, Index: 1, Payload: make([]byte, MaxCapacity)}, "wire length"},
	}
	for _, c := range conflicts {
		before := r.Stats()
		_, complete, err := r.Add(t0, c.frag)
		if err == nil || complete || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Add = %v, %v; want an error mentioning %q", c.name, complete, err, c.want)
		}
		after := r.Stats()
		before.Rejected++
		if after != before {
			t.Errorf("%s: state changed: %+v -> %+v", c.name, before, after)
		}
		checkInvariants(t, r)
	}
	// The message itself is untouched and completes.
	var got []byte
	for i, f := range frags {
		if m, complete := mustAdd(t, r, t0, f); complete {
			if i != len(frags)-1 {
				t.Fatalf("complete after fragment %d of %d", i+1, len(frags))
			}
			got = m
		}
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("message differs after the refused conflicts")
	}
}

func TestReassemblerBadPadding(t *testing.T) {
	const capacity = 30
	u := capacity - UnlinkedHeaderLen
	payload := func(tail ...byte) []byte {
		p := make([]byte, u)
		copy(p[u-len(tail):], tail)
		return p
	}
	tests := []struct {
		name  string
		frags []Fragment
		want  string
	}{
		{"no marker", []Fragment{{SetID: 5, Total: 1, Index: 1, Payload: payload()}}, "no 0x01 marker"},
		{"wrong marker", []Fragment{{SetID: 5, Total: 1, Index: 1, Payload: payload(1, 2)}}, "is 0x02"},
		{"padding of a whole fragment", []Fragment{
			{SetID: 6, Total: 2, Index: 1, Payload: payload(7, 1)},
			{SetID: 6, Total: 2, Index: 2, Payload: payload()},
		}, "in 2 fragments, want 1"},
	}
	for _, tt := range tests {
		r := NewReassembler(Config{})
		var err error
		for _, f := range tt.frags {
			var complete bool
			_, complete, err = r.Add(t0, f)
			if complete {
				t.Fatalf("%s: delivered", tt.name)
			}
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error mentioning %q", tt.name, err, tt.want)
		}
		if st := r.Stats(); st.PendingSets != 0 || st.Rejected != 1 {
			t.Errorf("%s: stats %+v", tt.name, st)
		}
		// The broken message is forgotten for good.
		if _, _, err := r.Add(t0, tt.frags[0]); err != nil || r.Stats().PendingSets != 0 {
			t.Errorf("%s: a late copy was not ignored: %v", tt.name, err)
		}
		checkInvariants(t, r)
	}
}

func TestReassemblerCopiesPayload(t *testing.T) {
	msg, frags := splitN(t, 60, 100, 40)
	r := NewReassembler(Config{})
	var got []byte
	for _, f := range frags {
		b := f.AppendBinary(nil)
		p, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := mustAdd(t, r, t0, p)
		clear(b) // the caller reuses its buffer
		if m != nil {
			got = m
		}
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("message changed when the caller reused its buffers")
	}
}

func TestReassemblerDefaults(t *testing.T) {
	r := NewReassembler(Config{MaxPendingBytes: -1})
	if r.cfg.MaxPendingBytes != DefaultMaxPendingBytes || r.cfg.Timeout != DefaultTimeout ||
		r.cfg.RememberCompleted != DefaultRememberCompleted {
		t.Fatalf("defaults not applied: %+v", r.cfg)
	}
}

// TestReassemblerSetOrders completes the sets of a three-set message in
// every order: the message must come out only with its last fragment.
func TestReassemblerSetOrders(t *testing.T) {
	const capacity = MinCapacity
	msg, frags := splitN(t, 70, 4000, capacity)
	if sets(len(frags)) != 3 {
		t.Fatalf("%d fragments, want three sets", len(frags))
	}
	orders := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, order := range orders {
		r := NewReassembler(Config{})
		added := 0
		for _, s := range order {
			for i := s * 255; i < min((s+1)*255, len(frags)); i++ {
				got, complete := mustAdd(t, r, t0, frags[i])
				added++
				if complete != (added == len(frags)) {
					t.Fatalf("order %v: complete=%v after %d of %d fragments", order, complete, added, len(frags))
				}
				if complete && !bytes.Equal(got, msg) {
					t.Fatalf("order %v: message differs", order)
				}
			}
		}
	}
}

// TestReassemblerCycle feeds two full sets that name each other as both
// previous and next: a chain without a first set never completes, and
// nothing is refused.
func TestReassemblerCycle(t *testing.T) {
	const a, b = int32(11), int32(22)
	r := NewReassembler(Config{})
	for _, ids := range [][2]int32{{a, b}, {b, a}} {
		for i := 1; i <= 255; i++ {
			f := Fragment{SetID: ids[0], Total: 255, Index: uint8(i)}
			switch i {
			case 1:
				f.PreviousSetID = ids[1]
			case 255:
				f.NextSetID = ids[1]
			}
			f.Payload = make([]byte, MinCapacity-f.HeaderLen())
			f.Payload[0] = 1
			if _, complete := mustAdd(t, r, t0, f); complete {
				t.Fatal("a cycle of sets completed")
			}
		}
	}
	if st := r.Stats(); st.PendingMessages != 1 || st.PendingSets != 2 || st.Rejected != 0 {
		t.Fatalf("stats: %+v", st)
	}
}
