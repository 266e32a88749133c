package anonymity

import (
	"fmt"
	"math"
	"time"
)

// EntropyResult is the sender anonymity of a set of delivered messages.
type EntropyResult struct {
	// Senders are the candidate senders (indices into Trace.Nodes), in the
	// order of the distributions' entries.
	Senders []int
	// Bits is the entropy of each target's sender distribution, in the
	// order of the targets.
	Bits []float64
	// Guess is the sender each target's distribution rates most likely
	// (an index into Trace.Nodes; the first of equals); Correct says
	// whether that was the true sender.
	Guess   []int
	Correct []bool
	// Mean and P5 are the mean and the 5th percentile of Bits; Max is
	// log2(len(Senders)), the entropy of a uniform distribution.
	Mean, P5, Max float64
	// Success is the share of targets whose Guess was right: the
	// adversary's success when it names the most likely sender.
	Success float64
	// Orphans counts data packets that left a node the adversary had seen
	// nothing enter (a packet it missed, or one a node made itself); they
	// leave with the node's last distribution, or a uniform one.
	Orphans int
}

// SenderEntropy computes Loopix's sender entropy for every target.
//
// The adversary follows the data packets through the stratified topology
// (clients → gateway → layer 1 → layer 2 → layer 3 → gateway → clients). A
// packet entering from a client is certainly that client's. Every node
// holds one pool per next hop kind (a gateway: the packets for layer 1 and
// those for its clients; a mixnode: those for the next layer), which keeps
// the mean sender distribution of the packets inside and their number.
// With exponential delays every packet in a pool is equally likely to be
// the next to leave, so a leaving packet takes the pool's mean, and the
// mean of those that stay is unchanged; an arriving packet is averaged in.
// This is the estimator of the Loopix paper's simulator.
//
// A packet the adversary saw enter a node and never leave (the node dropped
// it, or it was lost) would stay in the pool's count for good and dilute
// every later packet's distribution. With exponential delays of mean μ a
// packet inside for maxStay ≫ μ is gone all but certainly, so the pool
// forgets its oldest entry once it is older than maxStay (its leaving
// changes no mean); zero never forgets.
func SenderEntropy(t *Trace, targets []Target, maxStay time.Duration) (EntropyResult, error) {
	if err := t.Validate(); err != nil {
		return EntropyResult{}, err
	}
	senders := t.Senders()
	res := EntropyResult{Senders: senders}
	if len(senders) == 0 {
		return res, fmt.Errorf("anonymity: the trace has no data packet from a client")
	}
	res.Max = math.Log2(float64(len(senders)))
	pos := make(map[int]int, len(senders))
	for i, s := range senders {
		pos[s] = i
	}
	want := make(map[int][]int, len(targets)) // event index → target indices
	for i, tg := range targets {
		if tg.Event < 0 || tg.Event >= len(t.Events) {
			return res, fmt.Errorf("anonymity: target %d names event %d of %d", i, tg.Event, len(t.Events))
		}
		if e := t.Events[tg.Event]; e.Class != ClassData || !t.IsExit(e) {
			return res, fmt.Errorf("anonymity: target %d (event %d) is not a data packet from a gateway to a client", i, tg.Event)
		}
		want[tg.Event] = append(want[tg.Event], i)
	}
	dists := make([][]float64, len(targets))

	pools := make(map[poolKey]*pool)
	get := func(k poolKey) *pool {
		p := pools[k]
		if p == nil {
			p = &pool{mean: make([]float64, len(senders))}
			pools[k] = p
		}
		return p
	}
	oneHot := make([]float64, len(senders))
	for i, e := range t.Events {
		if e.Class != ClassData {
			continue
		}
		var carried []float64
		if t.Nodes[e.From].Role == RoleClient {
			clear(oneHot)
			oneHot[pos[e.From]] = 1
			carried = oneHot
		} else {
			var orphan bool
			carried, orphan = get(poolKey{e.From, hopKind(t.Nodes[e.To])}).leave(e.At, maxStay)
			if orphan {
				res.Orphans++
			}
		}
		for _, ti := range want[i] {
			dists[ti] = carried
		}
		if next, ok := nextHop(t.Nodes[e.From], t.Nodes[e.To]); ok {
			get(poolKey{e.To, next}).enter(carried, e.At, maxStay)
		}
	}

	res.Bits = make([]float64, len(targets))
	res.Guess = make([]int, len(targets))
	res.Correct = make([]bool, len(targets))
	right := 0
	for i, d := range dists {
		res.Bits[i] = Entropy(d)
		best := 0
		for j := range d {
			if d[j] > d[best] {
				best = j
			}
		}
		res.Guess[i] = senders[best]
		res.Correct[i] = senders[best] == targets[i].Sender
		if res.Correct[i] {
			right++
		}
	}
	if len(targets) > 0 {
		res.Mean = Mean(res.Bits)
		res.P5 = Percentile(res.Bits, 5)
		res.Success = float64(right) / float64(len(targets))
	}
	return res, nil
}

// Entropy is the Shannon entropy of the distribution p, in bits. Entries
// need not sum to exactly 1; they are normalised.
func Entropy(p []float64) float64 {
	var sum float64
	for _, v := range p {
		sum += v
	}
	if sum <= 0 {
		return 0
	}
	var h float64
	for _, v := range p {
		if v > 0 {
			q := v / sum
			h -= q * math.Log2(q)
		}
	}
	return h
}

// poolKey names a pool: the packets inside node that go next to a node of
// kind next (see hopKind).
type poolKey struct{ node, next int }

// hopKind numbers what a packet goes to: 0 a client, 1 a gateway, 1+L a
// mixnode of layer L.
func hopKind(n Node) int {
	switch n.Role {
	case RoleClient:
		return 0
	case RoleGateway:
		return 1
	}
	return 1 + n.Layer
}

// nextHop is the kind of node a packet that went from → to goes to after
// to, by the stratified topology; false when it goes nowhere the adversary
// follows (it arrived at a client, or off the topology).
func nextHop(from, to Node) (int, bool) {
	switch to.Role {
	case RoleGateway:
		switch {
		case from.Role == RoleClient:
			return 2, true // to layer 1
		case from.Role == RoleMixnode && from.Layer == Layers:
			return 0, true // to its clients
		}
	case RoleMixnode:
		if to.Layer == Layers {
			return 1, true // to a gateway
		}
		return 2 + to.Layer, true
	}
	return 0, false
}

// pool is the adversary's view of the packets inside a node that go to one
// kind of next hop.
type pool struct {
	n    int       // packets inside
	mean []float64 // their mean sender distribution
	seen bool      // whether mean was ever set
	// entered are the arrival times of the packets inside, oldest first
	// (which one leaves is unknown; the oldest is forgotten first).
	entered []time.Duration
}

// expire forgets the packets that entered more than maxStay before now.
func (p *pool) expire(now, maxStay time.Duration) {
	if maxStay <= 0 {
		return
	}
	k := 0
	for k < len(p.entered) && now-p.entered[k] > maxStay {
		k++
	}
	p.entered = p.entered[k:]
	p.n -= k
}

// enter averages v into the pool.
func (p *pool) enter(v []float64, now, maxStay time.Duration) {
	p.expire(now, maxStay)
	if p.n == 0 {
		copy(p.mean, v)
	} else {
		k := float64(p.n)
		for i := range p.mean {
			p.mean[i] = (k*p.mean[i] + v[i]) / (k + 1)
		}
	}
	p.n++
	p.entered = append(p.entered, now)
	p.seen = true
}

// leave returns the distribution of a packet leaving the pool, and whether
// the pool looked empty.
func (p *pool) leave(now, maxStay time.Duration) ([]float64, bool) {
	p.expire(now, maxStay)
	out := make([]float64, len(p.mean))
	if p.n == 0 {
		if p.seen {
			copy(out, p.mean)
		} else {
			for i := range out {
				out[i] = 1 / float64(len(out))
			}
		}
		return out, true
	}
	copy(out, p.mean)
	p.n--
	p.entered = p.entered[1:]
	return out, false
}

// MixOccupancy is the mean number of data packets inside a mixnode, over
// the mixnodes and the span of the trace (from its first event to its
// last): λ/μ in the Loopix paper's terms, the arrival rate at a node times
// the mean time a packet stays, which the paper wants at 2 or more.
func MixOccupancy(t *Trace) float64 {
	if len(t.Events) < 2 {
		return 0
	}
	inside := make(map[int]int)
	since := make(map[int]time.Duration)
	area := make(map[int]float64) // packet-seconds per mixnode
	step := func(node int, at time.Duration, d int) {
		area[node] += float64(inside[node]) * (at - since[node]).Seconds()
		since[node] = at
		inside[node] = max(0, inside[node]+d)
	}
	start := t.Events[0].At
	mixes := 0
	for i, n := range t.Nodes {
		if n.Role == RoleMixnode {
			mixes++
			since[i] = start
		}
	}
	if mixes == 0 {
		return 0
	}
	for _, e := range t.Events {
		if e.Class != ClassData {
			continue
		}
		if t.Nodes[e.From].Role == RoleMixnode {
			step(e.From, e.At, -1)
		}
		if t.Nodes[e.To].Role == RoleMixnode {
			step(e.To, e.At, +1)
		}
	}
	end := t.Events[len(t.Events)-1].At
	var total float64
	for node := range since {
		step(node, end, 0)
		total += area[node]
	}
	if end <= start {
		return 0
	}
	return total / float64(mixes) / (end - start).Seconds()
}
