package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/atomicfile"
)

// Sphinx key files in a node's data folder.
const (
	// SphinxKeyPEMType is the PEM type of every Sphinx key file.
	SphinxKeyPEMType = "PEAPOD X25519 SPHINX KEY"
	// StaticKeyFile and StaticReplayFile are the key and replay filter of
	// a static node (one without a directory); a node that joins a network
	// wipes them.
	StaticKeyFile    = "sphinx.pem"
	StaticReplayFile = "replay.bin"
	// ScheduleFile holds the last schedule the node was given.
	ScheduleFile = "schedule.json"
)

// KeyFile is the name of the file holding the Sphinx key of rotation r.
func KeyFile(r uint32) string { return "sphinx-" + strconv.FormatUint(uint64(r), 10) + ".pem" }

// ReplayFile is the name of the file holding the replay filter of the key
// of rotation r.
func ReplayFile(r uint32) string { return "replay-" + strconv.FormatUint(uint64(r), 10) + ".bin" }

// rotationFiles returns the rotations that have a key file or a replay
// file in dir.
func rotationFiles(dir string) (map[uint32]bool, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	out := map[uint32]bool{}
	for _, e := range entries {
		name := e.Name()
		var num string
		switch {
		case strings.HasPrefix(name, "sphinx-") && strings.HasSuffix(name, ".pem"):
			num = strings.TrimSuffix(strings.TrimPrefix(name, "sphinx-"), ".pem")
		case strings.HasPrefix(name, "replay-") && strings.HasSuffix(name, ".bin"):
			num = strings.TrimSuffix(strings.TrimPrefix(name, "replay-"), ".bin")
		default:
			continue
		}
		if r, err := strconv.ParseUint(num, 10, 32); err == nil && strconv.FormatUint(r, 10) == num {
			out[uint32(r)] = true
		}
	}
	return out, nil
}

// wipeFile overwrites the file at path with zeros, syncs it and deletes
// it. A missing file is not an error.
func wipeFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: wiping %s: %w", path, err)
	}
	info, err := f.Stat()
	if err == nil {
		_, err = f.Write(make([]byte, info.Size()))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("node: wiping %s: %w", path, err)
	}
	return removeFile(path)
}

// removeFile deletes path; a missing file is not an error.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("node: %w", err)
	}
	return nil
}

// savedSchedule is ScheduleFile's content.
type savedSchedule struct {
	Genesis        int64 `json:"genesis"`
	EpochLength    int64 `json:"epoch_length"`
	RotationEpochs int   `json:"rotation_epochs"`
}

// maxScheduleFile bounds the schedule file read.
const maxScheduleFile = 1 << 10

// loadSchedule reads dir's ScheduleFile; ok is false when there is none. A
// file that does not hold a valid schedule is an error naming it.
func loadSchedule(dir string) (directory.Schedule, bool, error) {
	path := filepath.Join(dir, ScheduleFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return directory.Schedule{}, false, nil
	}
	if err != nil {
		return directory.Schedule{}, false, fmt.Errorf("node: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxScheduleFile))
	if err != nil {
		return directory.Schedule{}, false, fmt.Errorf("node: reading %s: %w", path, err)
	}
	var ss savedSchedule
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ss); err != nil {
		return directory.Schedule{}, false, fmt.Errorf("node: %s does not hold a schedule (%v); delete it to take the directory's", path, err)
	}
	s := directory.Schedule{Genesis: time.Unix(0, ss.Genesis), EpochLength: time.Duration(ss.EpochLength), RotationEpochs: ss.RotationEpochs}
	if err := s.Validate(); err != nil {
		return directory.Schedule{}, false, fmt.Errorf("node: %s: %w; delete it to take the directory's", path, err)
	}
	return s, true, nil
}

// saveSchedule writes dir's ScheduleFile atomically.
func saveSchedule(dir string, s directory.Schedule) error {
	body, err := json.Marshal(savedSchedule{Genesis: s.Genesis.UnixNano(), EpochLength: int64(s.EpochLength), RotationEpochs: s.RotationEpochs})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	err = atomicfile.Write(filepath.Join(dir, ScheduleFile), 0o600, func(f *os.File) error {
		_, err := f.Write(append(body, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("node: saving the schedule: %w", err)
	}
	return nil
}
