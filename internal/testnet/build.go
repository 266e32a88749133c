package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Binaries are the programs a test network runs, built from this module.
type Binaries struct {
	// Dir is the folder holding them.
	Dir string
	// Mixnet, Client and Provider are the paths of cmd/mixnet, cmd/client
	// and cmd/provider. Provider is "" when the module has no cmd/provider.
	Mixnet, Client, Provider string
	// Plugins is the folder of the example plugins (examples/*/plugin),
	// one executable per example, named after it (echo, kvstore).
	Plugins string
	// Race reports whether they were built with the race detector.
	Race bool
}

// Plugin returns the path of the example plugin name, or "" when it was
// not built.
func (b *Binaries) Plugin(name string) string {
	p := filepath.Join(b.Plugins, name)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// BuildOptions say how to build the binaries.
type BuildOptions struct {
	// Race builds them with -race: slower and larger processes, which report
	// data races on their stderr (and exit with status 66 when they do).
	Race bool
	// Dir is the folder to build into; "" makes a temporary one, which
	// RemoveBuilds deletes.
	Dir string
}

var builds struct {
	sync.Mutex
	done map[bool]*Binaries
	temp []string // temporary folders Build made
}

// RemoveBuilds deletes the temporary folders Build made (about 100 MB
// each) and forgets its builds. Call it when no process of a network runs
// any more, for example at the end of TestMain.
func RemoveBuilds() {
	builds.Lock()
	defer builds.Unlock()
	for _, d := range builds.temp {
		os.RemoveAll(d)
	}
	builds.temp, builds.done = nil, nil
}

// Build builds cmd/... and the example plugins of the module that holds the
// working folder, once per process and BuildOptions.Race: later calls return
// the first result (go build itself caches across processes). It needs the
// go command on PATH (or GOROOT/bin).
func Build(ctx context.Context, opts BuildOptions) (*Binaries, error) {
	builds.Lock()
	defer builds.Unlock()
	if b := builds.done[opts.Race]; b != nil {
		return b, nil
	}
	b, err := build(ctx, opts)
	if err != nil {
		return nil, err
	}
	if builds.done == nil {
		builds.done = make(map[bool]*Binaries)
	}
	builds.done[opts.Race] = b
	return b, nil
}

func build(ctx context.Context, opts BuildOptions) (*Binaries, error) {
	goTool, err := goCommand()
	if err != nil {
		return nil, err
	}
	root, err := moduleRoot(ctx, goTool)
	if err != nil {
		return nil, err
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "peapod-testnet-bin-"); err != nil {
			return nil, fmt.Errorf("testnet: %w", err)
		}
		builds.temp = append(builds.temp, dir) // build runs with builds locked
	}
	b := &Binaries{Dir: dir, Plugins: filepath.Join(dir, "plugins"), Race: opts.Race}
	if err := os.MkdirAll(b.Plugins, 0o755); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	flags := []string{"build"}
	if opts.Race {
		flags = append(flags, "-race")
	}
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, goTool, append(flags, args...)...)
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("testnet: go %s: %w\n%s", strings.Join(append(flags, args...), " "), err, out.Bytes())
		}
		return nil
	}
	if err := run("-o", dir+string(filepath.Separator), "./cmd/..."); err != nil {
		return nil, err
	}
	b.Mixnet = filepath.Join(dir, "mixnet")
	b.Client = filepath.Join(dir, "client")
	if _, err := os.Stat(filepath.Join(dir, "provider")); err == nil {
		b.Provider = filepath.Join(dir, "provider")
	}
	plugins, _ := filepath.Glob(filepath.Join(root, "examples", "*", "plugin", "main.go"))
	for _, p := range plugins {
		pkg := filepath.Dir(p)
		name := filepath.Base(filepath.Dir(pkg))
		rel, err := filepath.Rel(root, pkg)
		if err != nil {
			return nil, fmt.Errorf("testnet: %w", err)
		}
		if err := run("-o", filepath.Join(b.Plugins, name), "./"+filepath.ToSlash(rel)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// goCommand finds the go command: on PATH, or in GOROOT/bin.
func goCommand() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("testnet: the go command is not on PATH")
}

// moduleRoot is the folder of the go.mod that governs the working folder.
func moduleRoot(ctx context.Context, goTool string) (string, error) {
	out, err := exec.CommandContext(ctx, goTool, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("testnet: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("testnet: the working folder is not inside a Go module")
	}
	return filepath.Dir(mod), nil
}
