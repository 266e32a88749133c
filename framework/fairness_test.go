package framework

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/framework/envelope"
	"github.com/peapod-mixnet/peapod/handlers"
)

// Attacks on the provider's fairness between requesters, over real
// sockets: the host runs behind a Nym client (nymPeer, a real WebSocket
// server), and every request reaches it as a Received frame with the
// requester's sender tag, as from the mixnet.

// nymHostWith starts a host behind p with cfg (its transport, data folder
// and HTTP address set here).
func nymHostWith(t *testing.T, p *nymPeer, cfg Config) *Host {
	t.Helper()
	cfg.DataDir = t.TempDir()
	cfg.NymClientURL = p.url()
	cfg.Nym = NymTransportConfig{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, PingInterval: 2 * time.Second, DialTimeout: 2 * time.Second}
	cfg.HTTP = HTTPConfig{Addr: "127.0.0.1:0"}
	cfg.Logger = testLogger(t)
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	p.waitConn(t)
	return h
}

// parsedPeerReply waits for the next Reply frame and parses it.
func (p *nymPeer) parsedReply(t *testing.T) (address.SenderTag, *envelope.Reply) {
	t.Helper()
	r := p.reply(t)
	rep, err := envelope.ParseReply(r.data)
	if err != nil {
		t.Fatalf("reply %q: %v", r.data, err)
	}
	return r.tag, rep
}

// flood sends n echo requests with unique ids from the tags tagOf gives,
// window at a time, waiting for every reply of a window before the next,
// and returns how many were answered overloaded.
func (p *nymPeer) flood(t *testing.T, n, window int, tagOf func(i int) address.SenderTag) int {
	t.Helper()
	overloaded := 0
	for start := 0; start < n; start += window {
		end := min(start+window, n)
		for i := start; i < end; i++ {
			tag := tagOf(i)
			p.deliver(t, &tag, request(t, fmt.Sprintf("flood-%d", i), "echo", []byte("x")))
		}
		for range end - start {
			_, rep := p.parsedReply(t)
			if rep.Err != nil {
				if rep.Err.Code != handlers.CodeOverloaded {
					t.Fatalf("flood request %s: %s %s", rep.ID, rep.Err.Code, rep.Err.Message)
				}
				overloaded++
			}
		}
	}
	return overloaded
}

// counterService counts the runs of each request id: a request with a side
// effect.
type counterService struct {
	mu   sync.Mutex
	runs map[string]int
}

func (c *counterService) service() Service {
	return Service{
		ServiceInfo: handlers.ServiceInfo{Name: "counter"},
		Handler: handlers.HandlerFunc(func(ctx context.Context, req *handlers.Request) ([]byte, error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.runs == nil {
				c.runs = map[string]int{}
			}
			c.runs[req.ID]++
			return fmt.Appendf(nil, "run %d", c.runs[req.ID]), nil
		}),
	}
}

// A victim's request with a side effect, retried after an attacker has
// completed 10,000 requests, gets the remembered reply and does not run
// again: whether the attacker uses one sender tag (it evicts its own
// replies past its quota) or a fresh tag for every request (the newest
// requesters' replies go first when the memory is full).
func TestReplyCacheSurvivesFlood(t *testing.T) {
	for _, spread := range []bool{false, true} {
		name := "one tag"
		if spread {
			name = "a tag per request"
		}
		t.Run(name, func(t *testing.T) {
			p := newNymPeer(t)
			counter := &counterService{}
			// A queue long enough for the flood's windows: what is measured
			// here is the memory of replies, not the queue.
			h := nymHostWith(t, p, Config{
				Services: []Service{echoService, counter.service()},
				Limits:   Limits{QueueSize: 1000},
			})
			victim, attacker := newTag(t), newTag(t)
			p.deliver(t, &victim, request(t, "pay-once", "counter", nil))
			if tag, rep := p.parsedReply(t); tag != victim || rep.Err != nil || string(rep.Data) != "run 1" {
				t.Fatalf("victim's first request: %s %+v", tag, rep)
			}

			const attack = 10_000
			tagOf := func(int) address.SenderTag { return attacker }
			if spread {
				tagOf = func(int) address.SenderTag { return newTag(t) }
			}
			if n := p.flood(t, attack, 1000, tagOf); n != 0 {
				t.Fatalf("%d flood requests refused; the test needs them all completed", n)
			}

			p.deliver(t, &victim, request(t, "pay-once", "counter", nil))
			tag, rep := p.parsedReply(t)
			if tag != victim || rep.Err != nil || string(rep.Data) != "run 1" {
				t.Fatalf("victim's retry after %d attacker requests: %s %+v; want the remembered \"run 1\"", attack, tag, rep)
			}
			entries, _ := h.cache.len()
			if entries > DefaultIdempotenceEntries {
				t.Fatalf("%d replies remembered, above the budget of %d", entries, DefaultIdempotenceEntries)
			}
		})
	}
}

// blockService runs requests until released, and says when each starts.
type blockService struct {
	release chan struct{}
	started chan string
}

func newBlockService() *blockService {
	return &blockService{release: make(chan struct{}), started: make(chan string, 1024)}
}

func (b *blockService) service() Service {
	return Service{
		ServiceInfo: handlers.ServiceInfo{Name: "block"},
		Handler: handlers.HandlerFunc(func(ctx context.Context, req *handlers.Request) ([]byte, error) {
			b.started <- req.ID
			select {
			case <-b.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return []byte(req.ID), nil
		}),
	}
}

// A flooder that keeps the queue full is refused before a quiet requester:
// the quiet one's request is queued (pushing out the flooder's newest) and
// served within the next round, whether the flooder uses one tag or a tag
// per request (the quiet requester, seen before the flood, is senior to
// every one of them).
func TestQuietRequesterServedDuringFlood(t *testing.T) {
	for _, spread := range []bool{false, true} {
		name := "one tag"
		if spread {
			name = "a tag per request"
		}
		t.Run(name, func(t *testing.T) {
			p := newNymPeer(t)
			block := newBlockService()
			const queue = 8
			h := nymHostWith(t, p, Config{
				Services: []Service{echoService, block.service()},
				Limits:   Limits{MaxConcurrent: 1, QueueSize: queue},
			})
			var once sync.Once
			release := func() { once.Do(func() { close(block.release) }) }
			t.Cleanup(release)
			quiet, flooder := newTag(t), newTag(t)
			// The quiet requester has used the provider before.
			p.deliver(t, &quiet, request(t, "earlier", "echo", nil))
			if _, rep := p.parsedReply(t); rep.Err != nil {
				t.Fatalf("quiet requester's earlier request: %+v", rep.Err)
			}

			tagOf := func(int) address.SenderTag { return flooder }
			if spread {
				tagOf = func(int) address.SenderTag { return newTag(t) }
			}
			// One runs (and blocks the only worker), queue wait, the rest
			// are refused.
			const sent = 1 + queue + 12
			for i := range sent {
				tag := tagOf(i)
				p.deliver(t, &tag, request(t, fmt.Sprintf("flood-%d", i), "block", nil))
				if i == 0 {
					if id := <-block.started; id != "flood-0" {
						t.Fatalf("first to run: %s", id)
					}
				}
			}
			for range sent - 1 - queue {
				_, rep := p.parsedReply(t)
				if rep.Err == nil || rep.Err.Code != handlers.CodeOverloaded {
					t.Fatalf("a flood request beyond the queue: %+v, want overloaded", rep)
				}
			}
			if n := h.queue.len(); n != queue {
				t.Fatalf("%d requests queued, want %d", n, queue)
			}

			p.deliver(t, &quiet, request(t, "quiet", "block", nil))
			tag, rep := p.parsedReply(t)
			if tag == quiet {
				t.Fatalf("the quiet requester was refused while the flooder held the queue: %+v", rep.Err)
			}
			if rep.Err == nil || rep.Err.Code != handlers.CodeOverloaded {
				t.Fatalf("the flooder's pushed-out request: %+v, want overloaded", rep)
			}

			// Released, the worker serves the quiet requester within one
			// round of the queue's requesters.
			release()
			served := 0
			for {
				tag, rep := p.parsedReply(t)
				if rep.Err != nil {
					t.Fatalf("after the release: %s %s", rep.ID, rep.Err.Code)
				}
				served++
				if tag == quiet {
					break
				}
			}
			lanes := 2 // the flooder's and the quiet one's
			if spread {
				lanes = queue
			}
			if served > lanes+1 {
				t.Fatalf("the quiet requester was served after %d others; round robin over %d requesters allows %d", served-1, lanes, lanes)
			}
			_, body := get(t, h, PathMetrics)
			if !strings.Contains(string(body), "peapod_provider_queue_pushed_out_total 1\n") {
				t.Errorf("metrics:\n%s", grepLines(string(body), "pushed_out"))
			}
		})
	}
}
