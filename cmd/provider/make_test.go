package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeGo stands in for the go command in TestMakeRun: it says what it was
// asked to build and makes the files, a provider that says it ran.
const fakeGo = `#!/bin/sh
echo "GO $*"
while [ $# -gt 0 ]; do
	if [ "$1" = -o ]; then out=$2; fi
	shift
done
case "$out" in
*/) for b in mixnet provider client; do printf '#!/bin/sh\necho "provider ran"\n' >"$out$b"; chmod +x "$out$b"; done ;;
*) : >"$out" ;;
esac
`

// TestMakeRun: `make run` says what it builds before each build step (a
// cold build is slow and would otherwise look stuck) and what it starts,
// then runs the provider it built. The go command is a stand-in, so that
// the test takes a second; the Makefile is the real one.
func TestMakeRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make")
	}
	makePath, err := exec.LookPath("make")
	if err != nil {
		t.Skip("no make")
	}
	dir := t.TempDir()
	goPath := filepath.Join(dir, "go")
	if err := os.WriteFile(goPath, []byte(fakeGo), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	out, err := exec.Command(makePath, "-C", "../..", "--no-print-directory", "run", "GO="+goPath, "BIN="+bin).CombinedOutput()
	if err != nil {
		t.Fatalf("make run: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{
		"building " + bin + "/mixnet, " + bin + "/provider, " + bin + "/client (the first build takes a minute or two; later ones seconds)",
		"GO build -ldflags",
	}
	examples, err := filepath.Glob("../../examples/*/plugin/main.go")
	if err != nil || len(examples) < 2 {
		t.Fatalf("example plugins: %v, %v", examples, err)
	}
	for _, e := range examples {
		name := filepath.Base(filepath.Dir(filepath.Dir(e)))
		want = append(want, "building "+bin+"/plugins/"+name, "GO build -o "+bin+"/plugins/"+name+" ./examples/"+name+"/plugin")
	}
	want = append(want, "starting "+bin+"/provider", "provider ran")
	if len(lines) != len(want) {
		t.Fatalf("make run printed %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d is %q, want it to start with %q", i+1, lines[i], w)
		}
	}
}
