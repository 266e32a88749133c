// Package ordering delivers each sender's messages in the order they were
// sent.
//
// Nym leaves ordering to applications; peapod does it for them. A sender
// picks a random 16-byte stream id per recipient and numbers its messages on
// that stream 0, 1, 2, ... The receiver feeds every message to a Buffer with
// its stream id and sequence number, and the Buffer hands back the messages
// that have become deliverable, in order. A message that arrives after a gap
// waits for the missing ones, but not for ever: after Config.MaxGapWait the
// gap is skipped (the mixnet has lost those messages or they are very late),
// and a stream never holds more than Config.MaxBufferedPerStream messages.
// A stream remembers the last sequence numbers it gave up on, so that a
// message that turns up after its gap was skipped is still delivered (late,
// out of order) rather than taken for a duplicate.
//
// The Buffer works on times the caller passes in, so tests inject time and a
// caller arms one timer for NextDeadline and calls Expire when it fires.
// Snapshot and Restore carry the next expected sequence number of every
// stream across a restart, so that nothing is delivered twice and nothing
// waits for a message delivered before the restart.
package ordering

import (
	"bytes"
	"math"
	"slices"
	"time"
)

// StreamID identifies a sender's stream of messages to one recipient.
type StreamID = [16]byte

// MaxSeq is the largest sequence number a Buffer accepts. math.MaxUint64 is
// reserved: it marks a stream whose every sequence number has been used.
const MaxSeq = math.MaxUint64 - 1

// Defaults for a zero Config.
const (
	// DefaultMaxGapWait is how long a message waits for earlier missing ones.
	DefaultMaxGapWait = 2 * time.Minute
	// DefaultMaxBufferedPerStream is how far ahead of the next expected
	// sequence number a stream holds messages.
	DefaultMaxBufferedPerStream = 256
	// DefaultMaxStreams is how many streams a Buffer keeps state for.
	DefaultMaxStreams = 4096
)

// Config sets a Buffer's limits. A zero or negative field takes its default.
type Config struct {
	// MaxGapWait is how long a message that arrived after a gap waits for
	// the missing earlier ones. Once it has waited that long, Expire gives up
	// on every missing sequence number before it and delivers it. Default
	// DefaultMaxGapWait.
	MaxGapWait time.Duration
	// MaxBufferedPerStream bounds a stream's held messages: a message whose
	// sequence number is more than this beyond the next expected one forces
	// the oldest gaps to be skipped, so that it lies within the window.
	// Default DefaultMaxBufferedPerStream.
	MaxBufferedPerStream int
	// MaxStreams bounds the streams a Buffer keeps state for. Beyond it, the
	// least recently used stream is evicted: its held messages are delivered
	// (skipping their gaps) and its next expected sequence number forgotten,
	// so if that sender resumes, its stream starts over at 0: its next
	// message waits up to MaxGapWait and a late copy of an old message may be
	// delivered again. Size it above the number of active senders. Default
	// DefaultMaxStreams.
	MaxStreams int
}

func (c Config) withDefaults() Config {
	if c.MaxGapWait <= 0 {
		c.MaxGapWait = DefaultMaxGapWait
	}
	if c.MaxBufferedPerStream <= 0 {
		c.MaxBufferedPerStream = DefaultMaxBufferedPerStream
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	return c
}

// Stats are a Buffer's counters and current load.
type Stats struct {
	// Streams is the number of streams with state; Held the number of
	// messages waiting for a gap to fill.
	Streams int
	Held    int
	// Delivered counts messages returned by Push and Expire.
	Delivered uint64
	// Duplicates counts messages dropped because their sequence number was
	// delivered, skipped or already held.
	Duplicates uint64
	// Invalid counts messages dropped because their sequence number was
	// above MaxSeq.
	Invalid uint64
	// Skipped counts sequence numbers given up on (saturating).
	Skipped uint64
	// Late counts messages delivered after their gap had been skipped
	// (also counted in Delivered).
	Late uint64
	// Evicted counts streams evicted to respect MaxStreams.
	Evicted uint64
}

// Buffer puts each stream's messages in order. T is the caller's message
// type; the Buffer only stores and returns values of it.
//
// A Buffer is not safe for concurrent use.
type Buffer[T any] struct {
	cfg     Config
	streams map[StreamID]*stream[T]
	// lru and mru end the list of streams by last use.
	lru, mru *stream[T]
	// waits has one entry per held message in arrival order; entries whose
	// message has since been delivered are stale and skipped. waits[head:]
	// is the live part.
	waits []wait[T]
	head  int
	held  int
	stats Stats
}

type stream[T any] struct {
	id    StreamID
	next  uint64       // next expected sequence number
	held  map[uint64]T // messages after a gap, by sequence number
	order seqHeap      // the keys of held
	// skipped holds, in ascending order, the highest sequence numbers
	// given up on, at most MaxBufferedPerStream of them; all are below
	// next.
	skipped []uint64
	evicted bool
	// Neighbours in the list of streams by last use.
	older, newer *stream[T]
}

type wait[T any] struct {
	st       *stream[T]
	seq      uint64
	deadline time.Time
}

// New returns an empty Buffer with cfg's limits.
func New[T any](cfg Config) *Buffer[T] {
	return &Buffer[T]{cfg: cfg.withDefaults(), streams: make(map[StreamID]*stream[T])}
}

// Push takes message msg, number seq of stream id, received at now, and
// returns the messages that are now deliverable, in order: msg itself and
// the held messages after it when seq is the next expected number, nothing
// when msg must wait for a gap. A seq whose gap was skipped and is still
// remembered (one of the last MaxBufferedPerStream skipped) is delivered at
// once, late, and counted in Stats.Late. Any other seq below the next
// expected one, or one already held, is a duplicate: msg is dropped and
// counted in Stats.Duplicates. A seq more than MaxBufferedPerStream beyond the next
// expected one skips the oldest gaps; the messages released by that come
// first. When the stream is new and the Buffer is full, the evicted stream's
// held messages are returned too (see Config.MaxStreams).
func (b *Buffer[T]) Push(now time.Time, id StreamID, seq uint64, msg T) (ready []T) {
	if seq > MaxSeq {
		b.stats.Invalid++
		return nil
	}
	st := b.streams[id]
	if st == nil {
		if len(b.streams) >= b.cfg.MaxStreams {
			ready = b.evict(b.lru, ready)
		}
		st = &stream[T]{id: id}
		b.streams[id] = st
	} else {
		b.unlink(st)
	}
	b.pushMRU(st)

	if seq < st.next {
		if i, ok := slices.BinarySearch(st.skipped, seq); ok {
			st.skipped = slices.Delete(st.skipped, i, i+1)
			b.stats.Late++
			b.stats.Delivered++
			return append(ready, msg)
		}
		b.stats.Duplicates++
		return ready
	}
	if _, ok := st.held[seq]; ok {
		b.stats.Duplicates++
		return ready
	}
	if window := uint64(b.cfg.MaxBufferedPerStream); seq-st.next > window {
		ready = b.skipTo(st, seq-window, ready)
	}
	if seq == st.next {
		ready = append(ready, msg)
		b.stats.Delivered++
		st.next++
		return b.releaseRun(st, ready)
	}
	if st.held == nil {
		st.held = make(map[uint64]T)
	}
	st.held[seq] = msg
	st.order.push(seq)
	b.held++
	b.waits = append(b.waits, wait[T]{st: st, seq: seq, deadline: now.Add(b.cfg.MaxGapWait)})
	b.compactWaits()
	return ready
}

// Expire releases the messages that have waited MaxGapWait for a gap by now:
// each such message, with every held message of its stream before it and
// the run after it, in order, skipping the gaps. Messages are examined in
// arrival order, so now should not go backwards between calls.
func (b *Buffer[T]) Expire(now time.Time) (ready []T) {
	for b.head < len(b.waits) {
		w := b.waits[b.head]
		if b.live(w) {
			if now.Before(w.deadline) {
				break
			}
			ready = b.skipTo(w.st, w.seq+1, ready)
		}
		b.waits[b.head] = wait[T]{}
		b.head++
	}
	b.compactWaits()
	return ready
}

// NextDeadline returns when Expire will next have something to release, and
// false when no message is waiting. A caller arms one timer for it and, when
// it fires, calls Expire and asks again.
func (b *Buffer[T]) NextDeadline() (time.Time, bool) {
	for b.head < len(b.waits) {
		if w := b.waits[b.head]; b.live(w) {
			return w.deadline, true
		}
		b.waits[b.head] = wait[T]{}
		b.head++
	}
	return time.Time{}, false
}

// Snapshot returns the next expected sequence number of every stream, to be
// saved and given to Restore after a restart. Held messages are not part of
// it: the numbers they carry will be skipped after the restart, after
// MaxGapWait. Nor are the skipped numbers: after a restart, a message whose
// gap was skipped before it counts as a duplicate.
func (b *Buffer[T]) Snapshot() map[StreamID]uint64 {
	snap := make(map[StreamID]uint64, len(b.streams))
	for id, st := range b.streams {
		snap[id] = st.next
	}
	return snap
}

// Restore discards the Buffer's state, held messages included, and loads
// the next expected sequence numbers of snap. If snap has more than
// MaxStreams streams, those with the smallest ids are kept. Restored streams
// count as used in the order of their ids.
func (b *Buffer[T]) Restore(snap map[StreamID]uint64) {
	for _, st := range b.streams {
		st.evicted = true
	}
	clear(b.streams)
	b.lru, b.mru = nil, nil
	clear(b.waits)
	b.waits, b.head, b.held = b.waits[:0], 0, 0

	ids := make([]StreamID, 0, len(snap))
	for id := range snap {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y StreamID) int { return bytes.Compare(x[:], y[:]) })
	for _, id := range ids[:min(len(ids), b.cfg.MaxStreams)] {
		st := &stream[T]{id: id, next: snap[id]}
		b.streams[id] = st
		b.pushMRU(st)
	}
}

// Stats returns the counters and the current load.
func (b *Buffer[T]) Stats() Stats {
	st := b.stats
	st.Streams = len(b.streams)
	st.Held = b.held
	return st
}

// skipTo gives up on every missing sequence number of st below target:
// held messages below it are delivered in order, then the run from target.
func (b *Buffer[T]) skipTo(st *stream[T], target uint64, ready []T) []T {
	released := uint64(0)
	var gaps []seqRange // the numbers given up on, ascending
	cur := st.next
	for st.order.len() > 0 && st.order.min() < target {
		seq := st.order.pop()
		if seq > cur {
			gaps = append(gaps, seqRange{cur, seq})
		}
		cur = seq + 1
		ready = b.release(st, seq, ready)
		released++
	}
	if target > cur {
		gaps = append(gaps, seqRange{cur, target})
	}
	b.rememberSkipped(st, gaps)
	b.skipped(target - st.next - released)
	st.next = target
	return b.releaseRun(st, ready)
}

// seqRange is the sequence numbers from lo up to, not including, hi.
type seqRange struct{ lo, hi uint64 }

// rememberSkipped adds the numbers of gaps (ascending, all above those st
// remembers) to st.skipped, keeping the highest MaxBufferedPerStream.
func (b *Buffer[T]) rememberSkipped(st *stream[T], gaps []seqRange) {
	limit := b.cfg.MaxBufferedPerStream
	// The highest numbers of gaps, at most limit of them, in descending order.
	var top []uint64
	for i := len(gaps) - 1; i >= 0 && len(top) < limit; i-- {
		for n := gaps[i].hi; n > gaps[i].lo && len(top) < limit; n-- {
			top = append(top, n-1)
		}
	}
	if len(top) == 0 {
		return
	}
	slices.Reverse(top)
	st.skipped = append(st.skipped, top...)
	if extra := len(st.skipped) - limit; extra > 0 {
		st.skipped = slices.Delete(st.skipped, 0, extra)
	}
}

// releaseRun delivers the held messages that follow st.next without a gap.
func (b *Buffer[T]) releaseRun(st *stream[T], ready []T) []T {
	for st.order.len() > 0 && st.order.min() == st.next {
		ready = b.release(st, st.order.pop(), ready)
		st.next++
	}
	return ready
}

// release delivers held message seq of st, already popped from st.order.
func (b *Buffer[T]) release(st *stream[T], seq uint64, ready []T) []T {
	ready = append(ready, st.held[seq])
	delete(st.held, seq)
	b.held--
	b.stats.Delivered++
	return ready
}

// evict forgets st after delivering its held messages.
func (b *Buffer[T]) evict(st *stream[T], ready []T) []T {
	if st.order.len() > 0 {
		last := st.order.s[0]
		for _, s := range st.order.s {
			last = max(last, s)
		}
		ready = b.skipTo(st, last+1, ready)
	}
	st.evicted = true
	delete(b.streams, st.id)
	b.unlink(st)
	b.stats.Evicted++
	return ready
}

func (b *Buffer[T]) skipped(n uint64) {
	if b.stats.Skipped > math.MaxUint64-n {
		b.stats.Skipped = math.MaxUint64
		return
	}
	b.stats.Skipped += n
}

// live reports whether w's message is still held.
func (b *Buffer[T]) live(w wait[T]) bool {
	if w.st.evicted {
		return false
	}
	_, ok := w.st.held[w.seq]
	return ok
}

// compactWaits reclaims the consumed front of waits, and drops stale
// entries when they outnumber the held messages, so that waits stays
// proportional to what is held even if Expire is never called.
func (b *Buffer[T]) compactWaits() {
	const slack = 64
	pending := len(b.waits) - b.head
	switch {
	case pending > 2*b.held+slack:
		kept := b.waits[:0]
		for _, w := range b.waits[b.head:] {
			if b.live(w) {
				kept = append(kept, w)
			}
		}
		clear(b.waits[len(kept):])
		b.waits, b.head = kept, 0
	case b.head > slack && b.head > pending:
		n := copy(b.waits, b.waits[b.head:])
		clear(b.waits[n:])
		b.waits, b.head = b.waits[:n], 0
	}
}

func (b *Buffer[T]) pushMRU(st *stream[T]) {
	st.older, st.newer = b.mru, nil
	if b.mru != nil {
		b.mru.newer = st
	} else {
		b.lru = st
	}
	b.mru = st
}

func (b *Buffer[T]) unlink(st *stream[T]) {
	if st.older != nil {
		st.older.newer = st.newer
	} else if b.lru == st {
		b.lru = st.newer
	}
	if st.newer != nil {
		st.newer.older = st.older
	} else if b.mru == st {
		b.mru = st.older
	}
	st.older, st.newer = nil, nil
}

// seqHeap is a min-heap of sequence numbers.
type seqHeap struct{ s []uint64 }

func (h *seqHeap) len() int    { return len(h.s) }
func (h *seqHeap) min() uint64 { return h.s[0] }

func (h *seqHeap) push(x uint64) {
	h.s = append(h.s, x)
	for i := len(h.s) - 1; i > 0; {
		parent := (i - 1) / 2
		if h.s[parent] <= h.s[i] {
			break
		}
		h.s[parent], h.s[i] = h.s[i], h.s[parent]
		i = parent
	}
}

func (h *seqHeap) pop() uint64 {
	top := h.s[0]
	last := len(h.s) - 1
	h.s[0] = h.s[last]
	h.s = h.s[:last]
	for i := 0; ; {
		smallest, l, r := i, 2*i+1, 2*i+2
		if l < last && h.s[l] < h.s[smallest] {
			smallest = l
		}
		if r < last && h.s[r] < h.s[smallest] {
			smallest = r
		}
		if smallest == i {
			break
		}
		h.s[i], h.s[smallest] = h.s[smallest], h.s[i]
		i = smallest
	}
	return top
}
