package replaystore

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/sphinx"
)

const (
	testCapacity = 1000
	testRate     = 1e-5
)

// tag returns a distinct uniform tag for i (the filter takes its probe
// positions from the tag's bytes, as uniform as the HKDF output of real
// tags).
func tag(i int) *sphinx.ReplayTag {
	t := sphinx.ReplayTag(sha256.Sum256([]byte{byte(i), byte(i >> 8), byte(i >> 16)}))
	return &t
}

// logged returns a logger writing to a buffer.
func logged() (zerolog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return zerolog.New(&buf), &buf
}

func load(t *testing.T, path string, key sphinx.PublicKey) (*sphinx.ReplayFilter, string) {
	t.Helper()
	log, buf := logged()
	f, err := Load(path, key, testCapacity, testRate, log)
	if err != nil {
		t.Fatal(err)
	}
	return f, buf.String()
}

// seen reports how many of tags from..to-1 the filter had seen.
func seen(f *sphinx.ReplayFilter, from, to int) int {
	n := 0
	for i := from; i < to; i++ {
		if f.Seen(tag(i)) {
			n++
		}
	}
	return n
}

func TestSaveAndLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.bin")
	key := sphinx.PublicKey{1, 2, 3}
	f, logs := load(t, path, key)
	if f.Count() != 0 || !strings.Contains(logs, `"level":"info"`) || !strings.Contains(logs, "no saved replay filter") {
		t.Fatalf("first start: count %d, logs %s", f.Count(), logs)
	}
	seen(f, 0, 100)
	if err := Save(path, key, f); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved file: %v, %v", fi, err)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*")); len(m) != 0 {
		t.Fatalf("temporary files left behind: %v", m)
	}
	g, logs := load(t, path, key)
	if g.Count() != 100 || !strings.Contains(logs, "loaded the saved replay filter") {
		t.Fatalf("reload: count %d, logs %s", g.Count(), logs)
	}
	if n := seen(g, 0, 100); n != 100 {
		t.Fatalf("the reloaded filter had seen %d of 100 tags", n)
	}
	if n := seen(g, 100, 200); n > 1 {
		t.Fatalf("the reloaded filter had seen %d of 100 fresh tags", n)
	}
}

// A file the node cannot use gives a fresh filter and a warning that says
// why.
func TestLoadFallsBack(t *testing.T) {
	dir := t.TempDir()
	key := sphinx.PublicKey{7}
	f := sphinx.NewReplayFilter(testCapacity, testRate)
	seen(f, 0, 10)
	var good bytes.Buffer
	good.WriteString(magic)
	good.Write(key[:])
	f.WriteTo(&good)
	valid := good.Bytes()

	other := sphinx.NewReplayFilter(2*testCapacity, testRate)
	var big bytes.Buffer
	big.WriteString(magic)
	big.Write(key[:])
	other.WriteTo(&big)

	for _, tc := range []struct {
		name string
		file []byte
		key  sphinx.PublicKey
		want string
	}{
		{"empty", nil, key, "header"},
		{"bad magic", append([]byte("XXXX"), valid[4:]...), key, "bad magic"},
		{"another key", valid, sphinx.PublicKey{8}, "another Sphinx key"},
		{"another capacity", big.Bytes(), key, "another capacity"},
		{"truncated", valid[:len(valid)-10], key, "truncated"},
		{"flipped bit", flip(valid, headerSize+40), key, "checksum mismatch"},
		{"trailing bytes", append(bytes.Clone(valid), 0), key, "trailing bytes"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
		if err := os.WriteFile(path, tc.file, 0o600); err != nil {
			t.Fatal(err)
		}
		g, logs := load(t, path, tc.key)
		if g.Count() != 0 || !g.SizedFor(testCapacity, testRate) {
			t.Errorf("%s: got a filter with %d tags, capacity %d", tc.name, g.Count(), g.Capacity())
		}
		if !strings.Contains(logs, `"level":"warn"`) || !strings.Contains(logs, tc.want) {
			t.Errorf("%s: logs %s, want a warning with %q", tc.name, logs, tc.want)
		}
	}
}

func flip(b []byte, at int) []byte {
	b = bytes.Clone(b)
	b[at] ^= 1
	return b
}

// A file that exists but cannot be read is an error, not a fresh start.
func TestLoadUnreadable(t *testing.T) {
	log, _ := logged()
	// A folder in its place opens but fails on reading.
	if g, err := Load(t.TempDir(), sphinx.PublicKey{}, testCapacity, testRate, log); err == nil || g != nil ||
		!strings.HasPrefix(err.Error(), "replaystore: ") {
		t.Fatalf("Load of a folder: %v, %v", g, err)
	}
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	path := filepath.Join(t.TempDir(), "replay.bin")
	if err := Save(path, sphinx.PublicKey{}, sphinx.NewReplayFilter(testCapacity, testRate)); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0)
	if g, err := Load(path, sphinx.PublicKey{}, testCapacity, testRate, log); err == nil || g != nil {
		t.Fatalf("Load of an unreadable file: %v, %v", g, err)
	}
}

func TestSaveErrors(t *testing.T) {
	f := sphinx.NewReplayFilter(testCapacity, testRate)
	err := Save(filepath.Join(t.TempDir(), "missing", "replay.bin"), sphinx.PublicKey{}, f)
	if err == nil || !strings.HasPrefix(err.Error(), "replaystore: ") {
		t.Fatalf("Save into a missing folder: %v", err)
	}
}

// The Saver saves every interval while tags arrive, skips saves while
// none do, and saves once more on Close.
func TestSaver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.bin")
	key := sphinx.PublicKey{9}
	f, _ := load(t, path, key)
	log, _ := logged()
	s := NewSaver(path, key, f, log)
	if err := s.Start(time.Millisecond); err == nil {
		t.Fatal("Start accepted an interval below MinInterval")
	}
	if err := s.Start(MinInterval); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(MinInterval); err == nil {
		t.Fatal("Start accepted a second call")
	}
	// Nothing recorded: nothing saved.
	time.Sleep(MinInterval + MinInterval/2)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("an unchanged filter was saved: %v", err)
	}
	seen(f, 0, 50)
	deadline := time.Now().Add(10 * MinInterval)
	for {
		g, _ := load(t, path, key)
		if g.Count() == 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the periodic save did not happen")
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen(f, 50, 60)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	g, _ := load(t, path, key)
	if g.Count() != 60 || seen(g, 0, 60) != 60 {
		t.Fatalf("after Close the file holds %d tags, want 60", g.Count())
	}
	if err := s.Start(MinInterval); err != nil {
		t.Fatalf("Start after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// With periodic saves off, and without Start, Close still saves.
func TestSaverCloseOnly(t *testing.T) {
	for _, start := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "replay.bin")
		f := sphinx.NewReplayFilter(testCapacity, testRate)
		log, _ := logged()
		s := NewSaver(path, sphinx.PublicKey{}, f, log)
		if start {
			if err := s.Start(-1); err != nil {
				t.Fatal(err)
			}
		}
		seen(f, 0, 5)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if g, _ := load(t, path, sphinx.PublicKey{}); g.Count() != 5 {
			t.Fatalf("start %v: the file holds %d tags, want 5", start, g.Count())
		}
	}
}

// A save that fails is reported by Close, and the next save retries.
func TestSaverFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "replay.bin")
	f := sphinx.NewReplayFilter(testCapacity, testRate)
	log, _ := logged()
	s := NewSaver(path, sphinx.PublicKey{}, f, log)
	seen(f, 0, 5)
	if err := s.Save(); err == nil {
		t.Fatal("a save into a missing folder succeeded")
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if g, _ := load(t, path, sphinx.PublicKey{}); g.Count() != 5 {
		t.Fatalf("the retried save holds %d tags, want 5", g.Count())
	}
}

// Load removes what saves interrupted by a crash left behind, and nothing
// else.
func TestLoadRemovesInterruptedSaves(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "replay.bin")
	left := filepath.Join(dir, ".replay.bin.tmp123")
	other := filepath.Join(dir, "keys.pem")
	for _, p := range []string{left, other} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	load(t, path, sphinx.PublicKey{1})
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("the interrupted save is still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another file went: %v", err)
	}
}

// TestLoadSavedKeepsSize checks that LoadSaved returns a filter as it was
// saved, whatever its size, and nothing for another key or no file.
func TestLoadSavedKeepsSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.bin")
	key := sphinx.PublicKey{4}
	log, _ := logged()
	if f, err := LoadSaved(path, key, log); f != nil || err != nil {
		t.Fatalf("LoadSaved without a file = %v, %v", f, err)
	}
	f := sphinx.NewReplayFilter(3*testCapacity, 0.01)
	seen(f, 0, 100)
	if err := Save(path, key, f); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSaved(path, key, log)
	if err != nil || got == nil || !got.SizedFor(3*testCapacity, 0.01) || seen(got, 0, 100) != 100 {
		t.Fatalf("LoadSaved = %v, %v: not the saved filter", got, err)
	}
	if f, err := LoadSaved(path, sphinx.PublicKey{5}, log); f != nil || err != nil {
		t.Fatalf("LoadSaved for another key = %v, %v", f, err)
	}
}

// TestSaverDiscard checks that Discard deletes the file and that no save
// writes it again.
func TestSaverDiscard(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay.bin")
	key := sphinx.PublicKey{6}
	f := sphinx.NewReplayFilter(testCapacity, testRate)
	log, _ := logged()
	s := NewSaver(path, key, f, log)
	if err := s.Start(time.Second); err != nil {
		t.Fatal(err)
	}
	seen(f, 0, 10)
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	if err := s.Discard(); err != nil {
		t.Fatal(err)
	}
	seen(f, 10, 20)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the file of a discarded filter exists: %v", err)
	}
}
