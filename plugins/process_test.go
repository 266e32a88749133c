package plugins

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"
)

func TestCheckHandshakeLine(t *testing.T) {
	good := []struct{ in, want string }{
		{"1|1|unix|/tmp/plugin-dir1/plugin2|grpc|\n", "1|1|unix|/tmp/plugin-dir1/plugin2|grpc"},
		{"1|1|tcp|127.0.0.1:1234|grpc\n", "1|1|tcp|127.0.0.1:1234|grpc"},
		{"1|1|tcp|[::1]:1234|grpc\r\n", "1|1|tcp|[::1]:1234|grpc"},
		{"1|1|tcp|127.0.0.1:65535|grpc", "1|1|tcp|127.0.0.1:65535|grpc"},
	}
	for _, tt := range good {
		got, err := checkHandshakeLine(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("checkHandshakeLine(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	bad := []string{
		"", "hello", "1|1|tcp|127.0.0.1:1234", "2|1|tcp|127.0.0.1:1234|grpc", "1|2|tcp|127.0.0.1:1234|grpc",
		"1|1|tcp|127.0.0.1:1234|netrpc", "1|1|udp|127.0.0.1:1234|grpc", "1|1|tcp|10.0.0.1:1234|grpc",
		"1|1|tcp|localhost:1234|grpc", "1|1|tcp|127.0.0.1:0|grpc", "1|1|tcp|127.0.0.1:70000|grpc",
		"1|1|tcp|127.0.0.1|grpc", "1|1|unix||grpc", "1|1|unix|/x\x00y|grpc",
		"1|1|tcp|127.0.0.1:1234|grpc|MIIBhTCCASugAwIBAgIQIRi6zePL6mKjOipn+dNuaTAKBggqhkjOPQQDAjAS",
		"1|1|tcp|127.0.0.1:1234|grpc||true", " 1|1|tcp|127.0.0.1:1234|grpc",
	}
	for _, in := range bad {
		if got, err := checkHandshakeLine(in); err == nil {
			t.Errorf("checkHandshakeLine(%q) = %q, want an error", in, got)
		} else if !strings.HasPrefix(err.Error(), "plugins: bad handshake line") {
			t.Errorf("error %q lacks the package prefix", err)
		}
	}
}

// FuzzCheckHandshakeLine: no panic, and an accepted line is accepted again
// unchanged, has five fields, and names a loopback or unix address.
func FuzzCheckHandshakeLine(f *testing.F) {
	for _, s := range []string{"1|1|unix|/tmp/p|grpc|", "1|1|tcp|127.0.0.1:1|grpc", "1|1|tcp|[::1]:9|grpc\n", "1|1|tcp|1.2.3.4:5|grpc", "||||", "1|1|unix|/a|grpc|x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		got, err := checkHandshakeLine(line)
		if err != nil {
			return
		}
		again, err := checkHandshakeLine(got)
		if err != nil || again != got {
			t.Fatalf("accepted %q as %q, which then gives %q, %v", line, got, again, err)
		}
		f := strings.Split(got, "|")
		if len(f) != 5 || (f[2] != "unix" && f[2] != "tcp") {
			t.Fatalf("accepted %q as %q", line, got)
		}
	})
}

// logLines decodes the JSON lines in s.
func logLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLineLogger(t *testing.T) {
	var buf logBuffer
	l := newLineLogger(zerolog.New(&buf).With().Str("plugin", "p").Logger())
	writes := []string{
		"first line\nsec", "ond line\r\n", "\n   \n",
		"WRN careful now\n", "ERR broken\n", "DBG detail\n",
		"bad utf8 \xff\n",
		strings.Repeat("x", maxLogLine+10) + "\n",
		"panic: oh no\n", "goroutine 1 [running]:\n",
		"tail without newline",
	}
	for _, w := range writes {
		if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	l.Flush()
	lines := logLines(t, buf.String())
	want := []struct{ level, msg string }{
		{"info", "first line"},
		{"info", "second line"},
		{"warn", "careful now"},
		{"error", "broken"},
		{"debug", "detail"},
		{"info", "bad utf8 \uFFFD"},
		{"info", strings.Repeat("x", maxLogLine)},
		{"info", "xxxxxxxxxx"},
		{"error", "panic: oh no"},
		{"error", "goroutine 1 [running]:"},
		{"error", "tail without newline"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if lines[i]["level"] != w.level || lines[i]["message"] != w.msg || lines[i]["plugin"] != "p" {
			t.Errorf("line %d = %v, want %s %q", i, lines[i], w.level, w.msg)
		}
	}
}

func TestHCLogAdapter(t *testing.T) {
	var buf logBuffer
	h := newHCLogger(zerolog.New(&buf).Level(zerolog.InfoLevel).With().Str("plugin", "p").Logger())
	h.Debug("hidden")
	h.Named("stdio").With("a", 1).Warn("msg", "plugin", "/path/p", "error", errors.New("bad"), "odd")
	h.Info("plain")
	lines := logLines(t, buf.String())
	if len(lines) != 2 {
		t.Fatalf("lines = %v", lines)
	}
	w := lines[0]
	if w["level"] != "warn" || w["component"] != "go-plugin.stdio" || w["a"] != 1.0 || w["plugin"] != "p" ||
		w["plugin_path"] != "/path/p" || w["error"] != "bad" || w["odd"] != "(missing value)" {
		t.Errorf("warn line = %v", w)
	}
	if lines[1]["component"] != "go-plugin" {
		t.Errorf("info line = %v", lines[1])
	}
	if h.IsDebug() || !h.IsInfo() || h.GetLevel() != hclog.Info {
		t.Errorf("levels: IsDebug %v IsInfo %v GetLevel %v", h.IsDebug(), h.IsInfo(), h.GetLevel())
	}
	if h.Named("a").Named("b").Name() != "a.b" || h.Named("a").ResetNamed("c").Name() != "c" {
		t.Error("names")
	}
	h.StandardLogger(nil).Print("via standard logger")
	if !strings.Contains(buf.String(), "via standard logger") {
		t.Error("StandardLogger output lost")
	}
}
