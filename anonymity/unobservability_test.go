package anonymity

import (
	"math/rand/v2"
	"testing"
	"time"
)

// clientLink makes a trace of one client's packets to its gateway: in each
// one-second window a Poisson stream at the idle or the busy rate.
func clientLink(windows int, idleRate, busyRate float64, seed uint64) (*Trace, []Window) {
	rng := rand.New(rand.NewPCG(seed, seed^5))
	tr := &Trace{Nodes: []Node{{Name: "client", Role: RoleClient}, {Name: "gateway", Role: RoleGateway}}}
	var ws []Window
	for i := range windows {
		w := Window{From: time.Duration(i) * time.Second, To: time.Duration(i+1) * time.Second, Busy: rng.IntN(2) == 1}
		rate := idleRate
		if w.Busy {
			rate = busyRate
		}
		t := w.From
		for rate > 0 {
			t += time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
			if t >= w.To {
				break
			}
			tr.Events = append(tr.Events, Event{At: t, From: 0, To: 1})
		}
		ws = append(ws, w)
	}
	return tr, ws
}

// With cover traffic the stream is the same idle or busy: the classifier
// does no better than a coin and KS finds no difference.
func TestUnobservabilityWithCover(t *testing.T) {
	tr, ws := clientLink(400, 50, 50, 21)
	res, err := Unobservability(tr, 0, ws)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accuracy > 0.6 {
		t.Errorf("same stream idle and busy: accuracy %.3f, want about 0.5", res.Accuracy)
	}
	if res.KSP < 0.01 {
		t.Errorf("same stream idle and busy: KS %.3f p %.4f, want no significant difference", res.KS, res.KSP)
	}
}

// Without cover an idle client is silent: the classifier is always right.
func TestUnobservabilityWithoutCover(t *testing.T) {
	tr, ws := clientLink(100, 0, 10, 22)
	res, err := Unobservability(tr, 0, ws)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accuracy < 0.99 || res.KS < 0.9 || res.KSP > 1e-6 {
		t.Errorf("silent when idle: accuracy %.3f KS %.3f p %.2g, want about 1, 1 and 0", res.Accuracy, res.KS, res.KSP)
	}
	if res.IdleRate != 0 || res.BusyRate < 8 || res.BusyRate > 12 {
		t.Errorf("rates %.2f idle and %.2f busy, want 0 and about 10", res.IdleRate, res.BusyRate)
	}
}

// A rate that rises by a fifth when busy (cover that does not absorb the
// real messages) is found too.
func TestUnobservabilityRateLeak(t *testing.T) {
	tr, ws := clientLink(400, 50, 60, 23)
	res, err := Unobservability(tr, 0, ws)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accuracy < 0.7 {
		t.Errorf("50 vs 60 packets a second: accuracy %.3f, want well above 0.5", res.Accuracy)
	}
}

func TestUnobservabilityRejects(t *testing.T) {
	tr, ws := clientLink(4, 1, 1, 24)
	if _, err := Unobservability(tr, 1, ws); err == nil {
		t.Error("a gateway accepted as the client")
	}
	if _, err := Unobservability(tr, 0, []Window{{From: 2, To: 1}}); err == nil {
		t.Error("a window that ends before it starts accepted")
	}
	if _, err := Unobservability(tr, 0, []Window{{From: 0, To: 1}}); err == nil {
		t.Error("no busy window accepted")
	}
}
