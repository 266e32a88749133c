package plugins

import (
	"os"
	"time"
)

// exitWhenOrphaned ends the plugin process once its host is gone. A host that
// is killed (SIGKILL, a crash) cannot stop its plugins; left running, a
// plugin would keep holding its data (a kvstore plugin's database lock, for
// one) against the host's next start. On Linux the host also asks the
// kernel for a death signal (see setParentDeathSignal); this check covers
// the rest: when the parent changes, the host has died.
func exitWhenOrphaned(interval time.Duration) {
	parent := os.Getppid()
	go func() {
		for range time.Tick(interval) {
			if os.Getppid() != parent {
				os.Exit(2)
			}
		}
	}()
}
