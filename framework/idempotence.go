package framework

import (
	"container/heap"
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

// cacheLimits bound a replyCache.
type cacheLimits struct {
	window time.Duration
	// maxEntries and maxBytes bound the finished entries and their replies
	// in all, perSenderEntries and perSenderBytes those of one sender tag.
	maxEntries, maxBytes             int
	perSenderEntries, perSenderBytes int
}

// replyCache remembers, per sender tag and request id, whether a request is
// running and which reply it got, for a fixed window after it finished.
//
// Memory is bounded, and shared fairly between requesters (sender tags):
//
//   - A requester keeps at most perSenderEntries replies of at most
//     perSenderBytes in all; past either, its own oldest are forgotten, so
//     one requester's flood costs only its own replies.
//   - Past maxEntries or maxBytes in all, an entry of the requester holding
//     the most replies is forgotten (its oldest); among requesters holding
//     as many, the one seen most recently for the first time loses first.
//     So while n requesters hold replies, each keeps at least about
//     maxEntries/n of them, and a requester seen before a flood of fresh
//     tags keeps its replies against all of them: to push out its last
//     reply, an attacker needs maxEntries tags holding replies that it
//     made before that requester first came.
//
// A requester is remembered, with its place in the order of first sight,
// while it has any entry, running or finished. Running entries are not
// counted: the host bounds them by its queue and concurrency limits. A
// reply larger than perSenderBytes is not kept. All methods are safe for
// concurrent use.
type replyCache struct {
	lim cacheLimits

	mu      sync.Mutex
	entries map[string]*cacheEntry
	senders map[address.SenderTag]*cacheSender
	nextSeq uint64
	done    list.List // of *cacheEntry, in finishing (so expiry) order
	bytes   int
	heavy   senderHeap // senders with finished entries, the most and newest on top

	evictedQuota, evictedBudget uint64
}

// cacheSender is one requester of the cache.
type cacheSender struct {
	tag address.SenderTag
	// seq is the requester's seniority: senders are numbered in the
	// order they are first seen. Fixed at creation, it may be read
	// without the cache's lock by whoever holds one of its entries.
	seq     uint64
	entries int       // running and finished
	done    list.List // its finished entries, oldest first
	bytes   int       // of its finished replies
	index   int       // in the cache's heap; -1 when it has no finished entry
}

type cacheEntry struct {
	key     string
	sender  *cacheSender
	reply   []byte // set by finish
	dups    int    // duplicates waiting while running
	expires time.Time
	elem    *list.Element // in the cache's done, once finished
	own     *list.Element // in the sender's done, once finished
}

func newReplyCache(lim cacheLimits) *replyCache {
	return &replyCache{
		lim:     lim,
		entries: make(map[string]*cacheEntry),
		senders: make(map[address.SenderTag]*cacheSender),
	}
}

// cacheKey is the key of a request: its sender tag and id.
func cacheKey(tag address.SenderTag, id string) string {
	return string(tag[:]) + id
}

// begin looks up request id of tag. With lookupNew it returns the new
// running entry; with lookupDone, the reply to send again.
func (c *replyCache) begin(tag address.SenderTag, id string, now time.Time) (*cacheEntry, []byte, lookup) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(now)
	key := cacheKey(tag, id)
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
	s := c.senders[tag]
	if s == nil {
		c.nextSeq++
		s = &cacheSender{tag: tag, seq: c.nextSeq, index: -1}
		c.senders[tag] = s
	}
	s.entries++
	e := &cacheEntry{key: key, sender: s}
	c.entries[key] = e
	return e, nil, lookupNew
}

// finish records the reply of a running entry and returns how many
// duplicates are waiting for it. A reply larger than a requester's byte
// quota is not kept.
func (c *replyCache) finish(e *cacheEntry, reply []byte, now time.Time) (dups int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	dups = e.dups
	if c.entries[e.key] != e {
		return dups
	}
	if len(reply) > c.lim.perSenderBytes || len(reply) > c.lim.maxBytes {
		c.forgetLocked(e)
		return dups
	}
	s := e.sender
	e.reply, e.expires = reply, now.Add(c.lim.window)
	e.elem = c.done.PushBack(e)
	e.own = s.done.PushBack(e)
	c.bytes += len(reply)
	s.bytes += len(reply)
	if s.index < 0 {
		heap.Push(&c.heavy, s)
	} else {
		heap.Fix(&c.heavy, s.index)
	}
	c.expireLocked(now)
	for s.done.Len() > c.lim.perSenderEntries || s.bytes > c.lim.perSenderBytes {
		c.forgetLocked(s.done.Front().Value.(*cacheEntry))
		c.evictedQuota++
	}
	for c.done.Len() > c.lim.maxEntries || c.bytes > c.lim.maxBytes {
		c.forgetLocked(c.heavy[0].done.Front().Value.(*cacheEntry))
		c.evictedBudget++
	}
	return dups
}

// abort forgets a running entry that will not run (it was refused), so
// that a retry with the same id runs. Duplicates that waited for it are
// dropped.
func (c *replyCache) abort(e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[e.key] == e {
		c.forgetLocked(e)
	}
}

// cacheStats are a replyCache's load and counters.
type cacheStats struct {
	entries, bytes, senders int
	// evictedQuota counts replies forgotten early for their requester's
	// quota, evictedBudget those forgotten early for the total budget.
	evictedQuota, evictedBudget uint64
}

func (c *replyCache) stats() cacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cacheStats{
		entries: c.done.Len(), bytes: c.bytes, senders: len(c.senders),
		evictedQuota: c.evictedQuota, evictedBudget: c.evictedBudget,
	}
}

// len returns the number of finished entries and their bytes.
func (c *replyCache) len() (entries, bytes int) {
	s := c.stats()
	return s.entries, s.bytes
}

// expireLocked forgets the finished entries past the window. c.mu is held.
func (c *replyCache) expireLocked(now time.Time) {
	for front := c.done.Front(); front != nil; front = c.done.Front() {
		e := front.Value.(*cacheEntry)
		if now.Before(e.expires) {
			return
		}
		c.forgetLocked(e)
	}
}

// forgetLocked removes e, running or finished, and its sender once it has
// no entry left. c.mu is held.
func (c *replyCache) forgetLocked(e *cacheEntry) {
	s := e.sender
	delete(c.entries, e.key)
	if e.elem != nil {
		c.done.Remove(e.elem)
		s.done.Remove(e.own)
		e.elem, e.own = nil, nil
		c.bytes -= len(e.reply)
		s.bytes -= len(e.reply)
		if s.done.Len() == 0 {
			heap.Remove(&c.heavy, s.index)
		} else {
			heap.Fix(&c.heavy, s.index)
		}
	}
	if s.entries--; s.entries == 0 {
		delete(c.senders, s.tag)
	}
}

// senderHeap orders the senders with finished entries: the one with the
// most on top, and among equals the one first seen last.
type senderHeap []*cacheSender

func (h senderHeap) Len() int { return len(h) }
func (h senderHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.done.Len() != b.done.Len() {
		return a.done.Len() > b.done.Len()
	}
	return a.seq > b.seq
}
func (h senderHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *senderHeap) Push(x any) {
	s := x.(*cacheSender)
	s.index = len(*h)
	*h = append(*h, s)
}
func (h *senderHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.index = -1
	return s
}
