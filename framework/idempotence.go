package framework

import (
	"container/list"
	"sync"
	"time"

	"github.com/peapod-mixnet/peapod/address"
)

// maxDuplicateWaiters bounds the duplicates of a running request that each
// get the reply once it is ready; further duplicates are dropped (the
// requester gets the reply anyway).
const maxDuplicateWaiters = 4

// lookup is what replyCache.begin found.
type lookup int

const (
	// lookupNew: no such request; the caller runs it and must call finish
	// or abort.
	lookupNew lookup = iota
	// lookupDone: the request ran already; the reply is returned.
	lookupDone
	// lookupRunning: the request is running; this duplicate gets the reply
	// when finish is called.
	lookupRunning
	// lookupRunningDropped: the request is running and already has
	// maxDuplicateWaiters duplicates waiting; this one is dropped.
	lookupRunningDropped
)

// replyCache remembers, per sender tag and request id, whether a request is
// running and which reply it got, for a fixed window after it finished.
//
// Memory is bounded: finished entries are kept in finishing order (which is
// also expiry order, the window being the same for all), and the oldest are
// forgotten early when there are more than maxEntries of them or their
// replies total more than maxBytes. Running entries are not counted: the
// host bounds them by its queue and concurrency limits. All methods are
// safe for concurrent use.
type replyCache struct {
	window     time.Duration
	maxEntries int
	maxBytes   int

	mu      sync.Mutex
	entries map[string]*cacheEntry
	done    list.List // of *cacheEntry, oldest first
	bytes   int
}

type cacheEntry struct {
	key     string
	reply   []byte // set by finish
	dups    int    // duplicates waiting while running
	expires time.Time
	elem    *list.Element // in done, once finished
}

func newReplyCache(window time.Duration, maxEntries, maxBytes int) *replyCache {
	return &replyCache{window: window, maxEntries: maxEntries, maxBytes: maxBytes, entries: make(map[string]*cacheEntry)}
}

// cacheKey is the key of a request: its sender tag and id.
func cacheKey(tag address.SenderTag, id string) string {
	return string(tag[:]) + id
}

// begin looks key up. With lookupNew it returns the new running entry; with
// lookupDone, the reply to send again.
func (c *replyCache) begin(key string, now time.Time) (*cacheEntry, []byte, lookup) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(now)
	if e, ok := c.entries[key]; ok {
		switch {
		case e.elem != nil:
			return nil, e.reply, lookupDone
		case e.dups < maxDuplicateWaiters:
			e.dups++
			return nil, nil, lookupRunning
		default:
			return nil, nil, lookupRunningDropped
		}
	}
	e := &cacheEntry{key: key}
	c.entries[key] = e
	return e, nil, lookupNew
}

// finish records the reply of a running entry and returns how many
// duplicates are waiting for it. A reply larger than the byte budget is
// not kept.
func (c *replyCache) finish(e *cacheEntry, reply []byte, now time.Time) (dups int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	dups = e.dups
	if c.entries[e.key] != e {
		return dups
	}
	if len(reply) > c.maxBytes {
		delete(c.entries, e.key)
		return dups
	}
	e.reply, e.expires = reply, now.Add(c.window)
	e.elem = c.done.PushBack(e)
	c.bytes += len(reply)
	c.expireLocked(now)
	return dups
}

// abort forgets a running entry that will not run (it was refused), so
// that a retry with the same id runs. Duplicates that waited for it are
// dropped.
func (c *replyCache) abort(e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[e.key] == e {
		delete(c.entries, e.key)
	}
}

// len returns the number of finished entries and their bytes.
func (c *replyCache) len() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done.Len(), c.bytes
}

// expireLocked forgets finished entries that are past the window or beyond
// the budget, oldest first.
func (c *replyCache) expireLocked(now time.Time) {
	for {
		front := c.done.Front()
		if front == nil {
			return
		}
		e := front.Value.(*cacheEntry)
		if now.Before(e.expires) && c.done.Len() <= c.maxEntries && c.bytes <= c.maxBytes {
			return
		}
		c.done.Remove(front)
		c.bytes -= len(e.reply)
		delete(c.entries, e.key)
	}
}
