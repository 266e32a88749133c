package measure

import (
	"context"
	"encoding/xml"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/anonymity/capture"
	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/internal/testnet"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// shortConfig is the short mode `make test` runs: few clients, a few
// seconds a cell.
func shortConfig(t *testing.T) Config {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a network of processes")
	}
	if err := capture.Available(); err != nil {
		t.Skipf("cannot capture here: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin, err := testnet.Build(ctx, testnet.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cfg := Config{
		Bin: bin, Dir: t.TempDir(), Seed: 1,
		Logf: func(format string, args ...any) {
			t.Logf("[%6.2fs] %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
		},
	}
	cfg.UseShortMode()
	return cfg
}

// TestMeasureShort is the short mode of `mixnet measure`: six clients and a
// provider, three cells of a few seconds. Without delays or cover the
// adversary must follow every message; with the default delay and cover it
// must lose most of them; the probes must find the delays the clients
// chose; and the capture must see every data packet on every hop.
func TestMeasureShort(t *testing.T) {
	cfg := shortConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cells) != 3 {
		t.Fatalf("%d cells measured, want 3", len(res.Cells))
	}
	for _, c := range res.Cells {
		if c.Sent < 20 || c.Delivered < c.Sent*9/10 || c.Targets < c.Delivered*8/10 {
			t.Errorf("%v: %d messages sent, %d delivered, %d found in the trace", c.Cell, c.Sent, c.Delivered, c.Targets)
		}
		if c.Senders != cfg.Clients+1 {
			t.Errorf("%v: %d senders in the trace, want %d clients and the provider", c.Cell, c.Senders, cfg.Clients)
		}
		// Every data packet crosses every hop once: the capture missed
		// none (a link it could not name would show as a short hop).
		// Bytes the framer could not split into packets (it lost a link's
		// framing for a while: one clean-clone run left 40 kB unframed
		// and 12 of 100 data packets uncounted on one hop) hide at most
		// one data packet per data packet's size.
		h := c.Trace.DataByHop
		in := h["client→gateway"]
		slack := in/20 + 5 + c.Trace.UnframedBytes/(sphinx.RegularPacket.Len()+wire.HeaderSize)
		for _, k := range []string{"gateway→mix1", "mix1→mix2", "mix2→mix3", "mix3→gateway", "gateway→client"} {
			if d := h[k] - in; d > slack || -d > slack {
				t.Errorf("%v: %d data packets on hop %s, %d entered (%d bytes unframed)", c.Cell, h[k], k, in, c.Trace.UnframedBytes)
			}
		}
		if c.Capture.Drops > 0 {
			t.Errorf("%v: the capture dropped %d packets", c.Cell, c.Capture.Drops)
		}
	}
	// The machine may be busy with other work (the network's processes
	// then stall and packets overlap in the nodes even without delays), so
	// the bounds compare rather than demand perfection.
	z, nc, def := res.Cells[0], res.Cells[1], res.Cells[2]
	if best, _ := z.BestAttack(); z.Entropy.Mean > 1 || best < 0.6 {
		t.Errorf("no delay, no cover: entropy %.2f bits, best attack %.2f; want the adversary to follow most messages", z.Entropy.Mean, best)
	}
	// Without cover an idle client sends little: nothing at all without
	// delays (with them, some packets of a busy window leave in the next
	// one), so a count of its packets tells idle from busy.
	if z.Unobs.Send.Accuracy < 0.8 {
		t.Errorf("no delay, no cover: idle and busy told apart with accuracy %.2f only; the idle client is silent", z.Unobs.Send.Accuracy)
	}
	for _, c := range []CellResult{z, nc} {
		if u := c.Unobs.Send; u.IdleRate > u.BusyRate/2 {
			t.Errorf("%v: the watched client sent %.1f data packets a second idle and %.1f busy; without cover idle is quieter", c.Cell, u.IdleRate, u.BusyRate)
		}
	}
	// Packets a node writes together (one Noise message) reach the next
	// at one instant, in an order the adversary does not see: some
	// deliveries are a coin toss between two, and more of them the busier
	// the machine (0.90 of the senders named on a quiet run, 0.57 at a
	// load average of 30). The attack must still beat a guess by far.
	if z.Order.Success < 3*z.Timing.Random {
		t.Errorf("no delay, no cover: the order attack named %.2f of the senders, a random guess %.2f; want at least three times the guess (nodes are queues then)", z.Order.Success, z.Timing.Random)
	}
	// The attacks' success is a share of a few dozen targets, which
	// arrive in bursts: a run at the defaults named 0.54 once where
	// others name 0.13-0.33. The bound is half the no-delay attack's
	// success plus two standard errors of a share of def.Clear targets.
	zBest, _ := z.BestAttack()
	half := zBest / 2
	bound := half + 2*math.Sqrt(half*(1-half)/float64(max(def.Clear, 1)))
	if defBest, name := def.BestAttack(); def.Entropy.Mean < z.Entropy.Mean+1 || defBest > bound {
		t.Errorf("defaults: entropy %.2f bits and best attack (%s) %.2f, against %.2f and %.2f without delay or cover; want far more anonymity (entropy 1 bit more, the attack at most %.2f)",
			def.Entropy.Mean, name, defBest, z.Entropy.Mean, zBest, bound)
	}
	k := nc.Conformance
	if k == nil || len(k.Samples) < cfg.Probes*2 {
		t.Fatalf("probes without cover: conformance %+v, want about 3 samples a probe", k)
	}
	// A node that ignored the delays would give a KS statistic near 1, one
	// that doubled them about 0.4.
	if k.KS > 0.25 {
		t.Errorf("applied delays: median %v, KS %.3f against the exponential of %v; want them to conform", k.Median, k.KS, k.Want)
	}
	if k.Want != cfg.scaled(nc.Delay) {
		t.Errorf("the probes' delays were measured against %v, want %v: the time scale was not applied", k.Want, cfg.scaled(nc.Delay))
	}
	// At time scale 2 the watched client's cover streams run at half
	// Nym's rates: 27.5 packets a second, 55 once the report multiplies
	// back (a stream at Nym's own rate would read 110).
	want := float64(time.Second/client.DefaultCoverMainGap + time.Second/client.DefaultCoverLoopGap)
	if idle := def.Unobs.Send.IdleRate * cfg.TimeScale; idle < want/2 || idle > want*1.5 {
		t.Errorf("defaults: the idle client sent %.1f data packets a second at scale 1, want about %.0f", idle, want)
	}

	// The report renders: the table has every cell, and the chart is SVG.
	sec := Section(res, "mixnet measure --short", "anonymity.svg")
	for _, want := range []string{"| 0s | off |", "| 15ms | off |", "| 15ms | on |", "**Target, at the defaults", "order attack"} {
		if !strings.Contains(sec, want) {
			t.Errorf("the report lacks %q:\n%s", want, sec)
		}
	}
	if err := xml.Unmarshal(Chart(res), new(struct{ XMLName xml.Name })); err != nil {
		t.Errorf("the chart is not XML: %v", err)
	}
	t.Logf("report:\n%s", sec)
}
