package anonymity

import (
	"testing"
	"time"
)

// Without delays but with traffic dense enough that every node holds
// several packets at once, the pool estimator (which assumes exponential
// delays) sees mixing that is not there; the order attack follows every
// packet, since each node is a queue.
func TestOrderAttackDelayFree(t *testing.T) {
	s := newSynthNet(16, 2, 2)
	// 16 clients × 100 packets a second, 2 ms at every node: about 1.6
	// packets inside each mixnode at any time.
	ps := s.poissonRun(100, 5*time.Second, 0, 2*time.Millisecond, 21)
	tg := s.targets(ps)
	order, err := OrderAttack(&s.trace, tg, 0)
	if err != nil {
		t.Fatal(err)
	}
	if order.Success < 0.99 {
		t.Errorf("order attack on queues: success %.3f, want about 1", order.Success)
	}
	pool, err := SenderEntropy(&s.trace, tg, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("no delay: order attack %.3f; pool estimator %.2f bits, right %.3f", order.Success, pool.Mean, pool.Success)
	if pool.Mean < 1 {
		t.Errorf("pool estimator: %.2f bits; want the dense traffic to look mixed to it (the case the order attack is for)", pool.Mean)
	}
}

// Against exponential delays long beside the gaps between packets the
// order of arrival says nothing: the attack is about a random guess.
func TestOrderAttackAgainstDelay(t *testing.T) {
	s := newSynthNet(16, 2, 2)
	ps := s.poissonRun(10, 30*time.Second, 200*time.Millisecond, 50*time.Microsecond, 23)
	tg := s.targets(ps)
	res, err := OrderAttack(&s.trace, tg, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("200 ms delays: order attack %.3f", res.Success)
	if random := 1.0 / 16; res.Success > 2*random {
		t.Errorf("200 ms delays: success %.3f, over twice a random guess (%.3f)", res.Success, random)
	}
	if _, err := OrderAttack(&s.trace, []Target{{Event: len(s.trace.Events)}}, 0); err == nil {
		t.Error("a target past the trace accepted")
	}
}
