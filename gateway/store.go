package gateway

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/peapod-mixnet/peapod/internal/gwproto"
)

// The database file and its layout (see the package documentation).
const (
	dbFileName = "gateway.db"

	// storeVersion is the layout version kept under metaVersion. Version
	// 1 had no source in a client record; opening it adds an unknown one.
	storeVersion = 2

	// idLease is how many message ids are reserved on disk at a time.
	idLease = 1 << 20

	// clientRecordSize is a registry value: shared key ‖ last timestamp ‖
	// source; clientRecordSizeV1 the same without the source.
	clientRecordSize   = clientRecordSizeV1 + sourceSize
	clientRecordSizeV1 = gwproto.KeySize + 8
	// recordHeaderSize is the fixed part of a stored message: received
	// time u64 ‖ kind u8.
	recordHeaderSize = 8 + 1
	// idSize is the size of a message id, the key of a stored message.
	idSize = 8

	// batchDelay is how long bbolt waits to gather concurrent writes into
	// one commit.
	batchDelay = 2 * time.Millisecond
	// openTimeout bounds the wait for the database's file lock, held by
	// another process using the same data folder.
	openTimeout = time.Second
)

var (
	bucketMeta    = []byte("meta")
	bucketClients = []byte("clients")
	bucketInbox   = []byte("inbox")

	metaVersion = []byte("version")
	metaNextID  = []byte("next_id")
)

// clientID is a client's ed25519 identity.
type clientID [ed25519.PublicKeySize]byte

// storedMessage is one message of a client's inbox.
type storedMessage struct {
	id       uint64
	kind     gwproto.DeliverKind
	received time.Time
	payload  []byte
}

// store is the gateway's bbolt database: the client registry and the
// inboxes. Its methods are safe for concurrent use.
type store struct {
	db *bolt.DB

	idMu    sync.Mutex
	nextID  uint64 // the next id to hand out
	idLimit uint64 // ids below it are reserved on disk

	count atomic.Int64 // messages in the inboxes

	sizeMu sync.Mutex
	sizes  map[clientID]int // messages in each non-empty inbox

	regMu      sync.RWMutex
	registered map[clientID]source // where each client registered from
	perSource  map[source]int      // registered clients by known source
	limits     registrationLimits
}

// registrationLimits bound the registered clients; zero fields are no
// limit, and so is a negative perSource.
type registrationLimits struct {
	total, perSource int
}

// openStore opens (or creates) the database in dir.
func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("gateway: creating the data folder: %w", err)
	}
	path := filepath.Join(dir, dbFileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, fmt.Errorf("gateway: opening %s: %w", path, err)
	}
	db.MaxBatchDelay = batchDelay
	s := &store{db: db, registered: make(map[clientID]source), perSource: make(map[source]int), sizes: make(map[clientID]int)}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// init creates the buckets, checks the layout version and loads the id
// counter, the registered clients and the inbox sizes.
func (s *store) init() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		clients, err := tx.CreateBucketIfNotExists(bucketClients)
		if err != nil {
			return err
		}
		switch v := meta.Get(metaVersion); {
		case v == nil:
			if err := meta.Put(metaVersion, []byte{storeVersion}); err != nil {
				return err
			}
		case len(v) == 1 && v[0] == 1:
			if err := migrateClientsV1(clients); err != nil {
				return fmt.Errorf("upgrading the layout from version 1: %w", err)
			}
			if err := meta.Put(metaVersion, []byte{storeVersion}); err != nil {
				return err
			}
		case len(v) != 1 || v[0] != storeVersion:
			return fmt.Errorf("layout version %x, this gateway reads %d", v, storeVersion)
		}
		if v := meta.Get(metaNextID); v != nil {
			if len(v) != idSize {
				return fmt.Errorf("next_id is %d bytes, want %d", len(v), idSize)
			}
			s.nextID = binary.BigEndian.Uint64(v)
		} else {
			s.nextID = 1
		}
		// Nothing is reserved yet: the first id handed out reserves a lease.
		s.idLimit = s.nextID

		if err := clients.ForEach(func(k, v []byte) error {
			if len(k) != len(clientID{}) || len(v) != clientRecordSize {
				return fmt.Errorf("malformed client record (%d-byte key, %d-byte value)", len(k), len(v))
			}
			_, _, src, _ := decodeClientRecord(v)
			s.addClientLocked(clientID(k), src)
			return nil
		}); err != nil {
			return err
		}

		inbox, err := tx.CreateBucketIfNotExists(bucketInbox)
		if err != nil {
			return err
		}
		var n int64
		err = inbox.ForEachBucket(func(k []byte) error {
			size := inbox.Bucket(k).Stats().KeyN
			n += int64(size)
			if len(k) == len(clientID{}) && size > 0 {
				s.sizes[clientID(k)] = size
			}
			return nil
		})
		s.count.Store(n)
		return err
	})
	if err != nil {
		return fmt.Errorf("gateway: opening %s: %w", dbFileName, err)
	}
	return nil
}

// migrateClientsV1 adds an unknown source to every client record of a
// version 1 database.
func migrateClientsV1(clients *bolt.Bucket) error {
	type record struct{ k, v []byte }
	var old []record
	err := clients.ForEach(func(k, v []byte) error {
		if len(v) != clientRecordSizeV1 {
			return fmt.Errorf("malformed version 1 client record (%d-byte value)", len(v))
		}
		old = append(old, record{append([]byte(nil), k...), append(append([]byte(nil), v...), make([]byte, sourceSize)...)})
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range old {
		if err := clients.Put(r.k, r.v); err != nil {
			return err
		}
	}
	return nil
}

// close closes the database.
func (s *store) close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("gateway: closing the database: %w", err)
	}
	return nil
}

// newID returns a message id never handed out before by this database, not
// even before a restart: ids are reserved on disk idLease at a time, and a
// restart continues after the last reservation.
func (s *store) newID() (uint64, error) {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	if s.nextID == s.idLimit {
		limit := s.idLimit + idLease
		err := s.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(metaNextID, binary.BigEndian.AppendUint64(nil, limit))
		})
		if err != nil {
			return 0, fmt.Errorf("gateway: reserving message ids: %w", err)
		}
		s.idLimit = limit
	}
	id := s.nextID
	s.nextID++
	return id, nil
}

// isRegistered reports whether client has registered.
func (s *store) isRegistered(client clientID) bool {
	s.regMu.RLock()
	defer s.regMu.RUnlock()
	_, ok := s.registered[client]
	return ok
}

// addClientLocked lists client as registered from src. s.regMu is held
// for writing (or s is not shared yet).
func (s *store) addClientLocked(client clientID, src source) {
	if old, ok := s.registered[client]; ok {
		s.dropSourceLocked(old)
	}
	s.registered[client] = src
	if src.known() {
		s.perSource[src]++
	}
}

// removeClientLocked forgets client. s.regMu is held for writing.
func (s *store) removeClientLocked(client clientID) {
	if src, ok := s.registered[client]; ok {
		s.dropSourceLocked(src)
		delete(s.registered, client)
	}
}

func (s *store) dropSourceLocked(src source) {
	if !src.known() {
		return
	}
	if s.perSource[src]--; s.perSource[src] <= 0 {
		delete(s.perSource, src)
	}
}

// clientCount is the number of registered clients.
func (s *store) clientCount() int {
	s.regMu.RLock()
	defer s.regMu.RUnlock()
	return len(s.registered)
}

// registry is the gwproto.Registry of a store for the clients connecting
// from src: registrations from there count against the limits of src.
type registry struct {
	s   *store
	src source
	// refused, when not nil, counts a refusal (before the client hears
	// of it).
	refused func(RefusalReason)
}

var _ gwproto.Registry = registry{}

// refusedError is a registration refused at a limit. Its text goes to the
// client.
type refusedError struct {
	reason RefusalReason
	msg    string
}

func (e *refusedError) Error() string { return e.msg }
func (e *refusedError) Unwrap() error { return gwproto.ErrRefused }

// encodeClientRecord returns a registry value.
func encodeClientRecord(key [gwproto.KeySize]byte, ts int64, src source) []byte {
	v := make([]byte, 0, clientRecordSize)
	v = append(v, key[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(ts))
	return src.appendBinary(v)
}

// decodeClientRecord parses a registry value.
func decodeClientRecord(v []byte) (key [gwproto.KeySize]byte, ts int64, src source, err error) {
	if len(v) != clientRecordSize {
		return key, 0, source{}, fmt.Errorf("gateway: client record is %d bytes, want %d", len(v), clientRecordSize)
	}
	copy(key[:], v)
	ts = int64(binary.BigEndian.Uint64(v[gwproto.KeySize:]))
	return key, ts, parseSource(v[clientRecordSizeV1:]), nil
}

// reserve lists a new client as registered from src, within the limits, or
// says why not, and returns the source to record for client. A client
// registered already registers again (new keys) whatever the limits: it
// adds no client, and it stays counted against the source it first
// registered from (an unknown one is replaced by src). Were it moved to
// src, an attacker with two addresses could move its registrations from
// one to the other and register as many again from the first, without end
// but the total. reserve also returns an undo for a registration that then
// fails to commit.
func (s *store) reserve(client clientID, src source) (recorded source, undo func(), err error) {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	old, known := s.registered[client]
	if known {
		if old.known() {
			return old, func() {}, nil
		}
	} else {
		lim := s.limits
		switch {
		case lim.total > 0 && len(s.registered) >= lim.total:
			return source{}, nil, &refusedError{RefusedRegistrations, fmt.Sprintf(
				"gateway: this gateway has as many clients as it takes (limit of %d); try another gateway", lim.total)}
		case lim.perSource > 0 && src.known() && s.perSource[src] >= lim.perSource:
			return source{}, nil, &refusedError{RefusedRegistrationsPerSource, fmt.Sprintf(
				"gateway: too many clients registered from your address (limit of %d)", lim.perSource)}
		}
	}
	s.addClientLocked(client, src)
	return src, func() {
		s.regMu.Lock()
		defer s.regMu.Unlock()
		if s.registered[client] != src {
			return // listed again meanwhile
		}
		s.removeClientLocked(client)
		if known {
			s.addClientLocked(client, old)
		}
	}, nil
}

func checkIdentity(client ed25519.PublicKey) (clientID, error) {
	if len(client) != len(clientID{}) {
		return clientID{}, fmt.Errorf("gateway: client identity is %d bytes, want %d", len(client), len(clientID{}))
	}
	return clientID(client), nil
}

// Register records key as client's shared key, unless ts is not after the
// last timestamp accepted from client. The record is durable on return.
func (r registry) Register(client ed25519.PublicKey, key [gwproto.KeySize]byte, ts time.Time) error {
	id, err := checkIdentity(client)
	if err != nil {
		return err
	}
	src, undo, err := r.s.reserve(id, r.src)
	if err != nil {
		var refused *refusedError
		if errors.As(err, &refused) && r.refused != nil {
			r.refused(refused.reason)
		}
		return err
	}
	var stale bool
	err = r.s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketClients)
		stale = false
		if v := b.Get(id[:]); v != nil {
			_, last, _, err := decodeClientRecord(v)
			if err != nil {
				return err
			}
			if ts.UnixNano() <= last {
				stale = true
				return nil
			}
		}
		return b.Put(id[:], encodeClientRecord(key, ts.UnixNano(), src))
	})
	if err != nil {
		undo()
		return fmt.Errorf("gateway: registering a client: %w", err)
	}
	if stale {
		undo()
		return gwproto.ErrStale
	}
	return nil
}

// Authenticate returns client's shared key and records ts, unless client
// is unknown or ts is not after the last timestamp accepted from it. The
// new timestamp is durable on return.
func (r registry) Authenticate(client ed25519.PublicKey, ts time.Time) ([gwproto.KeySize]byte, error) {
	var key [gwproto.KeySize]byte
	id, err := checkIdentity(client)
	if err != nil {
		return key, err
	}
	var result error
	err = r.s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketClients)
		result = nil
		v := b.Get(id[:])
		if v == nil {
			result = gwproto.ErrNotRegistered
			return nil
		}
		k, last, src, err := decodeClientRecord(v)
		if err != nil {
			return err
		}
		if ts.UnixNano() <= last {
			result = gwproto.ErrStale
			return nil
		}
		key = k
		return b.Put(id[:], encodeClientRecord(k, ts.UnixNano(), src))
	})
	if err != nil {
		return [gwproto.KeySize]byte{}, fmt.Errorf("gateway: authenticating a client: %w", err)
	}
	if result != nil {
		return [gwproto.KeySize]byte{}, result
	}
	return key, nil
}

// encodeRecord returns the stored form of a message: received time u64
// (unix nanoseconds) ‖ kind u8 ‖ payload.
func encodeRecord(m *storedMessage) []byte {
	v := make([]byte, 0, recordHeaderSize+len(m.payload))
	v = binary.BigEndian.AppendUint64(v, uint64(m.received.UnixNano()))
	v = append(v, byte(m.kind))
	return append(v, m.payload...)
}

// decodeRecord parses a stored message; id is its key. The payload is a
// copy.
func decodeRecord(id, v []byte) (*storedMessage, error) {
	if len(id) != idSize {
		return nil, fmt.Errorf("gateway: stored message key is %d bytes, want %d", len(id), idSize)
	}
	if len(v) < recordHeaderSize {
		return nil, fmt.Errorf("gateway: stored message %x is %d bytes, shorter than its header", id, len(v))
	}
	kind := gwproto.DeliverKind(v[8])
	if kind != gwproto.KindMessage && kind != gwproto.KindAck {
		return nil, fmt.Errorf("gateway: stored message %x has unknown kind %d", id, v[8])
	}
	return &storedMessage{
		id:       binary.BigEndian.Uint64(id),
		kind:     kind,
		received: time.Unix(0, int64(binary.BigEndian.Uint64(v))),
		payload:  append([]byte(nil), v[recordHeaderSize:]...),
	}, nil
}

// put adds messages to their clients' inboxes in one batched commit; they
// are durable when it returns nil.
func (s *store) put(ws []*message) error {
	var added int64
	var perClient map[clientID]int
	err := s.db.Batch(func(tx *bolt.Tx) error {
		added = 0
		perClient = make(map[clientID]int)
		inbox := tx.Bucket(bucketInbox)
		var key [idSize]byte
		for _, w := range ws {
			b, err := inbox.CreateBucketIfNotExists(w.client[:])
			if err != nil {
				return err
			}
			binary.BigEndian.PutUint64(key[:], w.id)
			if b.Get(key[:]) == nil {
				added++
				perClient[w.client]++
			}
			if err := b.Put(key[:], encodeRecord(&w.storedMessage)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gateway: storing %d messages: %w", len(ws), err)
	}
	s.count.Add(added)
	s.resize(perClient, 1)
	return nil
}

// resize adds sign × delta[c] to the size of each client c's inbox.
func (s *store) resize(delta map[clientID]int, sign int) {
	s.sizeMu.Lock()
	defer s.sizeMu.Unlock()
	for c, n := range delta {
		if size := s.sizes[c] + sign*n; size > 0 {
			s.sizes[c] = size
		} else {
			delete(s.sizes, c)
		}
	}
}

// storedFor is the number of messages in client's inbox.
func (s *store) storedFor(client clientID) int {
	s.sizeMu.Lock()
	defer s.sizeMu.Unlock()
	return s.sizes[client]
}

// page returns up to n of client's stored messages, oldest id first.
func (s *store) page(client clientID, n int) ([]*storedMessage, error) {
	var out []*storedMessage
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInbox).Bucket(client[:])
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(out) < n; k, v = c.Next() {
			m, err := decodeRecord(k, v)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: reading stored messages: %w", err)
	}
	return out, nil
}

// remove deletes client's stored messages with the given ids, ignoring ids
// it does not hold, and returns how many it deleted.
func (s *store) remove(client clientID, ids []uint64) (int, error) {
	var removed int
	err := s.db.Batch(func(tx *bolt.Tx) error {
		removed = 0
		inbox := tx.Bucket(bucketInbox)
		b := inbox.Bucket(client[:])
		if b == nil {
			return nil
		}
		var key [idSize]byte
		for _, id := range ids {
			binary.BigEndian.PutUint64(key[:], id)
			if b.Get(key[:]) == nil {
				continue
			}
			if err := b.Delete(key[:]); err != nil {
				return err
			}
			removed++
		}
		if k, _ := b.Cursor().First(); k == nil {
			return inbox.DeleteBucket(client[:])
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("gateway: deleting confirmed messages: %w", err)
	}
	s.count.Add(-int64(removed))
	s.resize(map[clientID]int{client: removed}, -1)
	return removed, nil
}

// purge deletes every stored message received before cutoff and returns how
// many it deleted. Ids rise with arrival, so each inbox is scanned from its
// oldest id and the scan stops at the first message young enough to keep; a
// message can outlive its TTL (after a clock step back) but is never purged
// early.
func (s *store) purge(cutoff time.Time) (int, error) {
	var purged int
	var perClient map[clientID]int
	err := s.db.Update(func(tx *bolt.Tx) error {
		purged = 0
		perClient = make(map[clientID]int)
		inbox := tx.Bucket(bucketInbox)
		var empty [][]byte
		err := inbox.ForEachBucket(func(client []byte) error {
			b := inbox.Bucket(client)
			c := b.Cursor()
			k, v := c.First()
			for ; k != nil; k, v = c.First() {
				if len(v) >= 8 && !time.Unix(0, int64(binary.BigEndian.Uint64(v))).Before(cutoff) {
					break
				}
				if err := c.Delete(); err != nil {
					return err
				}
				purged++
				if len(client) == len(clientID{}) {
					perClient[clientID(client)]++
				}
			}
			if k == nil {
				empty = append(empty, append([]byte(nil), client...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, client := range empty {
			if err := inbox.DeleteBucket(client); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("gateway: purging expired messages: %w", err)
	}
	s.count.Add(-int64(purged))
	s.resize(perClient, -1)
	return purged, nil
}

// expireClients forgets the registered clients whose last accepted
// handshake is before cutoff, but for those in keep, and returns how many
// it forgot. Their inboxes stay, to be purged at their messages' TTL.
func (s *store) expireClients(cutoff time.Time, keep map[clientID]bool) (int, error) {
	var expired []clientID
	err := s.db.Update(func(tx *bolt.Tx) error {
		expired = expired[:0]
		b := tx.Bucket(bucketClients)
		err := b.ForEach(func(k, v []byte) error {
			_, last, _, err := decodeClientRecord(v)
			if err != nil {
				return err
			}
			if id := clientID(k); last < cutoff.UnixNano() && !keep[id] {
				expired = append(expired, id)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range expired {
			if err := b.Delete(id[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("gateway: expiring idle clients: %w", err)
	}
	s.regMu.Lock()
	for _, id := range expired {
		s.removeClientLocked(id)
	}
	s.regMu.Unlock()
	return len(expired), nil
}

// stored is the number of messages in the inboxes.
func (s *store) stored() int { return int(s.count.Load()) }

// errClosed is returned for work offered to a gateway that is closing.
var errClosed = errors.New("gateway: closed")
