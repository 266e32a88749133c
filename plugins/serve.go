package plugins

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"

	"github.com/peapod-mixnet/peapod/handlers"
	pluginpb "github.com/peapod-mixnet/peapod/plugins/proto"
)

// Service is one service a plugin offers: its name and description as the
// host will list them, and the handler that serves its requests.
type Service struct {
	// Name is the service name requesters use; see handlers.ValidServiceName.
	Name string
	// Description is a short human-readable summary, at most
	// MaxDescriptionLen bytes.
	Description string
	// Handler serves the service's requests; see handlers.Handler for its
	// contract. Requests arrive concurrently.
	Handler handlers.Handler
}

// Serve runs the calling program as a peapod plugin offering services, and
// returns when the host stops the plugin. It is meant to be called from a
// plugin's main function:
//
//	func main() {
//		err := plugins.Serve(plugins.Service{Name: "echo", Description: "replies with what it gets",
//			Handler: handlers.HandlerFunc(func(ctx context.Context, req *handlers.Request) ([]byte, error) {
//				return req.Data, nil
//			})})
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//	}
//
// Serve returns an error at once if services is empty or invalid (a bad or
// duplicate name, a nil handler, a description too long) or if the program
// was not started by a peapod host.
//
// A handler that returns a *handlers.Error has its code and message reported
// to the requester as they are (the code must be of the form described in
// handlers, at most MaxErrorCodeLen bytes; the message is cut to
// MaxErrorMessageLen). Any other error is logged (in the host's log, under
// the plugin's name) and reported as handlers.CodeHandlerFailed with the
// generic message "the handler failed" (handlers.CodeTimeout, "no reply in
// time", for an expired deadline): its text may hold what a requester must
// not learn. A handler that panics is
// reported as handlers.CodeHandlerFailed and the plugin keeps serving; the
// panic and its stack go to the host's log. Inside a handler,
// zerolog.Ctx(ctx) returns a logger whose lines the host logs under the
// plugin's name.
//
// Serve answers the host's requests whichever way it sends them: on a
// Dispatch stream (at most 1024 at once per stream; more are answered with
// handlers.CodeOverloaded) or as Handle calls. A reply longer than the
// host's limit is answered with handlers.CodeTooLarge.
//
// Handlers run on the Go scheduler with the default GOMAXPROCS. A plugin
// whose handlers do little CPU work answers sooner, and costs less CPU per
// request, with runtime.GOMAXPROCS(1) called before Serve: on an idle
// scheduler, every goroutine woken with a processor idle also wakes a
// thread to look for work. docs/plugins.md has the figures.
//
// Once the handshake is done, the host logs what the plugin writes to its
// standard output and error; the plugin must not write to standard output
// before calling Serve.
func Serve(services ...Service) error {
	logger := zerolog.New(zerolog.ConsoleWriter{
		Out:          os.Stderr,
		NoColor:      true,
		PartsExclude: []string{zerolog.TimestampFieldName},
	})
	srv, err := newServer(logger, services)
	if err != nil {
		return err
	}
	if os.Getenv(Handshake.MagicCookieKey) != Handshake.MagicCookieValue {
		return errors.New("plugins: this program is a peapod plugin: the provider host starts it, it is not meant to be run by hand")
	}
	exitWhenOrphaned(time.Second)
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         pluginSet(srv),
		GRPCServer:      newGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:   "go-plugin",
			Level:  hclog.Warn,
			Output: os.Stderr,
		}),
	})
	return nil
}

// newGRPCServer is the plugin's gRPC server. Fixed flow-control windows
// turn off gRPC's bandwidth-delay probing, whose extra PING frames cost a
// round of wake-ups on both sides of every small call; stream workers reuse
// goroutines across calls.
func newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts,
		grpc.InitialWindowSize(flowWindow),
		grpc.InitialConnWindowSize(flowWindow),
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
	)...)
}

// DataDir returns the path of the plugin's data folder (also its working
// directory), which the host passes in the environment variable DataDirEnv,
// and an error if the variable is unset, which means the program was not
// started by a host:
//
//	dir, err := plugins.DataDir()
//	if err != nil {
//		fmt.Fprintln(os.Stderr, err)
//		os.Exit(1)
//	}
func DataDir() (string, error) {
	dir := os.Getenv(DataDirEnv)
	if dir == "" {
		return "", fmt.Errorf("plugins: %s is not set: this program is a peapod plugin, started by the provider host", DataDirEnv)
	}
	return dir, nil
}

// server is the plugin side of the Handler service.
type server struct {
	pluginpb.UnimplementedHandlerServer
	log      zerolog.Logger
	services []*pluginpb.Service
	loggers  map[string]*zerolog.Logger // per service, with its name
	handler  handlers.Handler
	maxReply atomic.Uint64 // the host's reply limit; 0 until it says
}

var _ pluginpb.HandlerServer = (*server)(nil)

// newServer checks services and builds the server that dispatches to them.
func newServer(log zerolog.Logger, services []Service) (*server, error) {
	if len(services) == 0 {
		return nil, errors.New("plugins: no services to serve")
	}
	if len(services) > MaxServices {
		return nil, fmt.Errorf("plugins: %d services, at most %d allowed", len(services), MaxServices)
	}
	s := &server{log: log, loggers: make(map[string]*zerolog.Logger, len(services))}
	var router handlers.Router
	for _, svc := range services {
		if len(svc.Description) > MaxDescriptionLen {
			return nil, fmt.Errorf("plugins: description of service %q longer than %d bytes", svc.Name, MaxDescriptionLen)
		}
		if err := router.Register(handlers.ServiceInfo{Name: svc.Name, Description: svc.Description}, svc.Handler); err != nil {
			return nil, fmt.Errorf("plugins: %w", err)
		}
		l := log.With().Str("service", svc.Name).Logger()
		s.loggers[svc.Name] = &l
		s.services = append(s.services, &pluginpb.Service{
			Name:        svc.Name,
			Description: clip(svc.Description, MaxDescriptionLen),
		})
	}
	s.handler = handlers.Recover()(&router)
	return s, nil
}

// Describe lists the plugin's services and notes the host's reply limit.
func (s *server) Describe(_ context.Context, in *pluginpb.DescribeRequest) (*pluginpb.DescribeResponse, error) {
	s.maxReply.Store(in.GetMaxReplySize())
	return &pluginpb.DescribeResponse{Services: s.services}, nil
}

// Handle serves one request. Handler failures travel in the response, never
// as a gRPC error.
func (s *server) Handle(ctx context.Context, in *pluginpb.HandleRequest) (*pluginpb.HandleResponse, error) {
	return s.handle(ctx, in), nil
}

// handle serves one request, from Handle or Dispatch, and returns the
// response to send.
func (s *server) handle(ctx context.Context, in *pluginpb.HandleRequest) *pluginpb.HandleResponse {
	if l := s.loggers[in.GetService()]; l != nil {
		ctx = l.WithContext(ctx)
	} else {
		ctx = s.log.With().Str("service", in.GetService()).Logger().WithContext(ctx)
	}
	reply, err := s.handler.Handle(ctx, &handlers.Request{
		Service:   in.GetService(),
		ID:        in.GetId(),
		Requester: in.GetRequester(),
		Data:      in.GetData(),
	})
	if err != nil {
		return &pluginpb.HandleResponse{Error: wireError(ctx, err)}
	}
	if limit := s.maxReply.Load(); limit > 0 && uint64(len(reply)) > limit {
		return &pluginpb.HandleResponse{Error: &pluginpb.Error{
			Code:    handlers.CodeTooLarge,
			Message: fmt.Sprintf("reply longer than %d bytes", limit),
		}}
	}
	return &pluginpb.HandleResponse{Data: reply}
}

// Messages a requester gets for errors its plugin's author did not word for
// it.
const (
	genericFailure = "the handler failed"
	genericTimeout = "no reply in time"
)

// wireError converts a handler's error to what the requester is told. Only
// a *handlers.Error, which the plugin's author words for the requester,
// keeps its code and message. Any other error may say more than a
// requester should learn (a path, a password, a database's name): its text
// is logged, on the plugin's logger in ctx (the host's log, under the
// plugin's name), and the requester gets handler_failed with a generic
// message (timeout, for a deadline; see handlers.CodeOf).
func wireError(ctx context.Context, err error) *pluginpb.Error {
	var he *handlers.Error
	if errors.As(err, &he) && he != nil && he.Code != "" {
		if !validErrorCode(he.Code) {
			zerolog.Ctx(ctx).Warn().Str("code", clip(he.Code, MaxErrorCodeLen)).Msg("handler returned an invalid error code; answered handler_failed")
			return &pluginpb.Error{Code: handlers.CodeHandlerFailed, Message: "the handler returned an invalid error code"}
		}
		return &pluginpb.Error{Code: he.Code, Message: clip(he.Message, MaxErrorMessageLen)}
	}
	zerolog.Ctx(ctx).Warn().Err(err).Msg("handler failed; the requester is told only that it failed (return a *handlers.Error to tell it more)")
	if handlers.CodeOf(err) == handlers.CodeTimeout {
		return &pluginpb.Error{Code: handlers.CodeTimeout, Message: genericTimeout}
	}
	return &pluginpb.Error{Code: handlers.CodeHandlerFailed, Message: genericFailure}
}
