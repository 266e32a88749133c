//go:build !linux

package plugins

import "os/exec"

// setParentDeathSignal does nothing where the kernel offers no parent death
// signal; plugins still exit on their own when orphaned (exitWhenOrphaned).
func setParentDeathSignal(cmd *exec.Cmd) {}
