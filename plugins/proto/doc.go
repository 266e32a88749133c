// Package pluginpb holds the Go code generated from handler.proto, the gRPC
// protocol between the peapod provider host and its handler plugins.
//
// Plugin authors writing in Go do not need this package: package plugins
// wraps it (plugins.Serve). Authors in other languages generate their own
// code from handler.proto; docs/plugins.md explains the rest of the protocol.
//
// The generated files are committed; `make proto` regenerates them.
package pluginpb
