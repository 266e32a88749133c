package directory

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Admission: which nodes a directory lists.
//
// A directory admits either every identity that signs its registration
// (open mode, for local and test networks: Config.AllowList nil) or only
// the identities of an [AllowList], which the operator can replace while
// the server runs. An identity taken off the list leaves the topology at
// once and cannot register again; it may still deregister.

// AllowList is a set of node identities a directory admits. Its methods
// are safe for concurrent use.
type AllowList struct {
	mu  sync.RWMutex
	ids map[string]bool
}

// NewAllowList returns an allow-list of the given base58 identities.
func NewAllowList(ids []string) (*AllowList, error) {
	a := &AllowList{}
	if err := a.Replace(ids); err != nil {
		return nil, err
	}
	return a, nil
}

// Replace makes ids the whole list, or changes nothing and returns an
// error naming the first identity that is not a valid key.
func (a *AllowList) Replace(ids []string) error {
	set := make(map[string]bool, len(ids))
	for i, id := range ids {
		if _, err := parseIdentity(id); err != nil {
			return fmt.Errorf("directory: allow-list entry %d (%q): %s", i+1, id, reason(err))
		}
		set[id] = true
	}
	a.mu.Lock()
	a.ids = set
	a.mu.Unlock()
	return nil
}

// Add puts ids on the list, or changes nothing and returns an error naming
// the first identity that is not a valid key.
func (a *AllowList) Add(ids ...string) error {
	for i, id := range ids {
		if _, err := parseIdentity(id); err != nil {
			return fmt.Errorf("directory: allow-list entry %d (%q): %s", i+1, id, reason(err))
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ids == nil {
		a.ids = make(map[string]bool, len(ids))
	}
	for _, id := range ids {
		a.ids[id] = true
	}
	return nil
}

// Allows reports whether the base58 identity id is on the list.
func (a *AllowList) Allows(id string) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.ids[id]
}

// Len is the number of identities on the list.
func (a *AllowList) Len() int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return len(a.ids)
}

// MaxAllowListSize bounds the text ParseAllowList reads.
const MaxAllowListSize = 4 << 20

// ParseAllowList reads an allow-list file: one base58 identity key a line;
// blank lines and text after a # are ignored. The error names the line.
func ParseAllowList(text []byte) ([]string, error) {
	if len(text) > MaxAllowListSize {
		return nil, fmt.Errorf("directory: allow-list is larger than %d bytes", MaxAllowListSize)
	}
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(nil, MaxAllowListSize)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if _, err := parseIdentity(line); err != nil {
			return nil, fmt.Errorf("directory: allow-list line %d: %s", n, reason(err))
		}
		ids = append(ids, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("directory: allow-list: %w", err)
	}
	return ids, nil
}

// admits reports whether the server lists identity id.
func (s *Server) admits(id string) bool {
	return s.cfg.AllowList == nil || s.cfg.AllowList.Allows(id)
}

// Registration rate limits: defaults of Config.RegisterRate (per source
// address) and Config.RegisterRateTotal, each with a burst of twice the
// rate a second. A node refreshes every 30 s by default and registers a
// new key once a rotation, so a host running many nodes stays far below.
const (
	DefaultRegisterRate      = 20
	DefaultRegisterRateTotal = 500
	// maxRateSources bounds the per-source limiters held; past it the ones
	// back at full burst are forgotten.
	maxRateSources = 10000
)

// limiter limits signed requests per source address and in total.
type limiter struct {
	perSource rate.Limit
	total     *rate.Limiter
	mu        sync.Mutex
	sources   map[string]*rate.Limiter
}

func newLimiter(perSource, total float64) *limiter {
	return &limiter{
		perSource: rate.Limit(perSource),
		total:     rate.NewLimiter(rate.Limit(total), max(1, int(2*total))),
		sources:   make(map[string]*rate.Limiter),
	}
}

// allow takes a token for a request from remote (an ip:port), or returns
// the rejection that says which limit it hit.
func (l *limiter) allow(remote string, now time.Time) error {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	l.mu.Lock()
	src, ok := l.sources[host]
	if !ok {
		if len(l.sources) >= maxRateSources {
			l.pruneLocked(now)
		}
		src = rate.NewLimiter(l.perSource, max(1, int(2*l.perSource)))
		l.sources[host] = src
	}
	l.mu.Unlock()
	if !src.AllowN(now, 1) {
		return reject(http.StatusTooManyRequests, reasonRateLimited,
			fmt.Errorf("directory: too many requests from %s (at most %g a second); try again later", host, float64(l.perSource)))
	}
	if !l.total.AllowN(now, 1) {
		return reject(http.StatusTooManyRequests, reasonRateLimited,
			fmt.Errorf("directory: too many requests in all (at most %g a second); try again later", float64(l.total.Limit())))
	}
	return nil
}

// pruneLocked forgets the sources whose limiter is back at full burst; if
// none is, it forgets them all.
func (l *limiter) pruneLocked(now time.Time) {
	for host, src := range l.sources {
		if src.TokensAt(now) >= float64(src.Burst()) {
			delete(l.sources, host)
		}
	}
	if len(l.sources) >= maxRateSources {
		clear(l.sources)
	}
}
