// Package plugins runs peapod request handlers in separate plugin processes.
//
// A plugin is an executable that serves one or more services over
// hashicorp/go-plugin's gRPC protocol, with the messages of
// plugins/proto/handler.proto. The two sides of this package are:
//
//   - the plugin side, [Serve]: a plugin's main function lists its services
//     and calls Serve, which answers the host's handshake and serves requests
//     until the host stops the plugin (see examples/echo/plugin);
//   - the host side, [Supervisor]: it starts every plugin it is configured
//     with, learns their services, registers them in a [handlers.Router],
//     sends each plugin its requests, restarts plugins that die, and stops
//     them on Close.
//
// The host sends a plugin process its requests on one long-lived gRPC
// stream, the Dispatch rpc, with many requests in flight at once told apart
// by call ids (dispatch.go on the host's side, serve_dispatch.go on the
// plugin's); a plugin built before Dispatch existed answers it with
// Unimplemented and gets one Handle call per request instead.
//
// Plugins are treated as untrusted processes: each runs in its own working
// directory with an environment of its own (not the host's), in its own
// process group, its output is logged under its name and never parsed in a
// way that could upset the host, its handshake line is checked strictly, its
// replies are size-limited, and its death only makes its own services fail
// with [handlers.CodeHandlerFailed] until it is back.
//
// docs/plugins.md describes the protocol for authors of plugins in other
// languages.
package plugins

import (
	"context"
	"strings"
	"unicode/utf8"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginpb "github.com/peapod-mixnet/peapod/plugins/proto"
)

// Handshake is the go-plugin handshake shared by the host and its plugins.
// The host passes the magic cookie to a plugin in its environment; a plugin
// started without it refuses to run, and one that speaks another protocol
// version is refused by the host.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "PEAPOD_PLUGIN_COOKIE",
	MagicCookieValue: "6a15e2d41be8163a538b9042370ace66",
}

// PluginName is the name under which a plugin process dispenses its handler
// in go-plugin's plugin map.
const PluginName = "handler"

// DataDirEnv names the environment variable that holds a plugin's data
// folder, which is also its working directory. See [DataDir].
const DataDirEnv = "PEAPOD_PLUGIN_DATA"

// Limits on what a plugin may say to the host. They bound what an untrusted
// plugin can make the host store or log.
const (
	// MaxServices is the most services one plugin may offer.
	MaxServices = 64
	// MaxDescriptionLen is the longest service description, in bytes.
	MaxDescriptionLen = 1024
	// MaxErrorCodeLen is the longest error code, in bytes.
	MaxErrorCodeLen = 32
	// MaxErrorMessageLen is the longest error message, in bytes; longer
	// messages are cut.
	MaxErrorMessageLen = 512
)

// flowWindow is the fixed HTTP/2 flow-control window, per stream and per
// connection, of both ends of a plugin connection (see newGRPCServer).
const flowWindow = 1 << 20

// pluginSet is the go-plugin plugin map. srv is nil on the host side.
func pluginSet(srv pluginpb.HandlerServer) goplugin.PluginSet {
	return goplugin.PluginSet{PluginName: &grpcPlugin{server: srv}}
}

// grpcPlugin connects go-plugin to the Handler service of handler.proto.
type grpcPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	server pluginpb.HandlerServer
}

var _ goplugin.GRPCPlugin = (*grpcPlugin)(nil)

// GRPCServer registers the plugin's Handler service (plugin side).
func (p *grpcPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	pluginpb.RegisterHandlerServer(s, p.server)
	return nil
}

// GRPCClient returns a Handler client on the plugin's connection (host side).
func (p *grpcPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pluginpb.NewHandlerClient(c), nil
}

// validErrorCode reports whether code has the form of an error code:
// 1 to MaxErrorCodeLen lower-case ASCII letters, digits and underscores,
// starting with a letter.
func validErrorCode(code string) bool {
	if len(code) == 0 || len(code) > MaxErrorCodeLen {
		return false
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		switch {
		case 'a' <= c && c <= 'z':
		case ('0' <= c && c <= '9' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// clip returns s as valid UTF-8 of at most n bytes, cut at a rune boundary.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
