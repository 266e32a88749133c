package measure

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/anonymity"
)

func TestUpdateDoc(t *testing.T) {
	path := filepath.Join(t.TempDir(), "anonymity.md")
	if err := os.WriteFile(path, []byte("# Title\n\nprose\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateDoc(path, "", "first\n"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(mustRead(t, path), "more prose\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateDoc(path, "", "second\n"); err != nil {
		t.Fatal(err)
	}
	if err := UpdateDoc(path, "light", "other\n"); err != nil {
		t.Fatal(err)
	}
	got := string(mustRead(t, path))
	want := "# Title\n\nprose\n\n<!-- anonymity:begin -->\nsecond\n<!-- anonymity:end -->\nmore prose\n" +
		"\n<!-- anonymity:light:begin -->\nother\n<!-- anonymity:light:end -->\n"
	if got != want {
		t.Errorf("document:\n%s\nwant:\n%s", got, want)
	}
	if err := os.WriteFile(path, []byte("<!-- anonymity:begin -->\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateDoc(path, "", "x"); err == nil {
		t.Error("a document with one marker accepted")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The verdict states the target in numbers, met or missed.
func TestVerdict(t *testing.T) {
	cell := func(mean, success float64) *Result {
		return &Result{Cells: []CellResult{{
			Cell:     DefaultCell,
			Tracking: success,
			Entropy:  anonymity.EntropyResult{Max: 4.39, Mean: mean},
			Timing:   anonymity.TimingResult{Random: 1.0 / 21, Success: 0.02},
		}}}
	}
	if v := verdict(cell(4.0, 0.05)); !strings.Contains(v, "0.39 below): target met") || !strings.Contains(v, "1.05× a random guess (4.8%): target met") {
		t.Errorf("met: %s", v)
	}
	if v := verdict(cell(2.89, 0.2)); !strings.Contains(v, "target missed by 0.50 bits") || !strings.Contains(v, "the target of 2× missed by a factor of 2.10") {
		t.Errorf("missed: %s", v)
	}
	if v := verdict(&Result{Cells: []CellResult{{Cell: Cell{Delay: time.Millisecond}}}}); !strings.Contains(v, "not measured") {
		t.Errorf("absent: %s", v)
	}
}

func TestSaveLoadTrace(t *testing.T) {
	want := SavedTrace{
		Cell: DefaultCell,
		Trace: &anonymity.Trace{
			Nodes:  []anonymity.Node{{Name: "c", Role: anonymity.RoleClient}, {Name: "m", Role: anonymity.RoleMixnode, Layer: 2}},
			Events: []anonymity.Event{{At: 5, From: 0, To: 1, Class: anonymity.ClassOther}},
		},
		Targets: []anonymity.Target{{Event: 0, Sender: 0}},
		Clear:   []bool{true},
		Windows: []anonymity.Window{{From: 1, To: 2, Busy: true}},
	}
	path := filepath.Join(t.TempDir(), "cell.trace.gob")
	if err := saveTrace(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := LoadTrace(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("loaded %+v, want %+v", *got, want)
	}
	if err := os.WriteFile(path, []byte("not gzip"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTrace(path); err == nil {
		t.Error("a damaged file loaded")
	}
}
