// Command plugin is the kvstore example's handler plugin: service "kv", a
// key-value store shared by all requesters and kept in the plugin's data
// folder, so its data survive restarts. See examples/kvstore/README.md and
// package kv for the requests it understands.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/peapod-mixnet/peapod/examples/kvstore/kv"
	"github.com/peapod-mixnet/peapod/plugins"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	dir, err := plugins.DataDir()
	if err != nil {
		return err
	}
	store, err := kv.Open(filepath.Join(dir, "kv.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	return plugins.Serve(plugins.Service{
		Name:        "kv",
		Description: `key-value store shared by all requesters; JSON requests {"op":"put|get|delete|list",...}`,
		Handler:     store,
	})
}
