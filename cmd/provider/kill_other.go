//go:build !unix

package main

import (
	"os"

	"github.com/peapod-mixnet/peapod/plugins"
)

// killPlugins kills every running plugin process.
func killPlugins(ps []plugins.PluginStatus) {
	for _, p := range ps {
		if p.PID <= 0 {
			continue
		}
		if proc, err := os.FindProcess(p.PID); err == nil {
			_ = proc.Kill()
		}
	}
}
