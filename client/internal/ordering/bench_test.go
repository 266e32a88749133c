package ordering

import "testing"

// BenchmarkPushInOrder is the common case and the baseline: every message
// is the next expected one.
func BenchmarkPushInOrder(b *testing.B) {
	buf := New[int](Config{})
	var seq uint64
	b.ReportAllocs()
	for b.Loop() {
		if len(buf.Push(t0, sid(1), seq, 0)) != 1 {
			b.Fatal("not delivered")
		}
		seq++
	}
}

// BenchmarkPushSwapped delivers messages swapped in pairs: every other one
// is held and released by the next.
func BenchmarkPushSwapped(b *testing.B) {
	buf := New[int](Config{})
	var seq uint64
	b.ReportAllocs()
	for b.Loop() {
		buf.Push(t0, sid(1), seq^1, 0)
		seq++
	}
}
