// Package testbuild builds the Go commands that process tests run: each
// set of binaries once per test binary, with go build, into a temporary
// folder that the test binary's TestMain removes.
//
//	var bins = testbuild.New("peapod-provider-test-",
//		testbuild.Target{Out: "bin/provider", Pkg: "."},
//		testbuild.Target{Out: "bin/client", Pkg: "../client"})
//
//	func TestMain(m *testing.M) { code := m.Run(); bins.Remove(); os.Exit(code) }
//
//	dir := bins.Dir(t) // builds on first use
package testbuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Target is one binary of a Set.
type Target struct {
	// Out is the binary's path in the Set's folder.
	Out string
	// Pkg is the package to build, as go build takes it: relative to the
	// folder of the test's own package, which is where tests run.
	Pkg string
	// LDFlags, when set, is go build's -ldflags (for example
	// "-X main.variant=v2").
	LDFlags string
}

// Set is binaries built together, once.
type Set struct {
	prefix  string
	targets []Target

	once sync.Once
	dir  string
	err  error
	skip string
}

// New returns a Set of targets whose folder's name begins with prefix.
// Nothing is built until Dir is called.
func New(prefix string, targets ...Target) *Set {
	return &Set{prefix: prefix, targets: targets}
}

// Dir builds the set on its first call and returns the folder holding the
// binaries. It fails tb when a build failed, and skips it when no go
// command can be found.
func (s *Set) Dir(tb testing.TB) string {
	tb.Helper()
	s.once.Do(s.build)
	switch {
	case s.skip != "":
		tb.Skip(s.skip)
	case s.err != nil:
		tb.Fatal(s.err)
	}
	return s.dir
}

// Path is Dir joined with out, the Out of one of the set's targets.
func (s *Set) Path(tb testing.TB, out string) string {
	tb.Helper()
	return filepath.Join(s.Dir(tb), out)
}

// Remove deletes the folder, if Dir made one. TestMain calls it after
// m.Run.
func (s *Set) Remove() {
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

func (s *Set) build() {
	goCmd, err := GoCommand()
	if err != nil {
		s.skip = err.Error()
		return
	}
	if s.dir, s.err = os.MkdirTemp("", s.prefix); s.err != nil {
		return
	}
	for _, t := range s.targets {
		args := []string{"build", "-buildvcs=false", "-o", filepath.Join(s.dir, t.Out)}
		if t.LDFlags != "" {
			args = append(args, "-ldflags", t.LDFlags)
		}
		if out, err := exec.Command(goCmd, append(args, t.Pkg)...).CombinedOutput(); err != nil {
			s.err = fmt.Errorf("testbuild: go build %s: %v\n%s", t.Pkg, err, out)
			return
		}
	}
}

// GoCommand returns the go command of the toolchain running the tests, or
// the first on PATH.
func GoCommand() (string, error) {
	if p, err := exec.LookPath(filepath.Join(runtime.GOROOT(), "bin", "go")); err == nil {
		return p, nil
	}
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("testbuild: no go command to build the binaries: %w", err)
	}
	return p, nil
}
