package fragment

import (
	"bytes"
	"fmt"
	"time"
)

// Defaults for a zero Config.
const (
	// DefaultMaxPendingBytes bounds the memory held for incomplete messages.
	DefaultMaxPendingBytes = 64 << 20
	// DefaultTimeout is how long an incomplete message may go without a new
	// fragment before Expire drops it.
	DefaultTimeout = 10 * time.Minute
	// DefaultRememberCompleted is how many set ids of delivered messages are
	// remembered to recognise late duplicates.
	DefaultRememberCompleted = 1 << 14
	// DefaultMaxMessageLen is the longest message rebuilt: half of
	// DefaultMaxPendingBytes, so that one message in progress cannot take
	// all of it.
	DefaultMaxMessageLen = DefaultMaxPendingBytes / 2
)

// Memory accounting: what a pending set costs beyond its payload bytes.
const (
	setBaseCost      = 160 // the set and its share of the map and message
	fragmentSlotCost = 24  // one slice header per fragment of the set
)

// Config sets the limits of a Reassembler. A zero or negative field takes
// its default.
type Config struct {
	// MaxPendingBytes bounds the memory held for incomplete messages: payload
	// bytes plus a fixed estimate of the bookkeeping per set. When a fragment
	// takes the total above it, the least recently active incomplete
	// messages are dropped until it fits again, which may be the message the
	// fragment belongs to. Default DefaultMaxPendingBytes.
	MaxPendingBytes int
	// Timeout is how long an incomplete message may go without a new
	// fragment before Expire drops it. Default DefaultTimeout.
	Timeout time.Duration
	// RememberCompleted is how many set ids of delivered (or refused)
	// messages are remembered, so that a late duplicate of a delivered
	// message is ignored instead of starting a new set. Default DefaultRememberCompleted.
	RememberCompleted int
	// MaxMessageLen is the longest message rebuilt, in bytes (the message
	// without its padding). The fragment count of a message follows from
	// its length, so a message is known to be too long as soon as the
	// totals and links of its fragments name more fragments than a message
	// of MaxMessageLen takes: Add then drops what it holds of the message,
	// returns an error, and ignores its sets' later fragments as it does
	// those of a delivered message. Default DefaultMaxMessageLen.
	MaxMessageLen int
}

func (c Config) withDefaults() Config {
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RememberCompleted <= 0 {
		c.RememberCompleted = DefaultRememberCompleted
	}
	if c.MaxMessageLen <= 0 {
		c.MaxMessageLen = DefaultMaxMessageLen
	}
	c.MaxMessageLen = min(c.MaxMessageLen, maxMessageLen)
	return c
}

// Stats are a Reassembler's counters and current load.
type Stats struct {
	// PendingMessages, PendingSets and PendingBytes describe what is held
	// for incomplete messages now; PendingBytes is what MaxPendingBytes bounds.
	PendingMessages int
	PendingSets     int
	PendingBytes    int
	// Delivered counts messages returned by Add.
	Delivered uint64
	// Duplicates counts fragments ignored because they were already held or
	// belong to a delivered or refused message.
	Duplicates uint64
	// Rejected counts fragments Add refused with an error, and completed
	// messages whose padding was malformed.
	Rejected uint64
	// TooLong counts messages dropped because their fragments named more
	// fragments than a message of MaxMessageLen takes (also in Rejected).
	TooLong uint64
	// DroppedForMemory counts incomplete messages dropped to respect
	// MaxPendingBytes.
	DroppedForMemory uint64
	// Expired counts incomplete messages dropped by Expire.
	Expired uint64
}

// Reassembler rebuilds messages from their fragments. Fragments may arrive
// in any order, more than once, and after a loss and retransmission; Add
// returns each message once, when its last missing fragment arrives.
//
// Sets whose links name each other are gathered into one pending message;
// a message is complete when it has a first set (no previous link), every
// set is full and every link is answered by the set it names. Its memory is
// bounded by Config.MaxPendingBytes and its age by Config.Timeout.
//
// A Reassembler is not safe for concurrent use.
type Reassembler struct {
	cfg   Config
	sets  map[int32]*pendingSet
	bytes int // sum of pendingMessage.cost
	// oldest and newest end a list of pending messages ordered by last
	// activity, least recent first.
	oldest, newest *pendingMessage
	messages       int
	done           idRing
	stats          Stats
	// maxFragments is the fragment count of a message of MaxMessageLen at
	// wire length maxFragmentsWire, for the last wire length asked about.
	maxFragments, maxFragmentsWire int
}

// pendingSet holds the fragments received so far of one set.
type pendingSet struct {
	id       int32
	payloads [][]byte // len Total; nil where the fragment is missing
	received int
	// prev is known once fragment 1 has arrived, next once the last one has;
	// 0 means the set names no set on that side.
	prev, next           int32
	prevKnown, nextKnown bool
	// A link is resolved when the named set names this one back.
	prevResolved, nextResolved bool
	msg                        *pendingMessage
}

func (s *pendingSet) total() int { return len(s.payloads) }

// pendingMessage is a group of sets joined by resolved links: the sets of
// one message received so far.
type pendingMessage struct {
	sets       []*pendingSet
	wireLen    int // the wire length every fragment of the message has
	complete   int // sets with every fragment
	unresolved int // known links not answered yet
	heads      int // sets whose fragment 1 names no previous set
	fragments  int // total fragments across the sets
	payload    int // payload bytes held
	cost       int // payload plus bookkeeping, counted against MaxPendingBytes
	lastActive time.Time
	older      *pendingMessage
	newer      *pendingMessage
}

func (m *pendingMessage) ready() bool {
	return m.complete == len(m.sets) && m.unresolved == 0 && m.heads == 1
}

// NewReassembler returns an empty Reassembler with cfg's limits.
func NewReassembler(cfg Config) *Reassembler {
	cfg = cfg.withDefaults()
	return &Reassembler{
		cfg:  cfg,
		sets: make(map[int32]*pendingSet),
		done: idRing{capacity: cfg.RememberCompleted, ids: make(map[int32]struct{})},
	}
}

// Add takes one received fragment, at time now. When f is the last missing
// fragment of its message, Add returns the whole message without padding
// and complete is true; the message is then forgotten and later copies of
// its fragments are ignored (see Config.RememberCompleted). A duplicate is
// ignored. f's payload is copied; the caller keeps its buffer.
//
// Add returns an error, and changes nothing, for a fragment that is invalid
// (see Fragment.Validate), whose wire length is outside
// MinCapacity..MaxCapacity, or that contradicts what earlier fragments said:
// a different total or wire length for its set or message, a different copy
// of a fragment already held, or a link that the named set disputes. It
// also returns an error when a completed message's padding is malformed, or
// when f makes its message longer than Config.MaxMessageLen; that message
// is dropped.
func (r *Reassembler) Add(now time.Time, f Fragment) (message []byte, complete bool, err error) {
	if err := r.check(f); err != nil {
		r.stats.Rejected++
		return nil, false, err
	}
	if r.done.contains(f.SetID) {
		r.stats.Duplicates++
		return nil, false, nil
	}
	if r.done.contains(f.PreviousSetID) || r.done.contains(f.NextSetID) {
		// The next or previous set of a message delivered or refused: the
		// rest of a message that was too long.
		if s := r.sets[f.SetID]; s != nil {
			r.refuse(s.msg)
		} else {
			r.done.add(f.SetID)
		}
		r.stats.Duplicates++
		return nil, false, nil
	}
	s := r.sets[f.SetID]
	if s != nil && s.payloads[f.Index-1] != nil {
		r.stats.Duplicates++
		return nil, false, nil
	}
	if s == nil {
		s = r.newSet(f)
	}
	r.insert(now, s, f)

	m := s.msg
	if limit := r.fragmentLimit(m.wireLen); m.fragments > limit {
		sets := len(m.sets)
		r.refuse(m)
		r.stats.Rejected++
		r.stats.TooLong++
		return nil, false, fmt.Errorf("fragment: set %d: its message has at least %d fragments in %d sets, more than the %d of a message of %d bytes",
			f.SetID, m.fragments, sets, limit, r.cfg.MaxMessageLen)
	}
	if m.ready() {
		msg, err := r.deliver(m)
		if err != nil {
			r.stats.Rejected++
			return nil, false, err
		}
		r.stats.Delivered++
		return msg, true, nil
	}
	r.shrink()
	return nil, false, nil
}

// check refuses a fragment that is malformed or contradicts what is known.
func (r *Reassembler) check(f Fragment) error {
	if err := f.Validate(); err != nil {
		return err
	}
	wire := f.WireLen()
	if wire < MinCapacity || wire > MaxCapacity {
		return fmt.Errorf("fragment: wire length %d outside %d..%d", wire, MinCapacity, MaxCapacity)
	}
	if r.done.contains(f.SetID) {
		return nil
	}
	if s := r.sets[f.SetID]; s != nil {
		if int(f.Total) != s.total() {
			return fmt.Errorf("fragment: set %d: total %d, earlier fragments said %d", f.SetID, f.Total, s.total())
		}
		if wire != s.msg.wireLen {
			return fmt.Errorf("fragment: set %d: wire length %d, earlier fragments had %d", f.SetID, wire, s.msg.wireLen)
		}
		if held := s.payloads[f.Index-1]; held != nil {
			sameLinks := (f.Index != 1 || f.PreviousSetID == s.prev) && (f.Index != f.Total || f.NextSetID == s.next)
			if !sameLinks || !bytes.Equal(held, f.Payload) {
				return fmt.Errorf("fragment: set %d: fragment %d differs from the copy received before", f.SetID, f.Index)
			}
			return nil
		}
	}
	if p := f.PreviousSetID; p != 0 {
		if t := r.sets[p]; t != nil {
			switch {
			case t.total() != MaxSetFragments:
				return fmt.Errorf("fragment: set %d: previous set %d has %d fragments, not %d", f.SetID, p, t.total(), MaxSetFragments)
			case t.nextKnown && t.next != f.SetID:
				return fmt.Errorf("fragment: set %d: previous set %d names next set %d", f.SetID, p, t.next)
			case t.msg.wireLen != wire:
				return fmt.Errorf("fragment: set %d: wire length %d, previous set %d has %d", f.SetID, wire, p, t.msg.wireLen)
			}
		}
	}
	if n := f.NextSetID; n != 0 {
		if t := r.sets[n]; t != nil {
			switch {
			case t.prevKnown && t.prev != f.SetID:
				return fmt.Errorf("fragment: set %d: next set %d names previous set %d", f.SetID, n, t.prev)
			case t.msg.wireLen != wire:
				return fmt.Errorf("fragment: set %d: wire length %d, next set %d has %d", f.SetID, wire, n, t.msg.wireLen)
			}
		}
	}
	return nil
}

// newSet makes an empty set for f's set id, alone in a new pending message.
func (r *Reassembler) newSet(f Fragment) *pendingSet {
	m := &pendingMessage{wireLen: f.WireLen(), fragments: int(f.Total)}
	s := &pendingSet{id: f.SetID, payloads: make([][]byte, f.Total), msg: m}
	m.sets = append(m.sets, s)
	m.cost = setBaseCost + fragmentSlotCost*int(f.Total)
	r.bytes += m.cost
	r.sets[s.id] = s
	r.messages++
	r.pushNewest(m)
	return s
}

// insert stores f, a fragment s does not hold yet, and follows its links.
func (r *Reassembler) insert(now time.Time, s *pendingSet, f Fragment) {
	s.payloads[f.Index-1] = bytes.Clone(f.Payload)
	s.received++
	n := len(f.Payload)
	s.msg.payload += n
	s.msg.cost += n
	r.bytes += n
	if s.received == s.total() {
		s.msg.complete++
	}
	if f.Index == 1 {
		s.prevKnown, s.prev = true, f.PreviousSetID
		if s.prev == 0 {
			s.msg.heads++
		} else {
			r.linkPrev(s)
		}
	}
	if int(f.Index) == s.total() {
		s.nextKnown, s.next = true, f.NextSetID
		if s.next != 0 {
			r.linkNext(s)
		}
	}
	m := s.msg
	if now.After(m.lastActive) {
		m.lastActive = now
	}
	r.unlink(m)
	r.pushNewest(m)
}

// linkPrev follows s's newly known link to its previous set.
func (r *Reassembler) linkPrev(s *pendingSet) {
	t := r.sets[s.prev]
	if t == nil || !t.nextKnown || t.next != s.id {
		s.msg.unresolved++
		return
	}
	s.prevResolved, t.nextResolved = true, true
	t.msg.unresolved--
	r.merge(s.msg, t.msg)
}

// linkNext follows s's newly known link to its next set.
func (r *Reassembler) linkNext(s *pendingSet) {
	t := r.sets[s.next]
	if t == nil || !t.prevKnown || t.prev != s.id {
		s.msg.unresolved++
		return
	}
	s.nextResolved, t.prevResolved = true, true
	t.msg.unresolved--
	r.merge(s.msg, t.msg)
}

// merge joins two pending messages, moving the sets of the smaller.
func (r *Reassembler) merge(a, b *pendingMessage) {
	if a == b {
		return
	}
	if len(a.sets) < len(b.sets) {
		a, b = b, a
	}
	for _, s := range b.sets {
		s.msg = a
	}
	a.sets = append(a.sets, b.sets...)
	a.complete += b.complete
	a.unresolved += b.unresolved
	a.heads += b.heads
	a.fragments += b.fragments
	a.payload += b.payload
	a.cost += b.cost
	if b.lastActive.After(a.lastActive) {
		a.lastActive = b.lastActive
	}
	r.unlink(b)
	r.messages--
}

// deliver assembles a ready message, forgets it and removes the padding.
func (r *Reassembler) deliver(m *pendingMessage) ([]byte, error) {
	// Full sets, every link answered, one head: the sets form a path from
	// the head. The walk still checks that, so a logic error here drops the
	// message instead of looping or panicking.
	var head *pendingSet
	for _, s := range m.sets {
		if s.prevKnown && s.prev == 0 {
			head = s
			break
		}
	}
	padded := make([]byte, 0, m.payload)
	walked, tail := 0, false
	for s := head; s != nil && s.msg == m && walked < len(m.sets); s = r.sets[s.next] {
		for _, p := range s.payloads {
			padded = append(padded, p...)
		}
		walked++
		if s.next == 0 {
			tail = true
			break
		}
	}
	if !tail || walked != len(m.sets) {
		r.drop(m)
		return nil, fmt.Errorf("fragment: inconsistent chain of %d sets", len(m.sets))
	}
	wireLen, fragments := m.wireLen, m.fragments
	for _, s := range m.sets {
		r.done.add(s.id)
	}
	r.drop(m)
	return unpad(padded, fragments, wireLen)
}

// fragmentLimit returns how many fragments of wire length wire a message
// of Config.MaxMessageLen bytes takes: the most a message may have.
func (r *Reassembler) fragmentLimit(wire int) int {
	if wire != r.maxFragmentsWire {
		l, _ := newLayout(wire) // check has refused wire lengths outside the range
		r.maxFragments, r.maxFragmentsWire = l.fragments(r.cfg.MaxMessageLen+PaddingOverhead), wire
	}
	return r.maxFragments
}

// refuse drops a pending message that is too long, and remembers its sets
// with those of delivered messages, so that their later fragments are
// ignored rather than start the message again.
func (r *Reassembler) refuse(m *pendingMessage) {
	for _, s := range m.sets {
		r.done.add(s.id)
	}
	r.drop(m)
}

// drop forgets a pending message and its sets.
func (r *Reassembler) drop(m *pendingMessage) {
	for _, s := range m.sets {
		delete(r.sets, s.id)
	}
	r.bytes -= m.cost
	r.messages--
	r.unlink(m)
}

// shrink drops the least recently active messages while the pending bytes
// are above the bound.
func (r *Reassembler) shrink() {
	for r.bytes > r.cfg.MaxPendingBytes && r.oldest != nil {
		r.drop(r.oldest)
		r.stats.DroppedForMemory++
	}
}

// Expire drops every incomplete message that has had no new fragment for
// longer than Config.Timeout before now, and returns how many sets it
// dropped. Messages are examined in order of last activity, so now should
// not go backwards between calls to Add and Expire.
func (r *Reassembler) Expire(now time.Time) int {
	dropped := 0
	for m := r.oldest; m != nil && now.Sub(m.lastActive) > r.cfg.Timeout; m = r.oldest {
		dropped += len(m.sets)
		r.drop(m)
		r.stats.Expired++
	}
	return dropped
}

// Holds reports whether the set setID is pending: some of its fragments
// are held for a message not complete yet.
func (r *Reassembler) Holds(setID int32) bool {
	_, ok := r.sets[setID]
	return ok
}

// Stats returns the counters and the current load.
func (r *Reassembler) Stats() Stats {
	st := r.stats
	st.PendingMessages = r.messages
	st.PendingSets = len(r.sets)
	st.PendingBytes = r.bytes
	return st
}

func (r *Reassembler) pushNewest(m *pendingMessage) {
	m.older, m.newer = r.newest, nil
	if r.newest != nil {
		r.newest.newer = m
	} else {
		r.oldest = m
	}
	r.newest = m
}

func (r *Reassembler) unlink(m *pendingMessage) {
	if m.older != nil {
		m.older.newer = m.newer
	} else if r.oldest == m {
		r.oldest = m.newer
	}
	if m.newer != nil {
		m.newer.older = m.older
	} else if r.newest == m {
		r.newest = m.older
	}
	m.older, m.newer = nil, nil
}

// idRing remembers the last capacity set ids added to it.
type idRing struct {
	capacity int
	ring     []int32
	next     int // where the next id goes once the ring is full
	ids      map[int32]struct{}
}

func (d *idRing) contains(id int32) bool {
	_, ok := d.ids[id]
	return ok
}

func (d *idRing) add(id int32) {
	if d.contains(id) {
		return
	}
	if len(d.ring) < d.capacity {
		d.ring = append(d.ring, id)
	} else {
		delete(d.ids, d.ring[d.next])
		d.ring[d.next] = id
		d.next = (d.next + 1) % d.capacity
	}
	d.ids[id] = struct{}{}
}
