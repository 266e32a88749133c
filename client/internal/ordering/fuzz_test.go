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
		last := map[byte]uint64{} // per stream: last delivered seq + 1
		check := func(out []item) {
			for _, it := range out {
				if it.seq+1 <= last[it.stream] {
					t.Fatalf("stream %d: delivered %d after %d", it.stream, it.seq, last[it.stream]-1)
				}
				last[it.stream] = it.seq + 1
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
			}
			snap := b.Snapshot()
			for s := range present {
				if _, ok := snap[sid(s)]; !ok {
					delete(present, s)
					delete(last, s) // evicted: the stream may start over
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
