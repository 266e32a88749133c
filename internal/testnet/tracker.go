package testnet

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Tracker counts what was sent and what came back, by id, so that a test
// can say what was lost and what was delivered twice, and measure latency.
// Its methods are safe for concurrent use.
type Tracker struct {
	mu       sync.Mutex
	sent     map[string]time.Time
	got      map[string]int
	latency  []time.Duration // of each id's first arrival
	arrived  map[string]time.Time
	resent   map[string]int // sends of an id after the first
	unknown  int            // arrivals of ids never sent
	changed  chan struct{}  // closed and replaced at every arrival
	outcomes map[string]int // arrivals by outcome label (see Outcome)
}

// NewTracker returns an empty Tracker.
func NewTracker() *Tracker {
	return &Tracker{
		sent:     make(map[string]time.Time),
		got:      make(map[string]int),
		arrived:  make(map[string]time.Time),
		resent:   make(map[string]int),
		changed:  make(chan struct{}),
		outcomes: make(map[string]int),
	}
}

// Sent records that id was sent now. Sending an id again keeps the first
// time.
func (t *Tracker) Sent(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.sent[id]; !ok {
		t.sent[id] = time.Now()
	}
}

// Resent records that id was sent again (by a requester that resends
// when no reply comes): one more arrival of it is then expected, not a
// duplicate.
func (t *Tracker) Resent(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.resent[id]++
}

// Forget removes id, sent but not expected back (its send failed).
func (t *Tracker) Forget(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.sent, id)
}

// Got records an arrival of id with an outcome label (such as "ok" or an
// error code) and reports whether it is the first.
func (t *Tracker) Got(id, outcome string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer func() {
		close(t.changed)
		t.changed = make(chan struct{})
	}()
	at, ok := t.sent[id]
	if !ok {
		t.unknown++
		return false
	}
	t.got[id]++
	if t.got[id] > 1 {
		return false
	}
	t.outcomes[outcome]++
	now := time.Now()
	t.arrived[id] = now
	t.latency = append(t.latency, now.Sub(at))
	return true
}

// Arrived returns when id first arrived, and false if it has not.
func (t *Tracker) Arrived(id string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.arrived[id]
	return at, ok
}

// Report is a Tracker's summary.
type Report struct {
	// Sent and Delivered count distinct ids; Lost is Sent − Delivered.
	Sent, Delivered, Lost int
	// Duplicated counts arrivals of an id beyond one per send of it: a
	// message delivered twice. Unknown counts arrivals of ids never sent.
	Duplicated, Unknown int
	// Resent counts sends of an id after its first, and Answered the
	// arrivals beyond the first that those resends account for.
	Resent, Answered int
	// Outcomes counts first arrivals by outcome label.
	Outcomes map[string]int
	// P50, P99 and Max are latencies of first arrivals.
	P50, P99, Max time.Duration
	// Missing lists up to 20 lost ids.
	Missing []string
}

// String prints r on one line.
func (r Report) String() string {
	return fmt.Sprintf("sent %d (resent %d), delivered %d, lost %d, duplicated %d (answers to resends %d), unknown %d, outcomes %v, latency p50 %v p99 %v max %v",
		r.Sent, r.Resent, r.Delivered, r.Lost, r.Duplicated, r.Answered, r.Unknown, r.Outcomes,
		r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.Max.Round(time.Millisecond))
}

// Report summarises what the tracker saw.
func (t *Tracker) Report() Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := Report{Sent: len(t.sent), Unknown: t.unknown, Outcomes: make(map[string]int)}
	for id := range t.sent {
		switch n := t.got[id]; {
		case n == 0:
			r.Lost++
			if len(r.Missing) < 20 {
				r.Missing = append(r.Missing, id)
			}
		default:
			r.Delivered++
			extra := n - 1
			allowed := min(extra, t.resent[id])
			r.Answered += allowed
			r.Duplicated += extra - allowed
		}
		r.Resent += t.resent[id]
	}
	slices.Sort(r.Missing)
	for k, v := range t.outcomes {
		r.Outcomes[k] = v
	}
	lat := slices.Clone(t.latency)
	slices.Sort(lat)
	r.P50, r.P99 = Percentile(lat, 50), Percentile(lat, 99)
	if len(lat) > 0 {
		r.Max = lat[len(lat)-1]
	}
	return r
}

// Latencies returns the latency of every first arrival, sorted.
func (t *Tracker) Latencies() []time.Duration {
	t.mu.Lock()
	lat := slices.Clone(t.latency)
	t.mu.Unlock()
	slices.Sort(lat)
	return lat
}

// WaitAll waits until every id sent has arrived at least once, or ctx
// ends (then it returns the report's error).
func (t *Tracker) WaitAll(ctx context.Context) error {
	for {
		t.mu.Lock()
		missing := 0
		for id := range t.sent {
			if t.got[id] == 0 {
				missing++
			}
		}
		changed := t.changed
		t.mu.Unlock()
		if missing == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("testnet: %d of the ids sent never arrived: %v", missing, t.Report().Missing)
		}
	}
}

// Percentile returns the p-th percentile (0 to 100) of sorted values, by
// the nearest-rank method, or 0 for none.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}
