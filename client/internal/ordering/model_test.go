package ordering

import (
	"bytes"
	"maps"
	"math"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"
)

func seeded(seed uint64) *mrand.Rand {
	return mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// model is the obvious, slow reference for Buffer: plain maps, sorting on
// every release, and a scan of every held message to find what expires.
type model struct {
	cfg      Config
	streams  map[StreamID]*modelStream
	order    []StreamID // least recently used first
	arrivals int
	stats    Stats
}

type modelStream struct {
	next uint64
	held map[uint64]modelHeld
	// skipped holds the sequence numbers given up on that can still come
	// late: the highest MaxBufferedPerStream of all those given up on.
	skipped map[uint64]bool
}

type modelHeld struct {
	msg      item
	deadline time.Time
	arrival  int
}

func newModel(cfg Config) *model {
	return &model{cfg: cfg.withDefaults(), streams: map[StreamID]*modelStream{}}
}

func (m *model) push(now time.Time, id StreamID, seq uint64, msg item) []item {
	if seq > MaxSeq {
		m.stats.Invalid++
		return nil
	}
	var out []item
	if _, ok := m.streams[id]; !ok {
		if len(m.streams) >= m.cfg.MaxStreams {
			victim := m.order[0]
			s := m.streams[victim]
			if len(s.held) > 0 {
				out = m.releaseBelow(s, slices.Max(slices.Collect(maps.Keys(s.held)))+1, out)
			}
			delete(m.streams, victim)
			m.order = m.order[1:]
			m.stats.Evicted++
		}
		m.streams[id] = &modelStream{held: map[uint64]modelHeld{}, skipped: map[uint64]bool{}}
	} else {
		m.order = slices.DeleteFunc(m.order, func(x StreamID) bool { return x == id })
	}
	m.order = append(m.order, id)
	s := m.streams[id]
	if s.skipped[seq] {
		delete(s.skipped, seq)
		m.stats.Late++
		m.stats.Delivered++
		return append(out, msg)
	}
	if _, held := s.held[seq]; seq < s.next || held {
		m.stats.Duplicates++
		return out
	}
	if seq-s.next > uint64(m.cfg.MaxBufferedPerStream) {
		out = m.releaseBelow(s, seq-uint64(m.cfg.MaxBufferedPerStream), out)
	}
	if seq == s.next {
		out = append(out, msg)
		m.stats.Delivered++
		s.next++
		return m.run(s, out)
	}
	s.held[seq] = modelHeld{msg, now.Add(m.cfg.MaxGapWait), m.arrivals}
	m.arrivals++
	return out
}

func (m *model) releaseBelow(s *modelStream, target uint64, out []item) []item {
	// Every number from next to target that is not held is given up on;
	// only the highest MaxBufferedPerStream given up on so far are kept.
	limit := m.cfg.MaxBufferedPerStream
	added := 0
	for n := target; n > s.next && added < limit; n-- {
		if _, held := s.held[n-1]; !held {
			s.skipped[n-1] = true
			added++
		}
	}
	all := slices.Sorted(maps.Keys(s.skipped))
	for _, n := range all[:max(0, len(all)-limit)] {
		delete(s.skipped, n)
	}
	keys := slices.Sorted(maps.Keys(s.held))
	released := uint64(0)
	for _, k := range keys {
		if k < target {
			out = append(out, s.held[k].msg)
			delete(s.held, k)
			m.stats.Delivered++
			released++
		}
	}
	n := target - s.next - released
	if m.stats.Skipped > math.MaxUint64-n {
		m.stats.Skipped = math.MaxUint64
	} else {
		m.stats.Skipped += n
	}
	s.next = target
	return m.run(s, out)
}

func (m *model) run(s *modelStream, out []item) []item {
	for {
		h, ok := s.held[s.next]
		if !ok {
			return out
		}
		out = append(out, h.msg)
		delete(s.held, s.next)
		m.stats.Delivered++
		s.next++
	}
}

// first returns the earliest-arrived held message, if any.
func (m *model) first() (*modelStream, uint64, modelHeld, bool) {
	var (
		bestS   *modelStream
		bestSeq uint64
		best    modelHeld
		found   bool
	)
	for _, s := range m.streams {
		for seq, h := range s.held {
			if !found || h.arrival < best.arrival {
				bestS, bestSeq, best, found = s, seq, h, true
			}
		}
	}
	return bestS, bestSeq, best, found
}

func (m *model) expire(now time.Time) []item {
	var out []item
	for {
		s, seq, h, ok := m.first()
		if !ok || now.Before(h.deadline) {
			return out
		}
		out = m.releaseBelow(s, seq+1, out)
	}
}

func (m *model) snapshot() map[StreamID]uint64 {
	snap := map[StreamID]uint64{}
	for id, s := range m.streams {
		snap[id] = s.next
	}
	return snap
}

func (m *model) restore(snap map[StreamID]uint64) {
	m.streams = map[StreamID]*modelStream{}
	ids := slices.SortedFunc(maps.Keys(snap), func(x, y StreamID) int { return bytes.Compare(x[:], y[:]) })
	m.order = ids[:min(len(ids), m.cfg.MaxStreams)]
	for _, id := range m.order {
		m.streams[id] = &modelStream{next: snap[id], held: map[uint64]modelHeld{}, skipped: map[uint64]bool{}}
	}
}

func (m *model) held() int {
	n := 0
	for _, s := range m.streams {
		n += len(s.held)
	}
	return n
}

// TestAgainstModel runs random pushes, expiries, snapshots and restores on
// a Buffer and on the reference model and compares every output.
func TestAgainstModel(t *testing.T) {
	sawLate := false
	for seed := range uint64(300) {
		rng := seeded(seed)
		cfg := Config{
			MaxGapWait:           time.Duration(1+rng.IntN(120)) * time.Second,
			MaxBufferedPerStream: 1 + rng.IntN(8),
			MaxStreams:           1 + rng.IntN(6),
		}
		b, m := New[item](cfg), newModel(cfg)
		now := t0
		for op := range 400 {
			now = now.Add(time.Duration(rng.IntN(20)) * time.Second)
			switch r := rng.IntN(100); {
			case r < 75:
				s := byte(rng.IntN(7))
				var seq uint64
				if ms, ok := m.streams[sid(s)]; ok && ms.next < MaxSeq-20 {
					seq = ms.next
				}
				switch x := rng.IntN(100); {
				case x < 2:
					seq = []uint64{MaxSeq, math.MaxUint64, 1 << 40}[rng.IntN(3)]
				case x < 10:
					seq += uint64(rng.IntN(40))
				default:
					seq += uint64(rng.IntN(12))
					seq -= min(seq, uint64(rng.IntN(3)))
				}
				got := b.Push(now, sid(s), seq, item{s, seq})
				want := m.push(now, sid(s), seq, item{s, seq})
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d op %d: Push(%d, %d) = %v, model %v", seed, op, s, seq, got, want)
				}
			case r < 92:
				got, want := b.Expire(now), m.expire(now)
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d op %d: Expire = %v, model %v", seed, op, got, want)
				}
			default:
				snap := b.Snapshot()
				if want := m.snapshot(); !maps.Equal(snap, want) {
					t.Fatalf("seed %d op %d: Snapshot = %v, model %v", seed, op, snap, want)
				}
				switch rng.IntN(3) {
				case 0: // a restart: a fresh Buffer, fresh counters
					b = New[item](cfg)
					b.Restore(snap)
					m.restore(snap)
					m.stats = Stats{}
				case 1: // restoring in place keeps the counters
					b.Restore(snap)
					m.restore(snap)
				}
			}
			d, ok := b.NextDeadline()
			_, _, h, wantOK := m.first()
			if ok != wantOK || (ok && !d.Equal(h.deadline)) {
				t.Fatalf("seed %d op %d: NextDeadline = %v, %v; model %v, %v", seed, op, d, ok, h.deadline, wantOK)
			}
			st := b.Stats()
			want := m.stats
			want.Streams, want.Held = len(m.streams), m.held()
			if st != want {
				t.Fatalf("seed %d op %d: Stats = %+v, model %+v", seed, op, st, want)
			}
			sawLate = sawLate || st.Late > 0
		}
	}
	if !sawLate {
		t.Error("no run delivered a late message")
	}
}
