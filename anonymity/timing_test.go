package anonymity

import (
	"testing"
	"time"
)

// Without mixing delays and with sparse traffic the attack must win: the
// only packet that entered just before a delivery is its own.
func TestTimingAttackDelayFree(t *testing.T) {
	s := newSynthNet(10, 2, 2)
	ps := s.poissonRun(0.5, 60*time.Second, 0, 100*time.Microsecond, 11)
	tg := s.targets(ps)
	res, err := TimingAttack(&s.trace, tg, TimingModel{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Success < 0.98 {
		t.Errorf("delay-free: success %.3f, want about 1", res.Success)
	}
	if res.Random != 0.1 || res.Advantage < 9 {
		t.Errorf("random %.3f advantage %.2f, want 0.1 and about 10", res.Random, res.Advantage)
	}
	// Five node hops of 100 µs each.
	if res.Base != 500*time.Microsecond {
		t.Errorf("estimated base latency %v, want 500µs", res.Base)
	}
}

// With delays long beside the gaps between entries, the attack is close to
// a random guess; with short ones it does far better. The same attacker
// against the same traffic, only the delay changes.
func TestTimingAttackAgainstDelay(t *testing.T) {
	run := func(mu time.Duration) TimingResult {
		s := newSynthNet(16, 2, 2)
		ps := s.poissonRun(10, 30*time.Second, mu, 50*time.Microsecond, 13)
		res, err := TimingAttack(&s.trace, s.targets(ps), TimingModel{MeanDelay: mu})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	long := run(200 * time.Millisecond)
	if long.Advantage > 2 {
		t.Errorf("200 ms delays: success %.3f is %.2f× a random guess, want under 2×", long.Success, long.Advantage)
	}
	short := run(200 * time.Microsecond)
	if short.Success < 0.5 {
		t.Errorf("0.2 ms delays: success %.3f, want over 0.5", short.Success)
	}
	if short.Success < 3*long.Success {
		t.Errorf("success %.3f with short delays, %.3f with long: want the short ones far easier", short.Success, long.Success)
	}
}

func TestTimingAttackRejects(t *testing.T) {
	s := newSynthNet(2, 1, 1)
	if _, err := TimingAttack(&s.trace, nil, TimingModel{MeanDelay: -1}); err == nil {
		t.Error("a negative delay accepted")
	}
	if _, err := TimingAttack(&s.trace, nil, TimingModel{}); err == nil {
		t.Error("a trace without senders accepted")
	}
}
