package plugins

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"github.com/rs/zerolog"
)

const (
	// maxHandshakeLine is the longest handshake line a plugin may print.
	maxHandshakeLine = 4096
	// pipeDrainGrace is how long the output of a dead plugin is still read
	// before its pipes are closed (a descendant that escaped the process
	// group could otherwise hold them open forever).
	pipeDrainGrace = 2 * time.Second
)

// process runs one plugin executable for go-plugin (it implements
// runner.Runner). Unlike go-plugin's own runner it:
//   - reaps the process itself and reports its death at once on dead;
//   - runs it in its own process group and kills the whole group;
//   - gives it no standard input;
//   - checks the handshake line strictly and hands go-plugin a sanitised
//     copy, so a hostile line cannot trip go-plugin's parser;
//   - logs the plugin's stderr itself and hands go-plugin an empty stream,
//     so go-plugin never parses (and cannot be upset by) plugin output.
type process struct {
	cmd  *exec.Cmd
	name string

	stdoutR, stderrR *os.File       // read ends, owned by the copy goroutines
	handshake        *io.PipeReader // sanitised handshake line, for go-plugin
	emptyStderr      *io.PipeReader // closed when stderr is done, for go-plugin
	stdoutLog        *lineLogger
	stderrLog        *lineLogger
	outputDone       sync.WaitGroup

	dead    chan struct{} // closed when the process has exited and been reaped
	waitErr error         // cmd.Wait's result; set before dead is closed

	mu           sync.Mutex
	pid          int   // 0 until started
	killed       bool  // Kill was called
	handshakeErr error // why the handshake line was refused
}

var _ runner.Runner = (*process)(nil)

// newProcess prepares cmd to run as a plugin; output lines are logged to log.
func newProcess(cmd *exec.Cmd, log zerolog.Logger) *process {
	return &process{
		cmd:       cmd,
		name:      cmd.Path,
		dead:      make(chan struct{}),
		stdoutLog: newLineLogger(log.With().Str("stream", "stdout").Logger()),
		stderrLog: newLineLogger(log.With().Str("stream", "stderr").Logger()),
	}
}

// Start starts the process and the goroutines that read its output.
func (p *process) Start(context.Context) error {
	outR, outW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("plugins: stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return fmt.Errorf("plugins: stderr pipe: %w", err)
	}
	p.cmd.Stdin = nil // /dev/null: a plugin gets no input from the host's terminal
	p.cmd.Stdout = outW
	p.cmd.Stderr = errW
	setProcessGroup(p.cmd)
	setParentDeathSignal(p.cmd)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killed {
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		return errors.New("plugins: killed before it started")
	}
	err = p.cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return fmt.Errorf("plugins: start %s: %w", p.name, err)
	}
	p.pid = p.cmd.Process.Pid
	p.stdoutR, p.stderrR = outR, errR

	var hsW, seW *io.PipeWriter
	p.handshake, hsW = io.Pipe()
	p.emptyStderr, seW = io.Pipe()
	p.outputDone.Add(2)
	go p.readStdout(hsW)
	go p.readStderr(seW)
	go p.reap()
	return nil
}

// readStdout passes the checked handshake line to go-plugin, then logs
// whatever else the plugin writes to its standard output.
func (p *process) readStdout(hs *io.PipeWriter) {
	defer p.outputDone.Done()
	defer p.stdoutR.Close()
	r := bufio.NewReaderSize(p.stdoutR, maxHandshakeLine)
	line, err := r.ReadSlice('\n')
	var herr error
	switch {
	case err == nil || (err == io.EOF && len(line) > 0):
		var sanitised string
		if sanitised, herr = checkHandshakeLine(string(line)); herr == nil {
			_, _ = io.WriteString(hs, sanitised+"\n")
		}
	case errors.Is(err, bufio.ErrBufferFull):
		herr = fmt.Errorf("plugins: handshake line longer than %d bytes", maxHandshakeLine)
	}
	if herr != nil {
		p.mu.Lock()
		p.handshakeErr = herr
		p.mu.Unlock()
		// A line go-plugin refuses; start reports handshakeErr instead.
		_, _ = io.WriteString(hs, "refused\n")
	}
	hs.Close()
	_, _ = io.Copy(p.stdoutLog, r)
	p.stdoutLog.Flush()
}

// readStderr logs the plugin's standard error.
func (p *process) readStderr(empty *io.PipeWriter) {
	defer p.outputDone.Done()
	defer empty.Close()
	defer p.stderrR.Close()
	_, _ = io.Copy(p.stderrLog, p.stderrR)
	p.stderrLog.Flush()
}

// reap waits for the process to exit, kills what is left of its process
// group, reports the death, and makes sure the output readers end.
func (p *process) reap() {
	p.waitErr = p.cmd.Wait()
	killProcessGroup(p.cmd.Process.Pid)
	close(p.dead)

	drained := make(chan struct{})
	go func() {
		p.outputDone.Wait()
		close(drained)
	}()
	t := time.NewTimer(pipeDrainGrace)
	defer t.Stop()
	select {
	case <-drained:
	case <-t.C:
		// Something outside the process group holds the pipes open.
		p.stdoutR.Close()
		p.stderrR.Close()
		<-drained
	}
}

// exitError returns why the process exited, or nil while it runs.
func (p *process) exitError() error {
	select {
	case <-p.dead:
	default:
		return nil
	}
	if p.waitErr == nil {
		return errors.New("plugins: exited with status 0")
	}
	return fmt.Errorf("plugins: %w", p.waitErr)
}

// exitWait bounds how long a failed start waits for the process to be
// found dead, to tell its exit from other failures.
const exitWait = time.Second

// startFailure explains why the plugin's start failed with err, in the
// plugin's own words when it died first: its exit status and the last
// lines of its standard error (for example plugins.Serve's "invalid
// service name"), rather than go-plugin's complaint about the missing
// handshake line.
func (p *process) startFailure(err error) error {
	if herr := p.handshakeError(); herr != nil {
		return herr
	}
	select {
	case <-p.dead:
	case <-time.After(exitWait):
		return err
	}
	drained := make(chan struct{})
	go func() { p.outputDone.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(pipeDrainGrace):
	}
	status := "exit status 0"
	if p.waitErr != nil {
		status = p.waitErr.Error()
	}
	said := p.stderrLog.Recent()
	if said == "" {
		return fmt.Errorf("plugins: the plugin exited before its handshake (%s) and wrote nothing on its standard error", status)
	}
	return fmt.Errorf("plugins: the plugin exited before its handshake (%s): %s", status, said)
}

// handshakeError returns why the plugin's handshake line was refused, if
// it was.
func (p *process) handshakeError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.handshakeErr
}

// Wait waits for the process to exit and returns cmd.Wait's result.
func (p *process) Wait(context.Context) error {
	<-p.dead
	return p.waitErr
}

// Kill kills the process and its process group, or keeps it from
// starting if it has not yet. It does not wait.
func (p *process) Kill(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killed = true
	select {
	case <-p.dead:
		return nil
	default:
	}
	if p.pid != 0 {
		killProcessGroup(p.pid)
	}
	return nil
}

// Stdout returns the checked handshake line; go-plugin reads it.
func (p *process) Stdout() io.ReadCloser { return p.handshake }

// Stderr returns a stream that stays empty and ends when the plugin's
// standard error ends: the plugin's output is logged by process itself.
func (p *process) Stderr() io.ReadCloser { return p.emptyStderr }

// Name returns the executable's path.
func (p *process) Name() string { return p.name }

// ID returns the process id.
func (p *process) ID() string { return strconv.Itoa(p.PID()) }

// PID returns the process id, or 0 before the process has started.
func (p *process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Diagnose has nothing to add to the handshake error.
func (p *process) Diagnose(context.Context) string { return "" }

// PluginToHost accepts only the addresses a local plugin may listen on.
func (p *process) PluginToHost(network, addr string) (string, string, error) {
	if err := checkPluginAddr(network, addr); err != nil {
		return "", "", err
	}
	return network, addr, nil
}

// HostToPlugin returns the address unchanged.
func (p *process) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// checkHandshakeLine checks a plugin's handshake line,
//
//	CORE-PROTOCOL-VERSION|APP-PROTOCOL-VERSION|NETWORK|ADDRESS|PROTOCOL[|]
//
// and returns it in the five-field form go-plugin parses. The core version
// must be go-plugin's, the app version Handshake's, the network tcp (on a
// loopback address) or unix, the protocol grpc. A sixth field (go-plugin's
// TLS certificate, which peapod does not use) must be empty; more fields are
// rejected.
func checkHandshakeLine(line string) (string, error) {
	line = strings.TrimRight(line, "\r\n")
	f := strings.Split(line, "|")
	switch {
	case len(f) == 6 && f[5] == "":
		f = f[:5]
	case len(f) != 5:
		return "", fmt.Errorf("plugins: bad handshake line %.80q: want 5 fields separated by |", line)
	}
	if f[0] != strconv.Itoa(goplugin.CoreProtocolVersion) {
		return "", fmt.Errorf("plugins: bad handshake line: core protocol version %.10q, want %d", f[0], goplugin.CoreProtocolVersion)
	}
	if f[1] != strconv.FormatUint(uint64(Handshake.ProtocolVersion), 10) {
		return "", fmt.Errorf("plugins: bad handshake line: plugin protocol version %.10q, want %d", f[1], Handshake.ProtocolVersion)
	}
	if err := checkPluginAddr(f[2], f[3]); err != nil {
		return "", fmt.Errorf("plugins: bad handshake line: %w", err)
	}
	if f[4] != string(goplugin.ProtocolGRPC) {
		return "", fmt.Errorf("plugins: bad handshake line: protocol %.10q, want grpc", f[4])
	}
	return strings.Join(f, "|"), nil
}

// checkPluginAddr accepts a unix socket path or a loopback TCP address.
func checkPluginAddr(network, addr string) error {
	switch network {
	case "unix":
		if addr == "" || strings.ContainsRune(addr, 0) {
			return fmt.Errorf("bad unix socket path %.80q", addr)
		}
		return nil
	case "tcp":
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("bad tcp address %.80q", addr)
		}
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("tcp address %.80q is not a loopback IP address", addr)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return fmt.Errorf("bad tcp port in %.80q", addr)
		}
		return nil
	default:
		return fmt.Errorf("network %.10q, want tcp or unix", network)
	}
}
