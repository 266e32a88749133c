package measure

import (
	"compress/gzip"
	"encoding/gob"
	"fmt"
	"os"

	"github.com/peapod-mixnet/peapod/anonymity"
)

// SavedTrace is what a cell leaves in Config.Dir for a later look, as
// cell-N.trace.gob (gzip-compressed gob): its trace, its targets and which
// of them are clear, and the watched client's windows.
type SavedTrace struct {
	Cell    Cell
	Trace   *anonymity.Trace
	Targets []anonymity.Target
	Clear   []bool
	Windows []anonymity.Window
}

func saveTrace(path string, t SavedTrace) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("measure: saving the trace: %w", err)
	}
	zw := gzip.NewWriter(f)
	err = gob.NewEncoder(zw).Encode(t)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("measure: saving the trace: %w", err)
	}
	return nil
}

// LoadTrace reads a trace a cell saved.
func LoadTrace(path string) (*SavedTrace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("measure: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("measure: %s: %w", path, err)
	}
	t := new(SavedTrace)
	if err := gob.NewDecoder(zr).Decode(t); err != nil {
		return nil, fmt.Errorf("measure: %s: %w", path, err)
	}
	return t, nil
}
