package anonymity

import (
	"math/rand/v2"
	"testing"
	"time"
)

// randomWindows makes n one-second windows, each busy or idle at random.
func randomWindows(n int, seed uint64) []Window {
	rng := rand.New(rand.NewPCG(seed, seed^7))
	var ws []Window
	for i := range n {
		ws = append(ws, Window{From: time.Duration(i) * time.Second, To: time.Duration(i+1) * time.Second, Busy: rng.IntN(2) == 1})
	}
	return ws
}

// poissonLink adds to tr the packets of a Poisson stream from node from to
// node to, at the idle or the busy rate of each window.
func poissonLink(tr *Trace, from, to int, ws []Window, idleRate, busyRate float64, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed^5))
	for _, w := range ws {
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
			tr.Events = append(tr.Events, Event{At: t, From: from, To: to})
		}
	}
	tr.Sort()
}

// clientLink makes a trace of one client's packets to its gateway: in each
// one-second window a Poisson stream at the idle or the busy rate.
func clientLink(windows int, idleRate, busyRate float64, seed uint64) (*Trace, []Window) {
	tr := &Trace{Nodes: []Node{{Name: "client", Role: RoleClient}, {Name: "gateway", Role: RoleGateway}}}
	ws := randomWindows(windows, seed)
	poissonLink(tr, 0, 1, ws, idleRate, busyRate, seed)
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
	if res.Send.Accuracy > 0.6 {
		t.Errorf("same stream idle and busy: accuracy %.3f, want about 0.5", res.Send.Accuracy)
	}
	if res.Send.KSP < 0.01 {
		t.Errorf("same stream idle and busy: KS %.3f p %.4f, want no significant difference", res.Send.KS, res.Send.KSP)
	}
}

// Without cover an idle client is silent: the classifier is always right.
func TestUnobservabilityWithoutCover(t *testing.T) {
	tr, ws := clientLink(100, 0, 10, 22)
	res, err := Unobservability(tr, 0, ws)
	if err != nil {
		t.Fatal(err)
	}
	if res.Send.Accuracy < 0.99 || res.Send.KS < 0.9 || res.Send.KSP > 1e-6 {
		t.Errorf("silent when idle: accuracy %.3f KS %.3f p %.2g, want about 1, 1 and 0", res.Send.Accuracy, res.Send.KS, res.Send.KSP)
	}
	if res.Send.IdleRate != 0 || res.Send.BusyRate < 8 || res.Send.BusyRate > 12 {
		t.Errorf("rates %.2f idle and %.2f busy, want 0 and about 10", res.Send.IdleRate, res.Send.BusyRate)
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
	if res.Send.Accuracy < 0.65 { // the best threshold gets about 0.75; a coin 0.5 ± 0.025
		t.Errorf("50 vs 60 packets a second: accuracy %.3f, want well above 0.5", res.Send.Accuracy)
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

// A client whose cover is loops to itself receives fewer of them while it
// is busy: the receiving side of its link shows what the sending side
// hides.
func TestUnobservabilityReceiveSide(t *testing.T) {
	tr, ws := clientLink(400, 50, 50, 25)
	// The gateway returns the client's loops: 55 a second when idle, 45
	// when 10 a second of its stream are real messages to others.
	poissonLink(tr, 1, 0, ws, 55, 45, 26)
	res, err := Unobservability(tr, 0, ws)
	if err != nil {
		t.Fatal(err)
	}
	if res.Send.Accuracy > 0.6 {
		t.Errorf("send side: accuracy %.3f, want about 0.5", res.Send.Accuracy)
	}
	if res.Receive.Accuracy < 0.65 {
		t.Errorf("receive side: accuracy %.3f, want well above 0.5", res.Receive.Accuracy)
	}
}
