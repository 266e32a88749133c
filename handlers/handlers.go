// Package handlers defines how a peapod provider hands a request to application
// code, and the pieces that sit between the two.
//
// The provider host receives requests through the mixnet, turns each into a
// [Request] and passes it to a [Handler]. A [Router] holds the handlers of every
// service the provider offers and dispatches on [Request.Service]; in a running
// provider the handlers behind the router are usually proxies to plugin
// processes (see package plugins), but any Handler works, which is how tests and
// in-process services plug in.
//
// Failures are reported as [*Error] values carrying one of the protocol's error
// codes ([CodeBadRequest], [CodeUnknownService], ...), or a code of the
// service's own such as "not_found"; [CodeOf] recovers the code from any error.
//
// [Middleware] wraps a Handler with behaviour common to all services:
// [Recover] turns panics into errors, [Logging] writes one line per request and
// [Timeout] bounds how long a request may take. [Chain] composes them; the usual
// order is
//
//	h := handlers.Chain(router, handlers.Logging(log), handlers.Recover(), handlers.Timeout(10*time.Second))
package handlers

import "context"

// Request is one request to a service, as the provider host received it.
type Request struct {
	// Service names the service the request is for, e.g. "kv".
	Service string
	// ID is the request id chosen by the requester. It is echoed in the reply
	// so the requester can match replies to requests; it carries no meaning
	// for the handler and is not unique across requesters.
	ID string
	// Requester is an opaque string, stable for one anonymous requester,
	// derived by the host from the requester's sender tag. Handlers may use it
	// to scope data (one requester's session, quota or mailbox), but it
	// identifies nobody: it is not an address, and two requesters cannot be
	// linked through it. It is empty when the requester sent no tag.
	Requester string
	// Data is the request payload, in whatever format the service defines.
	// It belongs to the caller: a handler must not keep it, or any slice of
	// it, after Handle returns.
	Data []byte
}

// Handler serves requests for one or more services.
//
// Implementations must be safe for concurrent use: the host calls Handle from
// many goroutines at once. Handle must honour ctx: when ctx is done (the
// request timed out, or the host is shutting down) it should stop work and
// return promptly, typically with ctx.Err(). It must not keep req.Data, or
// any slice of it, after returning.
//
// On success Handle returns the reply payload, which then belongs to the
// caller (the handler must not modify it afterwards); a nil or empty reply is
// valid. The reply may be req.Data itself or share its memory (an echo
// service returns req.Data), so a caller must be done with the reply before
// it reuses the request's buffer. On failure it returns an error. Only an
// [*Error] reaches the requester with its code and message, so word those
// for the requester and keep secrets out of them. Any other error stays in
// the provider: its text is logged and the requester is told only
// [CodeHandlerFailed], "the handler failed" ([CodeTimeout] for an expired
// deadline; see [CodeOf]), in process and in a plugin alike.
type Handler interface {
	Handle(ctx context.Context, req *Request) ([]byte, error)
}

// HandlerFunc adapts an ordinary function to the [Handler] interface.
type HandlerFunc func(ctx context.Context, req *Request) ([]byte, error)

// Handle calls f(ctx, req).
func (f HandlerFunc) Handle(ctx context.Context, req *Request) ([]byte, error) {
	return f(ctx, req)
}

var _ Handler = HandlerFunc(nil)
