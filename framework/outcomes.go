package framework

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/peapod-mixnet/peapod/handlers"
)

// Outcomes are the values outcomeLabel gives a request's result, in the
// order the status page lists them.
var outcomes = [...]string{
	outcomeOK, handlers.CodeBadRequest, handlers.CodeUnknownService, handlers.CodeHandlerFailed,
	handlers.CodeTimeout, handlers.CodeOverloaded, handlers.CodeTooLarge, outcomeOther,
}

// outcomeIndex maps each of outcomes to its index.
var outcomeIndex = func() map[string]int {
	m := make(map[string]int, len(outcomes))
	for i, o := range outcomes {
		m[o] = i
	}
	return m
}()

// recentMinutes is how far back the status page's recent counts reach.
const recentMinutes = 10

// outcomeCounts counts requests by outcome since the Host was made and
// over the last recentMinutes whole minutes, for the status page. Adding is
// two atomic increments (and, once a minute, a short lock to reuse a
// slot), so it costs the request path nothing measurable.
type outcomeCounts struct {
	total [len(outcomes)]atomic.Uint64
	mu    sync.Mutex // serialises a slot's reuse for a new minute
	slots [recentMinutes]minuteCounts
}

// minuteCounts holds the counts of one minute (Unix time / 60).
type minuteCounts struct {
	minute atomic.Int64
	n      [len(outcomes)]atomic.Uint64
}

// add counts one request with outcome (a value of outcomeLabel) at now.
func (c *outcomeCounts) add(now time.Time, outcome string) {
	i, ok := outcomeIndex[outcome]
	if !ok {
		i = outcomeIndex[outcomeOther]
	}
	c.total[i].Add(1)
	m := now.Unix() / 60
	s := &c.slots[m%recentMinutes]
	if s.minute.Load() != m {
		c.mu.Lock()
		if s.minute.Load() != m {
			for j := range s.n {
				s.n[j].Store(0)
			}
			s.minute.Store(m)
		}
		c.mu.Unlock()
	}
	s.n[i].Add(1)
}

// read returns, for each of outcomes, the requests of the last
// recentMinutes minutes up to now (the current minute included) and
// those since the start.
func (c *outcomeCounts) read(now time.Time) (recent, total [len(outcomes)]uint64) {
	m := now.Unix() / 60
	for i := range c.slots {
		s := &c.slots[i]
		if sm := s.minute.Load(); sm > m-recentMinutes && sm <= m {
			for j := range s.n {
				recent[j] += s.n[j].Load()
			}
		}
	}
	for j := range c.total {
		total[j] = c.total[j].Load()
	}
	return recent, total
}
