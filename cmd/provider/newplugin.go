package main

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/peapod-mixnet/peapod/handlers"
	"github.com/peapod-mixnet/peapod/internal/cli"
)

// peapodModule is the module path of peapod, which a new plugin requires.
const peapodModule = "github.com/peapod-mixnet/peapod"

// templates are the files of a new plugin module, named as written with
// ".tmpl" appended.
//
//go:embed newplugin/*.tmpl
var templates embed.FS

// newPluginFlags are the flags of `provider new-plugin`.
type newPluginFlags struct {
	Dir    string `toml:"dir"`
	Module string `toml:"module"`
	Peapod string `toml:"peapod"`
}

// pluginTemplate is what the templates are filled with.
type pluginTemplate struct {
	Name      string // the plugin's and its service's name
	Module    string // the new module's path
	Peapod    string // the peapod checkout the module builds against
	GoVersion string // peapod's go directive
}

const newPluginUsage = `usage: provider new-plugin [--dir DIR] [--module PATH] [--peapod DIR] NAME

Writes a Go module for a handler plugin offering the service NAME, with a test
that builds the plugin and runs it under a plugins supervisor, into DIR (./NAME
by default, which must not exist or be empty). Its go.mod builds against the
peapod checkout DIR with a replace directive (peapod has no tagged release
yet); by default the checkout this binary sits in (bin/provider) or the one
around the current folder.`

// newPlugin runs `provider new-plugin` and returns the exit status.
func newPlugin(args []string, stdout, stderr io.Writer) int {
	cmd := cli.Command{Name: "provider new-plugin", Usage: newPluginUsage, Stdout: stdout, Stderr: stderr}
	var f newPluginFlags
	p, err := cli.Parse(cmd, args, &f, func(fs *flag.FlagSet, f *newPluginFlags) {
		fs.StringVar(&f.Dir, "dir", f.Dir, "the `folder` to write the module into (default ./NAME)")
		fs.StringVar(&f.Module, "module", f.Module, "the new module's `path` (default example.com/NAME)")
		fs.StringVar(&f.Peapod, "peapod", f.Peapod, "the peapod checkout `folder` to build against (default: found from the binary or the current folder)")
	})
	if err != nil {
		return cmd.Status(err)
	}
	if len(p.Args) != 1 {
		return cmd.Status(cmd.Errorf("name the plugin: provider new-plugin NAME (-h for the flags)"))
	}
	name := p.Args[0]
	if !handlers.ValidServiceName(name) {
		return cmd.Status(cmd.Errorf("invalid name %q: a service name is 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", name))
	}
	t := pluginTemplate{Name: name, Module: f.Module, Peapod: f.Peapod}
	if t.Module == "" {
		t.Module = "example.com/" + name
	}
	dir := f.Dir
	if dir == "" {
		dir = name
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		fmt.Fprintln(stderr, cmd.Errorf("%s exists and is not empty", dir))
		return cli.ExitError
	}
	if t.Peapod == "" {
		if t.Peapod, err = findPeapod(); err != nil {
			fmt.Fprintln(stderr, cmd.Errorf("%v", err))
			return cli.ExitError
		}
	}
	if t.Peapod, err = filepath.Abs(t.Peapod); err != nil {
		fmt.Fprintln(stderr, cmd.Errorf("%v", err))
		return cli.ExitError
	}
	if t.GoVersion, err = peapodGoVersion(t.Peapod); err != nil {
		fmt.Fprintln(stderr, cmd.Errorf("%v", err))
		return cli.ExitError
	}
	if err := writePlugin(dir, t); err != nil {
		fmt.Fprintln(stderr, cmd.Errorf("%v", err))
		return cli.ExitError
	}
	fmt.Fprintf(stdout, `wrote the plugin module %s in %s (service %q, built against %s)
next:
  cd %s
  go mod tidy
  go test ./...
  go build -o PLUGINS/%s .   # PLUGINS: the provider's plugins folder
`, t.Module, dir, name, t.Peapod, dir, name)
	return cli.ExitOK
}

// writePlugin writes the module's files into dir.
func writePlugin(dir string, t pluginTemplate) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files, err := templates.ReadDir("newplugin")
	if err != nil {
		return err
	}
	for _, e := range files {
		tmpl, err := template.ParseFS(templates, "newplugin/"+e.Name())
		if err != nil {
			return err
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, t); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, strings.TrimSuffix(e.Name(), ".tmpl")), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// findPeapod returns the peapod checkout that the running binary was built
// in (it sits in the checkout's bin folder) or that holds the current
// folder.
func findPeapod() (string, error) {
	var starts []string
	if exe, err := os.Executable(); err == nil {
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		starts = append(starts, filepath.Dir(exe))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for {
			if module, _, err := readGoMod(dir); err == nil && module == peapodModule {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("no peapod checkout around this binary or the current folder: name one with --peapod DIR (peapod has no tagged release to depend on yet)")
}

// peapodGoVersion returns the go directive of the peapod checkout dir,
// checking that dir is one.
func peapodGoVersion(dir string) (string, error) {
	module, goVersion, err := readGoMod(dir)
	switch {
	case err != nil:
		return "", fmt.Errorf("--peapod %s: %w", dir, err)
	case module != peapodModule:
		return "", fmt.Errorf("--peapod %s: its go.mod is module %q, not %s", dir, module, peapodModule)
	case goVersion == "":
		return "", fmt.Errorf("--peapod %s: its go.mod has no go directive", dir)
	}
	return goVersion, nil
}

// readGoMod returns the module path and the go directive of dir/go.mod.
func readGoMod(dir string) (module, goVersion string, err error) {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) == 2 && fields[0] == "module" {
			module = strings.Trim(fields[1], `"`)
		}
		if len(fields) == 2 && fields[0] == "go" {
			goVersion = fields[1]
		}
	}
	return module, goVersion, s.Err()
}
