package anonymity

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// TimingModel is what the timing attacker assumes about the network.
type TimingModel struct {
	// MeanDelay is the mean of the exponential delay senders chose per
	// mixing hop (public: the directory advertises it); zero for none.
	MeanDelay time.Duration
	// Hops is the number of mixing hops of a route. Default Layers.
	Hops int
	// Base is the time a packet needs through the network without mixing
	// delays; zero estimates it from the trace (see EstimateBase).
	Base time.Duration
	// Window is how long before a delivery the attacker looks for its
	// entry. Default the larger of 1 s and 30 mean delays per hop.
	Window time.Duration
}

// TimingResult is the outcome of a timing attack on a set of targets.
type TimingResult struct {
	// Guess is the sender named for each target (an index into
	// Trace.Nodes, -1 when no entry packet was in the window); Correct
	// says whether it was the true sender.
	Guess   []int
	Correct []bool
	// Success is the share of targets named right; Random is the success
	// of a uniform guess among the senders (1/number of senders), and
	// Advantage is Success/Random.
	Success, Random, Advantage float64
	// Base is the latency without mixing the attack used.
	Base time.Duration
	// Candidates is the mean number of entry packets in the window.
	Candidates float64
}

// TimingAttack runs the best simple timing attack: for each target it
// takes the data packets that entered the network in the window before the
// delivery and names the sender of the one whose time in the network is the
// most likely under the model: a sum of Hops exponential delays (a gamma
// density) after the base latency; with no mixing delay, the one whose time
// is closest to the base latency.
func TimingAttack(t *Trace, targets []Target, m TimingModel) (TimingResult, error) {
	if err := t.Validate(); err != nil {
		return TimingResult{}, err
	}
	if m.Hops == 0 {
		m.Hops = Layers
	}
	if m.MeanDelay < 0 || m.Hops < 0 || m.Base < 0 || m.Window < 0 {
		return TimingResult{}, errors.New("anonymity: negative TimingModel field")
	}
	if m.Window == 0 {
		m.Window = max(time.Second, 30*m.MeanDelay)
	}
	if m.Base == 0 {
		m.Base = EstimateBase(t, m.Hops)
	}
	senders := t.Senders()
	if len(senders) == 0 {
		return TimingResult{}, fmt.Errorf("anonymity: the trace has no data packet from a client")
	}
	var entries []Event
	for _, e := range t.Events {
		if e.Class == ClassData && t.IsEntry(e) {
			entries = append(entries, e)
		}
	}
	res := TimingResult{
		Guess: make([]int, len(targets)), Correct: make([]bool, len(targets)),
		Random: 1 / float64(len(senders)), Base: m.Base,
	}
	mu := m.MeanDelay.Seconds()
	score := func(x float64) float64 { // x: seconds in the network beyond Base
		if mu == 0 {
			return -math.Abs(x)
		}
		x = max(x, 1e-6)
		return float64(m.Hops-1)*math.Log(x) - x/mu
	}
	right, cands := 0, 0
	for i, tg := range targets {
		if tg.Event < 0 || tg.Event >= len(t.Events) {
			return res, fmt.Errorf("anonymity: target %d names event %d of %d", i, tg.Event, len(t.Events))
		}
		out := t.Events[tg.Event].At
		lo := sort.Search(len(entries), func(j int) bool { return entries[j].At >= out-m.Window })
		best, bestScore := -1, math.Inf(-1)
		for j := lo; j < len(entries) && entries[j].At <= out; j++ {
			cands++
			if s := score((out - entries[j].At - m.Base).Seconds()); s > bestScore {
				best, bestScore = entries[j].From, s
			}
		}
		res.Guess[i] = best
		res.Correct[i] = best == tg.Sender
		if res.Correct[i] {
			right++
		}
	}
	if len(targets) > 0 {
		res.Success = float64(right) / float64(len(targets))
		res.Candidates = float64(cands) / float64(len(targets))
	}
	res.Advantage = res.Success / res.Random
	return res, nil
}

// EstimateBase estimates from the trace the time a packet needs through a
// network of hops mixing hops without mixing delays: the median time a
// gateway, which does not delay, takes to pass a client's packet on to
// layer 1 (from the client's latest packet to the gateway's next one),
// times the hops+2 nodes of a route. Zero when the trace shows none.
func EstimateBase(t *Trace, hops int) time.Duration {
	last := make(map[int]time.Duration) // gateway → last data arrival from a client
	var samples []float64
	for _, e := range t.Events {
		if e.Class != ClassData {
			continue
		}
		from, to := t.Nodes[e.From], t.Nodes[e.To]
		switch {
		case from.Role == RoleClient && to.Role == RoleGateway:
			last[e.To] = e.At
		case from.Role == RoleGateway && to.Role == RoleMixnode:
			if at, ok := last[e.From]; ok {
				samples = append(samples, (e.At - at).Seconds())
				delete(last, e.From)
			}
		}
	}
	if len(samples) == 0 {
		return 0
	}
	return time.Duration(Percentile(samples, 50) * float64(hops+2) * float64(time.Second))
}
