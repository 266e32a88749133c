package framework

import (
	"fmt"
	"testing"
	"time"
)

func TestReplyCacheLifecycle(t *testing.T) {
	c := newReplyCache(time.Minute, 10, 1000)
	now := time.Unix(1000, 0)
	e, _, got := c.begin("k", now)
	if got != lookupNew {
		t.Fatalf("first begin: %v", got)
	}
	for i := range maxDuplicateWaiters {
		if _, _, got := c.begin("k", now); got != lookupRunning {
			t.Fatalf("duplicate %d: %v", i, got)
		}
	}
	if _, _, got := c.begin("k", now); got != lookupRunningDropped {
		t.Fatalf("duplicate beyond the bound: %v", got)
	}
	if dups := c.finish(e, []byte("reply"), now); dups != maxDuplicateWaiters {
		t.Errorf("finish returned %d waiters, want %d", dups, maxDuplicateWaiters)
	}
	if _, reply, got := c.begin("k", now.Add(59*time.Second)); got != lookupDone || string(reply) != "reply" {
		t.Errorf("within the window: %v %q", got, reply)
	}
	if _, _, got := c.begin("k", now.Add(time.Minute)); got != lookupNew {
		t.Errorf("after the window: %v", got)
	}
}

func TestReplyCacheAbort(t *testing.T) {
	c := newReplyCache(time.Minute, 10, 1000)
	now := time.Unix(1000, 0)
	e, _, _ := c.begin("k", now)
	c.abort(e)
	if _, _, got := c.begin("k", now); got != lookupNew {
		t.Errorf("after abort: %v", got)
	}
}

// TestReplyCacheBounds: the cache never holds more than its budget of
// finished entries and bytes, forgets the oldest first, and does not keep
// a reply larger than the whole budget.
func TestReplyCacheBounds(t *testing.T) {
	const maxEntries, maxBytes = 5, 50
	c := newReplyCache(time.Hour, maxEntries, maxBytes)
	now := time.Unix(1000, 0)
	for i := range 20 {
		key := fmt.Sprint(i)
		e, _, got := c.begin(key, now)
		if got != lookupNew {
			t.Fatalf("%s: %v", key, got)
		}
		c.finish(e, make([]byte, 1+i%15), now)
		n, b := c.len()
		if n > maxEntries || b > maxBytes {
			t.Fatalf("after %d: %d entries, %d bytes", i, n, b)
		}
	}
	if _, _, got := c.begin("19", now); got != lookupDone {
		t.Errorf("newest entry forgotten: %v", got)
	}
	if _, _, got := c.begin("0", now); got != lookupNew {
		t.Errorf("oldest entry kept: %v", got)
	}
	e, _, _ := c.begin("huge", now)
	c.finish(e, make([]byte, maxBytes+1), now)
	if _, _, got := c.begin("huge", now); got != lookupNew {
		t.Errorf("a reply beyond the budget was kept: %v", got)
	}
	if len(c.entries) > maxEntries+2 { // "0" and "huge" are running again
		t.Errorf("%d entries in the map", len(c.entries))
	}
}
