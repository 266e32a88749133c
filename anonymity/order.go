package anonymity

import (
	"fmt"
	"time"
)

// OrderResult is the outcome of the order attack on a set of targets.
type OrderResult struct {
	// Guess is the sender named for each target (an index into
	// Trace.Nodes, -1 when the packet was followed back to nothing: it left
	// a node the adversary had seen nothing enter); Correct says whether
	// it was the true sender.
	Guess   []int
	Correct []bool
	// Success is the share of targets named right.
	Success float64
}

// OrderAttack follows every data packet on the assumption that nodes
// forward packets in the order they arrived: at each node a leaving packet
// is taken for the oldest one inside that goes to the same kind of next
// hop (the pools of SenderEntropy, kept as queues), and a target's guess is
// the client its packet is followed back to.
//
// Against exponential delays the order says nothing (any packet inside is
// as likely to leave next), and the attack does no better than a guess;
// without delays a node is a queue, and the attack follows every packet
// the node did not reorder, however many were inside. It is the attack
// the pool estimator of SenderEntropy, which assumes exponential delays,
// leaves out. A packet inside for longer than maxStay is taken for dropped
// and forgotten (zero never forgets).
func OrderAttack(t *Trace, targets []Target, maxStay time.Duration) (OrderResult, error) {
	if err := t.Validate(); err != nil {
		return OrderResult{}, err
	}
	want := make(map[int][]int, len(targets)) // event index → target indices
	for i, tg := range targets {
		if tg.Event < 0 || tg.Event >= len(t.Events) {
			return OrderResult{}, fmt.Errorf("anonymity: target %d names event %d of %d", i, tg.Event, len(t.Events))
		}
		want[tg.Event] = append(want[tg.Event], i)
	}
	res := OrderResult{Guess: make([]int, len(targets)), Correct: make([]bool, len(targets))}
	type inside struct {
		sender int
		at     time.Duration
	}
	queues := make(map[poolKey][]inside)
	for i, e := range t.Events {
		if e.Class != ClassData {
			continue
		}
		sender := -1
		if t.Nodes[e.From].Role == RoleClient {
			sender = e.From
		} else {
			k := poolKey{e.From, hopKind(t.Nodes[e.To])}
			q := queues[k]
			for len(q) > 0 && maxStay > 0 && e.At-q[0].at > maxStay {
				q = q[1:]
			}
			if len(q) > 0 {
				sender, q = q[0].sender, q[1:]
			}
			queues[k] = q
		}
		for _, ti := range want[i] {
			res.Guess[ti] = sender
		}
		if next, ok := nextHop(t.Nodes[e.From], t.Nodes[e.To]); ok {
			k := poolKey{e.To, next}
			queues[k] = append(queues[k], inside{sender, e.At})
		}
	}
	right := 0
	for i, tg := range targets {
		res.Correct[i] = res.Guess[i] == tg.Sender
		if res.Correct[i] {
			right++
		}
	}
	if len(targets) > 0 {
		res.Success = float64(right) / float64(len(targets))
	}
	return res, nil
}
