// Command plugin is the echo example's handler plugin: service "echo" replies
// with the request data, unchanged. The provider host starts it; see
// examples/echo/README.md.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/peapod-mixnet/peapod/handlers"
	"github.com/peapod-mixnet/peapod/plugins"
)

func echo(ctx context.Context, req *handlers.Request) ([]byte, error) {
	return req.Data, nil
}

func main() {
	err := plugins.Serve(plugins.Service{
		Name:        "echo",
		Description: "replies with the request data, unchanged",
		Handler:     handlers.HandlerFunc(echo),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
