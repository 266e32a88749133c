package anonymity

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Window is a stretch of time in which a client was idle or busy (sending
// real messages).
type Window struct {
	From, To time.Duration
	Busy     bool
}

// UnobservabilityResult says how well the adversary tells a client's busy
// windows from its idle ones by the data packets on its link, each way.
type UnobservabilityResult struct {
	// Send is what the packets the client sends show; Receive what those
	// it receives show: a client whose cover packets are loops back to
	// itself receives fewer of them while real messages take their place.
	Send, Receive LinkObservation
	// Idle and Busy count the windows.
	Idle, Busy int
}

// LinkObservation is what one direction of a client's link shows.
type LinkObservation struct {
	// IdleRate and BusyRate are the data packets per second in each kind
	// of window.
	IdleRate, BusyRate float64
	// KS is the two-sample Kolmogorov-Smirnov statistic between the gaps
	// seen in idle and in busy windows, and KSP its p-value. A gap runs
	// from one packet (or the window's start) to the next (or its end), so
	// a silent window is one gap as long as itself.
	KS, KSP float64
	// Accuracy is the share of windows a threshold classifier on the packet
	// count labels right (two-fold cross-validation: trained on the even
	// windows and tested on the odd ones, then the other way round); 0.5 is
	// a coin's, 1 a certain distinction.
	Accuracy float64
}

// Unobservability measures whether the adversary can tell when the client
// (an index into Trace.Nodes) sends real messages, from the data packets
// on its link to its gateway, each way, during windows.
func Unobservability(t *Trace, client int, windows []Window) (UnobservabilityResult, error) {
	var res UnobservabilityResult
	if err := t.Validate(); err != nil {
		return res, err
	}
	if client < 0 || client >= len(t.Nodes) || t.Nodes[client].Role != RoleClient {
		return res, fmt.Errorf("anonymity: node %d is not a client", client)
	}
	for i, w := range windows {
		if w.To <= w.From {
			return res, fmt.Errorf("anonymity: window %d ends at %v, before it starts at %v", i, w.To, w.From)
		}
		if w.Busy {
			res.Busy++
		} else {
			res.Idle++
		}
	}
	if res.Idle == 0 || res.Busy == 0 {
		return res, errors.New("anonymity: need both idle and busy windows")
	}
	var sent, received []time.Duration
	for _, e := range t.Events {
		switch {
		case e.Class != ClassData:
		case e.From == client && t.IsEntry(e):
			sent = append(sent, e.At)
		case e.To == client && t.IsExit(e):
			received = append(received, e.At)
		}
	}
	res.Send = observe(sent, windows)
	res.Receive = observe(received, windows)
	return res, nil
}

// observe compares the packets at times (in order) in idle and busy
// windows.
func observe(times []time.Duration, windows []Window) LinkObservation {
	var res LinkObservation
	var gaps [2][]float64
	var dur [2]time.Duration
	var seen [2]int
	counts := make([]float64, len(windows))
	labels := make([]bool, len(windows))
	for i, w := range windows {
		k := 0
		if w.Busy {
			k = 1
		}
		lo, _ := slices.BinarySearch(times, w.From)
		hi, _ := slices.BinarySearch(times, w.To)
		prev := w.From
		for _, at := range times[lo:hi] {
			gaps[k] = append(gaps[k], (at - prev).Seconds())
			prev = at
		}
		gaps[k] = append(gaps[k], (w.To - prev).Seconds())
		dur[k] += w.To - w.From
		seen[k] += hi - lo
		counts[i] = float64(hi - lo)
		labels[i] = w.Busy
	}
	res.IdleRate = float64(seen[0]) / dur[0].Seconds()
	res.BusyRate = float64(seen[1]) / dur[1].Seconds()
	res.KS, res.KSP = KSTwoSample(gaps[0], gaps[1])
	res.Accuracy = crossValidate(counts, labels)
	return res
}

// crossValidate trains a threshold classifier on the even-indexed samples
// and tests it on the odd ones, then the other way round, and returns the
// share of test samples labelled right.
func crossValidate(x []float64, busy []bool) float64 {
	var folds [2][]int
	for i := range x {
		folds[i%2] = append(folds[i%2], i)
	}
	right, total := 0, 0
	for f := range 2 {
		thr, above := trainThreshold(x, busy, folds[f])
		for _, i := range folds[1-f] {
			if (x[i] > thr) == above == busy[i] {
				right++
			}
			total++
		}
	}
	if total == 0 {
		return 0
	}
	return float64(right) / float64(total)
}

// trainThreshold picks the threshold and direction (busy when above, or
// when not above) that label the samples idx best.
func trainThreshold(x []float64, busy []bool, idx []int) (thr float64, above bool) {
	cands := []float64{math.Inf(-1)}
	for _, i := range idx {
		cands = append(cands, x[i])
	}
	best := -1
	for _, c := range cands {
		for _, dir := range []bool{true, false} {
			n := 0
			for _, i := range idx {
				if (x[i] > c) == dir == busy[i] {
					n++
				}
			}
			if n > best {
				best, thr, above = n, c, dir
			}
		}
	}
	return thr, above
}
