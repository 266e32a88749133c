//go:build !linux

package mixnode

import "time"

// cpuTimes is only implemented on Linux; elsewhere the benchmarks report
// wall-clock figures only.
func cpuTimes() (thread, process time.Duration, ok bool) { return 0, 0, false }
