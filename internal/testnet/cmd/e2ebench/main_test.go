package main

import (
	"os"
	"slices"
	"testing"
)

func TestTicks125(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   []float64
	}{
		{9.9, 310, []float64{5, 10, 20, 50, 100, 200, 500}},
		{10, 200, []float64{10, 20, 50, 100, 200}},
		{0.5, 3, []float64{0.5, 1, 2, 5}},
		{12, 18, []float64{10, 20}},
	} {
		if got := ticks125(c.lo, c.hi); !slices.Equal(got, c.want) {
			t.Errorf("ticks125(%v, %v) = %v, want %v", c.lo, c.hi, got, c.want)
		}
	}
}

func TestUpdateDoc(t *testing.T) {
	path := t.TempDir() + "/benchmarks.md"
	// A missing file is created with the section.
	if err := updateDoc(path, "first\n"); err != nil {
		t.Fatal(err)
	}
	// Others' text around the markers is kept; the section is replaced.
	b, _ := os.ReadFile(path)
	doc := "# top\n\nmine\n" + string(b)[len("# peapod benchmarks\n\n"):] + "after\n"
	os.WriteFile(path, []byte(doc), 0o644)
	if err := updateDoc(path, "second\n"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	want := "# top\n\nmine\n" + beginMarker + "\nsecond\n" + endMarker + "\nafter\n"
	if string(b) != want {
		t.Fatalf("got %q, want %q", b, want)
	}
	// A file without markers gets the section at its end.
	os.WriteFile(path, []byte("# others\ntext"), 0o644)
	if err := updateDoc(path, "third\n"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	if want := "# others\ntext\n\n" + beginMarker + "\nthird\n" + endMarker + "\n"; string(b) != want {
		t.Fatalf("got %q, want %q", b, want)
	}
	// One marker alone is refused.
	os.WriteFile(path, []byte("x "+beginMarker+" y"), 0o644)
	if err := updateDoc(path, "fourth\n"); err == nil {
		t.Fatal("a file with one marker was rewritten")
	}
}
