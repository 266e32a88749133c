// Command testplugin is a plugin for the tests of package plugins. Its
// service "test" behaves according to the request data:
//
//	panic           panics in the handler
//	exit            exits the process with status 3
//	hang            blocks forever, ignoring its context
//	error:CODE      fails with a *handlers.Error of code CODE
//	plain-error     fails with an ordinary error
//	pid             replies with its process id
//	env             replies with $PEAPOD_PLUGIN_DATA, its working directory and
//	                whether it can see $PEAPOD_TEST_SECRET, one per line
//	meta            replies with the request's requester and id, one per line
//	stderr:TEXT     writes TEXT to its standard error and replies "ok"
//	big:N           replies with N bytes
//	spawn           starts a child process, "sleep 300", and replies with its pid
//	block           writes "blocking" to its standard error, waits for its
//	                context to end, writes "request context ended: ERR" and
//	                fails with the context's error
//	deadline        replies with the milliseconds left before its context's
//	                deadline, or "none"
//	sleep:D REST    waits for the duration D (time.ParseDuration), or until
//	                its context ends, and then echoes the whole request
//	anything else   is echoed
//
// Built with -ldflags "-X main.variant=v2" it speaks plugin protocol
// version 2 instead, which the host must refuse; with variant=mute it
// completes the handshake line but never answers on the socket it names;
// with variant=unary it implements handler.proto as it was before
// Dispatch (Describe and Handle only), as an old plugin or one written in
// another language against the old file would; with variant=gomaxprocs1 it
// runs with runtime.GOMAXPROCS(1).
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/peapod-mixnet/peapod/handlers"
	"github.com/peapod-mixnet/peapod/plugins"
	pluginpb "github.com/peapod-mixnet/peapod/plugins/proto"
)

// variant selects a misbehaving build; see the package comment.
var variant string

func handle(ctx context.Context, req *handlers.Request) ([]byte, error) {
	s := string(req.Data)
	switch {
	case s == "panic":
		panic("testplugin: asked to panic")
	case s == "exit":
		os.Exit(3)
	case s == "hang":
		select {}
	case strings.HasPrefix(s, "error:"):
		return nil, &handlers.Error{Code: strings.TrimPrefix(s, "error:"), Message: "asked to fail"}
	case s == "plain-error":
		return nil, errors.New("opening the database: secret db password wrong")
	case s == "pid":
		return []byte(strconv.Itoa(os.Getpid())), nil
	case s == "env":
		wd, _ := os.Getwd()
		_, secret := os.LookupEnv("PEAPOD_TEST_SECRET")
		return fmt.Appendf(nil, "%s\n%s\n%v", os.Getenv(plugins.DataDirEnv), wd, secret), nil
	case s == "meta":
		return []byte(req.Requester + "\n" + req.ID), nil
	case strings.HasPrefix(s, "stderr:"):
		fmt.Fprintln(os.Stderr, strings.TrimPrefix(s, "stderr:"))
		return []byte("ok"), nil
	case s == "spawn":
		cmd := exec.Command("sleep", "300")
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return []byte(strconv.Itoa(cmd.Process.Pid)), nil
	case s == "block":
		fmt.Fprintln(os.Stderr, "blocking")
		<-ctx.Done()
		fmt.Fprintln(os.Stderr, "request context ended:", ctx.Err())
		return nil, ctx.Err()
	case s == "deadline":
		deadline, ok := ctx.Deadline()
		if !ok {
			return []byte("none"), nil
		}
		return []byte(strconv.FormatInt(time.Until(deadline).Milliseconds(), 10)), nil
	case strings.HasPrefix(s, "sleep:"):
		arg, _, _ := strings.Cut(strings.TrimPrefix(s, "sleep:"), " ")
		d, err := time.ParseDuration(arg)
		if err != nil {
			return nil, handlers.Errorf(handlers.CodeBadRequest, "bad duration")
		}
		select {
		case <-time.After(d):
			return req.Data, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case strings.HasPrefix(s, "big:"):
		n, err := strconv.Atoi(strings.TrimPrefix(s, "big:"))
		if err != nil || n < 0 {
			return nil, handlers.Errorf(handlers.CodeBadRequest, "bad size")
		}
		return make([]byte, n), nil
	}
	return req.Data, nil
}

// serveMute prints a valid handshake line for a socket that accepts
// connections and never answers on them.
func serveMute() {
	dir := os.Getenv("PLUGIN_UNIX_SOCKET_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	l, err := net.Listen("unix", filepath.Join(dir, fmt.Sprintf("mute-%d", os.Getpid())))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("1|1|unix|%s|grpc|\n", l.Addr())
	var held []net.Conn
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		held = append(held, c)
	}
}

// unaryServer is the plugin side of handler.proto as it was before
// Dispatch: Describe and Handle.
type unaryServer struct {
	pluginpb.UnimplementedHandlerServer
}

func (unaryServer) Describe(context.Context, *pluginpb.DescribeRequest) (*pluginpb.DescribeResponse, error) {
	return &pluginpb.DescribeResponse{Services: []*pluginpb.Service{{Name: "test", Description: "behaves as the request data says"}}}, nil
}

func (unaryServer) Handle(ctx context.Context, in *pluginpb.HandleRequest) (*pluginpb.HandleResponse, error) {
	reply, err := handle(ctx, &handlers.Request{Service: in.GetService(), ID: in.GetId(), Requester: in.GetRequester(), Data: in.GetData()})
	if err != nil {
		return &pluginpb.HandleResponse{Error: &pluginpb.Error{Code: handlers.CodeOf(err), Message: err.Error()}}, nil
	}
	return &pluginpb.HandleResponse{Data: reply}, nil
}

// unaryPlugin registers unaryServer under the service description of the
// old handler.proto, which had no Dispatch: gRPC answers a Dispatch call
// with UNIMPLEMENTED, as for any method it does not know.
type unaryPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (unaryPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	desc := pluginpb.Handler_ServiceDesc
	desc.Streams = nil
	s.RegisterService(&desc, unaryServer{})
	return nil
}

func (unaryPlugin) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("testplugin: plugin side only")
}

func main() {
	switch variant {
	case "mute":
		serveMute()
		return
	case "unary":
		goplugin.Serve(&goplugin.ServeConfig{
			HandshakeConfig: plugins.Handshake,
			Plugins:         goplugin.PluginSet{plugins.PluginName: unaryPlugin{}},
			GRPCServer:      goplugin.DefaultGRPCServer,
		})
		return
	case "gomaxprocs1":
		runtime.GOMAXPROCS(1)
	}
	if variant == "v2" {
		hs := plugins.Handshake
		hs.ProtocolVersion = 2
		goplugin.Serve(&goplugin.ServeConfig{
			HandshakeConfig: hs,
			Plugins:         goplugin.PluginSet{},
			GRPCServer:      goplugin.DefaultGRPCServer,
		})
		return
	}
	name := "test"
	if variant == "badname" {
		name = "Chatty" // refused by plugins.Serve: the plugin exits before the handshake
	}
	err := plugins.Serve(plugins.Service{
		Name:        name,
		Description: "behaves as the request data says",
		Handler:     handlers.HandlerFunc(handle),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
