package node

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// testSched has epochs of 10 s and rotations of 3 epochs, from genesis g.
var (
	g         = time.Unix(1_700_000_000, 0)
	testSched = directory.Schedule{Genesis: g, EpochLength: 10 * time.Second, RotationEpochs: 3}
)

// at is the instant sec seconds after genesis.
func at(sec float64) time.Time { return g.Add(time.Duration(sec * float64(time.Second))) }

func openKeys(t *testing.T, dir string, now time.Time) *SphinxKeys {
	t.Helper()
	k, err := OpenSphinxKeys(KeysConfig{DataDir: dir, PeakRate: 1, SaveInterval: -1, Logger: zerolog.Nop()}, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// packetFor builds a one-hop packet for the key k holds for rotation r.
func packetFor(t *testing.T, k *SphinxKeys, r uint32) []byte {
	t.Helper()
	pub, ok := k.PublicKey(r)
	if !ok {
		t.Fatalf("no key of rotation %d", r)
	}
	var addr sphinx.NodeAddress
	p, err := sphinx.NewPacket(rand.Reader, sphinx.AckPacket, []sphinx.Hop{{Address: addr, PublicKey: pub}}, sphinx.Destination{}, sphinx.SURBID{}, []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// keyFiles lists the rotations with a key file in dir.
func keyFiles(t *testing.T, dir string) []uint32 {
	t.Helper()
	var out []uint32
	for r := range 20 {
		if _, err := os.Stat(filepath.Join(dir, KeyFile(uint32(r)))); err == nil {
			out = append(out, uint32(r))
		}
	}
	return out
}

// TestKeysFollowTheSchedule walks a node through four rotations, epoch by
// epoch: it holds the keys the schedule says (at most two), announces the
// current one and the next once due, and keeps on disk only what it holds.
func TestKeysFollowTheSchedule(t *testing.T) {
	dir := t.TempDir()
	k := openKeys(t, dir, at(0))
	if _, ok := k.Schedule(); ok || len(k.Held()) != 0 {
		t.Fatal("keys before any schedule")
	}
	if changed, err := k.SetSchedule(testSched, at(1)); err != nil || !changed {
		t.Fatalf("SetSchedule = %v, %v", changed, err)
	}
	for sec := 1.0; sec < 130; sec += 10 {
		now := at(sec)
		if _, err := k.Update(now); err != nil {
			t.Fatal(err)
		}
		want := testSched.HeldRotations(now)
		if got := k.Held(); !slices.Equal(got, want) {
			t.Fatalf("at %vs the node holds %v, want %v", sec, got, want)
		}
		if got := keyFiles(t, dir); !slices.Equal(got, want) {
			t.Fatalf("at %vs key files %v, want %v", sec, got, want)
		}
		var ann []uint32
		for _, a := range k.Announce(now) {
			ann = append(ann, a.Rotation)
		}
		cur := testSched.RotationAt(now)
		wantAnn := []uint32{cur}
		if testSched.Holds(cur+1, now) {
			wantAnn = append(wantAnn, cur+1)
		}
		if !slices.Equal(ann, wantAnn) {
			t.Fatalf("at %vs the node announces %v, want %v", sec, ann, wantAnn)
		}
	}
}

// TestRotationByteSelectsKey checks Nym's rule: odd and even name the held
// key of that parity, unknown tries the current key and then the other,
// and the rotation that peeled the packet is reported.
func TestRotationByteSelectsKey(t *testing.T) {
	k := openKeys(t, t.TempDir(), at(0))
	if _, err := k.SetSchedule(testSched, at(21)); err != nil { // the last epoch of rotation 0
		t.Fatal(err)
	}
	if got := k.Held(); !slices.Equal(got, []uint32{0, 1}) {
		t.Fatalf("held %v, want [0 1]", got)
	}
	for _, tc := range []struct {
		keyOf   uint32
		byteFor wire.KeyRotation
		want    uint32
		err     error
	}{
		{0, wire.KeyRotationEven, 0, nil},
		{1, wire.KeyRotationOdd, 1, nil},
		{0, wire.KeyRotationUnknown, 0, nil},
		{1, wire.KeyRotationUnknown, 1, nil},                   // the current key fails, the other peels it
		{1, wire.KeyRotationEven, 0, sphinx.ErrAuthentication}, // the byte names the other key
		{0, wire.KeyRotationOdd, 1, sphinx.ErrAuthentication},  // likewise
	} {
		_, r, err := k.Process(tc.byteFor, nil, packetFor(t, k, tc.keyOf))
		if !errors.Is(err, tc.err) || (err == nil && r != tc.want) {
			t.Errorf("a packet for rotation %d framed %v: rotation %d, %v; want %d, %v", tc.keyOf, tc.byteFor, r, err, tc.want, tc.err)
		}
	}
	if RotationByte(1) != wire.KeyRotationOdd || RotationByte(2) != wire.KeyRotationEven || RotationByte(0) != wire.KeyRotationUnknown {
		t.Error("RotationByte does not map rotations as Nym does (0 unknown, then odd and even)")
	}
}

// TestExpiredKeyRefused checks that a packet made for a key whose grace
// epoch has ended is refused with ErrNoKey, and that the key was wiped
// from memory and disk.
func TestExpiredKeyRefused(t *testing.T) {
	dir := t.TempDir()
	k := openKeys(t, dir, at(0))
	if _, err := k.SetSchedule(testSched, at(5)); err != nil {
		t.Fatal(err)
	}
	old := packetFor(t, k, 0)
	k.mu.RLock()
	oldKey := k.keys[0].key
	k.mu.RUnlock()

	// In the grace epoch of rotation 0 the packet still goes through.
	if _, err := k.Update(at(35)); err != nil {
		t.Fatal(err)
	}
	if _, r, err := k.Process(wire.KeyRotationEven, nil, bytes.Clone(old)); err != nil || r != 0 {
		t.Fatalf("in the grace epoch: rotation %d, %v", r, err)
	}
	// After it, the key is gone.
	if _, err := k.Update(at(41)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := k.Process(wire.KeyRotationEven, nil, bytes.Clone(old)); !errors.Is(err, ErrNoKey) {
		t.Fatalf("after the grace epoch: %v, want ErrNoKey", err)
	}
	if _, _, err := k.Process(wire.KeyRotationUnknown, nil, bytes.Clone(old)); !errors.Is(err, sphinx.ErrAuthentication) {
		t.Fatalf("after the grace epoch, framed unknown: %v, want ErrAuthentication", err)
	}
	if !bytes.Equal(oldKey.Bytes(), make([]byte, sphinx.KeySize)) {
		t.Fatal("the expired private key is still in memory")
	}
	for _, name := range []string{KeyFile(0), ReplayFile(0)} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s of the expired key: %v", name, err)
		}
	}
}

// TestReplayFilterPerKey checks that each key has its own filter, saved
// beside it: a replay is refused by the key it was made for, across a
// restart, and the filter goes when the key does.
func TestReplayFilterPerKey(t *testing.T) {
	dir := t.TempDir()
	k := openKeys(t, dir, at(0))
	if _, err := k.SetSchedule(testSched, at(21)); err != nil {
		t.Fatal(err)
	}
	p0, p1 := packetFor(t, k, 0), packetFor(t, k, 1)
	for _, p := range [][]byte{p0, p1} {
		if _, _, err := k.Process(wire.KeyRotationUnknown, nil, bytes.Clone(p)); err != nil {
			t.Fatal(err)
		}
	}
	stats := k.Filters()
	if len(stats) != 2 || stats[0].Tags != 1 || stats[1].Tags != 1 {
		t.Fatalf("filters %+v, want one tag in each", stats)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []uint32{0, 1} {
		if _, err := os.Stat(filepath.Join(dir, ReplayFile(r))); err != nil {
			t.Fatalf("no saved filter of rotation %d: %v", r, err)
		}
	}
	again := openKeys(t, dir, at(22))
	for _, p := range [][]byte{p0, p1} {
		if _, _, err := again.Process(wire.KeyRotationUnknown, nil, bytes.Clone(p)); !errors.Is(err, sphinx.ErrReplay) {
			t.Fatalf("a replay after a restart: %v, want ErrReplay", err)
		}
	}
}

// TestDownAcrossRotations restarts a node long after its keys expired: it
// comes back with a fresh key for the current rotation and wipes the old
// ones, and the schedule it saved lets it do so before any directory.
func TestDownAcrossRotations(t *testing.T) {
	dir := t.TempDir()
	k := openKeys(t, dir, at(0))
	if _, err := k.SetSchedule(testSched, at(21)); err != nil {
		t.Fatal(err)
	}
	stale, _ := k.PublicKey(1)
	k.Close()

	later := openKeys(t, dir, at(95)) // rotation 3
	if got := later.Held(); !slices.Equal(got, []uint32{3}) {
		t.Fatalf("held %v after three rotations down, want [3]", got)
	}
	if got := keyFiles(t, dir); !slices.Equal(got, []uint32{3}) {
		t.Fatalf("key files %v, want [3]", got)
	}
	if fresh, _ := later.PublicKey(3); fresh == stale {
		t.Fatal("the node came back with a stale key")
	}
}

// TestFilterSizedForTheKeyLife checks that a new key's filter holds the
// packets of its whole life at the configured peak rate, or at a
// higher rate measured meanwhile.
func TestFilterSizedForTheKeyLife(t *testing.T) {
	k, err := OpenSphinxKeys(KeysConfig{DataDir: t.TempDir(), PeakRate: 1000, SaveInterval: -1}, at(0))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if _, err := k.SetSchedule(testSched, at(1)); err != nil {
		t.Fatal(err)
	}
	life := testSched.KeyLifetime().Seconds()
	if got := k.Filters()[0].Capacity; got != int(1000*life) {
		t.Fatalf("capacity %d, want %d (1000 packets a second for %vs)", got, int(1000*life), life)
	}
	// 60,000 packets in the next epoch: 6000 a second.
	k.processed.Add(60_000)
	if _, err := k.Update(at(11)); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Update(at(21)); err != nil { // announces rotation 1
		t.Fatal(err)
	}
	f := k.Filters()
	if len(f) != 2 || f[1].Capacity < int(6000*life) {
		t.Fatalf("the next key's filter %+v, want room for 6000 packets a second", f)
	}
}

// TestStaticKeys checks a node without a directory: one key for ever, every
// frame's rotation byte accepted, the files of a network node untouched.
func TestStaticKeys(t *testing.T) {
	dir := t.TempDir()
	k, err := OpenSphinxKeys(KeysConfig{DataDir: dir, Static: true, StaticCapacity: 1000, SaveInterval: -1}, at(0))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if changed, err := k.SetSchedule(testSched, at(0)); changed || err != nil {
		t.Fatalf("a static node took a schedule: %v, %v", changed, err)
	}
	for _, rot := range []wire.KeyRotation{wire.KeyRotationUnknown, wire.KeyRotationOdd, wire.KeyRotationEven} {
		if _, r, err := k.Process(rot, nil, packetFor(t, k, StaticRotation)); err != nil || r != StaticRotation {
			t.Fatalf("framed %v: rotation %d, %v", rot, r, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, StaticKeyFile)); err != nil {
		t.Fatal(err)
	}
}

// TestScheduleFileDamaged checks that a damaged schedule file stops the
// node with an error naming it.
func TestScheduleFileDamaged(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ScheduleFile), []byte(`{"epoch_length":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := OpenSphinxKeys(KeysConfig{DataDir: dir}, at(0))
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(ScheduleFile)) {
		t.Fatalf("OpenSphinxKeys with a damaged schedule: %v", err)
	}
}

// TestConcurrentUpdates checks that Updates racing at a boundary (the
// epoch clock and a fetched topology both make one) load or make each key
// once: the node holds and announces every rotation once.
func TestConcurrentUpdates(t *testing.T) {
	k := openKeys(t, t.TempDir(), at(0))
	if _, err := k.SetSchedule(testSched, at(1)); err != nil {
		t.Fatal(err)
	}
	for sec := 21.0; sec < 100; sec += 10 { // from the last epoch of rotation 0
		done := make(chan error, 8)
		for range cap(done) {
			go func() { _, err := k.Update(at(sec)); done <- err }()
		}
		for range cap(done) {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		held := k.Held()
		if !slices.IsSorted(held) || len(slices.Compact(slices.Clone(held))) != len(held) || len(held) > MaxHeldKeys {
			t.Fatalf("at %vs the node holds rotations %v", sec, held)
		}
		if ann := k.Announce(at(sec)); len(ann) > MaxHeldKeys {
			t.Fatalf("at %vs the node announces %d keys", sec, len(ann))
		}
	}
}

// TestUpdateLate checks that an Update for a time before the last one (its
// caller read the clock just before another crossed a boundary) does not
// drop the next key that one made: the node keeps announcing it.
func TestUpdateLate(t *testing.T) {
	k := openKeys(t, t.TempDir(), at(0))
	if _, err := k.SetSchedule(testSched, at(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Update(at(21)); err != nil { // announces rotation 1
		t.Fatal(err)
	}
	if changed, err := k.Update(at(19.99)); err != nil || changed {
		t.Fatalf("a late Update: changed %v, %v", changed, err)
	}
	if held := k.Held(); !slices.Equal(held, []uint32{0, 1}) {
		t.Fatalf("after a late Update the node holds rotations %v, want [0 1]", held)
	}
}
