package testnet

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A comm with spaces and parentheses, as a process may name itself.
	line := "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 4 0 987654 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.comm != "my (odd) prog" || st.cpu != 300*clockTick || st.children != 10*clockTick || st.startTime != 987654 {
		t.Fatalf("parsed %+v", st)
	}
	for _, bad := range []string{"", "1 (x) S", "1 x S 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", strings.Replace(line, " 250 ", " -5 ", 1)} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
	// This process's own file parses, and its CPU time only grows.
	a, err := readStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	b, err := readStat(os.Getpid())
	if err != nil || b.cpu < a.cpu || b.startTime != a.startTime {
		t.Fatalf("%+v then %+v (%v)", a, b, err)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (x) S 1 1 1 0 -1 0 0 0 0 0 5 6 7 8 20 0 1 0 99 0 0"))
	f.Add([]byte("1 (a) b) R"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseStat(b)
		if err == nil && (st.cpu < 0 || st.children < 0) {
			t.Fatalf("negative CPU time from %q", b)
		}
	})
}

func TestSumMetric(t *testing.T) {
	text := `# HELP packets_dropped_total Packets dropped.
# TYPE packets_dropped_total counter
packets_dropped_total{reason="replay"} 3
packets_dropped_total{reason="authentication"} 4
packets_dropped_total{reason="replay",extra="x"} 2 1700000000000
queue_depth{queue="work"} 7
`
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
		ok     bool
	}{
		{"packets_dropped_total", []string{"reason", "replay"}, 5, true},
		{"packets_dropped_total", nil, 9, true},
		{"queue_depth", []string{"queue", "work"}, 7, true},
		{"queue_depth", []string{"queue", "delay"}, 0, false},
		{"packets_dropped", nil, 0, false},
	} {
		got, err := sumMetric(strings.NewReader(text), c.name, c.labels...)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%s%v = %v, %v; want %v (ok %v)", c.name, c.labels, got, err, c.want, c.ok)
		}
	}
	if _, err := sumMetric(strings.NewReader(text), "x", "odd"); err == nil {
		t.Error("an odd label list was accepted")
	}
}

func FuzzSumMetric(f *testing.F) {
	f.Add("a{b=\"c\"} 1\na 2\n", "a")
	f.Fuzz(func(t *testing.T, text, name string) {
		sumMetric(strings.NewReader(text), name) // must not panic
	})
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{50: 50, 99: 99, 100: 100, 0: 1, 1: 1} {
		if got := Percentile(d, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if Percentile(nil, 50) != 0 {
		t.Error("the percentile of nothing is not 0")
	}
}

func TestTrackerReport(t *testing.T) {
	tr := NewTracker()
	for _, id := range []string{"a", "b", "c", "d"} {
		tr.Sent(id)
	}
	tr.Resent("c")
	tr.Got("a", OutcomeOK)
	tr.Got("a", OutcomeOK) // a duplicate
	tr.Got("b", "overloaded")
	tr.Got("c", OutcomeOK)
	tr.Got("c", OutcomeOK) // the answer to the resend
	tr.Got("zz", OutcomeOK)
	r := tr.Report()
	if r.Sent != 4 || r.Delivered != 3 || r.Lost != 1 || r.Duplicated != 1 || r.Answered != 1 ||
		r.Resent != 1 || r.Unknown != 1 || r.Outcomes[OutcomeOK] != 2 || r.Outcomes["overloaded"] != 1 ||
		len(r.Missing) != 1 || r.Missing[0] != "d" {
		t.Fatalf("report %+v", r)
	}
}
