//go:build !linux

package mixnode

import "time"

// processCPU is only implemented on Linux; elsewhere the benchmarks report
// wall-clock figures only.
func processCPU() (time.Duration, bool) { return 0, false }
