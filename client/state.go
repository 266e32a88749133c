package client

import (
	"bytes"
	"cmp"
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client/internal/fragment"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// state is the client's durable state in state.db (bbolt):
//
//	tags    recipient address[96] → sender tag[16]
//	keys    reply key digest[32] → key[16] ‖ sender tag[16] ‖ created unix ns u64
//	surbs   sender tag[16] ‖ seq u64 → received unix ns u64 ‖ key rotation u32 ‖ SURB
//	order   stream id[16] → next expected seq u64
//	inbox   key u64 → stream id[16] ‖ seq u64 ‖ has tag u8 ‖ sender tag[16] ‖ data
//	        (a received message not yet taken by the app, or taken with
//	        ReceiveKept and not yet forgotten)
//	released key u64 → release seq u64: the inbox message has passed the
//	        ordering buffer and waits only for the app, in release order;
//	        without it, it waits for an earlier message of its stream
//	partial set id u32 ‖ index u8 → fragment (its wire bytes, decrypted):
//	        a fragment of a message not complete yet, so that what the
//	        client confirmed to its gateway survives a restart
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
	bucketTags     = []byte("tags")
	bucketKeys     = []byte("keys")
	bucketSURBs    = []byte("surbs")
	bucketOrder    = []byte("order")
	bucketInbox    = []byte("inbox")
	bucketReleased = []byte("released")
	bucketMeta     = []byte("meta")
	bucketPartial  = []byte("partial")
	keySURBSeq     = []byte("surb-seq")
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
		for _, b := range [][]byte{bucketTags, bucketKeys, bucketSURBs, bucketOrder, bucketInbox, bucketReleased, bucketMeta, bucketPartial} {
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
	elem    *list.Element // in replyKeyring's list of the tag
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
	rotation uint32 // of the keys it was made with
	received time.Time
}

func (s *state) addSURBs(tag address.SenderTag, batch surbBatch, now time.Time) ([]storedSURB, error) {
	out := make([]storedSURB, 0, len(batch.surbs))
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		var seq uint64
		if v := meta.Get(keySURBSeq); len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		b := tx.Bucket(bucketSURBs)
		for _, sb := range batch.surbs {
			seq++
			var st storedSURB
			copy(st.dbKey[:], tag[:])
			binary.BigEndian.PutUint64(st.dbKey[address.SenderTagSize:], seq)
			st.surb, st.rotation, st.received = sb, batch.rotation, now
			v := binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))
			v = binary.BigEndian.AppendUint32(v, batch.rotation)
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
			// A SURB stored without its rotation (before keys rotated) is
			// of no use: the nodes wiped the keys it was made with.
			if len(k) != address.SenderTagSize+8 || len(v) < 12 {
				stale = append(stale, append([]byte(nil), k...))
				return nil
			}
			received := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
			surb, rest, err := sphinx.ParseSURB(v[12:], SURBHops)
			if err != nil || len(rest) != 0 || received.Before(notBefore) {
				stale = append(stale, append([]byte(nil), k...))
				return nil
			}
			var st storedSURB
			copy(st.dbKey[:], k)
			st.surb, st.rotation, st.received = surb, binary.BigEndian.Uint32(v[8:]), received
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

// inboxItem is a received message on its way to the app: held by the
// ordering buffer, then released to the inbox, then taken by Receive. It is
// kept in state.db from the moment it is complete until Receive returns it
// (or Forget is called with it), so a restart loses no message the gateway
// was told the client has.
type inboxItem struct {
	key      uint64
	pos      streamPos
	msg      Message
	released uint64 // release order, from 1; 0 while held
}

func inboxKey(k uint64) []byte { return binary.BigEndian.AppendUint64(nil, k) }

// saveInbox records a new item (when add is not nil) and marks items
// released, in one transaction.
func (s *state) saveInbox(add *inboxItem, released []*inboxItem) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if add != nil {
			v := make([]byte, 0, streamIDSize+seqSize+1+address.SenderTagSize+len(add.msg.Data))
			v = appendStream(v, add.pos)
			if add.msg.SenderTag != nil {
				v = append(append(v, 1), add.msg.SenderTag[:]...)
			} else {
				v = append(v, 0)
				v = append(v, make([]byte, address.SenderTagSize)...)
			}
			v = append(v, add.msg.Data...)
			if err := tx.Bucket(bucketInbox).Put(inboxKey(add.key), v); err != nil {
				return err
			}
		}
		rb := tx.Bucket(bucketReleased)
		for _, it := range released {
			if err := rb.Put(inboxKey(it.key), binary.BigEndian.AppendUint64(nil, it.released)); err != nil {
				return err
			}
		}
		return nil
	})
}

// deleteInbox forgets an item the app has taken.
func (s *state) deleteInbox(key uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketInbox).Delete(inboxKey(key)); err != nil {
			return err
		}
		return tx.Bucket(bucketReleased).Delete(inboxKey(key))
	})
}

// savePartials records the fragments add (of messages not complete yet),
// then deletes every fragment recorded of the sets done, in one
// transaction.
func (s *state) savePartials(add []fragment.Fragment, done []int32) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPartial)
		for _, f := range add {
			k := binary.BigEndian.AppendUint32(nil, uint32(f.SetID))
			if err := b.Put(append(k, f.Index), f.AppendBinary(nil)); err != nil {
				return err
			}
		}
		for _, id := range done {
			if err := deletePartialSet(b, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// deletePartialSet deletes the fragments recorded of set id.
func deletePartialSet(b *bolt.Bucket, id int32) error {
	prefix := binary.BigEndian.AppendUint32(nil, uint32(id))
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// prunePartials deletes the fragments recorded of the sets keep does not
// want (their message completed, or was dropped), and returns how many
// sets it deleted.
func (s *state) prunePartials(keep func(setID int32) bool) (int, error) {
	var drop []int32
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPartial).ForEach(func(k, _ []byte) error {
			if len(k) != 5 {
				return nil
			}
			id := int32(binary.BigEndian.Uint32(k))
			if (len(drop) == 0 || drop[len(drop)-1] != id) && !keep(id) {
				drop = append(drop, id)
			}
			return nil
		})
	})
	if err != nil || len(drop) == 0 {
		return 0, err
	}
	return len(drop), s.savePartials(nil, drop)
}

// loadPartials returns the fragments recorded, in set and index order;
// a record that does not parse is skipped.
func (s *state) loadPartials() ([]fragment.Fragment, error) {
	var out []fragment.Fragment
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPartial).ForEach(func(k, v []byte) error {
			if f, err := fragment.Parse(bytes.Clone(v)); err == nil && len(k) == 5 {
				out = append(out, f)
			}
			return nil
		})
	})
	return out, err
}

// loadInbox returns the kept items: the released ones in the order they
// were released, then the held ones in the order they arrived.
func (s *state) loadInbox() ([]*inboxItem, error) {
	var out []*inboxItem
	err := s.db.View(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketReleased)
		return tx.Bucket(bucketInbox).ForEach(func(k, v []byte) error {
			const head = streamIDSize + seqSize + 1 + address.SenderTagSize
			if len(k) != 8 || len(v) < head {
				return nil // a record we cannot read is skipped
			}
			it := &inboxItem{key: binary.BigEndian.Uint64(k)}
			if r := rb.Get(k); len(r) == 8 {
				it.released = binary.BigEndian.Uint64(r)
			}
			it.pos, _, _ = parseStream(v)
			if v[streamIDSize+seqSize] == 1 {
				tag := address.SenderTag(v[streamIDSize+seqSize+1 : head])
				it.msg.SenderTag = &tag
			}
			it.msg.Data = append([]byte{}, v[head:]...)
			out = append(out, it)
			return nil
		})
	})
	slices.SortStableFunc(out, func(a, b *inboxItem) int {
		switch {
		case a.released == 0 && b.released == 0:
			return 0
		case a.released == 0:
			return 1
		case b.released == 0:
			return -1
		}
		return cmp.Compare(a.released, b.released)
	})
	return out, err
}
