// Package clitest checks the example configuration files under
// examples/config against the structs the commands read them into, so that
// an example cannot fall behind its command: a test of each command calls
// CheckExample on its example.
package clitest

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/peapod-mixnet/peapod/internal/cli"
)

// CheckExample reads the TOML file at path into cfg, a pointer to a zero
// config struct, as the commands do (cli.Load: unknown keys and bare-number
// durations are errors), and fails t for every key of cfg's type that the
// file leaves out, and for every key whose command default (in defaults, a
// value of the same type; zero fields are the library's defaults, which
// the command does not know) differs from the file's value.
func CheckExample(t testing.TB, path string, cfg, defaults any) {
	t.Helper()
	if err := cli.Load("example", path, cfg); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	md, err := toml.DecodeFile(path, &doc)
	if err != nil {
		t.Fatal(err)
	}
	var inFile []string
	for _, k := range md.Keys() {
		inFile = append(inFile, k.String())
	}
	got := reflect.ValueOf(cfg).Elem()
	for _, leaf := range leaves(got.Type(), "", nil) {
		if !slices.Contains(inFile, leaf.key) {
			t.Errorf("%s has no key %s", path, leaf.key)
			continue
		}
		def := reflect.ValueOf(defaults).FieldByIndex(leaf.index)
		if !def.IsZero() && !reflect.DeepEqual(def.Interface(), got.FieldByIndex(leaf.index).Interface()) {
			t.Errorf("%s: %s = %v, but the command's default is %v", path, leaf.key, got.FieldByIndex(leaf.index), def)
		}
	}
}

// leaf is one key of a config struct that holds a value, not a table.
type leaf struct {
	key   string // dotted, as toml.Key.String writes it
	index []int  // for reflect.Value.FieldByIndex
}

var durationType = reflect.TypeOf(time.Duration(0))

// leaves lists the keys of struct type t (tables are nested structs).
func leaves(t reflect.Type, prefix string, index []int) []leaf {
	var out []leaf
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		key := prefix + name
		idx := append(slices.Clone(index), i)
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			out = append(out, leaves(f.Type, key+".", idx)...)
			continue
		}
		out = append(out, leaf{key, idx})
	}
	return out
}
