package anonymity

import (
	"math"
	"time"
)

// ConformanceResult compares the per-hop delays mixnodes applied with the
// exponential the senders chose.
type ConformanceResult struct {
	// Samples are the delays measured at mixnodes, in seconds: from a data
	// packet entering an empty mixnode to the next data packet leaving it,
	// when no other entered in between (so the pair is certain).
	Samples []float64
	// Mean and Median are their mean and median, beside Want, the mean
	// the senders chose (whose exponential has median Want·ln 2).
	Mean, Median, Want time.Duration
	// KS is the one-sample Kolmogorov-Smirnov statistic of the samples
	// against the exponential of mean Want, and KSP its p-value.
	KS, KSP float64
	// Processing is the median time a gateway (which adds no delay) took
	// to pass a packet on, measured the same way: the part of each sample
	// that is not the chosen delay.
	Processing time.Duration
}

// DelayConformance measures the delays the mixnodes applied to the data
// packets seen in [from, to), which should be a stretch with one packet in
// flight at a time (a probe), so that each node's input and output pair up
// with certainty, and tests them against an exponential of mean want.
func DelayConformance(t *Trace, want time.Duration, from, to time.Duration) ConformanceResult {
	res := ConformanceResult{Want: want}
	inside := make(map[int]int)                 // node → data packets inside
	enteredEmpty := make(map[int]time.Duration) // node → arrival into an empty node, still alone
	var gateway []float64
	for _, e := range t.Events {
		if e.At < from || e.At >= to || e.Class != ClassData {
			continue
		}
		if n := t.Nodes[e.From].Role; n == RoleMixnode || n == RoleGateway {
			if at, ok := enteredEmpty[e.From]; ok {
				d := (e.At - at).Seconds()
				if n == RoleMixnode {
					res.Samples = append(res.Samples, d)
				} else {
					gateway = append(gateway, d)
				}
				delete(enteredEmpty, e.From)
			}
			inside[e.From] = max(0, inside[e.From]-1)
		}
		if n := t.Nodes[e.To].Role; n == RoleMixnode || n == RoleGateway {
			if inside[e.To] == 0 {
				enteredEmpty[e.To] = e.At
			} else {
				delete(enteredEmpty, e.To) // no longer certain
			}
			inside[e.To]++
		}
	}
	if len(gateway) > 0 {
		res.Processing = time.Duration(Percentile(gateway, 50) * float64(time.Second))
	}
	if len(res.Samples) == 0 {
		res.KSP = 1
		return res
	}
	res.Mean = time.Duration(Mean(res.Samples) * float64(time.Second))
	res.Median = time.Duration(Percentile(res.Samples, 50) * float64(time.Second))
	mu := want.Seconds()
	res.KS, res.KSP = KSOneSample(res.Samples, func(x float64) float64 {
		if mu == 0 {
			return 1 // all mass at zero
		}
		return 1 - math.Exp(-max(x, 0)/mu)
	})
	return res
}
