package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// testFile is the shape of a command's TOML file.
type testFile struct {
	Server struct {
		Listen  string        `toml:"listen"`
		Timeout time.Duration `toml:"timeout"`
		Origins []string      `toml:"allow_origin"`
		Size    int           `toml:"size"`
	} `toml:"server"`
	Untagged struct{ Wait time.Duration }
}

func bindTest(fs *flag.FlagSet, c *testFile) {
	fs.StringVar(&c.Server.Listen, "listen", c.Server.Listen, "")
	fs.DurationVar(&c.Server.Timeout, "timeout", c.Server.Timeout, "")
	StringsVar(fs, &c.Server.Origins, "allow-origin", "")
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func testCommand() (Command, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	return Command{Name: "test sub", Stdout: &stdout, Stderr: &stderr}, &stdout, &stderr
}

// TestParseFileThenFlags: the file is read, flags override it wherever
// they are on the line, and a repeatable flag replaces the file's list.
func TestParseFileThenFlags(t *testing.T) {
	path := writeFile(t, `
[server]
listen = "127.0.0.1:1"
timeout = "3s"
allow_origin = ["http://file.example"]
size = 7
`)
	cmd, _, _ := testCommand()
	var cfg testFile
	p, err := Parse(cmd, []string{"put", "--config", path, "key", "--listen", "127.0.0.1:2",
		"--allow-origin", "http://a.example", "-allow-origin=http://b.example", "--", "--value"}, &cfg, bindTest)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Server
	if s.Listen != "127.0.0.1:2" || s.Timeout != 3*time.Second || s.Size != 7 {
		t.Errorf("config %+v", s)
	}
	if strings.Join(s.Origins, " ") != "http://a.example http://b.example" {
		t.Errorf("origins %q: the flags should replace the file's", s.Origins)
	}
	if strings.Join(p.Args, " ") != "put key --value" {
		t.Errorf("positional arguments %q", p.Args)
	}
	if !p.Set["listen"] || !p.Set["allow-origin"] || p.Set["timeout"] {
		t.Errorf("flags set: %v", p.Set)
	}

	// Without the flag, the file's list stands.
	cfg = testFile{}
	if _, err := Parse(cmd, []string{"--config", path}, &cfg, bindTest); err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Server.Origins, " ") != "http://file.example" {
		t.Errorf("origins from the file: %q", cfg.Server.Origins)
	}
}

// TestLoadBareDuration: a number, or a string that is not a duration, where
// a duration belongs is refused with the form to write; numbers elsewhere
// and quoted durations are fine.
func TestLoadBareDuration(t *testing.T) {
	for _, c := range []struct{ content, want string }{
		{"[server]\ntimeout = 5\n", `server.timeout = 5: a duration needs a unit and quotes, such as timeout = "5s"`},
		{"[server]\ntimeout = 2.5\n", `server.timeout = 2.5: a duration needs a unit and quotes, such as timeout = "2.5s"`},
		{"[untagged]\nwait = 10\n", `untagged.wait = 10: a duration needs a unit and quotes, such as wait = "10s"`},
		{"[server]\ntimeout = \"5\"\n", `server.timeout = "5" is not a duration: write a number and a unit (ns, us, ms, s, m, h), such as timeout = "90s"`},
		{"[server]\ntimeout = \"soon\"\n", `server.timeout = "soon" is not a duration`},
	} {
		var cfg testFile
		err := Load("test", writeFile(t, c.content), &cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "test: config ") {
			t.Errorf("%q: error %v, want it to contain %s", c.content, err, c.want)
		}
	}
	var cfg testFile
	if err := Load("test", writeFile(t, "[server]\ntimeout = \"1m30s\"\nsize = 5\n[untagged]\nwait = \"2ms\"\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Timeout != 90*time.Second || cfg.Server.Size != 5 || cfg.Untagged.Wait != 2*time.Millisecond {
		t.Errorf("loaded %+v", cfg)
	}
}

func TestLoadErrors(t *testing.T) {
	var cfg testFile
	err := Load("test", writeFile(t, "[server]\nlisten = \"x\"\nlisen = 1\n[other]\nkey = 2\n"), &cfg)
	if err == nil || !strings.Contains(err.Error(), "unknown keys: server.lisen, other") {
		t.Errorf("unknown keys: %v", err)
	}
	if err := Load("test", writeFile(t, "[server\n"), &cfg); err == nil {
		t.Error("a malformed file was accepted")
	}
	if err := Load("test", writeFile(t, "[server]\ntimeout = \"soon\"\n"), &cfg); err == nil {
		t.Error("an unparsable duration was accepted")
	}
	if err := Load("test", filepath.Join(t.TempDir(), "missing.toml"), &cfg); err == nil {
		t.Error("a missing file was accepted")
	}
}

// TestParseStatuses: help, version, usage errors and config errors map to
// exit statuses, each printed once.
func TestParseStatuses(t *testing.T) {
	for _, c := range []struct {
		args   []string
		status int
		stdout string
		stderr string
	}{
		{[]string{"-h"}, ExitOK, "", "-allow-origin"},
		{[]string{"put", "--version"}, ExitOK, "test " + Version("x")[2:], ""},
		{[]string{"--nope"}, ExitUsage, "", "flag provided but not defined: -nope"},
		{[]string{"k", "--timeout", "5"}, ExitUsage, "", `invalid value "5" for flag -timeout`},
		{[]string{"--config", "/nonexistent/x.toml"}, ExitUsage, "", "test sub: config /nonexistent/x.toml"},
	} {
		cmd, stdout, stderr := testCommand()
		var cfg testFile
		_, err := Parse(cmd, c.args, &cfg, bindTest)
		if got := cmd.Status(err); got != c.status {
			t.Errorf("%q: status %d, want %d", c.args, got, c.status)
		}
		if !strings.Contains(stdout.String(), c.stdout) || !strings.Contains(stderr.String(), c.stderr) {
			t.Errorf("%q: stdout %q, stderr %q; want %q and %q", c.args, stdout, stderr, c.stdout, c.stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	v := Version("client run")
	if !strings.HasPrefix(v, "client ") || !strings.Contains(v, " commit ") || !strings.Contains(v, runtime.Version()) {
		t.Errorf("version %q", v)
	}
}

func TestNewLogger(t *testing.T) {
	var out bytes.Buffer
	log, err := NewLogger("test", &out, "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("hidden")
	log.Warn().Dur("retry_in", 1500*time.Millisecond).Msg("shown")
	if s := out.String(); strings.Contains(s, "hidden") || !strings.Contains(s, `"retry_in":"1.5s"`) {
		t.Errorf("log output %q", s)
	}
	if _, err := NewLogger("test", &out, "loud"); err == nil || !strings.Contains(err.Error(), "test: unknown log level") {
		t.Errorf("bad level: %v", err)
	}
}
