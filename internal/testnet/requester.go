package testnet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/framework/envelope"
)

// OutcomeOK is the Tracker outcome of a successful reply; a failure's
// outcome is its error code.
const OutcomeOK = "ok"

// RequesterOptions tune a Requester.
type RequesterOptions struct {
	// SURBs is how many reply SURBs go with each request. Default 10, the
	// default of framework/requester (and so of `client echo`).
	SURBs int
	// Resend, when positive, sends a request again, with the same id and
	// fresh SURBs, when no reply came within it, as framework/requester
	// does; the provider answers a repeated id from its idempotence cache
	// without running the request again. Zero never resends, so that
	// every reply lost by the system shows.
	Resend time.Duration
}

// DefaultRequestSURBs is the default of RequesterOptions.SURBs.
const DefaultRequestSURBs = 10

// Requester sends provider requests (package envelope) through an
// Endpoint, anonymously with reply SURBs, and collects the replies by id.
// Its methods are safe for concurrent use.
type Requester struct {
	ep       Endpoint
	provider address.Address
	opts     RequesterOptions
	tracker  *Tracker

	mu        sync.Mutex
	replies   map[string][]*envelope.Reply
	changed   chan struct{}
	bad       []string // messages that were not replies
	clientErr []string // errors the client reported
	err       error    // why the receive loop ended
	pending   map[string]*pendingRequest

	cancel context.CancelFunc
	done   chan struct{} // closed when the receive loop ends
	loops  sync.WaitGroup
}

// pendingRequest is a request without a reply yet.
type pendingRequest struct {
	body   []byte
	sentAt time.Time
}

// NewRequester starts collecting the replies that arrive at ep. Requests
// go to provider; every request and reply is also recorded in tracker,
// which may be shared between requesters (ids must then be unique across
// them).
func NewRequester(ep Endpoint, provider address.Address, tracker *Tracker, opts RequesterOptions) *Requester {
	if opts.SURBs <= 0 {
		opts.SURBs = DefaultRequestSURBs
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Requester{
		ep: ep, provider: provider, opts: opts, tracker: tracker,
		replies: make(map[string][]*envelope.Reply),
		pending: make(map[string]*pendingRequest),
		changed: make(chan struct{}),
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	r.loops.Add(1)
	go func() { defer r.loops.Done(); r.receive(ctx) }()
	if opts.Resend > 0 {
		r.loops.Add(1)
		go func() { defer r.loops.Done(); r.resendLoop(ctx) }()
	}
	return r
}

// resendLoop sends again the requests that got no reply within Resend.
func (r *Requester) resendLoop(ctx context.Context) {
	t := time.NewTicker(min(r.opts.Resend/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		type due struct {
			id   string
			body []byte
		}
		var dues []due
		now := time.Now()
		r.mu.Lock()
		for id, p := range r.pending {
			if now.Sub(p.sentAt) >= r.opts.Resend {
				p.sentAt = now
				dues = append(dues, due{id, p.body})
			}
		}
		surbs := r.opts.SURBs
		r.mu.Unlock()
		for _, d := range dues {
			r.tracker.Resent(d.id)
			if err := r.ep.SendAnonymous(ctx, r.provider, d.body, surbs); err != nil {
				return
			}
		}
	}
}

func (r *Requester) receive(ctx context.Context) {
	defer close(r.done)
	for {
		m, err := r.ep.Receive(ctx)
		if err != nil {
			var ce *ClientError
			if errors.As(err, &ce) {
				r.mu.Lock()
				r.clientErr = append(r.clientErr, ce.Err.Error())
				r.mu.Unlock()
				continue
			}
			r.mu.Lock()
			r.err = err
			r.mu.Unlock()
			return
		}
		rep, err := envelope.ParseReply(m.Data)
		r.mu.Lock()
		if err != nil {
			r.bad = append(r.bad, fmt.Sprintf("%q: %v", truncate(m.Data, 80), err))
		} else {
			delete(r.pending, rep.ID)
			r.replies[rep.ID] = append(r.replies[rep.ID], rep)
			outcome := OutcomeOK
			if rep.Err != nil {
				outcome = string(rep.Err.Code)
			}
			r.tracker.Got(rep.ID, outcome)
		}
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
	}
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// Request sends one request. The tracker counts it as sent unless the
// endpoint refuses it at once.
func (r *Requester) Request(ctx context.Context, id, service string, data []byte) error {
	body, err := (&envelope.Request{ID: id, Service: service, Data: data}).AppendJSON(nil)
	if err != nil {
		return err
	}
	return r.RequestRaw(ctx, id, body)
}

// RequestRaw sends body as it is, tracked under id: for malformed
// requests.
func (r *Requester) RequestRaw(ctx context.Context, id string, body []byte) error {
	r.tracker.Sent(id)
	r.mu.Lock()
	if r.opts.Resend > 0 && len(r.replies[id]) == 0 {
		r.pending[id] = &pendingRequest{body: body, sentAt: time.Now()}
	}
	surbs := r.opts.SURBs
	r.mu.Unlock()
	if err := r.ep.SendAnonymous(ctx, r.provider, body, surbs); err != nil {
		r.tracker.Forget(id)
		r.mu.Lock()
		delete(r.pending, id)
		r.mu.Unlock()
		return err
	}
	return nil
}

// SetSURBs changes how many reply SURBs go with the next requests.
func (r *Requester) SetSURBs(n int) {
	r.mu.Lock()
	r.opts.SURBs = n
	r.mu.Unlock()
}

// Replies returns the replies that arrived for id, first first.
func (r *Requester) Replies(id string) []*envelope.Reply {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*envelope.Reply(nil), r.replies[id]...)
}

// Await waits for the first reply to id.
func (r *Requester) Await(ctx context.Context, id string) (*envelope.Reply, error) {
	for {
		r.mu.Lock()
		reps, changed, err := r.replies[id], r.changed, r.err
		r.mu.Unlock()
		if len(reps) > 0 {
			return reps[0], nil
		}
		if err != nil {
			return nil, fmt.Errorf("testnet: no reply to %s: the endpoint failed: %w", id, err)
		}
		select {
		case <-changed:
		case <-r.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("testnet: no reply to %s: %w", id, ctx.Err())
		}
	}
}

// Call sends a request and waits for its reply.
func (r *Requester) Call(ctx context.Context, id, service string, data []byte) (*envelope.Reply, error) {
	if err := r.Request(ctx, id, service, data); err != nil {
		return nil, err
	}
	return r.Await(ctx, id)
}

// Problems lists the messages that were not replies and the errors the
// client reported.
func (r *Requester) Problems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]string(nil), r.bad...)
	for _, e := range r.clientErr {
		out = append(out, "client error: "+e)
	}
	return out
}

// Close stops collecting and closes the endpoint.
func (r *Requester) Close() error {
	r.cancel()
	err := r.ep.Close()
	r.loops.Wait()
	return err
}

// Forget drops the replies collected for id, so that Await(id) waits for a
// new one: for replies whose id repeats, such as the empty id of replies
// to requests the provider could not parse.
func (r *Requester) Forget(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.replies, id)
	delete(r.pending, id)
}
