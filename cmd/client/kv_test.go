package main

import (
	"bytes"
	"testing"
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
		req, err := kvRequest(tt.args)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		b, _ := req.Marshal()
		if string(b) != tt.want {
			t.Errorf("%v: %s, want %s", tt.args, b, tt.want)
		}
	}
	for _, args := range [][]string{nil, {"put", "k"}, {"get"}, {"get", "a", "b"}, {"list", "a", "b"}, {"fly", "k"}} {
		if _, err := kvRequest(args); err == nil {
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
