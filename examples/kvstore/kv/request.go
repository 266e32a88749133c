package kv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The operations of the kv service.
const (
	OpPut    = "put"
	OpGet    = "get"
	OpDelete = "delete"
	OpList   = "list"
)

// Request is one kv request, as its JSON is decoded. Fields that an
// operation does not use must be absent.
type Request struct {
	// Op is the operation: OpPut, OpGet, OpDelete or OpList.
	Op string `json:"op"`
	// Key is the key of put, get and delete: 1 to MaxKeyLen bytes.
	Key *string `json:"key,omitempty"`
	// Value is the value of put: 1 to MaxValueLen bytes.
	Value *string `json:"value,omitempty"`
	// Prefix is the optional prefix of list, at most MaxKeyLen bytes.
	Prefix *string `json:"prefix,omitempty"`
}

// ParseRequest decodes and checks one JSON request. It is strict: unknown
// fields, trailing data, a field the operation does not use, and a missing,
// empty or oversized key or value are all errors.
func ParseRequest(data []byte) (*Request, error) {
	if len(data) > MaxRequestLen {
		return nil, fmt.Errorf("kv: request longer than %d bytes", MaxRequestLen)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Request
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("kv: malformed JSON request: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("kv: malformed JSON request: data after the request object")
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Marshal encodes r as JSON.
func (r *Request) Marshal() ([]byte, error) {
	return json.Marshal(r)
}

// check applies the rules of r's operation.
func (r *Request) check() error {
	var needKey, needValue, allowPrefix bool
	switch r.Op {
	case OpPut:
		needKey, needValue = true, true
	case OpGet, OpDelete:
		needKey = true
	case OpList:
		allowPrefix = true
	case "":
		return errors.New("kv: missing op")
	default:
		return fmt.Errorf("kv: unknown op %.32q (want put, get, delete or list)", r.Op)
	}
	if err := checkField("key", r.Key, needKey, MaxKeyLen, r.Op); err != nil {
		return err
	}
	if err := checkField("value", r.Value, needValue, MaxValueLen, r.Op); err != nil {
		return err
	}
	if r.Prefix != nil {
		if !allowPrefix {
			return fmt.Errorf("kv: op %s takes no prefix", r.Op)
		}
		if len(*r.Prefix) > MaxKeyLen {
			return fmt.Errorf("kv: prefix longer than %d bytes", MaxKeyLen)
		}
	}
	return nil
}

func checkField(name string, v *string, need bool, maxLen int, op string) error {
	switch {
	case v == nil && need:
		return fmt.Errorf("kv: missing %s", name)
	case v == nil:
		return nil
	case !need:
		return fmt.Errorf("kv: op %s takes no %s", op, name)
	case *v == "":
		return fmt.Errorf("kv: empty %s", name)
	case len(*v) > maxLen:
		return fmt.Errorf("kv: %s longer than %d bytes", name, maxLen)
	}
	return nil
}
