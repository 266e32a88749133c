package mixnode

import (
	"syscall"
	"time"
)

// cpuTimes reports CPU time (user + system) used by the calling OS thread
// and by the whole process, for benchmarks that must survive other
// processes competing for the cores.
func cpuTimes() (thread, process time.Duration, ok bool) {
	var t, p syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD
	if syscall.Getrusage(rusageThread, &t) != nil || syscall.Getrusage(syscall.RUSAGE_SELF, &p) != nil {
		return 0, 0, false
	}
	return rusageTime(&t), rusageTime(&p), true
}

func rusageTime(r *syscall.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}
