package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// state is the client's durable state in state.db (bbolt):
//
//	tags    recipient address[96] → sender tag[16]
//	keys    reply key digest[32] → key[16] ‖ sender tag[16] ‖ created unix ns u64
//	surbs   sender tag[16] ‖ seq u64 → received unix ns u64 ‖ SURB
//	order   stream id[16] → next expected seq u64
//	meta    "surb-seq" → u64
//
// The database is opened without fsync on commit: every commit still reaches
// the kernel before the call returns, so a crashed or killed process loses
// nothing; only a machine that loses power may lose the last commits, which
// costs at worst a gap wait or a duplicate delivery, never a secret.
type state struct {
	db *bolt.DB
}

// ErrDataDirInUse means another process (another client on the same data
// folder, such as a running `client run`) holds the folder's state.
var ErrDataDirInUse = errors.New("client: the data folder is in use by another process")

var (
	bucketTags  = []byte("tags")
	bucketKeys  = []byte("keys")
	bucketSURBs = []byte("surbs")
	bucketOrder = []byte("order")
	bucketMeta  = []byte("meta")
	keySURBSeq  = []byte("surb-seq")
)

func openState(path string) (*state, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrDataDirInUse, filepath.Dir(path))
	}
	if err != nil {
		return nil, fmt.Errorf("client: opening %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketTags, bucketKeys, bucketSURBs, bucketOrder, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("client: %s: %w", path, err)
	}
	return &state{db: db}, nil
}

func (s *state) close() error { return s.db.Close() }

func (s *state) saveTag(to address.Address, tag address.SenderTag) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		k := to.Bytes()
		return tx.Bucket(bucketTags).Put(k[:], tag[:])
	})
}

func (s *state) loadTags() (map[address.Address]address.SenderTag, error) {
	out := map[address.Address]address.SenderTag{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTags).ForEach(func(k, v []byte) error {
			a, err := address.FromBytes(k)
			if err != nil || len(v) != address.SenderTagSize {
				return nil // a record we cannot read is skipped
			}
			out[a] = address.SenderTag(v)
			return nil
		})
	})
	return out, err
}

// replyKey is what a sender keeps to open one reply.
type replyKey struct {
	key     sphinx.ReplyKey
	tag     address.SenderTag
	created time.Time
}

func (s *state) saveReplyKeys(keys map[[sphinx.ReplyDigestSize]byte]*replyKey) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		for d, k := range keys {
			v := make([]byte, 0, 40)
			v = append(append(v, k.key[:]...), k.tag[:]...)
			v = binary.BigEndian.AppendUint64(v, uint64(k.created.UnixNano()))
			if err := b.Put(d[:], v); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *state) deleteReplyKeys(digests [][sphinx.ReplyDigestSize]byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKeys)
		for _, d := range digests {
			if err := b.Delete(d[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *state) loadReplyKeys() (map[[sphinx.ReplyDigestSize]byte]*replyKey, error) {
	out := map[[sphinx.ReplyDigestSize]byte]*replyKey{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(k, v []byte) error {
			if len(k) != sphinx.ReplyDigestSize || len(v) != 40 {
				return nil
			}
			rk := &replyKey{created: time.Unix(0, int64(binary.BigEndian.Uint64(v[32:])))}
			copy(rk.key[:], v)
			copy(rk.tag[:], v[16:])
			out[[sphinx.ReplyDigestSize]byte(k)] = rk
			return nil
		})
	})
	return out, err
}

// storedSURB is a SURB a replier holds.
type storedSURB struct {
	dbKey    [address.SenderTagSize + 8]byte
	surb     *sphinx.SURB
	received time.Time
}

func (s *state) addSURBs(tag address.SenderTag, surbs []*sphinx.SURB, now time.Time) ([]storedSURB, error) {
	out := make([]storedSURB, 0, len(surbs))
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		var seq uint64
		if v := meta.Get(keySURBSeq); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		b := tx.Bucket(bucketSURBs)
		for _, sb := range surbs {
			seq++
			var st storedSURB
			copy(st.dbKey[:], tag[:])
			binary.BigEndian.PutUint64(st.dbKey[address.SenderTagSize:], seq)
			st.surb, st.received = sb, now
			v := binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))
			v, err := sb.AppendBinary(v)
			if err != nil {
				return err
			}
			if err := b.Put(st.dbKey[:], v); err != nil {
				return err
			}
			out = append(out, st)
		}
		return meta.Put(keySURBSeq, binary.BigEndian.AppendUint64(nil, seq))
	})
	if err != nil {
		return nil, fmt.Errorf("client: storing SURBs: %w", err)
	}
	return out, nil
}

func (s *state) deleteSURBs(keys [][address.SenderTagSize + 8]byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSURBs)
		for _, k := range keys {
			if err := b.Delete(k[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// loadSURBs returns the stored SURBs by sender tag, oldest first, deleting
// those received before notBefore (their keys have expired at the sender).
func (s *state) loadSURBs(notBefore time.Time) (map[address.SenderTag][]storedSURB, error) {
	out := map[address.SenderTag][]storedSURB{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSURBs)
		var stale [][]byte
		err := b.ForEach(func(k, v []byte) error {
			if len(k) != address.SenderTagSize+8 || len(v) < 8 {
				stale = append(stale, append([]byte(nil), k...))
				return nil
			}
			received := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
			surb, rest, err := sphinx.ParseSURB(v[8:], SURBHops)
			if err != nil || len(rest) != 0 || received.Before(notBefore) {
				stale = append(stale, append([]byte(nil), k...))
				return nil
			}
			var st storedSURB
			copy(st.dbKey[:], k)
			st.surb, st.received = surb, received
			tag := address.SenderTag(k[:address.SenderTagSize])
			out[tag] = append(out[tag], st)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// saveOrder writes the changes between two snapshots of the ordering
// positions: only streams whose position moved, appeared or disappeared.
func (s *state) saveOrder(prev, next map[[streamIDSize]byte]uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOrder)
		for id, n := range next {
			if old, ok := prev[id]; ok && old == n {
				continue
			}
			if err := b.Put(id[:], binary.BigEndian.AppendUint64(nil, n)); err != nil {
				return err
			}
		}
		for id := range prev {
			if _, ok := next[id]; !ok {
				if err := b.Delete(id[:]); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (s *state) loadOrder() (map[[streamIDSize]byte]uint64, error) {
	out := map[[streamIDSize]byte]uint64{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOrder).ForEach(func(k, v []byte) error {
			if len(k) == streamIDSize && len(v) == 8 {
				out[[streamIDSize]byte(k)] = binary.BigEndian.Uint64(v)
			}
			return nil
		})
	})
	return out, err
}
