package testnet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultStopTimeout is how long Stop waits after SIGTERM before it sends
// SIGKILL.
const DefaultStopTimeout = 15 * time.Second

// maxKeptLines bounds the output lines a Process keeps in memory per
// incarnation for WaitLog; the log file has them all.
const maxKeptLines = 20000

// ProcessConfig describes a program of the test network.
type ProcessConfig struct {
	// Name names the process in reports and its log file (Name.log).
	Name string
	// Path is the executable; Args its arguments.
	Path string
	Args []string
	// Env is added to the test process's environment.
	Env []string
	// LogDir is the folder of the log file. Required.
	LogDir string
	// Ready is the "message" of the JSON log line that says the process is
	// ready; Start waits for it. "" makes a process ready once started.
	Ready string
	// NetNS, when set, runs the program inside that network namespace
	// (through `ip netns exec`, which execs it, so the pid is the
	// program's).
	NetNS string
	// Logf receives one line per lifecycle event; nil discards them.
	Logf func(format string, args ...any)
}

// Process is one program of the test network. It can be started again
// after it stopped, with the same arguments (so the same data folder and
// ports), as often as a test likes. Everything it writes to stdout and
// stderr goes to its log file, every incarnation after the other. Its
// methods are safe for concurrent use.
type Process struct {
	cfg     ProcessConfig
	logPath string

	mu         sync.Mutex
	cmd        *exec.Cmd
	pid        int
	running    bool
	paused     bool
	expectExit bool          // the harness asked this incarnation to end
	exited     chan struct{} // closed when the current incarnation ends
	exitErr    error
	starts     int
	unexpected []string // how incarnations ended that nobody stopped

	lines   []string // output of the current incarnation (up to maxKeptLines)
	waiters map[*waiter]struct{}

	peakRSS      int64            // bytes, over every incarnation
	childPeak    map[string]int64 // by child's comm (plugins), bytes
	cpuEnded     time.Duration    // CPU of ended incarnations, waited-for children included
	children     map[int]childSeen
	logFileMu    sync.Mutex
	logFile      *os.File
	readersGroup sync.WaitGroup
}

// childSeen is a child process the sampler saw, to find it again.
type childSeen struct {
	comm      string
	startTime uint64
	cpu       time.Duration // last sampled
}

type waiter struct {
	substr string
	line   chan string
}

// NewProcess returns a Process that has not started.
func NewProcess(cfg ProcessConfig) (*Process, error) {
	if cfg.Name == "" || cfg.Path == "" || cfg.LogDir == "" {
		return nil, errors.New("testnet: ProcessConfig needs Name, Path and LogDir")
	}
	if strings.ContainsAny(cfg.Name, `/\`) {
		return nil, fmt.Errorf("testnet: process name %q has a path separator", cfg.Name)
	}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	p := &Process{
		cfg:       cfg,
		logPath:   filepath.Join(cfg.LogDir, cfg.Name+".log"),
		waiters:   make(map[*waiter]struct{}),
		childPeak: make(map[string]int64),
		children:  make(map[int]childSeen),
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	p.logFile = f
	return p, nil
}

func (p *Process) logf(format string, args ...any) {
	if p.cfg.Logf != nil {
		p.cfg.Logf(format, args...)
	}
}

// Name is the process's name.
func (p *Process) Name() string { return p.cfg.Name }

// LogPath is the path of the process's log file.
func (p *Process) LogPath() string { return p.logPath }

// Args returns the process's arguments.
func (p *Process) Args() []string { return append([]string(nil), p.cfg.Args...) }

// Start starts the process and waits until it is ready (its Ready line
// appeared), ctx ends, or it exits. It fails if the process is running.
func (p *Process) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.running {
		p.mu.Unlock()
		return fmt.Errorf("testnet: %s is already running", p.cfg.Name)
	}
	path, args := p.cfg.Path, p.cfg.Args
	if p.cfg.NetNS != "" {
		path, args = "ip", append([]string{"netns", "exec", p.cfg.NetNS, p.cfg.Path}, args...)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), p.cfg.Env...)
	// Each process gets a group of its own (a terminal's ^C reaches the
	// test only), and dies with the test process if that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	r, w, err := os.Pipe()
	if err != nil {
		p.mu.Unlock()
		return fmt.Errorf("testnet: %w", err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	p.starts++
	p.writeLog(fmt.Sprintf("##### testnet: start %d of %s at %s: %s %s\n", p.starts, p.cfg.Name,
		time.Now().Format("15:04:05.000"), path, strings.Join(args, " ")))
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		r.Close()
		w.Close()
		return fmt.Errorf("testnet: starting %s: %w", p.cfg.Name, err)
	}
	w.Close()
	p.cmd, p.pid, p.running, p.paused, p.expectExit = cmd, cmd.Process.Pid, true, false, false
	p.exited, p.exitErr = make(chan struct{}), nil
	p.lines = p.lines[:0]
	exited := p.exited
	p.mu.Unlock()

	p.readersGroup.Add(1)
	go p.readOutput(r)
	go p.wait(cmd, exited)
	p.logf("%s started (pid %d)", p.cfg.Name, cmd.Process.Pid)

	if p.cfg.Ready == "" {
		return nil
	}
	if _, err := p.WaitLog(ctx, p.cfg.Ready); err != nil {
		return fmt.Errorf("testnet: %s did not become ready: %w\n%s", p.cfg.Name, err, p.Tail(30))
	}
	return nil
}

// readOutput copies the output of one incarnation to the log file and
// hands each line to the waiters.
func (p *Process) readOutput(r *os.File) {
	defer p.readersGroup.Done()
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			p.writeLog(line)
			p.mu.Lock()
			if len(p.lines) < maxKeptLines {
				p.lines = append(p.lines, line)
			}
			for w := range p.waiters {
				if strings.Contains(line, w.substr) {
					w.line <- line
					delete(p.waiters, w)
				}
			}
			p.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

func (p *Process) writeLog(s string) {
	p.logFileMu.Lock()
	defer p.logFileMu.Unlock()
	if p.logFile != nil {
		p.logFile.WriteString(s)
	}
}

// wait reaps one incarnation and records how it ended.
func (p *Process) wait(cmd *exec.Cmd, exited chan struct{}) {
	err := cmd.Wait()
	// The rusage's CPU times are the child's own (and its waited-for
	// children's). Its Maxrss is not used: a child started with vfork
	// (as os/exec does) inherits the parent's RSS as its high-water mark
	// at exec, so it reports at least the test process's size.
	var cpu time.Duration
	if st := cmd.ProcessState; st != nil {
		if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
			cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	p.mu.Lock()
	p.running, p.paused = false, false
	p.exitErr = err
	p.cpuEnded += cpu
	expected := p.expectExit
	status := "exit 0"
	if err != nil {
		status = err.Error()
	}
	if !expected {
		p.unexpected = append(p.unexpected, status)
	}
	p.mu.Unlock()
	p.writeLog(fmt.Sprintf("##### testnet: %s ended at %s: %s\n", p.cfg.Name, time.Now().Format("15:04:05.000"), status))
	// Log before announcing the exit: whoever waits for it may end the
	// test, after which a testing.T's Logf must not be called.
	if expected {
		p.logf("%s ended: %s", p.cfg.Name, status)
	} else {
		p.logf("%s ended UNEXPECTEDLY: %s", p.cfg.Name, status)
	}
	close(exited)
}

// WaitLog waits for a line of the current incarnation's output that holds
// `"message":"<message>"` (a zerolog JSON line) and returns its fields. It
// sees lines printed before it was called too. It fails when ctx ends or
// the process exits first.
func (p *Process) WaitLog(ctx context.Context, message string) (map[string]any, error) {
	line, err := p.WaitOutput(ctx, `"message":"`+message+`"`)
	if err != nil {
		return nil, err
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(line), &fields); err != nil {
		return nil, fmt.Errorf("testnet: %s: log line is not JSON: %q", p.cfg.Name, line)
	}
	return fields, nil
}

// WaitOutput waits for a line of the current incarnation's output that
// contains substr and returns it, like WaitLog.
func (p *Process) WaitOutput(ctx context.Context, substr string) (string, error) {
	p.mu.Lock()
	for _, l := range p.lines {
		if strings.Contains(l, substr) {
			p.mu.Unlock()
			return l, nil
		}
	}
	if !p.running {
		p.mu.Unlock()
		return "", fmt.Errorf("testnet: %s is not running", p.cfg.Name)
	}
	w := &waiter{substr: substr, line: make(chan string, 1)}
	p.waiters[w] = struct{}{}
	exited := p.exited
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.waiters, w)
		p.mu.Unlock()
	}()
	select {
	case l := <-w.line:
		return l, nil
	case <-ctx.Done():
		return "", ctx.Err()
	case <-exited:
		// The line may have been read just before the exit.
		select {
		case l := <-w.line:
			return l, nil
		case <-time.After(100 * time.Millisecond):
		}
		return "", fmt.Errorf("testnet: %s exited (%v) before printing %q", p.cfg.Name, p.ExitErr(), substr)
	}
}

// signal sends sig to the running incarnation.
func (p *Process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		return fmt.Errorf("testnet: %s is not running", p.cfg.Name)
	}
	return p.cmd.Process.Signal(sig)
}

// Stop sends SIGTERM (resuming a paused process so that it can act on it)
// and waits for the process to exit; after DefaultStopTimeout it sends
// SIGKILL. It returns nil if the process was not running, and otherwise how
// it exited (an *exec.ExitError for a non-zero status).
func (p *Process) Stop() error {
	p.mu.Lock()
	if !p.running {
		p.mu.Unlock()
		return nil
	}
	p.expectExit = true
	cmd, exited, paused := p.cmd, p.exited, p.paused
	p.mu.Unlock()
	p.Sample() // the last look at its peak RSS
	cmd.Process.Signal(syscall.SIGTERM)
	if paused {
		cmd.Process.Signal(syscall.SIGCONT)
	}
	select {
	case <-exited:
	case <-time.After(DefaultStopTimeout):
		p.logf("%s ignored SIGTERM for %v: killing it", p.cfg.Name, DefaultStopTimeout)
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		return fmt.Errorf("testnet: %s did not stop within %v of SIGTERM", p.cfg.Name, DefaultStopTimeout)
	}
	return p.ExitErr()
}

// Kill sends SIGKILL and waits until the process has exited. It does
// nothing if the process is not running.
func (p *Process) Kill() {
	p.mu.Lock()
	if !p.running {
		p.mu.Unlock()
		return
	}
	p.expectExit = true
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	p.Sample() // the last look at its peak RSS
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// Restart stops the process (SIGTERM, see Stop) and starts it again with
// the same arguments, waiting until it is ready.
func (p *Process) Restart(ctx context.Context) error {
	if err := p.Stop(); err != nil {
		p.logf("%s: stop before restart: %v", p.cfg.Name, err)
	}
	return p.Start(ctx)
}

// Pause stops the process with SIGSTOP: it keeps its sockets, but does
// nothing until Resume.
func (p *Process) Pause() error {
	if err := p.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
	p.logf("%s paused", p.cfg.Name)
	return nil
}

// Resume continues a paused process with SIGCONT.
func (p *Process) Resume() error {
	if err := p.signal(syscall.SIGCONT); err != nil {
		return err
	}
	p.mu.Lock()
	p.paused = false
	p.mu.Unlock()
	p.logf("%s resumed", p.cfg.Name)
	return nil
}

// PID is the pid of the running incarnation, or 0.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		return 0
	}
	return p.pid
}

// Running reports whether an incarnation is running.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// Exited is closed when the current (or last) incarnation ends.
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return p.exited
}

// ExitErr is how the last incarnation ended: nil for status 0 (or while it
// runs), an *exec.ExitError otherwise.
func (p *Process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// Starts is how many times the process was started.
func (p *Process) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// UnexpectedExits lists how each incarnation that ended without Stop or
// Kill ended: a crash, or an exit of its own.
func (p *Process) UnexpectedExits() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.unexpected...)
}

// Sample reads the peak RSS (VmHWM) of the running incarnation and of its
// children (plugins) from /proc. A Network samples every process a few
// times a second, and Stop and Kill sample once more before they signal;
// VmHWM is a high-water mark, so only the growth of a process in the last
// moments before it dies on its own can be missed.
func (p *Process) Sample() {
	pid := p.PID()
	if pid == 0 {
		return
	}
	rss, err := peakRSS(pid)
	kids := childPIDs(pid)
	type kid struct {
		pid int
		st  procStat
		rss int64
	}
	var seen []kid
	for _, c := range kids {
		st, err := readStat(c)
		if err != nil {
			continue
		}
		r, _ := peakRSS(c)
		seen = append(seen, kid{c, st, r})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.peakRSS = max(p.peakRSS, rss)
	}
	for _, k := range seen {
		p.childPeak[k.st.comm] = max(p.childPeak[k.st.comm], k.rss)
		p.children[k.pid] = childSeen{comm: k.st.comm, startTime: k.st.startTime, cpu: k.st.cpu}
	}
}

// PeakRSS is the largest resident set size any incarnation reached, in
// bytes, as far as sampling saw.
func (p *Process) PeakRSS() int64 {
	p.Sample()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peakRSS
}

// ChildPeakRSS returns the peak RSS of the process's children (plugins) by
// program name, in bytes.
func (p *Process) ChildPeakRSS() map[string]int64 {
	p.Sample()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.childPeak))
	for k, v := range p.childPeak {
		out[k] = v
	}
	return out
}

// ChildPIDs lists the running children (plugins) of the process with
// their program names.
func (p *Process) ChildPIDs() map[int]string {
	pid := p.PID()
	out := make(map[int]string)
	if pid == 0 {
		return out
	}
	for _, c := range childPIDs(pid) {
		if st, err := readStat(c); err == nil {
			out[c] = st.comm
		}
	}
	return out
}

// CPU is the CPU time the process has used over every incarnation: its
// own, that of the children it waited for, and that of its running
// children now.
func (p *Process) CPU() time.Duration {
	p.mu.Lock()
	total, pid, running := p.cpuEnded, p.pid, p.running
	p.mu.Unlock()
	if !running {
		return total
	}
	if st, err := readStat(pid); err == nil {
		total += st.cpu + st.children
	}
	for _, c := range childPIDs(pid) {
		if st, err := readStat(c); err == nil {
			total += st.cpu
		}
	}
	return total
}

// killOrphans kills children of earlier incarnations that outlived their
// parent (a plugin whose host was SIGKILLed), identified by pid, program
// name and start time so that a recycled pid is left alone. It returns
// their names.
func (p *Process) killOrphans() []string {
	p.mu.Lock()
	pid := p.pid
	if !p.running {
		pid = 0
	}
	seen := make(map[int]childSeen, len(p.children))
	for k, v := range p.children {
		seen[k] = v
	}
	p.mu.Unlock()
	var live map[int]bool
	if pid != 0 {
		live = make(map[int]bool)
		for _, c := range childPIDs(pid) {
			live[c] = true
		}
	}
	var killed []string
	for c, s := range seen {
		if live[c] {
			continue
		}
		st, err := readStat(c)
		if err != nil || st.comm != s.comm || st.startTime != s.startTime {
			continue
		}
		if syscall.Kill(c, syscall.SIGKILL) == nil {
			killed = append(killed, fmt.Sprintf("%s (pid %d)", s.comm, c))
		}
	}
	return killed
}

// Orphans lists children of earlier incarnations that are still alive
// although their parent is gone (by program name and pid).
func (p *Process) Orphans() []string {
	p.mu.Lock()
	pid := p.pid
	if !p.running {
		pid = 0
	}
	seen := make(map[int]childSeen, len(p.children))
	for k, v := range p.children {
		seen[k] = v
	}
	p.mu.Unlock()
	live := make(map[int]bool)
	if pid != 0 {
		for _, c := range childPIDs(pid) {
			live[c] = true
		}
	}
	var out []string
	for c, s := range seen {
		if live[c] {
			continue
		}
		if st, err := readStat(c); err == nil && st.comm == s.comm && st.startTime == s.startTime {
			out = append(out, fmt.Sprintf("%s (pid %d)", s.comm, c))
		}
	}
	return out
}

// Tail returns the last n lines of the log file.
func (p *Process) Tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// close stops the process if it runs and releases its log file.
func (p *Process) close() error {
	err := p.Stop()
	p.readersGroup.Wait()
	p.logFileMu.Lock()
	defer p.logFileMu.Unlock()
	if p.logFile != nil {
		p.logFile.Close()
		p.logFile = nil
	}
	return err
}

// RunResult is the outcome of a one-shot command run by RunCommand.
type RunResult struct {
	Stdout, Stderr string
	// Code is the exit status (-1 when killed by a signal).
	Code int
	// CPU is its CPU time; Elapsed its wall-clock time.
	CPU, Elapsed time.Duration
}

// RunCommand runs a one-shot program to its end (or until ctx ends, which
// kills it) and returns its output, status and resource use. stdin may be
// nil.
func RunCommand(ctx context.Context, stdin io.Reader, path string, args ...string) (RunResult, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errOut, stdin
	start := time.Now()
	err := cmd.Run()
	res := RunResult{Stdout: out.String(), Stderr: errOut.String(), Elapsed: time.Since(start)}
	if st := cmd.ProcessState; st != nil {
		res.Code = st.ExitCode()
		if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
			res.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return res, fmt.Errorf("testnet: running %s: %w", filepath.Base(path), err)
	}
	return res, nil
}

// SetFlag gives flag (such as "--listen") the value value in the arguments
// of the process's next start, adding it when it is not there.
func (p *Process) SetFlag(flag, value string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, a := range p.cfg.Args {
		if a == flag && i+1 < len(p.cfg.Args) {
			p.cfg.Args[i+1] = value
			return
		}
	}
	p.cfg.Args = append(p.cfg.Args, flag, value)
}
