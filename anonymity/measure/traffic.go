package measure

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/framework/envelope"
	"github.com/peapod-mixnet/peapod/internal/testnet"
)

// message is the harness's ground truth about one real message.
type message struct {
	// from and to are node indices of the trace (the provider's for a
	// reply's sender).
	from, to int
	// sent is when the sender's API took it (the request's, for a reply);
	// received when the recipient's API handed it over, zero until then.
	sent, received time.Time
	// probe marks probe messages, which are no targets.
	probe bool
}

// ledger records every message sent and received. Its methods are safe
// for concurrent use.
type ledger struct {
	mu      sync.Mutex
	msgs    map[string]*message
	waiting int           // sent, not received
	changed chan struct{} // a receive happened (buffered, one)
	stray   int           // messages received that the ledger did not know
}

func newLedger() *ledger {
	return &ledger{msgs: make(map[string]*message), changed: make(chan struct{}, 1)}
}

func (l *ledger) sent(id string, m *message) {
	l.mu.Lock()
	l.msgs[id] = m
	l.waiting++
	l.mu.Unlock()
}

func (l *ledger) forget(id string) {
	l.mu.Lock()
	if m, ok := l.msgs[id]; ok && m.received.IsZero() {
		delete(l.msgs, id)
		l.waiting--
	}
	l.mu.Unlock()
}

func (l *ledger) received(id string, at time.Time) {
	l.mu.Lock()
	m, ok := l.msgs[id]
	switch {
	case !ok:
		l.stray++
	case m.received.IsZero():
		m.received = at
		l.waiting--
	}
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// isReceived reports whether id has arrived.
func (l *ledger) isReceived(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.msgs[id]
	return ok && !m.received.IsZero()
}

// await waits until done() holds, re-checking it after each receive, or
// until the deadline.
func (l *ledger) await(ctx context.Context, deadline time.Time, done func() bool) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for !done() {
		select {
		case <-l.changed:
		case <-t.C:
			return done()
		case <-ctx.Done():
			return false
		}
	}
	return true
}

func (l *ledger) allReceived() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiting == 0
}

// snapshot returns a copy of the messages.
func (l *ledger) snapshot() map[string]message {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]message, len(l.msgs))
	for id, m := range l.msgs {
		out[id] = *m
	}
	return out
}

// messagePrefix starts the data of every message between clients.
const messagePrefix = "peapod-measure:"

// party is a client as the harness drives it.
type party struct {
	node int // its index in the trace
	addr address.Address
	ep   testnet.Endpoint
}

// send sends a message between clients, recorded under id.
func (l *ledger) send(ctx context.Context, from, to *party, id string, probe bool) error {
	l.sent(id, &message{from: from.node, to: to.node, sent: time.Now(), probe: probe})
	if err := from.ep.Send(ctx, to.addr, []byte(messagePrefix+id)); err != nil {
		l.forget(id)
		return err
	}
	return nil
}

// request sends an echo request to the provider; its reply is recorded
// under id as a message from the provider.
func (l *ledger) request(ctx context.Context, from *party, provider int, addr address.Address, id string) error {
	body, err := (&envelope.Request{ID: id, Service: "echo", Data: []byte(id)}).AppendJSON(nil)
	if err != nil {
		return err
	}
	l.sent(id, &message{from: provider, to: from.node, sent: time.Now()})
	if err := from.ep.SendAnonymous(ctx, addr, body, 1); err != nil {
		l.forget(id)
		return err
	}
	return nil
}

// receive records what p's API hands over until ctx ends or the
// connection fails.
func (l *ledger) receive(ctx context.Context, p *party) error {
	for {
		m, err := p.ep.Receive(ctx)
		at := time.Now()
		if err != nil {
			var ce *testnet.ClientError
			if errors.As(err, &ce) {
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if id, ok := strings.CutPrefix(string(m.Data), messagePrefix); ok {
			l.received(id, at)
			continue
		}
		if r, err := envelope.ParseReply(m.Data); err == nil {
			l.received(r.ID, at)
			continue
		}
		l.received(fmt.Sprintf("unknown-%d", len(m.Data)), at)
	}
}
