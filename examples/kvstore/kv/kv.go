// Package kv is the store behind the kvstore example: a key-value store
// served as the peapod service "kv", kept in a bbolt database so that its
// data survive restarts of the plugin.
//
// Requests and replies are JSON objects:
//
//	{"op":"put","key":"k","value":"v"}   → {"ok":true}
//	{"op":"get","key":"k"}               → {"value":"v"}, or error not_found
//	{"op":"delete","key":"k"}            → {"ok":true} (also if k was absent)
//	{"op":"list","prefix":"p"}           → {"keys":["p1","p2"]} (sorted; prefix optional)
//
// A list reply holds at most MaxListKeys keys and MaxListBytes bytes of keys;
// when there are more, it says "truncated":true. Invalid requests fail with
// handlers.CodeBadRequest, requests longer than MaxRequestLen with
// handlers.CodeTooLarge, and a get of a missing key with CodeNotFound.
//
// The store is shared by all requesters: a key one requester puts, any
// other can read, overwrite or delete. Store.Handle does not look at
// handlers.Request.Requester.
package kv

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/peapod-mixnet/peapod/handlers"
)

// Limits of the kv service.
const (
	// MaxKeyLen is the longest key (and list prefix), in bytes.
	MaxKeyLen = 256
	// MaxValueLen is the longest value, in bytes.
	MaxValueLen = 64 << 10
	// MaxRequestLen is the longest request, in bytes: room for a value of
	// MaxValueLen whose every byte JSON escapes as \u00XX.
	MaxRequestLen = 6*MaxValueLen + 4096
	// MaxListKeys is the most keys one list reply holds.
	MaxListKeys = 1000
	// MaxListBytes is the most bytes of keys one list reply holds.
	MaxListBytes = 64 << 10
)

// CodeNotFound is the error code of a get whose key is not in the store.
const CodeNotFound = "not_found"

// openTimeout bounds the wait for the database's file lock, which a
// previous instance of the plugin may still hold for a moment.
const openTimeout = 5 * time.Second

var bucketName = []byte("kv")

// Store is the kv service. It implements handlers.Handler and is safe for
// concurrent use.
type Store struct {
	db *bbolt.DB
}

var _ handlers.Handler = (*Store)(nil)

// Open opens or creates the store's database file at path.
func Open(path string) (*Store, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, fmt.Errorf("kv: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketName)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("kv: open %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error {
	return s.db.Close()
}

type okReply struct {
	OK bool `json:"ok"`
}

type valueReply struct {
	Value string `json:"value"`
}

type listReply struct {
	Keys      []string `json:"keys"`
	Truncated bool     `json:"truncated,omitempty"`
}

// Handle serves one JSON request; see the package documentation.
func (s *Store) Handle(ctx context.Context, req *handlers.Request) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(req.Data) > MaxRequestLen {
		return nil, handlers.Errorf(handlers.CodeTooLarge, "request longer than %d bytes", MaxRequestLen)
	}
	r, err := ParseRequest(req.Data)
	if err != nil {
		return nil, &handlers.Error{Code: handlers.CodeBadRequest, Message: err.Error()}
	}
	var reply any
	switch r.Op {
	case OpPut:
		err = s.db.Update(func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketName).Put([]byte(*r.Key), []byte(*r.Value))
		})
		reply = okReply{OK: true}
	case OpGet:
		var v []byte
		err = s.db.View(func(tx *bbolt.Tx) error {
			if got := tx.Bucket(bucketName).Get([]byte(*r.Key)); got != nil {
				v = append([]byte{}, got...) // bbolt's slice is valid only in the transaction
			}
			return nil
		})
		if err == nil && v == nil {
			return nil, &handlers.Error{Code: CodeNotFound, Message: "no such key"}
		}
		reply = valueReply{Value: string(v)}
	case OpDelete:
		err = s.db.Update(func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketName).Delete([]byte(*r.Key))
		})
		reply = okReply{OK: true}
	case OpList:
		var prefix string
		if r.Prefix != nil {
			prefix = *r.Prefix
		}
		var lr listReply
		lr, err = s.list(prefix)
		reply = lr
	}
	if err != nil {
		return nil, fmt.Errorf("kv: %s: %w", r.Op, err)
	}
	return json.Marshal(reply)
}

// list returns the keys starting with prefix, in byte order, within the
// reply limits.
func (s *Store) list(prefix string) (listReply, error) {
	lr := listReply{Keys: []string{}}
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketName).Cursor()
		size := 0
		for k, _ := c.Seek([]byte(prefix)); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
			if len(lr.Keys) == MaxListKeys || size+len(k) > MaxListBytes {
				lr.Truncated = true
				return nil
			}
			lr.Keys = append(lr.Keys, string(k))
			size += len(k)
		}
		return nil
	})
	if err != nil {
		return listReply{}, err
	}
	return lr, nil
}

func hasPrefix(k []byte, prefix string) bool {
	return len(k) >= len(prefix) && string(k[:len(prefix)]) == prefix
}
