package framework

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peapod-mixnet/peapod/handlers"
)

// TestOutcomeCounts: recent counts cover the last recentMinutes minutes and
// forget older ones, even when a slot is reused; totals keep everything;
// concurrent adds are all counted.
func TestOutcomeCounts(t *testing.T) {
	var c outcomeCounts
	t0 := time.Unix(1_800_000_000, 0)
	c.add(t0, outcomeOK)
	c.add(t0.Add(30*time.Second), handlers.CodeTimeout)
	c.add(t0.Add(3*time.Minute), outcomeOK)
	c.add(t0, "some_code_of_a_service") // counted as other

	recent, total := c.read(t0.Add(3 * time.Minute))
	if want := [len(outcomes)]uint64{2, 0, 0, 0, 1, 0, 0, 1}; recent != want || total != want {
		t.Fatalf("after 3 minutes: recent %v, total %v, want both %v", recent, total, want)
	}
	// Ten minutes after t0's minute, its requests are no longer recent.
	later := t0.Add(recentMinutes * time.Minute)
	recent, _ = c.read(later)
	if want := [len(outcomes)]uint64{1}; recent != want {
		t.Fatalf("after %d minutes: recent %v, want %v", recentMinutes, recent, want)
	}
	// t0's slot is reused for a new minute: its old counts are gone.
	c.add(later, handlers.CodeOverloaded)
	recent, total = c.read(later)
	if want := [len(outcomes)]uint64{1, 0, 0, 0, 0, 1}; recent != want {
		t.Fatalf("after reuse: recent %v, want %v", recent, want)
	}
	if want := [len(outcomes)]uint64{2, 0, 0, 0, 1, 1, 0, 1}; total != want {
		t.Fatalf("total %v, want %v", total, want)
	}

	var wg sync.WaitGroup
	var d outcomeCounts
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 1000 {
				d.add(t0.Add(time.Duration(k)*time.Millisecond*100), outcomeOK)
			}
		}()
	}
	wg.Wait()
	if recent, total := d.read(t0.Add(100 * time.Second)); recent[0] != 8000 || total[0] != 8000 {
		t.Fatalf("concurrent adds: recent %d, total %d, want 8000", recent[0], total[0])
	}
}

// BenchmarkOutcomeCounts measures what the status page's counts add to a
// request: one outcomeCounts.add, beside the baseline of what count()
// already did for every request, the Prometheus counter's increment.
func BenchmarkOutcomeCounts(b *testing.B) {
	h := &Host{}
	h.metrics = newMetrics(prometheus.NewRegistry(), h) // its gauges are read only when gathered
	now := time.Now()
	b.Run("baseline-prometheus", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.metrics.requests.WithLabelValues("echo", outcomeOK).Inc()
			}
		})
	})
	b.Run("status-counts", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h.outcomes.add(now, outcomeOK)
			}
		})
	})
}
