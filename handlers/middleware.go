package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Middleware wraps a Handler with behaviour of its own, returning a Handler
// that usually calls the wrapped one.
type Middleware func(Handler) Handler

// Chain wraps h in mws. The first middleware is the outermost: it sees the
// request first and the reply last. Chain(h, a, b) is a(b(h)).
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Recover returns middleware that turns a panic in the wrapped handler into
// a [CodeHandlerFailed] error, so one faulty handler cannot take the host
// down. The panic value and its stack are logged at error level through the
// logger attached to the request context (zerolog.Ctx), which [Logging]
// provides: put Recover inside Logging. The requester only learns that the
// handler failed.
//
// A panic raised inside [Timeout] is carried back to the caller's goroutine
// with its original stack, so Recover may sit outside Timeout too.
func Recover() Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, req *Request) (reply []byte, err error) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				stack := debug.Stack()
				if p, ok := v.(*handlerPanic); ok {
					v, stack = p.value, p.stack
				}
				zerolog.Ctx(ctx).Error().
					Str("service", logServiceName(req.Service)).
					Str("panic", fmt.Sprint(v)).
					Str("stack", string(stack)).
					Msg("handler panicked")
				reply, err = nil, Errorf(CodeHandlerFailed, "handler panicked")
			}()
			return next.Handle(ctx, req)
		})
	}
}

// handlerPanic carries a panic from the goroutine Timeout runs a handler in
// to the caller's goroutine, keeping the stack of the original panic.
type handlerPanic struct {
	value any
	stack []byte
}

func (p *handlerPanic) String() string { return fmt.Sprint(p.value) }

// Logging returns middleware that writes one line per request to logger:
// the service, the outcome code ("ok" on success) and the duration, plus the
// error message on failure. It never logs request or reply data, the
// request id or the requester. Failures with [CodeHandlerFailed] or
// [CodeTimeout] are logged at warn level, everything else at info level.
//
// The request context passed on carries logger with the service field
// attached (retrieve it with zerolog.Ctx), so handlers and inner middleware
// such as [Recover] log through it.
func Logging(logger zerolog.Logger) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
			start := time.Now()
			l := logger.With().Str("service", logServiceName(req.Service)).Logger()
			reply, err := next.Handle(l.WithContext(ctx), req)
			d := time.Since(start)
			if err == nil {
				l.Info().Str("code", "ok").Dur("duration", d).Msg("request")
				return reply, nil
			}
			code := CodeOf(err)
			ev := l.Info()
			if code == CodeHandlerFailed || code == CodeTimeout {
				ev = l.Warn()
			}
			ev.Str("code", code).Dur("duration", d).Str("error", err.Error()).Msg("request")
			return reply, err
		})
	}
}

// logServiceName returns name if it is a valid service name and a
// placeholder otherwise, so requester-chosen garbage never reaches the logs.
func logServiceName(name string) string {
	if ValidServiceName(name) {
		return name
	}
	return "(invalid)"
}

// Timeout returns middleware that bounds each request to d. The wrapped
// handler gets a context with that deadline; if it has not returned when the
// deadline passes, the middleware returns a [CodeTimeout] error at once,
// without waiting for it. A handler that ignores its context keeps running
// in the background until it returns, and its result is dropped; so that it
// never touches the caller's buffer after the middleware has returned, the
// wrapped handler receives a copy of the request with its own copy of Data.
//
// If the caller's context is cancelled (rather than past a deadline) the
// middleware returns at once with an error wrapping context.Canceled. A panic
// in the wrapped handler is re-raised in the caller's goroutine, with its
// original stack, for [Recover] to handle; one that happens after the
// middleware has returned is logged through zerolog.Ctx and dropped.
//
// A d of zero or less disables the timeout: Timeout then returns the handler
// unchanged.
func Timeout(d time.Duration) Middleware {
	return func(next Handler) Handler {
		if d <= 0 {
			return next
		}
		return HandlerFunc(func(ctx context.Context, req *Request) ([]byte, error) {
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			call := &timedCall{done: make(chan timedResult, 1)}
			r := *req
			r.Data = bytes.Clone(req.Data)
			go call.run(ctx, next, &r)

			select {
			case res := <-call.done:
				return res.unpack()
			case <-ctx.Done():
			}
			if res, ok := call.abandon(); ok {
				// The handler finished just as the deadline passed.
				return res.unpack()
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, Errorf(CodeTimeout, "no reply within %v", d)
			}
			return nil, fmt.Errorf("handlers: request cancelled: %w", ctx.Err())
		})
	}
}

type timedResult struct {
	reply []byte
	err   error
	panic *handlerPanic
}

func (r timedResult) unpack() ([]byte, error) {
	if r.panic != nil {
		panic(r.panic)
	}
	return r.reply, r.err
}

// timedCall hands the result of a handler running under Timeout back to the
// caller, unless the caller has stopped waiting.
type timedCall struct {
	mu        sync.Mutex
	abandoned bool
	done      chan timedResult // capacity 1
}

func (c *timedCall) run(ctx context.Context, h Handler, req *Request) {
	var res timedResult
	defer func() {
		if v := recover(); v != nil {
			res = timedResult{panic: &handlerPanic{value: v, stack: debug.Stack()}}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.abandoned {
			c.done <- res
			return
		}
		if res.panic != nil {
			zerolog.Ctx(ctx).Error().
				Str("service", logServiceName(req.Service)).
				Str("panic", fmt.Sprint(res.panic.value)).
				Str("stack", string(res.panic.stack)).
				Msg("handler panicked after its timeout")
		}
	}()
	res.reply, res.err = h.Handle(ctx, req)
}

// abandon marks the call as no longer awaited and returns the result if the
// handler delivered it before that.
func (c *timedCall) abandon() (timedResult, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.abandoned = true
	select {
	case res := <-c.done:
		return res, true
	default:
		return timedResult{}, false
	}
}
