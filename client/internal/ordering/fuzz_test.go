package ordering

import (
	"testing"
	"time"
)

// FuzzBuffer runs arbitrary sequences of pushes, expiries and restarts
// (Snapshot, then Restore into a fresh Buffer). Properties: no panic; for
// every stream, delivered sequence numbers strictly increase, so none is
// delivered twice, across restarts included. Only a stream evicted to
// respect MaxStreams may start over; the test notices evictions by the
// stream leaving the snapshot.
func FuzzBuffer(f *testing.F) {
	f.Add([]byte{0, 3, 2, 0, 0, 1, 0, 0, 0, 0, 1, 0})
	f.Add([]byte{1, 1, 1, 0, 5, 9, 0, 5, 3, 2, 0, 255, 3, 0, 0, 0, 0, 7, 0, 2, 200})
	f.Add([]byte{7, 0, 0, 0, 1, 250, 0, 2, 250, 0, 3, 250, 0, 4, 250, 1, 100, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() byte {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return b
		}
		cfg := Config{
			MaxGapWait:           time.Duration(1+next()%60) * time.Second,
			MaxBufferedPerStream: 1 + int(next()%16),
			MaxStreams:           1 + int(next()%8),
		}
		b := New[item](cfg)
		now := t0
		last := map[byte]uint64{}               // per stream: highest delivered seq + 1
		delivered := map[byte]map[uint64]bool{} // per stream: every seq delivered
		late := uint64(0)                       // deliveries below last, this Buffer
		check := func(out []item) {
			for _, it := range out {
				if delivered[it.stream][it.seq] {
					t.Fatalf("stream %d: delivered %d twice", it.stream, it.seq)
				}
				if delivered[it.stream] == nil {
					delivered[it.stream] = map[uint64]bool{}
				}
				delivered[it.stream][it.seq] = true
				if it.seq+1 <= last[it.stream] {
					late++ // out of order: only a late message may be
				} else {
					last[it.stream] = it.seq + 1
				}
			}
			if st := b.Stats(); late > st.Late {
				t.Fatalf("%d messages delivered out of order, only %d counted late", late, st.Late)
			}
		}
		present := map[byte]bool{}
		for len(data) > 0 {
			switch op := next(); op % 4 {
			case 0, 1:
				s := next() % 10
				seq := uint64(next())
				if op&0x80 != 0 {
					seq = ^uint64(0) - uint64(next())
				}
				check(b.Push(now, sid(s), seq, item{s, seq}))
			case 2:
				now = now.Add(time.Duration(next()) * time.Second)
				check(b.Expire(now))
				if d, ok := b.NextDeadline(); ok && !d.After(now) {
					t.Fatalf("NextDeadline %v not after %v right after Expire", d, now)
				}
			case 3:
				snap := b.Snapshot()
				b = New[item](cfg)
				b.Restore(snap)
				late = 0
			}
			snap := b.Snapshot()
			for s := range present {
				if _, ok := snap[sid(s)]; !ok {
					delete(present, s)
					delete(last, s) // evicted: the stream may start over
					delete(delivered, s)
				}
			}
			for id, n := range snap {
				present[id[0]] = true
				if n < last[id[0]] {
					t.Fatalf("stream %d: next %d below what was delivered", id[0], n)
				}
			}
			if st := b.Stats(); st.Held > st.Streams*cfg.MaxBufferedPerStream || st.Streams > cfg.MaxStreams {
				t.Fatalf("stats above the bounds: %+v", st)
			}
		}
	})
}
