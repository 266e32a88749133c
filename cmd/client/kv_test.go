package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peapod-mixnet/peapod/internal/cli"
)

func TestKVRequest(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"put", "k", "v"}, `{"op":"put","key":"k","value":"v"}`},
		{[]string{"get", "k"}, `{"op":"get","key":"k"}`},
		{[]string{"delete", "k"}, `{"op":"delete","key":"k"}`},
		{[]string{"list"}, `{"op":"list"}`},
		{[]string{"list", "p"}, `{"op":"list","prefix":"p"}`},
	} {
		req, err := kvRequest(tt.args, nil)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		b, _ := req.Marshal()
		if string(b) != tt.want {
			t.Errorf("%v: %s, want %s", tt.args, b, tt.want)
		}
	}
	for _, args := range [][]string{nil, {"put", "k"}, {"get"}, {"get", "a", "b"}, {"list", "a", "b"}, {"fly", "k"}} {
		if _, err := kvRequest(args, nil); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestPrintKVReply(t *testing.T) {
	for _, tt := range []struct {
		op, reply, stdout, stderr string
	}{
		{"put", `{"ok":true}`, "ok\n", ""},
		{"get", `{"value":"v"}`, "v\n", ""},
		{"list", `{"keys":["a","b"],"truncated":true}`, "a\nb\n", "(more keys match: list with a longer prefix)\n"},
	} {
		var stdout, stderr bytes.Buffer
		if err := printKVReply(&stdout, &stderr, tt.op, []byte(tt.reply)); err != nil {
			t.Fatal(err)
		}
		if stdout.String() != tt.stdout || stderr.String() != tt.stderr {
			t.Errorf("%s %s: %q %q", tt.op, tt.reply, stdout.String(), stderr.String())
		}
	}
	var out bytes.Buffer
	if err := printKVReply(&out, &out, "get", []byte(`{"ok":true}`)); err == nil {
		t.Error("a get reply without a value was accepted")
	}
}

// TestKVValueFromFile: put's value may be @FILE or - (stdin); a value that
// is not text, or a file that is missing, is refused before anything is
// sent.
func TestKVValueFromFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "v.txt")
	if err := os.WriteFile(file, []byte("line one\nline two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"put", "k", "@" + file}, "", `{"op":"put","key":"k","value":"line one\nline two\n"}`},
		{[]string{"put", "k", "-"}, "from stdin", `{"op":"put","key":"k","value":"from stdin"}`},
		{[]string{"put", "k", "@"}, "", `{"op":"put","key":"k","value":"@"}`},
	} {
		req, err := kvRequest(tt.args, strings.NewReader(tt.stdin))
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if b, _ := req.Marshal(); string(b) != tt.want {
			t.Errorf("%v: %s, want %s", tt.args, b, tt.want)
		}
	}
	for _, tt := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"put", "k", "-"}, "\xff\xfe", "not UTF-8 text"},
		{[]string{"put", "k", "@" + file + ".missing"}, "", "no such file"},
		{[]string{"fly", "k"}, "", `unknown operation "fly": put, get, delete or list`},
		{[]string{"get"}, "", "wrong arguments for get"},
	} {
		if _, err := kvRequest(tt.args, strings.NewReader(tt.stdin)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want %q", tt.args, err, tt.want)
		}
	}
}

// TestKVHelp: `client kv -h` and `client call -h` say what they do and
// list the operations, and a value over the service's limit fails before
// any network is touched.
func TestKVHelp(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"kv", "-h"}, []string{"put KEY VALUE", "put KEY @FILE", "put KEY -", "get KEY", "delete KEY", "list [PREFIX]", "client kv put -- KEY -5", "-provider URL"}},
		{[]string{"call", "--help"}, []string{"SERVICE [DATA | @FILE | -]", "standard input", "-provider URL"}},
	} {
		var out bytes.Buffer
		if code := run(tt.args, &out, &out); code != cli.ExitOK {
			t.Errorf("%v: exit %d", tt.args, code)
		}
		for _, w := range tt.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v does not say %q:\n%s", tt.args, w, out.String())
			}
		}
	}
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("v"), 64<<10+1), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	// The provider is unreachable: only the check before sending can answer.
	code := run([]string{"kv", "put", "k", "@" + big, "--provider", "http://127.0.0.1:1"}, &out, &out)
	if code != cli.ExitUsage || !strings.Contains(out.String(), "client kv: kv: value longer than 65536 bytes") {
		t.Errorf("a value over the limit: exit %d: %s", code, out.String())
	}
}
