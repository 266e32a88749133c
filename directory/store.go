package directory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/bbolt"
)

// The database: <DataDir>/directory.db with a meta bucket holding the format
// version and a nodes bucket mapping a base58 identity to a storedNode.
const (
	storeFile    = "directory.db"
	storeVersion = "1"
	// storeLockTimeout bounds the wait for another process holding the file.
	storeLockTimeout = time.Second
)

var (
	bucketMeta  = []byte("meta")
	bucketNodes = []byte("nodes")
	keyVersion  = []byte("version")
)

// record is what the server knows about one identity.
type record struct {
	// desc is the registered descriptor, nil once the node deregistered: the
	// record then only remembers timestamp, so the request cannot be replayed.
	desc *Descriptor
	// timestamp is the last timestamp accepted for this identity.
	timestamp int64
	// lastSeen is the server's time when that request was accepted.
	lastSeen time.Time
}

// storedNode is a record as JSON in the database.
type storedNode struct {
	Timestamp  int64           `json:"timestamp"`
	LastSeen   int64           `json:"last_seen"`
	Descriptor json.RawMessage `json:"descriptor,omitempty"`
}

// store persists records in bbolt. Its methods are safe for concurrent use.
type store struct {
	db *bbolt.DB
}

// openStore opens or creates the database in dir.
func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	path := filepath.Join(dir, storeFile)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: storeLockTimeout})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("directory: %s is in use by another server", path)
	}
	if err != nil {
		return nil, fmt.Errorf("directory: opening %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketNodes); err != nil {
			return err
		}
		switch v := meta.Get(keyVersion); {
		case v == nil:
			return meta.Put(keyVersion, []byte(storeVersion))
		case string(v) != storeVersion:
			return fmt.Errorf("format version %q is unknown to this build (it reads %q)", v, storeVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("directory: opening %s: %w", path, err)
	}
	return &store{db: db}, nil
}

// load returns every stored record. A record that does not decode is logged
// and skipped, so one damaged entry costs one node until it re-registers
// rather than the whole directory.
func (s *store) load(log zerolog.Logger) (map[string]record, error) {
	records := make(map[string]record)
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
			id := string(k)
			r, err := decodeRecord(id, v)
			if err != nil {
				log.Error().Err(err).Str("identity", id).Msg("skipping a damaged directory entry")
				return nil
			}
			records[id] = r
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("directory: loading entries: %w", err)
	}
	return records, nil
}

// decodeRecord decodes the stored record of identity id.
func decodeRecord(id string, v []byte) (record, error) {
	var sn storedNode
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sn); err != nil {
		return record{}, fmt.Errorf("directory: stored entry: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return record{}, errors.New("directory: stored entry: trailing data")
	}
	if _, err := parseIdentity(id); err != nil {
		return record{}, fmt.Errorf("directory: stored entry key: %w", err)
	}
	r := record{timestamp: sn.Timestamp, lastSeen: time.Unix(0, sn.LastSeen)}
	if sn.Descriptor != nil {
		d, err := ParseDescriptor(sn.Descriptor)
		if err != nil {
			return record{}, fmt.Errorf("directory: stored entry: %w", err)
		}
		if d.Identity != id {
			return record{}, errors.New("directory: stored entry: descriptor is filed under another identity")
		}
		r.desc = &d
	}
	return r, nil
}

// put stores the record of identity id, durably, before it returns.
func (s *store) put(id string, r record) error {
	sn := storedNode{Timestamp: r.timestamp, LastSeen: r.lastSeen.UnixNano()}
	if r.desc != nil {
		desc, err := json.Marshal(r.desc)
		if err != nil {
			return fmt.Errorf("directory: %w", err)
		}
		sn.Descriptor = desc
	}
	v, err := json.Marshal(sn)
	if err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketNodes).Put([]byte(id), v)
	})
	if err != nil {
		return fmt.Errorf("directory: storing %s: %w", id, err)
	}
	return nil
}

// delete removes the records of the given identities in one transaction.
func (s *store) delete(ids []string) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketNodes)
		for _, id := range ids {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("directory: deleting entries: %w", err)
	}
	return nil
}

// close closes the database.
func (s *store) close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("directory: closing the database: %w", err)
	}
	return nil
}
