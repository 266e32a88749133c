package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/cli"
	"github.com/peapod-mixnet/peapod/internal/cli/clitest"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mixnet.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigFileAndFlags(t *testing.T) {
	path := writeFile(t, `
[mixnode]
listen = "127.0.0.1:1789"
layer = 2
data = "/from/file"
max_delay = "5s"

[log]
level = "debug"
`)
	cfg := defaultMixnodeFile()
	err := parseConfig(command("mixnode", io.Discard, io.Discard), []string{"--config", path, "--layer", "3", "-workers=4"}, &cfg, bindMixnodeFlags)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Mixnode
	if m.Listen != "127.0.0.1:1789" || m.Data != "/from/file" || m.MaxDelay != 5*time.Second || cfg.Log.Level != "debug" {
		t.Fatalf("file values not applied: %+v", cfg)
	}
	if m.Layer != 3 || m.Workers != 4 {
		t.Fatalf("flags did not override the file: %+v", m)
	}

	// Without a file, the defaults stand where no flag is given.
	cfg = defaultMixnodeFile()
	if err := parseConfig(command("mixnode", io.Discard, io.Discard), []string{"--layer", "1"}, &cfg, bindMixnodeFlags); err != nil {
		t.Fatal(err)
	}
	if cfg.Mixnode.Listen != "0.0.0.0:1789" || cfg.Log.Level != "info" {
		t.Fatalf("defaults lost: %+v", cfg)
	}
}

func TestConfigFileUnknownKeys(t *testing.T) {
	path := writeFile(t, `
[directory]
listen = "127.0.0.1:8090"
tll = "90s"

[logging]
level = "debug"
`)
	cfg := defaultDirectoryFile()
	err := parseConfig(command("directory", io.Discard, io.Discard), []string{"--config", path}, &cfg, bindDirectoryFlags)
	if err == nil || !strings.Contains(err.Error(), "unknown keys: directory.tll, logging") {
		t.Fatalf("error %v does not name the unknown keys", err)
	}
}

func TestConfigErrors(t *testing.T) {
	bad := writeFile(t, "[directory]\nttl = \"ninety\"\n")
	bare := writeFile(t, "[directory]\nttl = 90\n")
	cases := [][]string{
		{"--config", bad},
		{"--config", bare},
		{"--config", filepath.Join(t.TempDir(), "missing.toml")},
		{"--no-such-flag"},
		{"--ttl", "soon"},
		{"stray"},
	}
	for _, args := range cases {
		var out bytes.Buffer
		if code := run(append([]string{"directory"}, args...), &out, &out); code != cli.ExitUsage {
			t.Errorf("%q: exit %d, want %d; output:\n%s", args, code, cli.ExitUsage, out.String())
		}
		if out.Len() == 0 {
			t.Errorf("%q: nothing printed", args)
		}
	}
	var out bytes.Buffer
	if code := run([]string{"directory", "--log-level", "loud"}, &out, &out); code != cli.ExitUsage || !strings.Contains(out.String(), "log level") {
		t.Errorf("bad log level: exit %d: %s", code, out.String())
	}
	if code := run([]string{"directory", "-h"}, &out, &out); code != cli.ExitOK {
		t.Errorf("-h: exit %d", code)
	}
	out.Reset()
	if code := run([]string{"directory", "--config", bare}, &out, &out); !strings.Contains(out.String(), `directory.ttl = 90: a duration needs a unit and quotes, such as ttl = "90s"`) {
		t.Errorf("a bare number as a duration: exit %d: %s", code, out.String())
	}
	for _, args := range [][]string{{"--version"}, {"gateway", "--version"}} {
		out.Reset()
		if code := run(args, &out, io.Discard); code != cli.ExitOK || !strings.HasPrefix(out.String(), "mixnet ") || !strings.Contains(out.String(), " commit ") {
			t.Errorf("%q: exit %d: %q", args, code, out.String())
		}
	}
	if code := run([]string{"frobnicate"}, &out, &out); code != cli.ExitUsage {
		t.Errorf("unknown subcommand: exit %d", code)
	}
	if code := run(nil, &out, &out); code != cli.ExitUsage {
		t.Errorf("no subcommand: exit %d", code)
	}
}

// exampleConfig is the example file shipped for operators.
const exampleConfig = "../../examples/config/mixnet.toml"

// TestExampleConfig: examples/config/mixnet.toml has every key of every
// node subcommand, with the commands' defaults, and each subcommand reads
// it (its own section); TestProcesses runs a directory and a mixnode with
// it.
func TestExampleConfig(t *testing.T) {
	var file mixnetFile
	clitest.CheckExample(t, exampleConfig, &file, mixnetFile{
		Directory: defaultDirectoryFile().Directory,
		Mixnode:   defaultMixnodeFile().Mixnode,
		Gateway:   defaultGatewayFile().Gateway,
		Local:     defaultLocalFile().Local,
		Log:       defaultLog(),
	})
	for name, parse := range map[string]func() (mixnetFile, error){
		"directory": func() (mixnetFile, error) {
			c := defaultDirectoryFile()
			return c, parseConfig(command("directory", io.Discard, io.Discard), []string{"--config", exampleConfig}, &c, bindDirectoryFlags)
		},
		"mixnode": func() (mixnetFile, error) {
			c := defaultMixnodeFile()
			return c, parseConfig(command("mixnode", io.Discard, io.Discard), []string{"--config", exampleConfig}, &c, bindMixnodeFlags)
		},
		"gateway": func() (mixnetFile, error) {
			c := defaultGatewayFile()
			return c, parseConfig(command("gateway", io.Discard, io.Discard), []string{"--config", exampleConfig}, &c, bindGatewayFlags)
		},
		"local": func() (mixnetFile, error) {
			c := defaultLocalFile()
			return c, parseConfig(command("local", io.Discard, io.Discard), []string{"--config", exampleConfig}, &c, bindLocalFlags)
		},
	} {
		c, err := parse()
		if err != nil || c != file {
			t.Errorf("mixnet %s reads the example as %+v, %v", name, c, err)
		}
	}
}

// TestProcesses builds the binary and runs a directory and a mixnode as real
// processes: the directory advertises its --mix-delay, the mixnode
// registers, and on SIGTERM both exit cleanly, the mixnode deregistered
// first.
func TestProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)

	// Both start from the example file, as an operator would; the flags win.
	example, err := filepath.Abs(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	dir := start(t, bin, "directory", "--config", example, "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--mix-delay", "40ms", "--allow-list", "", "--open")
	addr := dir.field(t, "directory listening", "addr")
	client := &directory.Client{BaseURL: "http://" + addr}

	node := start(t, bin, "mixnode", "--config", example, "--listen", "127.0.0.1:0", "--layer", "2",
		"--directory", client.BaseURL, "--data", t.TempDir(), "--replay-capacity", "10000")
	identity := node.field(t, "mixnode started", "identity")

	deadline := time.Now().Add(30 * time.Second)
	for {
		topo, err := client.Topology(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if topo.Params == nil || time.Duration(topo.Params.MeanMixDelay) != 40*time.Millisecond {
			t.Fatalf("the directory advertises %+v, want a mean delay of 40ms", topo.Params)
		}
		if len(topo.Mixnodes) == 1 {
			if m := topo.Mixnodes[0]; m.Identity != identity || m.Layer != 2 {
				t.Fatalf("listed %+v, want identity %s in layer 2", m, identity)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the mixnode was never listed")
		}
		time.Sleep(20 * time.Millisecond) // the registrar gives no signal to another process
	}

	node.stop(t)
	topo, err := client.Topology(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(topo.Mixnodes) != 0 {
		t.Fatalf("still listed after the mixnode exited: %+v", topo.Mixnodes)
	}
	dir.stop(t)
}

// process is a running mixnet process whose JSON log lines are read as
// they come.
type process struct {
	last  map[string]any // the line field found last
	cmd   *exec.Cmd
	lines chan map[string]any
	done  chan error
}

func start(t *testing.T, bin string, args ...string) *process {
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
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("the process exited before logging %q", message)
			}
			if line["message"] == message {
				p.last = line
				v, _ := line[key].(string)
				if v == "" {
					t.Fatalf("log line %q has no %q", message, key)
				}
				return v
			}
		case <-timeout:
			t.Fatalf("no log line %q", message)
		}
	}
}

// stop sends SIGTERM and checks the process exits with status 0.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Keep draining the log so the process never blocks on a full pipe.
	go func() {
		for range p.lines {
		}
	}()
	select {
	case err := <-p.done:
		var exit *exec.ExitError
		if errors.As(err, &exit) || err != nil {
			t.Fatalf("%s exited with %v", p.cmd.Args[1], err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit after SIGTERM", p.cmd.Args[1])
	}
}
