package plugins

import (
	"context"
	"errors"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/peapod-mixnet/peapod/handlers"
	pluginpb "github.com/peapod-mixnet/peapod/plugins/proto"
)

// maxStreamCalls is the most requests a plugin serves at once on one
// Dispatch stream; a request beyond it is answered at once with
// handlers.CodeOverloaded.
const maxStreamCalls = 1024

// maxIdleWorkers is the most goroutines a Dispatch stream keeps waiting for
// requests once they are done with one. Reusing them saves starting a
// goroutine, and growing its stack, for every request.
const maxIdleWorkers = 16

// Dispatch serves the requests of one Dispatch stream, concurrently, until
// the host ends the stream (see handler.proto).
func (s *server) Dispatch(stream pluginpb.Handler_DispatchServer) error {
	d := &serverStream{
		srv:    s,
		stream: stream,
		calls:  make(map[uint64]context.CancelFunc),
		work:   make(chan job),
		done:   make(chan struct{}),
	}
	defer d.close()
	return d.run()
}

// job is one request for a worker goroutine.
type job struct {
	ctx    context.Context
	cancel context.CancelFunc
	id     uint64
	in     *pluginpb.HandleRequest
}

// serverStream is the plugin side of one Dispatch stream.
type serverStream struct {
	srv    *server
	stream pluginpb.Handler_DispatchServer

	mu      sync.Mutex
	calls   map[uint64]context.CancelFunc // in flight, by call id
	drained chan struct{}                 // once the host half-closed: closed when calls is empty

	work chan job      // idle workers wait here for a request
	idle atomic.Int32  // workers waiting on work, about
	done chan struct{} // closed when Dispatch returns: idle workers exit

	sendMu sync.Mutex // one Send at a time
	closed bool       // Dispatch has returned: nothing more may be sent
}

// run reads the stream and hands every request to a worker goroutine.
func (d *serverStream) run() error {
	ctx := d.stream.Context()
	for {
		in, err := d.stream.Recv()
		if errors.Is(err, io.EOF) {
			return d.drain(ctx)
		}
		if err != nil {
			return err
		}
		id := in.GetCallId()
		switch {
		case id == 0:
			return status.Error(codes.InvalidArgument, "plugins: request without a call id on a Dispatch stream")
		case in.GetCancel():
			d.cancel(id)
		default:
			if err := d.start(ctx, id, in); err != nil {
				return err
			}
		}
	}
}

// start serves request id in a goroutine of its own.
func (d *serverStream) start(ctx context.Context, id uint64, in *pluginpb.HandleRequest) error {
	var cancel context.CancelFunc
	if t := in.GetTimeoutMicros(); t > 0 {
		ctx, cancel = context.WithTimeout(ctx, microseconds(t))
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	d.mu.Lock()
	if _, dup := d.calls[id]; dup {
		d.mu.Unlock()
		cancel()
		return status.Errorf(codes.InvalidArgument, "plugins: call id %d is already in flight", id)
	}
	if len(d.calls) >= maxStreamCalls {
		d.mu.Unlock()
		cancel()
		d.send(&pluginpb.HandleResponse{CallId: id, Error: &pluginpb.Error{
			Code:    handlers.CodeOverloaded,
			Message: "too many requests in flight",
		}})
		return nil
	}
	d.calls[id] = cancel
	d.mu.Unlock()
	j := job{ctx: ctx, cancel: cancel, id: id, in: in}
	select {
	case d.work <- j:
	default:
		go d.worker(j)
	}
	return nil
}

// worker serves j, then further requests while it is needed.
func (d *serverStream) worker(j job) {
	for {
		d.serve(j.ctx, j.cancel, j.id, j.in)
		j = job{}
		if d.idle.Add(1) > maxIdleWorkers {
			d.idle.Add(-1)
			return
		}
		select {
		case j = <-d.work:
			d.idle.Add(-1)
		case <-d.done:
			d.idle.Add(-1)
			return
		}
	}
}

// microseconds converts timeout_micros to a duration, saturating.
func microseconds(us uint64) time.Duration {
	if us > math.MaxInt64/uint64(time.Microsecond) {
		return math.MaxInt64
	}
	return time.Duration(us) * time.Microsecond
}

// serve runs the handler for request id and sends its answer, unless the
// host cancelled the request meanwhile.
func (d *serverStream) serve(ctx context.Context, cancel context.CancelFunc, id uint64, in *pluginpb.HandleRequest) {
	resp := d.srv.handle(ctx, in)
	resp.CallId = id
	d.mu.Lock()
	_, live := d.calls[id]
	d.mu.Unlock()
	if live {
		d.send(resp)
	}
	// Only now, so that drain cannot end the stream before the answer is
	// sent.
	d.forget(id)
	cancel()
}

// cancel cancels request id, if it is in flight: its handler's context
// ends and its answer is not sent.
func (d *serverStream) cancel(id uint64) {
	if cancel := d.forget(id); cancel != nil {
		cancel()
	}
}

// forget removes request id from the requests in flight and returns its
// cancel function, or nil if it was not in flight.
func (d *serverStream) forget(id uint64) context.CancelFunc {
	d.mu.Lock()
	defer d.mu.Unlock()
	cancel := d.calls[id]
	delete(d.calls, id)
	if d.drained != nil && len(d.calls) == 0 {
		close(d.drained)
		d.drained = nil
	}
	return cancel
}

// send sends resp, unless Dispatch has returned. An error means that the
// stream is gone, which run learns from Recv.
func (d *serverStream) send(resp *pluginpb.HandleResponse) {
	d.sendMu.Lock()
	defer d.sendMu.Unlock()
	if !d.closed {
		_ = d.stream.Send(resp)
	}
}

// drain waits, once the host has half-closed the stream, for the requests
// in flight to be answered (or for the stream to end).
func (d *serverStream) drain(ctx context.Context) error {
	d.mu.Lock()
	if len(d.calls) == 0 {
		d.mu.Unlock()
		return nil
	}
	drained := make(chan struct{})
	d.drained = drained
	d.mu.Unlock()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close ends the stream's requests: their contexts end, and their answers
// are no longer sent (gRPC forbids sending once Dispatch has returned).
func (d *serverStream) close() {
	close(d.done)
	d.sendMu.Lock()
	d.closed = true
	d.sendMu.Unlock()
	d.mu.Lock()
	calls := d.calls
	d.calls = nil
	d.mu.Unlock()
	for _, cancel := range calls {
		cancel()
	}
}
