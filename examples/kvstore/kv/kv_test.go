package kv

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/peapod-mixnet/peapod/handlers"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kv.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// do sends a JSON request and returns the reply decoded into a map.
func do(t *testing.T, s *Store, requester, body string) (map[string]any, error) {
	t.Helper()
	reply, err := s.Handle(context.Background(), &handlers.Request{Service: "kv", Requester: requester, Data: []byte(body)})
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(reply, &m); err != nil {
		t.Fatalf("reply %q is not a JSON object: %v", reply, err)
	}
	return m, nil
}

func mustDo(t *testing.T, s *Store, body string) map[string]any {
	t.Helper()
	m, err := do(t, s, "r", body)
	if err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return m
}

func TestPutGetDeleteList(t *testing.T) {
	s, _ := openTemp(t)
	if m := mustDo(t, s, `{"op":"put","key":"a/1","value":"one"}`); m["ok"] != true {
		t.Errorf("put reply %v", m)
	}
	mustDo(t, s, `{"op":"put","key":"a/2","value":"two"}`)
	mustDo(t, s, `{"op":"put","key":"b","value":"<&>\u0000é"}`)
	if m := mustDo(t, s, `{"op":"get","key":"a/1"}`); m["value"] != "one" {
		t.Errorf("get reply %v", m)
	}
	if m := mustDo(t, s, `{"op":"get","key":"b"}`); m["value"] != "<&>\x00é" {
		t.Errorf("get reply %v", m)
	}
	mustDo(t, s, `{"op":"put","key":"a/1","value":"uno"}`)
	if m := mustDo(t, s, `{"op":"get","key":"a/1"}`); m["value"] != "uno" {
		t.Errorf("overwritten value: %v", m)
	}
	if m := mustDo(t, s, `{"op":"list","prefix":"a/"}`); !reflect.DeepEqual(m["keys"], []any{"a/1", "a/2"}) || m["truncated"] != nil {
		t.Errorf("list a/: %v", m)
	}
	if m := mustDo(t, s, `{"op":"list"}`); !reflect.DeepEqual(m["keys"], []any{"a/1", "a/2", "b"}) {
		t.Errorf("list all: %v", m)
	}
	if m := mustDo(t, s, `{"op":"list","prefix":"zzz"}`); !reflect.DeepEqual(m["keys"], []any{}) {
		t.Errorf("list of nothing: %v, want an empty array", m)
	}
	if m := mustDo(t, s, `{"op":"delete","key":"a/1"}`); m["ok"] != true {
		t.Errorf("delete reply %v", m)
	}
	if m := mustDo(t, s, `{"op":"delete","key":"a/1"}`); m["ok"] != true {
		t.Errorf("delete of a missing key: %v, want ok", m)
	}
	_, err := do(t, s, "r", `{"op":"get","key":"a/1"}`)
	if handlers.CodeOf(err) != CodeNotFound {
		t.Errorf("get after delete: %v, want %s", err, CodeNotFound)
	}
}

func TestSharedAcrossRequesters(t *testing.T) {
	s, _ := openTemp(t)
	if _, err := do(t, s, "alice", `{"op":"put","key":"k","value":"v"}`); err != nil {
		t.Fatal(err)
	}
	m, err := do(t, s, "bob", `{"op":"get","key":"k"}`)
	if err != nil || m["value"] != "v" {
		t.Errorf("another requester's get = %v, %v; the store is shared", m, err)
	}
}

func TestPersists(t *testing.T) {
	s, path := openTemp(t)
	mustDo(t, s, `{"op":"put","key":"k","value":"kept"}`)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if m := mustDo(t, s2, `{"op":"get","key":"k"}`); m["value"] != "kept" {
		t.Errorf("after reopening: %v", m)
	}
}

func TestBadRequests(t *testing.T) {
	s, _ := openTemp(t)
	long := strings.Repeat("k", MaxKeyLen+1)
	big := strings.Repeat("v", MaxValueLen+1)
	tests := []struct {
		body, want string
	}{
		{`not json`, "malformed JSON"},
		{``, "malformed JSON"},
		{`{"op":"get","key":"k"} {}`, "data after"},
		{`{"op":"get","key":"k","extra":1}`, "unknown field"},
		{`{"op":"get","key":5}`, "malformed JSON"},
		{`{}`, "missing op"},
		{`{"op":"frobnicate","key":"k"}`, "unknown op"},
		{`{"op":"get"}`, "missing key"},
		{`{"op":"get","key":""}`, "empty key"},
		{`{"op":"get","key":"` + long + `"}`, "key longer than 256 bytes"},
		{`{"op":"put","key":"k"}`, "missing value"},
		{`{"op":"put","key":"k","value":""}`, "empty value"},
		{`{"op":"put","key":"k","value":"` + big + `"}`, "value longer than 65536 bytes"},
		{`{"op":"get","key":"k","value":"v"}`, "takes no value"},
		{`{"op":"list","key":"k"}`, "takes no key"},
		{`{"op":"delete","key":"k","prefix":"p"}`, "takes no prefix"},
		{`{"op":"list","prefix":"` + long + `"}`, "prefix longer"},
	}
	for _, tt := range tests {
		_, err := do(t, s, "r", tt.body)
		if handlers.CodeOf(err) != handlers.CodeBadRequest || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%.60s: err = %v, want bad_request containing %q", tt.body, err, tt.want)
		}
	}
	_, err := do(t, s, "r", strings.Repeat(" ", MaxRequestLen+1))
	if handlers.CodeOf(err) != handlers.CodeTooLarge {
		t.Errorf("oversized request: %v, want too_large", err)
	}
}

func TestListTruncated(t *testing.T) {
	s, _ := openTemp(t)
	for i := range MaxListKeys + 5 {
		mustDo(t, s, fmt.Sprintf(`{"op":"put","key":"k%05d","value":"v"}`, i))
	}
	m := mustDo(t, s, `{"op":"list","prefix":"k"}`)
	keys, _ := m["keys"].([]any)
	if len(keys) != MaxListKeys || m["truncated"] != true || keys[0] != "k00000" {
		t.Errorf("list: %d keys, truncated=%v, first %v", len(keys), m["truncated"], keys[0])
	}
}

func TestConcurrent(t *testing.T) {
	s, _ := openTemp(t)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				key := fmt.Sprintf("w%d-%d", w, i)
				if _, err := do(t, s, "r", `{"op":"put","key":"`+key+`","value":"x"}`); err != nil {
					t.Error(err)
					return
				}
				if _, err := do(t, s, "r", `{"op":"get","key":"`+key+`"}`); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if keys := mustDo(t, s, `{"op":"list"}`)["keys"].([]any); len(keys) != 80 {
		t.Errorf("%d keys, want 80", len(keys))
	}
}

func TestCancelledContext(t *testing.T) {
	s, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Handle(ctx, &handlers.Request{Data: []byte(`{"op":"list"}`)}); err == nil {
		t.Error("a cancelled request succeeded")
	}
}

// FuzzParseRequest: parsing never panics, and a request that parses
// survives Marshal and ParseRequest unchanged.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"put","key":"k","value":"v"}`, `{"op":"get","key":"k"}`, `{"op":"delete","key":"k"}`,
		`{"op":"list","prefix":"p"}`, `{"op":"list"}`, `{"op":"x"}`, `{"op":"get","key":"\u00e9\ud800"}`, `[]`, `{"op":"get","key":"k"} x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRequest(data)
		if err != nil {
			return
		}
		enc, err := r.Marshal()
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", r, err)
		}
		r2, err := ParseRequest(enc)
		if err != nil {
			t.Fatalf("ParseRequest(Marshal(%q)) = %v", data, err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip changed %+v to %+v", r, r2)
		}
	})
}
