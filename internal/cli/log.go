package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// NewLogger returns the logger of command name, writing to w at level
// (trace, debug, info, warn or error): human-readable lines when w is a
// terminal, JSON lines otherwise. It also makes every duration logged with
// zerolog's Dur carry its unit ("retry_in":"1.5s"), which is a setting of
// the process: only commands call it.
func NewLogger(name string, w io.Writer, level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, fmt.Errorf("%s: unknown log level %q (trace, debug, info, warn or error)", name, level)
	}
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
	if IsTerminal(w) {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// IsTerminal reports whether w is a character device, such as a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
