package plugins

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/peapod-mixnet/peapod/handlers"
	pluginpb "github.com/peapod-mixnet/peapod/plugins/proto"
)

// maxStreamRequest is the largest request data sent on a Dispatch stream.
// A larger request takes a Handle call of its own, so that it neither holds
// up the small requests queued behind it on the stream nor, if the plugin
// refuses it for its size, breaks the stream for every request in flight.
const maxStreamRequest = 256 << 10

// sendStallGrace is how long a send may still block once its caller has
// given up (or a cancel message may block) before the stream is reset: a
// plugin that has not read its stream for so long is wedged, and the
// caller must be able to return.
const sendStallGrace = 100 * time.Millisecond

// errStalled breaks a stream that the plugin does not read.
var errStalled = errors.New("plugins: plugin does not read its dispatch stream")

// errUnimplemented is how a stream tells its pending calls that the plugin
// does not implement Dispatch: they are sent again with Handle.
var errUnimplemented = errors.New("plugins: plugin does not implement Dispatch")

// dispatcher sends the requests for one running plugin process: on one
// long-lived Dispatch stream, multiplexed by call id, or, for a plugin that
// answers Dispatch with Unimplemented, one Handle call each. It is safe for
// concurrent use.
type dispatcher struct {
	rpc      pluginpb.HandlerClient
	log      zerolog.Logger
	maxReply int

	unary atomic.Bool // the plugin does not implement Dispatch

	mu     sync.Mutex
	cur    *dispatchStream // the open stream; nil before the first call and after it broke
	closed bool
	wg     sync.WaitGroup // the streams' receive goroutines
}

// newDispatcher returns a dispatcher for the plugin at the other end of
// rpc, accepting replies of at most maxReply bytes. It opens no stream
// before the first call.
func newDispatcher(rpc pluginpb.HandlerClient, log zerolog.Logger, maxReply int) *dispatcher {
	return &dispatcher{rpc: rpc, log: log, maxReply: maxReply}
}

// call sends req to the plugin and converts the outcome: the plugin's own
// error is returned as a *handlers.Error; a failed call is classified by
// callError, and if it failed for a reason other than time, the details
// are logged (the requester only learns that the handler failed).
func (d *dispatcher) call(ctx context.Context, req *handlers.Request) ([]byte, error) {
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, callError(ctx, err)
	}
	if !d.unary.Load() && len(req.Data) <= maxStreamRequest {
		s, err := d.stream(ctx)
		if err == nil {
			var resp *pluginpb.HandleResponse
			resp, err = s.call(ctx, req)
			if err == nil || !errors.Is(err, errUnimplemented) {
				return d.result(ctx, req, resp, err)
			}
		} else if !errors.Is(err, errUnimplemented) {
			return nil, d.failed(ctx, req, err)
		}
		// The plugin predates Dispatch; d.unary is set.
	}
	resp, err := callUnary(ctx, d.rpc, req, d.maxReply)
	return d.result(ctx, req, resp, err)
}

// result converts a plugin's answer, or the failure to get one.
func (d *dispatcher) result(ctx context.Context, req *handlers.Request, resp *pluginpb.HandleResponse, err error) ([]byte, error) {
	if err != nil {
		return nil, d.failed(ctx, req, err)
	}
	if e := resp.GetError(); e != nil {
		return nil, fromWire(e)
	}
	if len(resp.GetData()) > d.maxReply {
		return nil, handlers.Errorf(handlers.CodeTooLarge, "reply longer than %d bytes", d.maxReply)
	}
	return resp.GetData(), nil
}

// failed classifies a call's failure and logs it if the plugin is to
// blame.
func (d *dispatcher) failed(ctx context.Context, req *handlers.Request, err error) error {
	herr := callError(ctx, err)
	if ctx.Err() == nil && handlers.CodeOf(herr) == handlers.CodeHandlerFailed {
		d.log.Warn().Str("service", req.Service).Err(err).Msg("plugin call failed")
	}
	return herr
}

// stream returns the open Dispatch stream, opening one if there is none;
// ctx bounds the opening.
func (d *dispatcher) stream(ctx context.Context) (*dispatchStream, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
		return nil, errors.New("plugins: plugin is stopping")
	case d.cur != nil:
		return d.cur, nil
	case d.unary.Load():
		// Set by the stream that failed since the caller looked.
		return nil, errUnimplemented
	}
	// The stream outlives the call that opens it, but gRPC may wait for
	// the connection before it returns.
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	rs, err := d.rpc.Dispatch(sctx)
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("plugins: open dispatch stream: %w", err)
	}
	// Commit the stream at once: until then gRPC keeps a copy of every
	// message sent, to replay them should it retry the stream.
	_ = rs.Context()
	s := &dispatchStream{
		d:       d,
		rs:      rs,
		cancel:  cancel,
		sendTok: make(chan struct{}, 1),
		pending: make(map[uint64]*pendingCall),
	}
	s.sendTok <- struct{}{}
	d.cur = s
	d.wg.Add(1)
	go s.receive()
	return s, nil
}

// dropStream forgets s, which broke, so that the next call opens a new one.
func (d *dispatcher) dropStream(s *dispatchStream) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == s {
		d.cur = nil
	}
}

// close resets the open stream, failing the calls in flight on it, and
// returns when its receive goroutine has ended. Later calls fail.
func (d *dispatcher) close() {
	d.mu.Lock()
	d.closed = true
	s := d.cur
	d.mu.Unlock()
	if s != nil {
		s.fail(errors.New("plugins: plugin is stopping"))
	}
	d.wg.Wait()
}

// dispatchStream is one Dispatch stream and the calls in flight on it.
//
// A caller registers its call under a new id, takes the send token, sends
// its request and waits for pendingCall.done; the receive goroutine hands
// each response to the call with its id. When the stream breaks, every
// call in flight is failed at once and the dispatcher opens a new stream
// for the next call. Nothing is queued but the callers themselves: a
// plugin that reads its stream slowly holds up the callers waiting for the
// send token (gRPC flow control), and each of them gives up when its
// context ends.
type dispatchStream struct {
	d       *dispatcher
	rs      pluginpb.Handler_DispatchClient
	cancel  context.CancelFunc // resets the stream
	sendTok chan struct{}      // holds a token while no one is sending

	mu       sync.Mutex
	lastID   uint64
	pending  map[uint64]*pendingCall
	err      error // why the stream broke; nil while it works
	answered bool  // a response has arrived
}

// pendingCall is a call waiting for its response.
type pendingCall struct {
	done chan struct{} // receives one value when resp or err is set
	resp *pluginpb.HandleResponse
	err  error
}

var pendingPool = sync.Pool{New: func() any { return &pendingCall{done: make(chan struct{}, 1)} }}

// call sends req on the stream and waits for the answer, for ctx to end, or
// for the stream to break.
func (s *dispatchStream) call(ctx context.Context, req *handlers.Request) (*pluginpb.HandleResponse, error) {
	msg := &pluginpb.HandleRequest{
		Service:   req.Service,
		Id:        req.ID,
		Requester: req.Requester,
		Data:      req.Data,
	}
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, context.DeadlineExceeded
		}
		msg.TimeoutMicros = uint64((left + time.Microsecond - 1) / time.Microsecond)
	}

	pc := pendingPool.Get().(*pendingCall)
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		pendingPool.Put(pc)
		return nil, err
	}
	s.lastID++
	id := s.lastID
	msg.CallId = id
	s.pending[id] = pc
	s.mu.Unlock()

	select {
	case <-s.sendTok:
	case <-pc.done:
		// The stream broke before our turn came.
		return s.finish(pc)
	case <-ctx.Done():
		return s.giveUp(ctx, id, pc, false)
	}
	if ctx.Err() != nil {
		s.sendTok <- struct{}{}
		return s.giveUp(ctx, id, pc, false)
	}
	// A send error means that the stream broke: the receive goroutine
	// learns why and fails every pending call, this one included.
	_ = s.send(ctx, msg)

	select {
	case <-pc.done:
		return s.finish(pc)
	case <-ctx.Done():
		return s.giveUp(ctx, id, pc, true)
	}
}

// giveUp ends call id, pc, whose context ended; sent says whether its
// request went out, and so whether the plugin is to be told.
func (s *dispatchStream) giveUp(ctx context.Context, id uint64, pc *pendingCall, sent bool) (*pluginpb.HandleResponse, error) {
	if !s.forget(id) {
		// The answer, or the stream's failure, came at the same time.
		<-pc.done
		return s.finish(pc)
	}
	pendingPool.Put(pc)
	if sent {
		s.sendCancel(id)
	}
	return nil, ctx.Err()
}

// send sends msg, holding the send token, which it gives back. A send that
// gRPC still blocks sendStallGrace after ctx ended (the plugin does not
// read its stream) resets the stream, so that the caller can return.
func (s *dispatchStream) send(ctx context.Context, msg *pluginpb.HandleRequest) error {
	defer func() { s.sendTok <- struct{}{} }()
	if ctx.Done() == nil {
		return s.rs.Send(msg)
	}
	var busy atomic.Bool
	busy.Store(true)
	stop := context.AfterFunc(ctx, func() { s.failIfBusy(&busy) })
	err := s.rs.Send(msg)
	busy.Store(false)
	stop()
	return err
}

// failIfBusy resets the stream if busy still holds sendStallGrace from now.
func (s *dispatchStream) failIfBusy(busy *atomic.Bool) {
	time.AfterFunc(sendStallGrace, func() {
		if busy.Load() {
			s.fail(errStalled)
		}
	})
}

// sendCancel tells the plugin that no one waits for call id any more. It
// is best effort: if another caller is sending, the cancel is skipped (the
// plugin still learns the request's deadline from timeout_micros).
func (s *dispatchStream) sendCancel(id uint64) {
	select {
	case <-s.sendTok:
	default:
		return
	}
	defer func() { s.sendTok <- struct{}{} }()
	var busy atomic.Bool
	busy.Store(true)
	s.failIfBusy(&busy)
	_ = s.rs.Send(&pluginpb.HandleRequest{CallId: id, Cancel: true})
	busy.Store(false)
}

// forget removes call id from the pending calls, and reports whether it
// was still there (if not, its answer or failure is on its way).
func (s *dispatchStream) forget(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[id]; !ok {
		return false
	}
	delete(s.pending, id)
	return true
}

// finish returns the outcome of pc, whose done signal was received, and
// recycles pc.
func (s *dispatchStream) finish(pc *pendingCall) (*pluginpb.HandleResponse, error) {
	resp, err := pc.resp, pc.err
	pc.resp, pc.err = nil, nil
	pendingPool.Put(pc)
	return resp, err
}

// receive hands every response on the stream to its call, until the
// stream breaks.
func (s *dispatchStream) receive() {
	defer s.d.wg.Done()
	for {
		resp, err := s.rs.Recv()
		if err != nil {
			s.fail(err)
			return
		}
		id := resp.GetCallId()
		s.mu.Lock()
		if id == 0 || id > s.lastID {
			s.mu.Unlock()
			s.fail(fmt.Errorf("plugins: plugin answered call id %d, which was never sent", id))
			return
		}
		s.answered = true
		pc, ok := s.pending[id]
		delete(s.pending, id)
		s.mu.Unlock()
		// Not ok: an answer to a call that gave up, which is dropped.
		if ok {
			pc.resp = resp
			pc.done <- struct{}{}
		}
	}
}

// fail breaks the stream for err: it resets it, makes the dispatcher open
// a new one for the next call, and fails every call in flight. Only the
// first failure counts.
func (s *dispatchStream) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	if status.Code(err) == codes.Unimplemented && !s.answered {
		err = errUnimplemented
		s.d.unary.Store(true)
	} else if status.Code(err) == codes.ResourceExhausted {
		// Not %w: the call being answered is unknown, and the others
		// must not learn that their reply was too large.
		err = fmt.Errorf("plugins: a message on the dispatch stream was over the size limit: %v", err)
	}
	s.err = err
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()

	s.cancel()
	s.d.dropStream(s)
	if err == errUnimplemented {
		s.d.log.Info().Msg("plugin does not implement Dispatch; using one Handle call per request")
	} else if len(pending) > 0 {
		s.d.log.Warn().Err(err).Int("in_flight", len(pending)).Msg("plugin dispatch stream broke")
	}
	for _, pc := range pending {
		pc.err = err
		pc.done <- struct{}{}
	}
}
