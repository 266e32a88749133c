package nymapi

import (
	"context"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client"
)

// Backend is the mixnet client a Server serves: *client.Client, or a fake in
// tests. Its methods must be safe for concurrent use; the Server calls them
// from one goroutine per WebSocket connection and one receiving goroutine.
//
// The Server relies on this contract:
//   - Address returns the client's address; it is called for every
//     SelfAddress request, so it must be cheap.
//   - Send, SendAnonymous and Reply queue a message and may block while the
//     client's send queue is full; they return early with ctx's error when
//     ctx ends (the Server cancels it when the requesting connection
//     closes). An error means the message was not sent. A non-nil
//     *client.Delivery reports later whether the message arrived; the Server
//     watches it and reports a failure to the connection that asked. A nil
//     Delivery with a nil error means there is nothing to watch.
//   - The options are built with client.WithLane, the request's connection
//     id.
//   - ReceiveKept blocks until a message arrives or ctx ends. It must not
//     lose a message when ctx ends: a message is either returned or left
//     for the next call. Any error other than ctx's means the backend has
//     stopped (for example client.ErrClosed), and the Server stops
//     receiving. The backend keeps the message until Forget.
//   - Forget is called with a message from ReceiveKept once it has been
//     written to an application's socket. A message never forgotten (the
//     process died, or every connection closed before it was written) is
//     the backend's to deliver again after a restart.
//   - LaneQueueLength and CloseLane do not block.
type Backend interface {
	Address() address.Address
	Send(ctx context.Context, to address.Address, data []byte, opts ...client.SendOption) (*client.Delivery, error)
	SendAnonymous(ctx context.Context, to address.Address, data []byte, surbs int, opts ...client.SendOption) (*client.Delivery, error)
	Reply(ctx context.Context, tag address.SenderTag, data []byte, opts ...client.SendOption) (*client.Delivery, error)
	ReceiveKept(ctx context.Context) (client.Message, error)
	Forget(m client.Message)
	LaneQueueLength(lane uint64) int
	CloseLane(lane uint64)
}

// The embedded mixnet client is a Backend.
var _ Backend = (*client.Client)(nil)
