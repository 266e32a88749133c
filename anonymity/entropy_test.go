package anonymity

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// An ideal mix: every packet is inside layer 1 before any leaves, so every
// delivered packet could be anyone's: exactly log2(N) bits, and naming the
// most likely sender is right for one message in N.
func TestSenderEntropyIdealMix(t *testing.T) {
	const n = 8
	s := newSynthNet(n, 1, 1)
	rng := rand.New(rand.NewPCG(1, 2))
	var ps []synthPacket
	for i := range n {
		// Entering 1 ms apart, each held at layer 1 until 100 ms.
		in := time.Duration(i) * time.Millisecond
		hold := 100*time.Millisecond - in + time.Duration(i)*time.Microsecond
		ps = append(ps, s.send(i, (i+1)%n, in, []time.Duration{hold, 0, 0}, time.Microsecond, rng))
	}
	tg := s.targets(ps)
	if len(tg) != n {
		t.Fatalf("found %d targets, want %d", len(tg), n)
	}
	res, err := SenderEntropy(&s.trace, tg, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range res.Bits {
		if math.Abs(b-3) > 1e-9 {
			t.Errorf("message %d: %.6f bits, want exactly log2(8) = 3", i, b)
		}
	}
	if res.Max != 3 || math.Abs(res.Mean-3) > 1e-9 || math.Abs(res.P5-3) > 1e-9 {
		t.Errorf("max %.3f mean %.3f p5 %.3f, want 3 each", res.Max, res.Mean, res.P5)
	}
	if math.Abs(res.Success-1.0/n) > 1e-9 {
		t.Errorf("most-likely guess right for %.3f of the messages, want 1/8", res.Success)
	}
	if res.Orphans != 0 {
		t.Errorf("%d orphans in a complete trace", res.Orphans)
	}
	// Two targets naming one delivery get the same distribution.
	twice, err := SenderEntropy(&s.trace, []Target{tg[0], tg[0]}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if twice.Bits[0] != 3 || twice.Bits[1] != 3 {
		t.Errorf("one delivery named twice: %v bits, want 3 and 3", twice.Bits)
	}
}

// A hand-computed Poisson mix: A and B enter layer 1, one leaves (1 bit),
// then C enters and one leaves: the pool held (½A+½B) and C, so the second
// packet is ¼A ¼B ½C, 1.5 bits.
func TestSenderEntropyHandComputed(t *testing.T) {
	s := newSynthNet(3, 1, 1)
	gw, l1, l2, l3 := s.gateways[0], s.layers[0][0], s.layers[1][0], s.layers[2][0]
	ms := time.Millisecond
	var evs []Event
	path := func(at time.Duration, to int) {
		evs = append(evs, Event{At: at, From: l1, To: l2}, Event{At: at + 1, From: l2, To: l3},
			Event{At: at + 2, From: l3, To: gw}, Event{At: at + 3, From: gw, To: s.clients[to]})
	}
	evs = append(evs,
		Event{At: 1 * ms, From: s.clients[0], To: gw}, Event{At: 1*ms + 1, From: gw, To: l1},
		Event{At: 2 * ms, From: s.clients[1], To: gw}, Event{At: 2*ms + 1, From: gw, To: l1})
	path(3*ms, 2)
	evs = append(evs, Event{At: 4 * ms, From: s.clients[2], To: gw}, Event{At: 4*ms + 1, From: gw, To: l1})
	path(5*ms, 0)
	s.trace.Events = evs
	s.trace.Sort()
	exits := []int{}
	for i, e := range s.trace.Events {
		if s.trace.IsExit(e) {
			exits = append(exits, i)
		}
	}
	res, err := SenderEntropy(&s.trace, []Target{{exits[0], s.clients[0]}, {exits[1], s.clients[2]}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(res.Bits[0]-1) > 1e-9 || math.Abs(res.Bits[1]-1.5) > 1e-9 {
		t.Errorf("entropies %.6f and %.6f, want 1 and 1.5", res.Bits[0], res.Bits[1])
	}
	if res.Guess[1] != s.clients[2] || !res.Correct[1] {
		t.Errorf("second message guessed %d, want client C (%d)", res.Guess[1], s.clients[2])
	}
}

// Without delays and with sparse traffic every packet is alone in every
// node: the adversary follows each one, entropy 0, always right.
func TestSenderEntropyDelayFree(t *testing.T) {
	s := newSynthNet(10, 2, 2)
	ps := s.poissonRun(0.5, 60*time.Second, 0, 50*time.Microsecond, 7)
	tg := s.targets(ps)
	res, err := SenderEntropy(&s.trace, tg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(tg) < 200 {
		t.Fatalf("only %d targets", len(tg))
	}
	if res.Mean > 0.05 || res.Success < 0.98 {
		t.Errorf("delay-free: mean %.3f bits, success %.3f; want about 0 bits and always right", res.Mean, res.Success)
	}
}

// With delays far longer than the gaps between packets, the pools hold
// many packets and the entropy nears its maximum.
func TestSenderEntropyWellMixed(t *testing.T) {
	s := newSynthNet(16, 2, 2)
	ps := s.poissonRun(20, 20*time.Second, 100*time.Millisecond, 50*time.Microsecond, 9)
	tg := s.targets(ps)
	res, err := SenderEntropy(&s.trace, tg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Max != 4 {
		t.Fatalf("max %.3f, want log2(16) = 4", res.Max)
	}
	// Targets in the first second leave before the pools fill: skip them.
	var late []float64
	for i, tgt := range tg {
		if s.trace.Events[tgt.Event].At > 2*time.Second {
			late = append(late, res.Bits[i])
		}
	}
	if m := Mean(late); m < 3.8 {
		t.Errorf("well mixed: mean %.3f bits, want within 0.2 of 4", m)
	}
	if res.Success > 2.0/16 {
		t.Errorf("well mixed: most-likely guess right for %.3f, want near 1/16", res.Success)
	}
}

func TestSenderEntropyRejectsBadTargets(t *testing.T) {
	s := newSynthNet(2, 1, 1)
	rng := rand.New(rand.NewPCG(3, 4))
	ps := []synthPacket{s.send(0, 1, 0, []time.Duration{0, 0, 0}, time.Microsecond, rng)}
	s.targets(ps)
	if _, err := SenderEntropy(&s.trace, []Target{{Event: 0, Sender: 0}}, 0); err == nil {
		t.Error("an entry packet accepted as a target")
	}
	if _, err := SenderEntropy(&s.trace, []Target{{Event: 99, Sender: 0}}, 0); err == nil {
		t.Error("an event out of range accepted as a target")
	}
	bad := Trace{Nodes: s.trace.Nodes, Events: []Event{{At: 2}, {At: 1}}}
	if _, err := SenderEntropy(&bad, nil, 0); err == nil {
		t.Error("events out of order accepted")
	}
}

func TestEntropy(t *testing.T) {
	for _, c := range []struct {
		p    []float64
		want float64
	}{
		{[]float64{1, 0, 0}, 0},
		{[]float64{0.5, 0.5}, 1},
		{[]float64{1, 1, 1, 1}, 2}, // normalised
		{[]float64{0.25, 0.25, 0.5}, 1.5},
		{nil, 0},
	} {
		if got := Entropy(c.p); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Entropy(%v) = %v, want %v", c.p, got, c.want)
		}
	}
}

// Three mixnodes (one per layer), each holding every packet 10 ms, with a
// packet entering every 5 ms: two inside each on average (Little's law).
func TestMixOccupancy(t *testing.T) {
	s := newSynthNet(2, 1, 1)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 2000 {
		s.send(i%2, (i+1)%2, time.Duration(i)*5*time.Millisecond, []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}, 0, rng)
	}
	s.trace.Sort()
	if got := MixOccupancy(&s.trace); math.Abs(got-2) > 0.02 {
		t.Errorf("occupancy %.3f, want 2", got)
	}
}

// A mixnode that drops some packets leaves them in the adversary's count
// for good: every later packet's distribution is diluted by them, unless
// the pool forgets packets inside for far longer than the delays.
func TestSenderEntropyForgetsDroppedPackets(t *testing.T) {
	s := newSynthNet(10, 2, 2)
	ps := s.poissonRun(0.5, 120*time.Second, 0, 50*time.Microsecond, 17)
	tg := s.targets(ps)
	// Layer 1 drops one packet in 20: add the arrivals of packets that
	// never leave.
	rng := rand.New(rand.NewPCG(8, 9))
	for i, n := 0, len(s.trace.Events); i < n; i++ {
		e := s.trace.Events[i]
		if s.trace.IsEntry(e) && rng.IntN(20) == 0 {
			s.trace.Events = append(s.trace.Events,
				Event{At: e.At + 10*time.Microsecond, From: e.From, To: e.To},
				Event{At: e.At + 20*time.Microsecond, From: e.To, To: s.layers[0][rng.IntN(2)]})
		}
	}
	tg = s.targets(ps) // the events moved
	diluted, err := SenderEntropy(&s.trace, tg, 0)
	if err != nil {
		t.Fatal(err)
	}
	forgetting, err := SenderEntropy(&s.trace, tg, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if diluted.Mean < 1 {
		t.Errorf("never forgetting: mean %.2f bits; the dropped packets should dilute it", diluted.Mean)
	}
	// Within a second of a drop the next packets still meet the dropped
	// one: a little entropy remains.
	if forgetting.Mean > diluted.Mean/3 || forgetting.Success < 0.95 {
		t.Errorf("forgetting after 1 s: mean %.2f bits (%.2f never forgetting), success %.2f; want the delay-free network followed",
			forgetting.Mean, diluted.Mean, forgetting.Success)
	}
}
