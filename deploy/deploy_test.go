// Package deploy holds no Go code: its tests check the files under deploy/
// that operators install (docs/operate.md).
package deploy

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// installDir is where docs/operate.md installs the binaries, and where the
// units run them from.
const installDir = "/opt/peapod/bin/"

// unit is a systemd unit file: its sections and, in each, its settings in
// order ("Key=value" lines; a key may repeat).
type unit map[string][][2]string

// get returns the last value of key in section, and whether it is set.
func (u unit) get(section, key string) (string, bool) {
	value, ok := "", false
	for _, kv := range u[section] {
		if kv[0] == key {
			value, ok = kv[1], true
		}
	}
	return value, ok
}

// parseUnit reads a unit file as systemd does: sections, "Key=value" lines,
// comments; anything else is an error.
func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, section := unit{}, ""
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if _, dup := u[section]; dup {
				t.Errorf("%s:%d: section [%s] twice", path, n, section)
			}
			u[section] = nil
		case strings.Contains(line, "=") && section != "":
			k, v, _ := strings.Cut(line, "=")
			u[section] = append(u[section], [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
		default:
			t.Errorf("%s:%d: not a setting: %q", path, n, line)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// buildBinaries builds the binaries the units run into a new folder.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"mixnet", "provider"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), "../cmd/"+name).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", name, err, out)
		}
	}
	return dir
}

// TestSystemdUnits: every unit under deploy/systemd runs a peapod binary
// from installDir with a command line that binary accepts (the real
// binary is run with it, plus --version, which checks the subcommand and
// every flag without starting anything), keeps its data in its own state
// directory (mode 0700) as an unprivileged user, restarts on failure and
// stops with SIGTERM, the graceful shutdown. systemd-analyze verify (from
// Debian's systemd; required under `make test`) finds nothing to say about
// the units with ExecStart pointed at the built binaries.
func TestSystemdUnits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	paths, err := filepath.Glob("systemd/*.service")
	if err != nil || len(paths) != 4 {
		t.Fatalf("units %q (%v): want the directory, mixnode, gateway and provider", paths, err)
	}
	bin := buildBinaries(t)
	verifyDir := t.TempDir()
	for _, path := range paths {
		u := parseUnit(t, path)
		for _, s := range []string{"Unit", "Service", "Install"} {
			if _, ok := u[s]; !ok {
				t.Errorf("%s: no [%s] section", path, s)
			}
		}
		want := map[[2]string]string{
			{"Service", "Type"}:               "exec",
			{"Service", "User"}:               "peapod",
			{"Service", "StateDirectoryMode"}: "0700",
			{"Service", "Restart"}:            "on-failure",
			{"Service", "KillSignal"}:         "SIGTERM",
			{"Service", "NoNewPrivileges"}:    "yes",
			{"Service", "ProtectSystem"}:      "strict",
			{"Install", "WantedBy"}:           "multi-user.target",
		}
		for k, v := range want {
			if got, _ := u.get(k[0], k[1]); got != v {
				t.Errorf("%s: %s=%q, want %q", path, k[1], got, v)
			}
		}
		exec0, _ := u.get("Service", "ExecStart")
		args := strings.Fields(exec0)
		if len(args) == 0 || !strings.HasPrefix(args[0], installDir) {
			t.Errorf("%s: ExecStart=%q does not run a binary from %s", path, exec0, installDir)
			continue
		}
		// The data folder is the unit's state directory.
		state, _ := u.get("Service", "StateDirectory")
		if !strings.Contains(exec0, " --data /var/lib/"+state) || state == "" {
			t.Errorf("%s: ExecStart=%q does not keep its data in StateDirectory=%s", path, exec0, state)
		}
		name := strings.TrimPrefix(args[0], installDir)
		out, err := exec.Command(filepath.Join(bin, name), append(args[1:], "--version")...).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), name+" ") {
			t.Errorf("%s: %s refuses the command line: %v\n%s", path, exec0, err, out)
		}
		// A copy for systemd-analyze, which checks that ExecStart's
		// binary exists.
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte(installDir), []byte(bin+"/"))
		if err := os.WriteFile(filepath.Join(verifyDir, filepath.Base(path)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("PEAPOD_SDK_TESTS") != "" {
			t.Fatal("no systemd-analyze on PATH (Debian's systemd; `make test` installs it)")
		}
		t.Skip("no systemd-analyze on PATH (Debian's systemd; `make test` installs it)")
	}
	copies, _ := filepath.Glob(filepath.Join(verifyDir, "*.service"))
	cmd := exec.Command(analyze, append([]string{"verify"}, copies...)...)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
