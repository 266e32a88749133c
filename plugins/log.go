package plugins

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/rs/zerolog"
)

// maxLogLine is the longest line of plugin output logged as one entry;
// longer lines are split.
const maxLogLine = 4096

// lineLogger is an io.Writer that logs each line written to it as one
// zerolog entry. It infers the level from the prefixes zerolog's console
// writer uses (as plugins.Serve's logger writes them: "INF", "ERR", ...) and
// from Go's panic output; other lines are logged at info level. It is safe
// for concurrent use.
type lineLogger struct {
	mu      sync.Mutex
	log     zerolog.Logger
	buf     []byte
	inPanic bool
	recent  []string // the last lines logged, for Recent
}

// Bounds of what Recent keeps.
const (
	recentLines   = 3
	recentLineLen = 300
)

// Recent returns the last lines logged (at most recentLines, each cut to
// recentLineLen bytes), joined by " | ": what a plugin that died at start
// said about why.
func (l *lineLogger) Recent() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.recent, " | ")
}

var _ io.Writer = (*lineLogger)(nil)

func newLineLogger(log zerolog.Logger) *lineLogger {
	return &lineLogger{log: log}
}

// Write logs every complete line in p and keeps the rest for later.
func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		switch {
		case i >= 0 && i <= maxLogLine:
			l.emitLocked(l.buf[:i])
			l.buf = l.buf[i+1:]
		case i > maxLogLine || (i < 0 && len(l.buf) > maxLogLine):
			l.emitLocked(l.buf[:maxLogLine])
			l.buf = l.buf[maxLogLine:]
		default:
			if len(l.buf) == 0 {
				l.buf = nil // let a large buffer go
			}
			return len(p), nil
		}
	}
}

// Flush logs a final unterminated line, if any.
func (l *lineLogger) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emitLocked(l.buf)
	}
	l.buf = nil
}

func (l *lineLogger) emitLocked(b []byte) {
	line := strings.ToValidUTF8(string(bytes.TrimRight(b, "\r")), "\uFFFD")
	if strings.TrimSpace(line) == "" {
		return
	}
	level := zerolog.InfoLevel
	if lvl, rest, ok := consoleLevel(line); ok {
		level, line = lvl, rest
	} else if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
		l.inPanic = true
	}
	if l.inPanic {
		level = zerolog.ErrorLevel
	}
	l.log.WithLevel(level).Msg(line)
	if len(l.recent) == recentLines {
		l.recent = append(l.recent[:0], l.recent[1:]...)
	}
	l.recent = append(l.recent, clip(line, recentLineLen))
}

// consoleLevel recognises the level abbreviation zerolog's console writer
// puts at the start of a line.
func consoleLevel(line string) (zerolog.Level, string, bool) {
	prefix, rest, ok := strings.Cut(line, " ")
	if !ok {
		return 0, "", false
	}
	switch prefix {
	case "TRC":
		return zerolog.TraceLevel, rest, true
	case "DBG":
		return zerolog.DebugLevel, rest, true
	case "INF":
		return zerolog.InfoLevel, rest, true
	case "WRN":
		return zerolog.WarnLevel, rest, true
	case "ERR", "FTL", "PNC":
		return zerolog.ErrorLevel, rest, true
	}
	return 0, "", false
}

// hclogAdapter is an hclog.Logger that writes through zerolog, so go-plugin's
// own log lines reach the host's log with the plugin's fields.
type hclogAdapter struct {
	log  zerolog.Logger
	name string
	args []any
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func newHCLogger(log zerolog.Logger) hclog.Logger {
	return &hclogAdapter{log: log}
}

func (h *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	var ev *zerolog.Event
	switch level {
	case hclog.Trace:
		ev = h.log.Trace()
	case hclog.Debug:
		ev = h.log.Debug()
	case hclog.Warn:
		ev = h.log.Warn()
	case hclog.Error:
		ev = h.log.Error()
	case hclog.Off:
		return
	default:
		ev = h.log.Info()
	}
	if ev == nil {
		return
	}
	if h.name != "" {
		ev = ev.Str("component", "go-plugin."+h.name)
	} else {
		ev = ev.Str("component", "go-plugin")
	}
	addKV(ev, h.args)
	addKV(ev, args)
	ev.Msg(msg)
}

// addKV adds hclog's alternating key/value arguments to ev.
func addKV(ev *zerolog.Event, kv []any) {
	for i := 0; i < len(kv); i += 2 {
		key := fmt.Sprint(kv[i])
		if key == "plugin" {
			key = "plugin_path" // go-plugin's name for the executable; ours is the plugin's name
		}
		if i+1 == len(kv) {
			ev.Str(key, "(missing value)")
			break
		}
		switch v := kv[i+1].(type) {
		case error:
			ev.Str(key, v.Error())
		case fmt.Stringer:
			ev.Str(key, v.String())
		case string:
			ev.Str(key, v)
		default:
			ev.Interface(key, v)
		}
	}
}

func (h *hclogAdapter) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogAdapter) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogAdapter) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogAdapter) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogAdapter) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogAdapter) IsTrace() bool { return h.enabled(zerolog.TraceLevel) }
func (h *hclogAdapter) IsDebug() bool { return h.enabled(zerolog.DebugLevel) }
func (h *hclogAdapter) IsInfo() bool  { return h.enabled(zerolog.InfoLevel) }
func (h *hclogAdapter) IsWarn() bool  { return h.enabled(zerolog.WarnLevel) }
func (h *hclogAdapter) IsError() bool { return h.enabled(zerolog.ErrorLevel) }

func (h *hclogAdapter) enabled(l zerolog.Level) bool {
	return l >= h.log.GetLevel() && l >= zerolog.GlobalLevel()
}

func (h *hclogAdapter) ImpliedArgs() []any { return h.args }

func (h *hclogAdapter) With(args ...any) hclog.Logger {
	c := *h
	c.args = append(append([]any(nil), h.args...), args...)
	return &c
}

func (h *hclogAdapter) Name() string { return h.name }

func (h *hclogAdapter) Named(name string) hclog.Logger {
	c := *h
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (h *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

// SetLevel does nothing: the zerolog logger's level rules.
func (h *hclogAdapter) SetLevel(hclog.Level) {}

func (h *hclogAdapter) GetLevel() hclog.Level {
	switch l := max(h.log.GetLevel(), zerolog.GlobalLevel()); {
	case l <= zerolog.TraceLevel:
		return hclog.Trace
	case l == zerolog.DebugLevel:
		return hclog.Debug
	case l == zerolog.InfoLevel:
		return hclog.Info
	case l == zerolog.WarnLevel:
		return hclog.Warn
	case l <= zerolog.PanicLevel:
		return hclog.Error
	default:
		return hclog.Off
	}
}

func (h *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return newLineLogger(h.log.With().Str("component", "go-plugin").Logger())
}
