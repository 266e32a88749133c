package framework

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
)

// limits of a cache for tests: the per-requester quotas equal the totals
// unless set.
func testLimits(window time.Duration, maxEntries, maxBytes int) cacheLimits {
	return cacheLimits{window: window, maxEntries: maxEntries, maxBytes: maxBytes, perSenderEntries: maxEntries, perSenderBytes: maxBytes}
}

func TestReplyCacheLifecycle(t *testing.T) {
	c := newReplyCache(testLimits(time.Minute, 10, 1000))
	tag := newTag(t)
	now := time.Unix(1000, 0)
	e, _, got := c.begin(tag, "k", now)
	if got != lookupNew {
		t.Fatalf("first begin: %v", got)
	}
	for i := range maxDuplicateWaiters {
		if _, _, got := c.begin(tag, "k", now); got != lookupRunning {
			t.Fatalf("duplicate %d: %v", i, got)
		}
	}
	if _, _, got := c.begin(tag, "k", now); got != lookupRunningDropped {
		t.Fatalf("duplicate beyond the bound: %v", got)
	}
	if _, _, got := c.begin(newTag(t), "k", now); got != lookupNew {
		t.Fatalf("the same id from another tag: %v", got)
	}
	if dups := c.finish(e, []byte("reply"), now); dups != maxDuplicateWaiters {
		t.Errorf("finish returned %d waiters, want %d", dups, maxDuplicateWaiters)
	}
	if _, reply, got := c.begin(tag, "k", now.Add(59*time.Second)); got != lookupDone || string(reply) != "reply" {
		t.Errorf("within the window: %v %q", got, reply)
	}
	if _, _, got := c.begin(tag, "k", now.Add(time.Minute)); got != lookupNew {
		t.Errorf("after the window: %v", got)
	}
}

func TestReplyCacheAbort(t *testing.T) {
	c := newReplyCache(testLimits(time.Minute, 10, 1000))
	tag := newTag(t)
	now := time.Unix(1000, 0)
	e, _, _ := c.begin(tag, "k", now)
	c.abort(e)
	if _, _, got := c.begin(tag, "k", now); got != lookupNew {
		t.Errorf("after abort: %v", got)
	}
	if s := c.stats(); s.senders != 1 {
		t.Errorf("%d requesters remembered, want 1 (the running entry's)", s.senders)
	}
}

// TestReplyCacheBounds: the cache never holds more than its budget of
// finished entries and bytes, forgets the oldest first, and does not keep
// a reply larger than the whole budget.
func TestReplyCacheBounds(t *testing.T) {
	const maxEntries, maxBytes = 5, 50
	c := newReplyCache(testLimits(time.Hour, maxEntries, maxBytes))
	tag := newTag(t)
	now := time.Unix(1000, 0)
	for i := range 20 {
		key := fmt.Sprint(i)
		e, _, got := c.begin(tag, key, now)
		if got != lookupNew {
			t.Fatalf("%s: %v", key, got)
		}
		c.finish(e, make([]byte, 1+i%15), now)
		n, b := c.len()
		if n > maxEntries || b > maxBytes {
			t.Fatalf("after %d: %d entries, %d bytes", i, n, b)
		}
	}
	if _, _, got := c.begin(tag, "19", now); got != lookupDone {
		t.Errorf("newest entry forgotten: %v", got)
	}
	if _, _, got := c.begin(tag, "0", now); got != lookupNew {
		t.Errorf("oldest entry kept: %v", got)
	}
	e, _, _ := c.begin(tag, "huge", now)
	c.finish(e, make([]byte, maxBytes+1), now)
	if _, _, got := c.begin(tag, "huge", now); got != lookupNew {
		t.Errorf("a reply beyond the budget was kept: %v", got)
	}
	if len(c.entries) > maxEntries+2 { // "0" and "huge" are running again
		t.Errorf("%d entries in the map", len(c.entries))
	}
}

// A requester past its quota forgets its own oldest replies; the others
// keep theirs.
func TestReplyCacheQuota(t *testing.T) {
	lim := testLimits(time.Hour, 100, 10_000)
	lim.perSenderEntries, lim.perSenderBytes = 3, 30
	c := newReplyCache(lim)
	now := time.Unix(1000, 0)
	victim, flooder := newTag(t), newTag(t)
	e, _, _ := c.begin(victim, "v", now)
	c.finish(e, []byte("mine"), now)
	for i := range 50 {
		e, _, _ := c.begin(flooder, fmt.Sprint(i), now)
		c.finish(e, []byte("x"), now)
	}
	if _, reply, got := c.begin(victim, "v", now); got != lookupDone || string(reply) != "mine" {
		t.Fatalf("victim's reply after the flooder's 50: %v %q", got, reply)
	}
	for i, want := range map[int]lookup{46: lookupNew, 47: lookupDone, 49: lookupDone} {
		if _, _, got := c.begin(flooder, fmt.Sprint(i), now); got != want {
			t.Errorf("flooder's %d: %v, want %v", i, got, want)
		}
	}
	// Bytes count too: two replies of 20 bytes exceed 30.
	for i := range 2 {
		e, _, _ := c.begin(flooder, fmt.Sprint("big", i), now)
		c.finish(e, make([]byte, 20), now)
	}
	if _, _, got := c.begin(flooder, "big0", now); got != lookupNew {
		t.Errorf("a reply past the byte quota kept: %v", got)
	}
	if s := c.stats(); s.evictedQuota == 0 || s.evictedBudget != 0 {
		t.Errorf("evictions %+v, want quota only", s)
	}
}

// refCache is the obvious reference for the budget eviction: a list of
// finished entries scanned whole at every step.
type refCache struct {
	lim     cacheLimits
	nextSeq uint64
	seq     map[address.SenderTag]uint64
	done    []refEntry // finishing order
}

type refEntry struct {
	tag   address.SenderTag
	id    string
	bytes int
}

func (r *refCache) finish(tag address.SenderTag, id string, n int) {
	if _, ok := r.seq[tag]; !ok {
		r.nextSeq++
		r.seq[tag] = r.nextSeq
	}
	if n > r.lim.perSenderBytes || n > r.lim.maxBytes {
		r.forgetTagIfEmpty(tag)
		return
	}
	r.done = append(r.done, refEntry{tag, id, n})
	count := func(tag address.SenderTag) (n, bytes int) {
		for _, e := range r.done {
			if e.tag == tag {
				n++
				bytes += e.bytes
			}
		}
		return n, bytes
	}
	oldestOf := func(tag address.SenderTag) int {
		return slices.IndexFunc(r.done, func(e refEntry) bool { return e.tag == tag })
	}
	for n, b := count(tag); n > r.lim.perSenderEntries || b > r.lim.perSenderBytes; n, b = count(tag) {
		r.done = slices.Delete(r.done, oldestOf(tag), oldestOf(tag)+1)
	}
	total := func() (n, bytes int) {
		for _, e := range r.done {
			bytes += e.bytes
		}
		return len(r.done), bytes
	}
	for n, b := total(); n > r.lim.maxEntries || b > r.lim.maxBytes; n, b = total() {
		var victim address.SenderTag
		best, bestSeq := -1, uint64(0)
		for tag := range r.seq {
			n, _ := count(tag)
			if n > 0 && (n > best || (n == best && r.seq[tag] > bestSeq)) {
				victim, best, bestSeq = tag, n, r.seq[tag]
			}
		}
		i := oldestOf(victim)
		r.done = slices.Delete(r.done, i, i+1)
		r.forgetTagIfEmpty(victim)
	}
	r.forgetTagIfEmpty(tag)
}

func (r *refCache) forgetTagIfEmpty(tag address.SenderTag) {
	if !slices.ContainsFunc(r.done, func(e refEntry) bool { return e.tag == tag }) {
		delete(r.seq, tag)
	}
}

// The cache's eviction (quota, then the budget by heap) matches the
// reference on random traffic from a few heavy and many light requesters.
func TestReplyCacheMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lim := cacheLimits{window: time.Hour, maxEntries: 40, maxBytes: 400, perSenderEntries: 12, perSenderBytes: 100}
	c := newReplyCache(lim)
	ref := &refCache{lim: lim, seq: map[address.SenderTag]uint64{}}
	var tags []address.SenderTag
	for range 30 {
		tags = append(tags, newTag(t))
	}
	now := time.Unix(1000, 0)
	for i := range 3000 {
		tag := tags[rng.IntN(3)] // heavy
		if rng.IntN(2) == 0 {
			tag = tags[3+rng.IntN(len(tags)-3)]
		}
		id := fmt.Sprint(i)
		n := rng.IntN(40)
		e, _, got := c.begin(tag, id, now)
		if got != lookupNew {
			t.Fatalf("step %d: %v", i, got)
		}
		c.finish(e, make([]byte, n), now)
		ref.finish(tag, id, n)

		if entries, bytes := c.len(); entries != len(ref.done) || bytes != sum(ref.done) {
			t.Fatalf("step %d: cache holds %d entries, %d bytes; reference %d, %d", i, entries, bytes, len(ref.done), sum(ref.done))
		}
		for _, e := range ref.done {
			if _, _, got := c.begin(e.tag, e.id, now); got != lookupDone {
				t.Fatalf("step %d: the reference keeps %s/%s, the cache does not (%v)", i, e.tag, e.id, got)
			}
		}
	}
}

func sum(es []refEntry) int {
	n := 0
	for _, e := range es {
		n += e.bytes
	}
	return n
}

// The per-requester quotas default to a tenth of the totals, at most the
// totals, and may not exceed them.
func TestIdempotenceConfig(t *testing.T) {
	base := func() Config {
		return Config{DataDir: t.TempDir(), Transport: newMemTransport(t), Network: testNetwork}
	}
	c := base()
	if err := c.applyDefaults(); err != nil {
		t.Fatal(err)
	}
	if got := c.Idempotence; got.MaxEntriesPerRequester != DefaultIdempotenceEntries/10 || got.MaxBytesPerRequester != DefaultIdempotenceBytes/10 {
		t.Errorf("defaults %+v", got)
	}
	c = base()
	c.Idempotence.MaxEntries, c.Idempotence.MaxBytes = 5, 50
	if err := c.applyDefaults(); err != nil {
		t.Fatal(err)
	}
	if got := c.Idempotence; got.MaxEntriesPerRequester != 5 || got.MaxBytesPerRequester != 50 {
		t.Errorf("defaults under small totals %+v", got)
	}
	c = base()
	c.Idempotence.MaxEntries, c.Idempotence.MaxEntriesPerRequester = 5, 6
	if err := c.applyDefaults(); err == nil || !strings.Contains(err.Error(), "exceeds the totals") {
		t.Errorf("a quota above the total: %v", err)
	}
}
