package plugins

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/peapod-mixnet/peapod/handlers"
	pluginpb "github.com/peapod-mixnet/peapod/plugins/proto"
)

// replyOverhead is room for the protobuf framing around a reply's data
// in the gRPC receive limit.
const replyOverhead = 64 << 10

// describe asks a plugin for its services, telling it the longest reply
// the host accepts, and checks the answer.
func describe(ctx context.Context, c pluginpb.HandlerClient, maxReply int) ([]handlers.ServiceInfo, error) {
	resp, err := c.Describe(ctx, &pluginpb.DescribeRequest{MaxReplySize: uint64(maxReply)})
	if err != nil {
		return nil, fmt.Errorf("plugins: describe: %w", err)
	}
	if len(resp.GetServices()) > MaxServices {
		return nil, fmt.Errorf("plugins: describe: %d services, at most %d allowed", len(resp.GetServices()), MaxServices)
	}
	seen := make(map[string]bool)
	out := make([]handlers.ServiceInfo, 0, len(resp.GetServices()))
	for _, s := range resp.GetServices() {
		name := s.GetName()
		switch {
		case !handlers.ValidServiceName(name):
			return nil, fmt.Errorf("plugins: describe: invalid service name %.80q", name)
		case seen[name]:
			return nil, fmt.Errorf("plugins: describe: service %q listed twice", name)
		case len(s.GetDescription()) > MaxDescriptionLen:
			return nil, fmt.Errorf("plugins: describe: description of %q longer than %d bytes", name, MaxDescriptionLen)
		}
		seen[name] = true
		out = append(out, handlers.ServiceInfo{Name: name, Description: s.GetDescription()})
	}
	return out, nil
}

// checkRequest refuses a request that cannot be encoded: protobuf strings
// must be valid UTF-8.
func checkRequest(req *handlers.Request) error {
	if !utf8.ValidString(req.ID) {
		return handlers.Errorf(handlers.CodeBadRequest, "request id is not valid UTF-8")
	}
	if !utf8.ValidString(req.Requester) || !utf8.ValidString(req.Service) {
		return handlers.Errorf(handlers.CodeHandlerFailed, "request has an invalid requester or service")
	}
	return nil
}

// callUnary sends one request to a plugin with a Handle call of its own,
// accepting a reply of at most maxReply bytes (plus framing).
func callUnary(ctx context.Context, c pluginpb.HandlerClient, req *handlers.Request, maxReply int) (*pluginpb.HandleResponse, error) {
	return c.Handle(ctx, &pluginpb.HandleRequest{
		Service:   req.Service,
		Id:        req.ID,
		Requester: req.Requester,
		Data:      req.Data,
	}, grpc.MaxCallRecvMsgSize(maxReply+replyOverhead))
}

// callError classifies an error from a gRPC call to a plugin.
func callError(ctx context.Context, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded:
		return handlers.Errorf(handlers.CodeTimeout, "no reply in time")
	case ctx.Err() != nil:
		return fmt.Errorf("plugins: request cancelled: %w", ctx.Err())
	case status.Code(err) == codes.ResourceExhausted:
		return handlers.Errorf(handlers.CodeTooLarge, "request or reply too large")
	}
	// The connection broke, the plugin died, or it answered garbage.
	return handlers.Errorf(handlers.CodeHandlerFailed, "service unavailable")
}

// fromWire converts a plugin's error to a *handlers.Error, refusing codes
// that are not of the allowed form.
func fromWire(e *pluginpb.Error) *handlers.Error {
	code := e.GetCode()
	if !validErrorCode(code) {
		return handlers.Errorf(handlers.CodeHandlerFailed, "plugin returned an invalid error code")
	}
	return &handlers.Error{Code: code, Message: clip(e.GetMessage(), MaxErrorMessageLen)}
}
