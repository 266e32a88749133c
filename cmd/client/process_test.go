package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/internal/cli"
	"github.com/peapod-mixnet/peapod/localnet"
	"github.com/peapod-mixnet/peapod/wsapi"
)

// TestProcesses builds the binary and runs it against a local network in
// this process: `client init` registers and prints the address, `client
// address` reads it back offline, `client run` serves the WebSocket API to
// an application, `client send` from another data folder gets its
// anonymous question answered through that API, a `client send` on the
// folder `client run` holds says so and points at --via, and `client send
// --via` goes through the running client. SIGINT stops `client run`
// cleanly.
func TestProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)

	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := localnet.Start(ctx, localnet.Config{DataDir: t.TempDir(), DirectoryAddr: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	dirURL := n.DirectoryURL()
	fast := []string{"--directory", dirURL, "--no-delay", "--no-cover"}

	dataX := filepath.Join(t.TempDir(), "x")
	dataY := filepath.Join(t.TempDir(), "y")

	// Before init there is no address.
	r := runCmd(t, bin, "", "address", "--data", dataX)
	if r.code != cli.ExitError || !strings.Contains(r.stderr, "client init") {
		t.Fatalf("address before init: %+v", r)
	}

	// init registers and prints the address; address reads the same one.
	r = runCmd(t, bin, "", "init", "--data", dataX, "--directory", dirURL)
	if r.code != cli.ExitOK {
		t.Fatalf("init: %+v", r)
	}
	addrX := parseAddress(t, r.stdout)
	if r = runCmd(t, bin, "", "address", "--data", dataX); r.code != cli.ExitOK || parseAddress(t, r.stdout) != addrX {
		t.Fatalf("address after init: %+v, want %s", r, addrX)
	}

	// run serves the WebSocket API; it starts from the example file, as a
	// user would, and the flags win.
	example, err := filepath.Abs(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	runX := startCmd(t, bin, append([]string{"run", "--config", example, "--data", dataX, "--ws", "127.0.0.1:0", "--log-level", "info",
		"--allow-origin", "http://localhost:5173"}, fast...)...)
	wsURL := runX.field(t, "client running", "websocket")
	// No metrics server unless asked for (the example file holds the
	// defaults, TestExampleConfig): the WebSocket API is its only listener.
	if _, ok := runX.find("serving metrics", "metrics"); ok {
		t.Error("client run serves metrics without --metrics")
	}
	if got := listeningPorts(t, runX.cmd.Process.Pid); got >= 0 && got != 1 {
		t.Errorf("client run listens on %d ports, want 1 (the WebSocket API)", got)
	}

	// Web pages: only the allowed origin's may connect.
	for origin, want := range map[string]int{"http://localhost:5173": http.StatusSwitchingProtocols, "https://evil.example": http.StatusForbidden} {
		ws, resp, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Origin": {origin}})
		status := http.StatusSwitchingProtocols
		if err != nil {
			if resp == nil {
				t.Fatal(err)
			}
			status = resp.StatusCode
		} else {
			ws.Close()
		}
		if status != want {
			t.Fatalf("a page of %s: status %d, want %d", origin, status, want)
		}
	}
	if got := runX.field0(t, "client running", "address"); got != addrX.String() {
		t.Fatalf("run reports address %s, want %s", got, addrX)
	}
	app := dialApp(t, wsURL)
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if got, err := app.SelfAddress(sctx); err != nil || got != addrX {
		t.Fatalf("SelfAddress over the API: %v, %v; want %v", got, err, addrX)
	}

	// address works while run holds the folder.
	if r = runCmd(t, bin, "", "address", "--data", dataX); r.code != cli.ExitOK || parseAddress(t, r.stdout) != addrX {
		t.Fatalf("address while running: %+v", r)
	}

	// send from another folder: an anonymous question, answered by the
	// application through the API.
	sendDone := make(chan result, 1)
	go func() {
		sendDone <- runCmd(t, bin, "", append([]string{"send", "--data", dataY, "--to", addrX.String(),
			"--anonymous", "--reply-surbs", "3", "--wait", "30s"}, append(fast, "question from a shell")...)...)
	}()
	got := receive(t, app)
	if string(got.Data) != "question from a shell" || got.SenderTag == nil {
		t.Fatalf("the application got %q (tag %v)", got.Data, got.SenderTag)
	}
	if err := app.Send(sctx, wsapi.Reply{SenderTag: *got.SenderTag, Data: []byte("answer from an app")}); err != nil {
		t.Fatal(err)
	}
	r = <-sendDone
	if r.code != cli.ExitOK || r.stdout != "answer from an app\n" || !strings.Contains(r.stderr, "delivered") {
		t.Fatalf("send: %+v", r)
	}

	// send on the folder run holds: a clear message that offers --via.
	r = runCmd(t, bin, "", append([]string{"send", "--data", dataX, "--to", addrX.String()}, append(fast, "hi")...)...)
	if r.code != cli.ExitError || !strings.Contains(r.stderr, "in use") || !strings.Contains(r.stderr, "--via ws://127.0.0.1:1977") {
		t.Fatalf("send on a folder in use: %+v", r)
	}

	// send --via through the running client, to a client in this process
	// that answers; the message comes from standard input.
	z := startClient(t, n, log)
	zDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		m, err := z.Receive(ctx)
		if err != nil {
			zDone <- err
			return
		}
		if string(m.Data) != "question via the API" || m.SenderTag == nil {
			zDone <- errors.New("z got " + string(m.Data))
			return
		}
		d, err := z.Reply(ctx, *m.SenderTag, []byte("answer via the API"))
		if err == nil {
			err = d.Wait(ctx)
		}
		zDone <- err
	}()
	r = runCmd(t, bin, "question via the API", "send", "--via", wsURL, "--to", z.Address().String(), "--anonymous", "--wait", "30s")
	if err := <-zDone; err != nil {
		t.Fatalf("z: %v", err)
	}
	if r.code != cli.ExitOK || r.stdout != "answer via the API\n" {
		t.Fatalf("send --via: %+v", r)
	}
	// The application on X saw the answer too: every connection gets every
	// message.
	if got := receive(t, app); string(got.Data) != "answer via the API" {
		t.Fatalf("the application got %q", got.Data)
	}

	// A plain send --via exits once the message has left the client.
	r = runCmd(t, bin, "", "send", "--via", wsURL, "--to", z.Address().String(), "plain")
	if r.code != cli.ExitOK || r.stdout != "" || !strings.Contains(r.stderr, "sent") {
		t.Fatalf("plain send --via: %+v", r)
	}

	// SIGINT stops run cleanly; the application sees the connection close.
	runX.stop(t, syscall.SIGINT)
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	for {
		if _, err := app.Receive(rctx); err != nil {
			if rctx.Err() != nil {
				t.Fatal("the connection stayed open after run stopped")
			}
			break
		}
	}
}

// result is how a finished process ended.
type result struct {
	code           int
	stdout, stderr string
}

// runCmd runs the binary to its end, with stdin as its standard input.
func runCmd(t *testing.T, bin, stdin string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		r.code = -1
		r.stderr += "\n(" + err.Error() + ")"
	}
	return r
}

func parseAddress(t *testing.T, out string) address.Address {
	t.Helper()
	a, err := address.Parse(strings.TrimSuffix(out, "\n"))
	if err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	return a
}

// process is a running client process whose JSON log lines are read as
// they come.
type process struct {
	cmd   *exec.Cmd
	lines chan map[string]any
	seen  []map[string]any
	done  chan error
}

func startCmd(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, lines: make(chan map[string]any, 1000), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				line = map[string]any{"message": sc.Text()}
			}
			t.Logf("%s: %s", args[0], sc.Text())
			select {
			case p.lines <- line:
			default:
			}
		}
		close(p.lines)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// field waits for the log line with the given message and returns one of
// its fields.
func (p *process) field(t *testing.T, message, key string) string {
	t.Helper()
	if v, ok := p.find(message, key); ok {
		return v
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("the process exited before logging %q", message)
			}
			p.seen = append(p.seen, line)
			if v, ok := p.find(message, key); ok {
				return v
			}
		case <-timeout:
			t.Fatalf("no log line %q", message)
		}
	}
}

// field0 returns a field of a line field has seen already.
func (p *process) field0(t *testing.T, message, key string) string {
	t.Helper()
	v, ok := p.find(message, key)
	if !ok {
		t.Fatalf("no log line %q with %q", message, key)
	}
	return v
}

func (p *process) find(message, key string) (string, bool) {
	for _, line := range p.seen {
		if line["message"] == message {
			v, _ := line[key].(string)
			return v, v != ""
		}
	}
	return "", false
}

// stop sends sig and checks the process exits with status 0.
func (p *process) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	// Keep draining the log so the process never blocks on a full pipe.
	go func() {
		for range p.lines {
		}
	}()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("%s exited with %v", p.cmd.Args[1], err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit after %v", p.cmd.Args[1], sig)
	}
}

func dialApp(t *testing.T, url string) *wsapi.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wsapi.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// receive waits for the next Received, failing on any other response.
func receive(t *testing.T, app *wsapi.Conn) wsapi.Received {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := app.Receive(ctx)
	if err != nil {
		t.Fatalf("receiving: %v", err)
	}
	r, ok := resp.(wsapi.Received)
	if !ok {
		t.Fatalf("got %#v, want a Received", resp)
	}
	return r
}

// startClient starts a client in this process on network n.
func startClient(t *testing.T, n *localnet.Network, log zerolog.Logger) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{
		DataDir:      t.TempDir(),
		DirectoryURL: n.DirectoryURL(),
		NoDelay:      true,
		Cover:        client.CoverConfig{Disabled: true},
		Logger:       log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}
