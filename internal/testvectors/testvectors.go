// Package testvectors keeps a package's test vectors in a file under
// testdata, as indented JSON, for other implementations (the SDKs) to read:
// the Go test that makes them is the one source of truth. Run a test with
// -update to write the file again; without it the test fails when the
// file differs from what the code makes now.
package testvectors

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "write the test vector files again")

// Golden marshals v as indented JSON and compares it with the file at
// path, writing the file first when the test runs with -update. It fails t
// when they differ, and returns the file's content for the test to check
// entry by entry.
func Golden(t testing.TB, path string, v any) []byte {
	t.Helper()
	generated, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	generated = append(generated, '\n')
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, generated, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if !bytes.Equal(stored, generated) {
		t.Errorf("%s differs from what the code makes; run the test with -update if the change is intended", path)
	}
	return stored
}
