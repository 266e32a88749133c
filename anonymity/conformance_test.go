package anonymity

import (
	"math/rand/v2"
	"testing"
	"time"
)

// probe sends packets one at a time through the synthetic network, each
// mixnode holding it for draw().
func probe(n int, draw func(*rand.Rand) time.Duration) *Trace {
	s := newSynthNet(2, 1, 2)
	rng := rand.New(rand.NewPCG(31, 32))
	t := time.Duration(0)
	for range n {
		d := []time.Duration{draw(rng), draw(rng), draw(rng)}
		p := s.send(0, 1, t, d, 0, rng)
		t = p.exitAt + time.Millisecond
	}
	s.trace.Sort()
	return &s.trace
}

func TestDelayConformanceExponential(t *testing.T) {
	mu := 15 * time.Millisecond
	tr := probe(200, func(r *rand.Rand) time.Duration { return time.Duration(r.ExpFloat64() * float64(mu)) })
	res := DelayConformance(tr, mu, 0, time.Hour)
	if len(res.Samples) != 600 {
		t.Fatalf("%d samples, want 600 (3 per probe)", len(res.Samples))
	}
	if res.KSP < 0.01 {
		t.Errorf("exponential delays: KS %.3f p %.4f, want them to conform", res.KS, res.KSP)
	}
	if res.Mean < 13*time.Millisecond || res.Mean > 17*time.Millisecond {
		t.Errorf("mean %v, want about 15ms", res.Mean)
	}
}

// Delays of the right mean but the wrong shape (uniform), or of the right
// shape and twice the mean, do not conform.
func TestDelayConformanceWrong(t *testing.T) {
	mu := 15 * time.Millisecond
	uniform := probe(200, func(r *rand.Rand) time.Duration { return time.Duration(r.Float64() * 2 * float64(mu)) })
	if res := DelayConformance(uniform, mu, 0, time.Hour); res.KSP > 1e-3 {
		t.Errorf("uniform delays: KS %.3f p %.4f, want a clear misfit", res.KS, res.KSP)
	}
	double := probe(200, func(r *rand.Rand) time.Duration { return time.Duration(r.ExpFloat64() * float64(2*mu)) })
	if res := DelayConformance(double, mu, 0, time.Hour); res.KSP > 1e-3 {
		t.Errorf("delays of twice the mean: KS %.3f p %.4f, want a clear misfit", res.KS, res.KSP)
	}
}

// Overlapping packets give no certain pairs: a node with two inside is
// not sampled.
func TestDelayConformanceSkipsAmbiguous(t *testing.T) {
	s := newSynthNet(2, 1, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	s.send(0, 1, 0, []time.Duration{10 * time.Millisecond, 0, 0}, 0, rng)
	s.send(1, 0, time.Millisecond, []time.Duration{10 * time.Millisecond, 0, 0}, 0, rng)
	s.trace.Sort()
	res := DelayConformance(&s.trace, 10*time.Millisecond, 0, time.Hour)
	for _, d := range res.Samples {
		if d > 0.005 {
			t.Errorf("sampled %.4f s at the overlapping layer-1 node", d)
		}
	}
	if len(res.Samples) != 4 {
		t.Errorf("%d samples, want 4 (layers 2 and 3 for each packet)", len(res.Samples))
	}
}

func TestKS(t *testing.T) {
	d, p := KSTwoSample([]float64{1, 2, 3}, []float64{1, 2, 3})
	if d != 0 || p != 1 {
		t.Errorf("identical samples: D %v p %v, want 0 and 1", d, p)
	}
	d, _ = KSTwoSample([]float64{1, 2, 3}, []float64{4, 5, 6})
	if d != 1 {
		t.Errorf("disjoint samples: D %v, want 1", d)
	}
	d, _ = KSOneSample([]float64{0.5}, func(x float64) float64 { return x })
	if d != 0.5 {
		t.Errorf("one point at the median: D %v, want 0.5", d)
	}
	if q := kolmogorovQ(1.36); q < 0.045 || q > 0.055 {
		t.Errorf("Q(1.36) = %v, want about 0.05", q)
	}
}
