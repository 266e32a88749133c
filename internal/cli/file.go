package cli

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Load decodes the TOML file at path into v, a pointer to a struct whose
// fields carry `toml` tags. It refuses keys v does not have, naming them
// all, and a number where v holds a time.Duration: BurntSushi/toml would
// read `request_timeout = 5` as 5 nanoseconds, so the message shows the
// form to write instead (`request_timeout = "5s"`), as does a string that
// is not a duration (`"5"`, `"ten seconds"`). Errors start with name and
// the path.
func Load(name, path string, v any) error {
	// First as a plain document, to find numbers where durations belong
	// before the decoder turns them into nanoseconds (or refuses a float
	// with a message about types).
	var raw map[string]any
	md, err := toml.DecodeFile(path, &raw)
	if err != nil {
		return fmt.Errorf("%s: config %s: %w", name, path, err)
	}
	for _, key := range md.Keys() {
		if fieldType(reflect.TypeOf(v), key) != durationType {
			continue
		}
		value, last := lookup(raw, key), key[len(key)-1]
		switch t := md.Type(key...); {
		case t == "Integer" || t == "Float":
			return fmt.Errorf("%s: config %s: %s = %v: a duration needs a unit and quotes, such as %s = \"%vs\" or \"%vms\" "+
				"(a bare number would be read as nanoseconds)", name, path, key, value, last, value, value)
		case t == "String":
			if _, err := time.ParseDuration(value.(string)); err != nil {
				return fmt.Errorf("%s: config %s: %s = %q is not a duration: write a number and a unit (ns, us, ms, s, m, h), such as %s = \"90s\" or \"1m30s\"",
					name, path, key, value, last)
			}
		}
	}
	if md, err = toml.DecodeFile(path, v); err != nil {
		return fmt.Errorf("%s: config %s: %w", name, path, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = k.String()
		}
		return fmt.Errorf("%s: config %s: unknown keys: %s", name, path, strings.Join(keys, ", "))
	}
	return nil
}

// lookup returns the value at key in a decoded TOML document.
func lookup(doc map[string]any, key toml.Key) any {
	var v any = doc
	for _, part := range key {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	return v
}

var durationType = reflect.TypeOf(time.Duration(0))

// fieldType returns the type of the field that key names in t (following
// pointers and `toml` tags), or nil.
func fieldType(t reflect.Type, key toml.Key) reflect.Type {
	for _, part := range key {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil
		}
		f, ok := fieldByKey(t, part)
		if !ok {
			return nil
		}
		t = f.Type
	}
	return t
}

// fieldByKey finds the field of struct type t that the TOML key part
// decodes into: the one tagged with it, or else the untagged one of that
// name (BurntSushi/toml's rule, case-insensitive).
func fieldByKey(t reflect.Type, part string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("toml"), ","); tag == part {
			return f, true
		}
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Tag.Get("toml") == "" && strings.EqualFold(f.Name, part) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
