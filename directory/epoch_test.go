package directory

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestScheduleArithmetic checks epoch and rotation numbers and the key
// timetable against Nym's rules, written out by hand for a small schedule:
// epochs of 10 s, rotations of 3 epochs.
func TestScheduleArithmetic(t *testing.T) {
	g := time.Unix(1000, 0)
	s := Schedule{Genesis: g, EpochLength: 10 * time.Second, RotationEpochs: 3}
	at := func(sec float64) time.Time { return g.Add(time.Duration(sec * float64(time.Second))) }
	for _, tc := range []struct {
		sec      float64
		epoch    uint64
		rotation uint32
		held     []uint32
	}{
		{-5, 0, 0, []uint32{0}},
		{0, 0, 0, []uint32{0}},
		{9.9, 0, 0, []uint32{0}},
		{20, 2, 0, []uint32{0, 1}}, // the last epoch of rotation 0: key 1 announced
		{29.9, 2, 0, []uint32{0, 1}},
		{30, 3, 1, []uint32{0, 1}}, // rotation 1's first epoch: key 0 in its grace epoch
		{39.9, 3, 1, []uint32{0, 1}},
		{40, 4, 1, []uint32{1}}, // key 0 wiped
		{50, 5, 1, []uint32{1, 2}},
		{60, 6, 2, []uint32{1, 2}},
		{70, 7, 2, []uint32{2}},
	} {
		now := at(tc.sec)
		if e := s.Epoch(now); e != tc.epoch {
			t.Errorf("Epoch(%vs) = %d, want %d", tc.sec, e, tc.epoch)
		}
		if r := s.RotationAt(now); r != tc.rotation {
			t.Errorf("RotationAt(%vs) = %d, want %d", tc.sec, r, tc.rotation)
		}
		if h := s.HeldRotations(now); !slices.Equal(h, tc.held) {
			t.Errorf("HeldRotations(%vs) = %v, want %v", tc.sec, h, tc.held)
		}
		for r := uint32(0); r < 4; r++ {
			if s.Holds(r, now) != slices.Contains(tc.held, r) && !(tc.sec < 0 && r == 0) {
				t.Errorf("Holds(%d, %vs) = %v, want %v", r, tc.sec, s.Holds(r, now), !s.Holds(r, now))
			}
		}
	}
	if got := s.KeyAnnounced(2); !got.Equal(at(50)) {
		t.Errorf("KeyAnnounced(2) = %v, want genesis+50s", got.Sub(g))
	}
	if got := s.KeyExpires(1); !got.Equal(at(70)) {
		t.Errorf("KeyExpires(1) = %v, want genesis+70s", got.Sub(g))
	}
	if got := s.KeyLifetime(); got != 50*time.Second {
		t.Errorf("KeyLifetime() = %v, want 50s (announced an epoch ahead, three epochs, the grace epoch)", got)
	}
	if got := s.KeyExpires(1).Sub(s.KeyAnnounced(1)); got != s.KeyLifetime() {
		t.Errorf("key 1 lives %v, KeyLifetime is %v", got, s.KeyLifetime())
	}
	if got := s.NextEpoch(at(21)); !got.Equal(at(30)) {
		t.Errorf("NextEpoch(21s) = %v, want 30s", got.Sub(g))
	}
}

// TestEpochInfoRoundTrip checks that the epoch section of a topology gives
// back the schedule it was made from, and that inconsistent ones are
// refused.
func TestEpochInfoRoundTrip(t *testing.T) {
	s := Schedule{Genesis: time.Unix(0, 0), EpochLength: 1500 * time.Millisecond, RotationEpochs: 4}
	now := time.Unix(1_800_000_000, 123)
	info := s.Info(s.Epoch(now))
	got, err := info.Schedule()
	if err != nil || !got.Genesis.Equal(s.Genesis) || got.EpochLength != s.EpochLength || got.RotationEpochs != s.RotationEpochs {
		t.Fatalf("Schedule() = %+v, %v; want %+v", got, err, s)
	}
	if !info.Next().Equal(s.NextEpoch(now)) {
		t.Errorf("Next() = %v, want %v", info.Next(), s.NextEpoch(now))
	}
	for name, edit := range map[string]func(*EpochInfo){
		"rotation":        func(e *EpochInfo) { e.Rotation++ },
		"short epoch":     func(e *EpochInfo) { e.Length = int64(MinEpochLength) - 1 },
		"rotation of one": func(e *EpochInfo) { e.RotationEpochs = 1 },
		"huge number":     func(e *EpochInfo) { e.Number = 1 << 62; e.Rotation = uint32(e.Number / 4) },
	} {
		bad := info
		edit(&bad)
		if _, err := bad.Schedule(); err == nil {
			t.Errorf("%s: Schedule() accepted %+v", name, bad)
		}
	}
}

// TestTopologyFollowsRotations registers nodes as a node does across a key
// rotation and checks which keys, and which nodes, the topology lists: the
// next key once announced, the current one alone after the change, and no
// node without a key for the current rotation.
func TestTopologyFollowsRotations(t *testing.T) {
	clock := newFakeClock()
	sched := Schedule{Genesis: clock.Now(), EpochLength: time.Hour, RotationEpochs: 3}
	ts := startServer(t, Config{Now: clock.Now, Schedule: sched, TTL: 100 * time.Hour})
	rotating, stale := newMixnode(t, 1), newMixnode(t, 2)
	next := NewSphinxKey(1, [KeySize]byte{1})
	keysOf := func(id string) []SphinxKey {
		for _, m := range ts.Topology().Mixnodes {
			if m.Identity == id {
				return m.SphinxKeys
			}
		}
		return nil
	}
	registerAt := func(n testNode, keys []SphinxKey) {
		t.Helper()
		n.desc.SphinxKeys = keys
		body, sig := signed(t, n.key, PathRegister, n.desc, clock.Now())
		if status, msg := ts.post(t, PathRegister, body, sig); status != 200 {
			t.Fatalf("register: %d %s", status, msg)
		}
	}

	registerAt(rotating, rotating.desc.SphinxKeys)
	registerAt(stale, stale.desc.SphinxKeys)
	clock.Advance(2 * time.Hour) // the last epoch of rotation 0
	registerAt(rotating, append(slices.Clone(rotating.desc.SphinxKeys), next))
	if got := keysOf(rotating.desc.Identity); len(got) != 2 || got[1] != next {
		t.Fatalf("in the announcing epoch the topology lists %v, want the current and the next key", got)
	}
	if ts.Topology().Epoch.Rotation != 0 {
		t.Fatalf("rotation %d, want 0", ts.Topology().Epoch.Rotation)
	}

	clock.Advance(time.Hour) // rotation 1
	top := ts.Topology()
	if top.Epoch.Rotation != 1 || top.Epoch.Number != 3 {
		t.Fatalf("epoch %+v, want epoch 3 of rotation 1", top.Epoch)
	}
	if got := keysOf(rotating.desc.Identity); !reflect.DeepEqual(got, []SphinxKey{next}) {
		t.Fatalf("in rotation 1 the topology lists %v, want only the key of rotation 1", got)
	}
	if got := keysOf(stale.desc.Identity); got != nil {
		t.Fatalf("a node without a key of the current rotation is listed with %v", got)
	}
	// What a client reads agrees.
	fetched, err := ts.client.Topology(context.Background())
	if err != nil || !equalTopology(fetched, &top) {
		t.Fatalf("fetched topology %+v, %v; want %+v", fetched, err, top)
	}
}

// TestRegistrarUpdate checks that Update registers a new descriptor at once
// and refuses one of another identity.
func TestRegistrarUpdate(t *testing.T) {
	ts := startServer(t, Config{})
	n, other := newMixnode(t, 1), newMixnode(t, 2)
	r := &Registrar{Client: ts.client, Descriptor: n.desc, Key: n.key, Interval: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitListed := func(what string, ok func([]SphinxKey) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, m := range ts.Topology().Mixnodes {
				if m.Identity == n.desc.Identity && ok(m.SphinxKeys) {
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("%s: not listed so", what)
	}
	waitListed("first registration", func(k []SphinxKey) bool { return reflect.DeepEqual(k, n.desc.SphinxKeys) })
	changed := n.desc
	changed.SphinxKeys = []SphinxKey{NewSphinxKey(testRotation, [KeySize]byte{9})}
	if err := r.Update(changed); err != nil {
		t.Fatal(err)
	}
	// The interval is an hour: only Update can have registered it.
	waitListed("after Update", func(k []SphinxKey) bool { return reflect.DeepEqual(k, changed.SphinxKeys) })
	if err := r.Update(other.desc); err == nil {
		t.Error("Update accepted a descriptor of another identity")
	}
	bad := changed
	bad.SphinxKeys = nil
	if err := r.Update(bad); err == nil {
		t.Error("Update accepted an invalid descriptor")
	}
}
