package testnet

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of the CPU times in /proc/<pid>/stat (USER_HZ,
// 100 on every Linux platform Go supports).
const clockTick = 10 * time.Millisecond

// peakRSS reads VmHWM, the peak resident set size, of pid in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("testnet: odd VmHWM line %q", line)
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("testnet: odd VmHWM line %q", line)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("testnet: no VmHWM for pid %d (a zombie?)", pid)
}

// procStat is what the harness reads from /proc/<pid>/stat.
type procStat struct {
	comm string
	// cpu is utime+stime: the process's own CPU time; children is
	// cutime+cstime: that of its children it has waited for.
	cpu, children time.Duration
	// startTime is when the process started, in clock ticks after boot:
	// with the pid, it names a process uniquely.
	startTime uint64
}

// readStat reads /proc/<pid>/stat.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	st, err := parseStat(b)
	if err != nil {
		return procStat{}, fmt.Errorf("testnet: /proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// parseStat parses the content of a /proc/<pid>/stat file.
func parseStat(b []byte) (procStat, error) {
	var err error
	// comm is in parentheses and may hold anything, parentheses included:
	// the fields start after the last ')'.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("no (comm) field")
	}
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state); utime..cstime are fields 14..17 and
	// starttime is field 22.
	const utime, starttime = 14 - 3, 22 - 3
	if len(f) <= starttime {
		return procStat{}, fmt.Errorf("%d fields, want at least %d", len(f)+2, starttime+3)
	}
	var v [4]int64
	for i := range v {
		if v[i], err = strconv.ParseInt(f[utime+i], 10, 64); err != nil || v[i] < 0 {
			return procStat{}, fmt.Errorf("field %d: %q is not a CPU time", utime+i+3, f[utime+i])
		}
	}
	start, err := strconv.ParseUint(f[starttime], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("field %d: %q is not a start time", starttime+3, f[starttime])
	}
	return procStat{
		comm:      string(b[open+1 : end]),
		startTime: start,
		cpu:       time.Duration(v[0]+v[1]) * clockTick,
		children:  time.Duration(v[2]+v[3]) * clockTick,
	}, nil
}

// childPIDs lists the children of pid (all its threads').
func childPIDs(pid int) []int {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for f := range strings.FieldsSeq(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// selfCPU is the CPU time of this process so far.
func selfCPU() time.Duration {
	st, err := readStat(os.Getpid())
	if err != nil {
		return 0
	}
	return st.cpu
}
