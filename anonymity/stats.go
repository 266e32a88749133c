package anonymity

import (
	"math"
	"slices"
)

// Mean is the arithmetic mean of xs, 0 for none.
func Mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// Percentile is the p-th percentile (0 to 100) of xs, interpolating
// linearly between order statistics; 0 for none.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	r := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(r))
	hi := int(math.Ceil(r))
	return s[lo] + (r-float64(lo))*(s[hi]-s[lo])
}

// KSTwoSample is the two-sample Kolmogorov-Smirnov statistic of a and b
// (the largest distance between their empirical distribution functions)
// and its asymptotic p-value: the probability of a distance at least as
// large if both came from one distribution.
func KSTwoSample(a, b []float64) (d, p float64) {
	if len(a) == 0 || len(b) == 0 {
		return 0, 1
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		v := min(x[i], y[j])
		for i < len(x) && x[i] == v {
			i++
		}
		for j < len(y) && y[j] == v {
			j++
		}
		d = max(d, math.Abs(float64(i)/float64(len(x))-float64(j)/float64(len(y))))
	}
	n := float64(len(x)) * float64(len(y)) / float64(len(x)+len(y))
	return d, kolmogorovQ((math.Sqrt(n) + 0.12 + 0.11/math.Sqrt(n)) * d)
}

// KSOneSample is the one-sample Kolmogorov-Smirnov statistic of xs against
// the distribution function cdf, and its asymptotic p-value.
func KSOneSample(xs []float64, cdf func(float64) float64) (d, p float64) {
	if len(xs) == 0 {
		return 0, 1
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := float64(len(s))
	for i, x := range s {
		f := cdf(x)
		d = max(d, float64(i+1)/n-f, f-float64(i)/n)
	}
	return d, kolmogorovQ((math.Sqrt(n) + 0.12 + 0.11/math.Sqrt(n)) * d)
}

// kolmogorovQ is the complementary distribution function of the
// Kolmogorov distribution, Q(λ) = 2 Σ (-1)^(k-1) exp(-2k²λ²).
func kolmogorovQ(lambda float64) float64 {
	if lambda < 0.2 {
		return 1
	}
	var sum float64
	sign := 1.0
	for k := 1; k <= 100; k++ {
		term := sign * math.Exp(-2*float64(k*k)*lambda*lambda)
		sum += term
		if math.Abs(term) < 1e-12 {
			break
		}
		sign = -sign
	}
	return min(1, max(0, 2*sum))
}
