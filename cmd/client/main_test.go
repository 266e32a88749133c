package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/internal/cli"
	"github.com/peapod-mixnet/peapod/internal/cli/clitest"
)

// nymExample is the address used throughout Nym's tests.
const nymExample = "CytBseW6yFXUMzz4SGAKdNLGR7q3sJLLYxyBGvutNEQV.4QXYyEVc5fUDjmmi8PrHN9tdUFV4PCvSJE1278cHyvoe@4sBbL1ngf1vtNqykydQKTFh26sQCw888GpUqvPvyNB4f"

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "client.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigFileAndFlags(t *testing.T) {
	path := writeFile(t, `
[client]
directory = "http://127.0.0.1:9999"
data = "/from/file"
mix_delay = "5ms"
no_cover = true
cover_main_gap = "100ms"
cover_loop_gap = "1s"

[websocket]
listen = "127.0.0.1:2000"
max_frame_size = 1048576
ping_interval = "10s"
allow_origin = ["http://localhost:5173", "https://app.example"]

[log]
level = "debug"
`)
	cfg := defaultClientFile("info")
	p, err := cli.Parse(command("run", io.Discard, io.Discard), []string{"--config", path, "--data", "/from/flag", "--no-delay", "--ws=127.0.0.1:3000", "--cover-loop-gap", "2s"}, &cfg, bindRun)
	if err != nil {
		t.Fatal(err)
	}
	c, w := cfg.Client, cfg.WebSocket
	if c.Directory != "http://127.0.0.1:9999" || c.MixDelay != 5*time.Millisecond || !c.NoCover ||
		w.MaxFrameSize != 1<<20 || w.PingInterval != 10*time.Second || cfg.Log.Level != "debug" {
		t.Fatalf("file values not applied: %+v", cfg)
	}
	if c.Data != "/from/flag" || !c.NoDelay || w.Listen != "127.0.0.1:3000" {
		t.Fatalf("flags did not override the file: %+v", cfg)
	}
	if !p.Set["data"] || !p.Set["no-delay"] || p.Set["directory"] {
		t.Fatalf("flags given: %v", p.Set)
	}

	// The file's values reach the client's and the server's configurations.
	cc := c.clientConfig(zerolog.Nop())
	if cc.DataDir != "/from/flag" || cc.DirectoryURL != c.Directory || !cc.NoDelay || !cc.Cover.Disabled || cc.MixDelay != 5*time.Millisecond ||
		cc.Cover.MainGap != 100*time.Millisecond || cc.Cover.LoopGap != 2*time.Second {
		t.Fatalf("client config %+v", cc)
	}
	sc := w.serverConfig(nil, zerolog.Nop())
	if sc.MaxFrameSize != 1<<20 || sc.PingInterval != 10*time.Second || strings.Join(sc.AllowedOrigins, " ") != "http://localhost:5173 https://app.example" {
		t.Fatalf("server config %+v", sc)
	}
	// --allow-origin replaces the file's list.
	cfg = defaultClientFile("info")
	if _, err := cli.Parse(command("run", io.Discard, io.Discard), []string{"--allow-origin", "http://127.0.0.1:3000", "--config", path}, &cfg, bindRun); err != nil {
		t.Fatal(err)
	}
	if got := cfg.WebSocket.AllowOrigin; len(got) != 1 || got[0] != "http://127.0.0.1:3000" {
		t.Fatalf("--allow-origin over the file: %q", got)
	}

	// Without a file, the defaults stand.
	cfg = defaultClientFile("info")
	if _, err := cli.Parse(command("run", io.Discard, io.Discard), nil, &cfg, bindRun); err != nil {
		t.Fatal(err)
	}
	if cfg.Client.Directory != defaultDirectory || cfg.Client.Data != defaultDataDir || cfg.WebSocket.Listen != "127.0.0.1:1977" {
		t.Fatalf("defaults lost: %+v", cfg)
	}
}

func TestConfigFileUnknownKeys(t *testing.T) {
	path := writeFile(t, `
[client]
directroy = "http://x"

[websocket]
listen = "127.0.0.1:1977"
heartbeat = "5s"

[logging]
level = "debug"
`)
	cfg := defaultClientFile("info")
	_, err := cli.Parse(command("run", io.Discard, io.Discard), []string{"--config", path}, &cfg, bindRun)
	if err == nil || !strings.Contains(err.Error(), "unknown keys: client.directroy, websocket.heartbeat, logging") {
		t.Fatalf("error %v does not name the unknown keys", err)
	}
}

// exampleConfig is the example file shipped for users.
const exampleConfig = "../../examples/config/client.toml"

// TestExampleConfig: examples/config/client.toml has every key, with the
// command's defaults, and client run accepts it (TestProcesses runs it
// with the file).
func TestExampleConfig(t *testing.T) {
	var file clientFile
	clitest.CheckExample(t, exampleConfig, &file, defaultClientFile("info"))
	cfg := defaultClientFile("info")
	if _, err := cli.Parse(command("run", io.Discard, io.Discard), []string{"--config", exampleConfig}, &cfg, bindRun); err != nil {
		t.Fatal(err)
	}
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
}

func TestUsageErrors(t *testing.T) {
	bad := writeFile(t, "[client]\nmix_delay = \"soon\"\n")
	cases := [][]string{
		{"run", "--config", bad},
		{"run", "--config", filepath.Join(t.TempDir(), "missing.toml")},
		{"run", "--no-such-flag"},
		{"run", "stray"},
		{"run", "--log-level", "loud"},
		{"run", "--mix-delay", "-1s"},
		{"run", "--cover-main-gap", "-20ms"},
		{"run", "--data", ""},
		{"run", "--allow-origin", "localhost:5173"},
		{"run", "--allow-origin", "http://localhost:5173/app"},
		{"init", "stray"},
		{"address", "stray"},
		{"send", "hello"},
		{"send", "--to", "not-an-address", "hello"},
		{"send", "--to", nymExample, "two", "words"},
		{"send", "--to", nymExample, "--reply-surbs", "3", "hello"},
		{"send", "--to", nymExample, "--timeout", "0s", "hello"},
		{"frobnicate"},
		{},
	}
	for _, args := range cases {
		var out bytes.Buffer
		if code := run(args, io.Discard, &out); code != cli.ExitUsage {
			t.Errorf("%q: exit %d, want %d; output:\n%s", args, code, cli.ExitUsage, out.String())
		}
		if out.Len() == 0 {
			t.Errorf("%q: nothing printed", args)
		}
	}
	// A bare number where a duration belongs would be nanoseconds: refused,
	// with the form to write.
	var out bytes.Buffer
	bare := writeFile(t, "[websocket]\nping_interval = 30\n")
	if code := run([]string{"run", "--config", bare}, io.Discard, &out); code != cli.ExitUsage ||
		!strings.Contains(out.String(), `websocket.ping_interval = 30: a duration needs a unit and quotes, such as ping_interval = "30s"`) {
		t.Errorf("a bare-number duration: exit %d: %s", code, out.String())
	}
	for _, args := range [][]string{{"call"}, {"call", "echo", "a", "b"}, {"call", "echo", "@/nonexistent/file"}, {"kv", "put", "k"}, {"kv", "fly"}} {
		out.Reset()
		if code := run(args, io.Discard, &out); code != cli.ExitUsage || !strings.Contains(out.String(), "client "+args[0]+": ") {
			t.Errorf("%q: exit %d: %s", args, code, out.String())
		}
	}
	out.Reset()
	if code := run([]string{"send", "-h"}, io.Discard, &out); code != cli.ExitOK || !strings.Contains(out.String(), "-via") {
		t.Errorf("send -h: exit %d:\n%s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"help"}, &out, io.Discard); code != cli.ExitOK {
		t.Errorf("help: exit %d", code)
	}
	for _, name := range []string{"init", "run", "send", "address", "call"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("usage does not list %s:\n%s", name, out.String())
		}
	}
}

// TestVersion: --version on the binary and on each subcommand prints the
// version on stdout and exits 0.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"run", "--version"}, {"kv", "--version"}, {"send", "--version"}} {
		var stdout bytes.Buffer
		if code := run(args, &stdout, io.Discard); code != cli.ExitOK ||
			!strings.HasPrefix(stdout.String(), "client ") || !strings.Contains(stdout.String(), " commit ") {
			t.Errorf("%q: exit %d: %q", args, code, stdout.String())
		}
	}
}

// TestAddressOffline reads addresses from data folders without a network.
func TestAddressOffline(t *testing.T) {
	var stdout, stderr bytes.Buffer
	missing := filepath.Join(t.TempDir(), "nothing")
	if code := run([]string{"address", "--data", missing}, &stdout, &stderr); code != cli.ExitError ||
		!strings.Contains(stderr.String(), "there is no client in "+missing) || !strings.Contains(stderr.String(), "client init") {
		t.Fatalf("missing folder: exit %d: %s", code, stderr.String())
	}

	// Keys but no registration: client.New makes the keys, Start would
	// register.
	dir := t.TempDir()
	c, err := client.New(client.Config{DataDir: dir, DirectoryURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	stderr.Reset()
	if code := run([]string{"address", "--data", dir}, &stdout, &stderr); code != cli.ExitError ||
		!strings.Contains(stderr.String(), "has never registered") {
		t.Fatalf("unregistered client: exit %d: %s", code, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Fatalf("printed %q for a client without an address", stdout.String())
	}
}
