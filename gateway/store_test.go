package gateway

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/peapod-mixnet/peapod/internal/gwproto"
)

func openTestStore(t testing.TB, dir string) *store {
	t.Helper()
	s, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close() })
	return s
}

func newClientID() clientID {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	return clientID(pub)
}

func storeMsgs(t testing.TB, s *store, client clientID, received time.Time, payloads ...string) []uint64 {
	t.Helper()
	var ms []*message
	var ids []uint64
	for _, p := range payloads {
		id, err := s.newID()
		if err != nil {
			t.Fatal(err)
		}
		m := &message{client: client}
		m.id, m.kind, m.received, m.payload = id, gwproto.KindMessage, received, []byte(p)
		ms = append(ms, m)
		ids = append(ids, id)
	}
	if err := s.put(ms); err != nil {
		t.Fatal(err)
	}
	return ids
}

// Ids never repeat, across reopenings included, and rise.
func TestStoreIDsUniqueAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	var all []uint64
	for range 3 {
		s, err := openStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			id, err := s.newID()
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, id)
		}
		s.close()
	}
	if !slices.IsSorted(all) || len(slices.Compact(slices.Clone(all))) != len(all) {
		t.Fatalf("ids %v are not unique and rising", all)
	}
}

// Pages come in id order, removal ignores unknown and foreign ids, and
// the inboxes survive a reopening.
func TestStorePageRemoveReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	a, b := newClientID(), newClientID()
	now := time.Now()
	idsA := storeMsgs(t, s, a, now, "a1", "a2", "a3")
	idsB := storeMsgs(t, s, b, now, "b1")
	if s.stored() != 4 {
		t.Fatalf("stored %d, want 4", s.stored())
	}
	page, err := s.page(a, 2)
	if err != nil || len(page) != 2 || string(page[0].payload) != "a1" || string(page[1].payload) != "a2" {
		t.Fatalf("page %v, %v", page, err)
	}
	if !page[0].received.Equal(now) || page[0].kind != gwproto.KindMessage || page[0].id != idsA[0] {
		t.Fatalf("record %+v", page[0])
	}
	// b's id under a's name deletes nothing.
	if n, err := s.remove(a, []uint64{idsB[0], 1 << 60}); err != nil || n != 0 {
		t.Fatalf("removed %d (%v), want 0", n, err)
	}
	if n, err := s.remove(a, idsA[:2]); err != nil || n != 2 {
		t.Fatalf("removed %d (%v), want 2", n, err)
	}
	s.close()

	s = openTestStore(t, dir)
	if s.stored() != 2 {
		t.Fatalf("after reopening: %d stored, want 2", s.stored())
	}
	page, _ = s.page(a, 10)
	if len(page) != 1 || string(page[0].payload) != "a3" {
		t.Fatalf("a's inbox after reopening: %v", page)
	}
	if n, _ := s.remove(a, idsA[2:]); n != 1 {
		t.Fatal("last message not removed")
	}
	if page, _ := s.page(a, 10); len(page) != 0 {
		t.Fatal("emptied inbox still has messages")
	}
}

func TestStorePurge(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	a, b := newClientID(), newClientID()
	t0 := time.Now()
	storeMsgs(t, s, a, t0, "old1", "old2")
	storeMsgs(t, s, b, t0, "old3")
	storeMsgs(t, s, a, t0.Add(time.Hour), "young")
	n, err := s.purge(t0.Add(time.Minute))
	if err != nil || n != 3 {
		t.Fatalf("purged %d (%v), want 3", n, err)
	}
	if s.stored() != 1 {
		t.Fatalf("stored %d, want 1", s.stored())
	}
	if page, _ := s.page(a, 10); len(page) != 1 || string(page[0].payload) != "young" {
		t.Fatalf("a's inbox %v", page)
	}
}

// The registry accepts strictly increasing timestamps only, durably.
func TestRegistry(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	r := registry{s: s}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	t0 := time.Now()
	key := [gwproto.KeySize]byte{1, 2, 3}

	if _, err := r.Authenticate(pub, t0); !errors.Is(err, gwproto.ErrNotRegistered) {
		t.Fatalf("unknown client: %v", err)
	}
	if err := r.Register(pub, key, t0); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(pub, key, t0); !errors.Is(err, gwproto.ErrStale) {
		t.Fatalf("same timestamp again: %v", err)
	}
	if _, err := r.Authenticate(pub, t0); !errors.Is(err, gwproto.ErrStale) {
		t.Fatalf("auth with the registration's timestamp: %v", err)
	}
	got, err := r.Authenticate(pub, t0.Add(time.Nanosecond))
	if err != nil || got != key {
		t.Fatalf("auth: %x, %v", got, err)
	}
	if !s.isRegistered(clientID(pub)) || s.clientCount() != 1 {
		t.Fatal("client not listed as registered")
	}
	if _, err := r.Authenticate(pub[:31], t0.Add(time.Hour)); err == nil {
		t.Fatal("a short identity was accepted")
	}
	s.close()

	s = openTestStore(t, dir)
	r = registry{s: s}
	if !s.isRegistered(clientID(pub)) {
		t.Fatal("registration lost on reopening")
	}
	if _, err := r.Authenticate(pub, t0.Add(time.Nanosecond)); !errors.Is(err, gwproto.ErrStale) {
		t.Fatalf("replay after reopening: %v", err)
	}
	key2 := [gwproto.KeySize]byte{9}
	if err := r.Register(pub, key2, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Authenticate(pub, t0.Add(2*time.Second)); got != key2 {
		t.Fatal("re-registration did not replace the key")
	}
}

// A database with another layout version is refused.
func TestStoreRefusesUnknownVersion(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaVersion, []byte{99}) })
	s.close()
	if _, err := openStore(dir); err == nil {
		t.Fatal("opened a database of layout version 99")
	}
}

// A version 1 database (client records without a source) opens as version
// 2: its clients keep their keys and timestamps, with an unknown source that
// counts against no per-source limit.
func TestStoreMigratesV1(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	key := [gwproto.KeySize]byte{7}
	t0 := time.Now()
	err := s.db.Update(func(tx *bolt.Tx) error {
		v1 := encodeClientRecord(key, t0.UnixNano(), source{})[:clientRecordSizeV1]
		if err := tx.Bucket(bucketClients).Put(pub, v1); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaVersion, []byte{1})
	})
	if err != nil {
		t.Fatal(err)
	}
	s.close()

	s = openTestStore(t, dir)
	s.limits = registrationLimits{total: 10, perSource: 1}
	r := registry{s: s, src: sourceOfAddr(netip.MustParseAddr("192.0.2.1"))}
	if got, err := r.Authenticate(pub, t0.Add(time.Second)); err != nil || got != key {
		t.Fatalf("a migrated client authenticating: %x, %v", got, err)
	}
	s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(metaVersion); len(v) != 1 || v[0] != storeVersion {
			t.Errorf("layout version %x after opening, want %d", v, storeVersion)
		}
		return nil
	})
	// The migrated client's unknown source takes no share of 192.0.2.1's.
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if err := r.Register(other, key, t0); err != nil {
		t.Fatalf("a registration from a source with no client yet: %v", err)
	}
}
