// Package replaystore keeps a node's Sphinx replay filter on disk, so that a
// node that restarts with the same Sphinx key still refuses the packets it
// processed before the restart.
//
// A node calls [Load] when it starts, with the public half of its Sphinx key
// and the sizing it wants, and gets either the filter it saved or, when
// there is none it can use, a fresh one. A [Saver] then writes the filter
// back every interval and once more when the node closes, so that a crash
// forgets at most one interval of tags: the packets of that interval can be
// replayed to the restarted node once.
//
// The file is
//
//	magic "PPRK" ‖ Sphinx public key[32] ‖ filter
//
// where the filter is in the format of [sphinx.ReplayFilter.WriteTo], and
// nothing follows it. The key names the key the filter guards: a filter
// saved for another key (the node's key was replaced) is of no use, since
// packets made for the old key no longer decrypt. The file holds nothing
// secret. It is replaced atomically (temporary file, fsync, rename, fsync of
// the folder), so a crash leaves the previous save or the new one.
package replaystore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/internal/atomicfile"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// The file's header.
const (
	magic      = "PPRK"
	headerSize = len(magic) + sphinx.KeySize
)

// Load returns the filter saved at path for key if it is sized as
// sphinx.NewReplayFilter(capacity, rate) would size it. Otherwise it
// returns a fresh filter of that size and logs why: at info level when
// there is no file (a node's first start), at warn level when the file is
// for another key or another size, or is damaged. The error is non-nil,
// and the filter nil, only when a file exists but cannot be read (its
// permissions, an I/O error): a node should not start then, since it would
// accept every packet it processed before, and could not save either.
func Load(path string, key sphinx.PublicKey, capacity int, rate float64, log zerolog.Logger) (*sphinx.ReplayFilter, error) {
	fresh := func() *sphinx.ReplayFilter { return sphinx.NewReplayFilter(capacity, rate) }
	f, err := LoadSaved(path, key, log)
	if err != nil {
		return nil, err
	}
	if f == nil {
		return fresh(), nil
	}
	if !f.SizedFor(capacity, rate) {
		log.Warn().Str("path", path).Int("saved_capacity", f.Capacity()).Int("capacity", capacity).
			Msg("saved replay filter sized for another capacity or rate: starting with an empty one")
		return fresh(), nil
	}
	log.Info().Str("path", path).Int("tags", f.Count()).Int("capacity", f.Capacity()).Msg("loaded the saved replay filter")
	return f, nil
}

// LoadSaved returns the filter saved at path for key, whatever its size, or
// nil when there is none it can use: no file (logged at info level), or a
// file for another key or damaged (logged at warn level). The error is
// non-nil only when a file exists but cannot be read. A node whose filters
// are sized when their key is made uses it to load a key's filter as it was
// made.
func LoadSaved(path string, key sphinx.PublicKey, log zerolog.Logger) (*sphinx.ReplayFilter, error) {
	removeLeftovers(path, log)
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		log.Info().Str("path", path).Msg("no saved replay filter: starting with an empty one")
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("replaystore: %w", err)
	}
	defer file.Close()
	r := &errReader{r: bufio.NewReaderSize(file, 1<<16)}
	f, err := decode(r, key)
	if r.err != nil {
		return nil, fmt.Errorf("replaystore: reading %s: %w", path, r.err)
	}
	if err != nil {
		log.Warn().Str("path", path).Err(err).Msg("saved replay filter unusable: starting with an empty one")
		return nil, nil
	}
	return f, nil
}

// removeLeftovers deletes the temporary files of saves that a crash
// interrupted (each as large as the filter).
func removeLeftovers(path string, log zerolog.Logger) {
	if err := atomicfile.RemoveLeftovers(path); err != nil {
		log.Warn().Err(err).Msg("cannot remove an interrupted save of the replay filter")
	}
}

// errKey means the file is for another Sphinx key.
var errKey = errors.New("replaystore: saved for another Sphinx key")

// decode reads a whole file: header, filter, and nothing after.
func decode(r io.Reader, key sphinx.PublicKey) (*sphinx.ReplayFilter, error) {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("replaystore: header: %w", err)
	}
	if string(hdr[:len(magic)]) != magic {
		return nil, errors.New("replaystore: not a replay filter file (bad magic)")
	}
	if !bytes.Equal(hdr[len(magic):], key[:]) {
		return nil, errKey
	}
	f, err := sphinx.ReadReplayFilter(r)
	if err != nil {
		return nil, fmt.Errorf("replaystore: %w", err)
	}
	var b [1]byte
	if n, _ := io.ReadFull(r, b[:]); n != 0 {
		return nil, errors.New("replaystore: trailing bytes after the filter")
	}
	return f, nil
}

// errReader remembers the first error of r other than io.EOF, so that Load
// can tell a file it cannot read from a file whose content is wrong.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// Save writes f, guarding key, to path: to a temporary file in the same
// folder (permissions 0600), synced, then renamed over path, and the folder
// synced. Saves of the same path must not run concurrently (a [Saver]
// serialises its own).
func Save(path string, key sphinx.PublicKey, f *sphinx.ReplayFilter) error {
	err := atomicfile.Write(path, 0o600, func(w *os.File) error {
		if _, err := w.Write(append([]byte(magic), key[:]...)); err != nil {
			return err
		}
		_, err := f.WriteTo(w)
		return err
	})
	if err != nil {
		return fmt.Errorf("replaystore: %w", err)
	}
	return nil
}

// MinInterval is the shortest interval [Saver.Start] accepts: each save
// writes the whole filter (30 MB at sphinx.DefaultReplayCapacity).
const MinInterval = time.Second

// Saver saves a filter to its file every interval and when it is closed.
// It skips a save when the filter's Count has not changed since the last
// one, so an idle node does not rewrite its file. (Count only grows between
// Resets; a filter that is Reset and then records exactly as many tags as
// it held at the last save is saved only once it records one more.) Its
// methods are safe for concurrent use.
type Saver struct {
	path   string
	key    sphinx.PublicKey
	filter *sphinx.ReplayFilter
	log    zerolog.Logger

	saveMu sync.Mutex // serialises saves
	saved  int        // the filter's Count when it was last saved or loaded
	// discarded is set by Discard: the file is gone and stays gone.
	discarded bool

	mu      sync.Mutex
	started bool
	closed  bool
	stop    chan struct{}
	done    chan struct{} // closed when the periodic saves have ended
}

// NewSaver returns a Saver of f, which guards key, to path. It assumes
// that the file holds f as it is now (f came from [Load], or is fresh and
// worth no save yet), and saves nothing until Start or Close.
func NewSaver(path string, key sphinx.PublicKey, f *sphinx.ReplayFilter, log zerolog.Logger) *Saver {
	return &Saver{
		path: path, key: key, filter: f, log: log,
		saved: f.Count(),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
}

// Start saves the filter every interval, on a goroutine that runs until
// Close; a negative interval means no periodic saves (Close still saves). A
// failed save is logged and tried again at the next interval. Start may be
// called once; it does nothing after Close. An interval from zero up to
// MinInterval is an error.
func (s *Saver) Start(interval time.Duration) error {
	if interval >= 0 && interval < MinInterval {
		return fmt.Errorf("replaystore: save interval %v is below %v", interval, MinInterval)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil
	case s.started:
		return errors.New("replaystore: Saver started twice")
	}
	s.started = true
	if interval < 0 {
		close(s.done)
		return nil
	}
	go s.run(interval)
	return nil
}

// run saves every interval until stop is closed.
func (s *Saver) run(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.Save(); err != nil {
				s.log.Error().Err(err).Str("path", s.path).Msg("saving the replay filter failed")
			}
		}
	}
}

// Save saves the filter now if it has recorded tags since the last save.
func (s *Saver) Save() error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	// Read Count before the snapshot: every tag counted by now is in it,
	// and a tag counted later changes Count, so the next Save writes it.
	n := s.filter.Count()
	if n == s.saved || s.discarded {
		return nil
	}
	start := time.Now()
	if err := Save(s.path, s.key, s.filter); err != nil {
		return err
	}
	s.saved = n
	s.log.Debug().Str("path", s.path).Int("tags", n).Dur("took", time.Since(start)).Msg("saved the replay filter")
	return nil
}

// Close ends the periodic saves, waiting for one in progress, then saves
// the filter once more (if it changed) and returns that save's error. Call
// it once nothing records tags in the filter any more, so that the file
// holds every tag. Later calls save again if the filter changed.
func (s *Saver) Close() error {
	s.stopPeriodic()
	return s.Save()
}

// stopPeriodic ends the periodic saves and waits for one in progress.
func (s *Saver) stopPeriodic() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
		if !s.started {
			close(s.done)
		}
	}
	s.mu.Unlock()
	<-s.done
}

// Discard ends the periodic saves, waiting for one in progress, and deletes
// the filter's file (and any interrupted save of it) instead of saving: for
// the filter of a key that has expired, whose packets no node accepts any
// more. Later saves do nothing.
func (s *Saver) Discard() error {
	s.stopPeriodic()
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.discarded = true
	removeLeftovers(s.path, s.log)
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replaystore: %w", err)
	}
	return nil
}
