//go:build unix

package main

import (
	"syscall"

	"github.com/peapod-mixnet/peapod/plugins"
)

// killPlugins sends SIGKILL to the process group of every running plugin
// (each plugin leads a group of its own).
func killPlugins(ps []plugins.PluginStatus) {
	for _, p := range ps {
		if p.PID > 0 {
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
		}
	}
}
