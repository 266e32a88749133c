package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Stamped by `make build` (-ldflags -X) for toolchains that do not embed
// version control information (GOFLAGS=-buildvcs=false, git worktrees).
var (
	stampedVersion string // `git describe --tags`, when there is a tag
	stampedCommit  string // the commit, with "+modified" for a dirty tree
)

// Version describes the build of the running binary in one line: the
// program, peapod's module version, the commit it was built from (with
// "+modified" when the work tree had changes) and the Go version, read
// from the build information the Go toolchain embeds:
//
//	provider v0.0.0-20260101120000-1e1a56d0f3a1 commit 1e1a56d0f3a1 go1.26.8 linux/amd64
//
// `make build` stamps the commit when the toolchain did not; a binary
// built otherwise without version control information (go build
// -buildvcs=false, or outside a git checkout) says "commit unknown".
func Version(program string) string {
	program, _, _ = strings.Cut(program, " ")
	version, commit, modified := "(devel)", "unknown", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
				if len(commit) > 12 {
					commit = commit[:12]
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified {
		commit += "+modified"
	}
	if stampedVersion != "" {
		version = stampedVersion
	}
	if stampedCommit != "" && commit == "unknown" {
		commit = stampedCommit
	}
	return fmt.Sprintf("%s %s commit %s %s %s/%s", program, version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
