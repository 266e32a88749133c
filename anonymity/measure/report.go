package measure

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/peapod-mixnet/peapod/anonymity"
	"github.com/peapod-mixnet/peapod/client"
)

// Markers returns the lines that open and close a generated section of
// docs/anonymity.md: "<!-- anonymity:begin -->" and "<!-- anonymity:end -->"
// for the unnamed one, "<!-- anonymity:NAME:begin -->" and so on for
// another. The text around them is written by hand.
func Markers(name string) (begin, end string) {
	if name != "" {
		name += ":"
	}
	return "<!-- anonymity:" + name + "begin -->", "<!-- anonymity:" + name + "end -->"
}

// DefaultCell is the cell of peapod's defaults: the client's default mean
// delay of 15 ms per hop, with cover traffic.
var DefaultCell = Cell{Delay: 15 * time.Millisecond, Cover: true}

// Section renders the results as the Markdown of the generated section:
// the command, the tables, the chart and the verdict on the target.
func Section(res *Result, command, chart string) string {
	var b strings.Builder
	cfg := res.Config
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("Measured %s on this machine (%d cores shared with the network) in %v, with:\n\n",
		res.Started.UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), res.Elapsed.Round(time.Second))
	p("```sh\n%s\n```\n\n", command)
	provider := "and a provider (echo plugin) that a share of %.0f%% of the messages go to as requests, answered on SURBs"
	if cfg.NoProvider {
		provider = "and no provider%.0s"
	}
	p("%d clients (`client run` processes, spread over %d gateways; 2 mixnodes per layer) "+provider+
		"; each client but one sends %.3g real one-packet messages a second (Poisson); the watched client is busy "+
		"(%.3g a second) or idle in random windows of %v; %v of traffic per cell; %d probes in cells without cover.\n\n",
		cfg.Clients, 2, cfg.ProviderShare*100, cfg.Rate, cfg.BusyRate, cfg.Window, cfg.Duration, cfg.Probes)
	if k := cfg.TimeScale; k > 1 {
		p("**Time scale %g.** The network ran %g times slower than these figures say: every mean delay and cover gap "+
			"×%g (15 ms a hop ran as %v, cover packets every %v and loops every %v on average), every message rate ÷%g "+
			"and the traffic %v a cell, so that the machine carried 1/%g of the load while every product of a rate and a "+
			"delay stayed as at scale 1 (the packets inside a mixnode, the cover packets per real one). The latencies "+
			"and packet rates below are divided and multiplied back; the processing times (handover, pass-through) are as measured.\n\n",
			k, k, k, cfg.scaled(15*time.Millisecond), cfg.scaled(client.DefaultCoverMainGap), cfg.scaled(client.DefaultCoverLoopGap),
			k, cfg.scaled(cfg.Duration), k)
	}

	p("### Sender anonymity and linkability\n\n")
	incomplete := false
	p("| mean delay/hop | cover | latency median (p95) | packets inside a mixnode (λ/μ) | senders N | log2 N | entropy mean | entropy 5th pct | log2 N − mean | tracking attack | timing attack | order attack | random guess | best ÷ random | targets (clear) |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range res.Cells {
		best, _ := c.BestAttack()
		delay := c.Delay.String()
		if c.Capture.Drops > 0 {
			delay += " ⚠"
			incomplete = true
		}
		p("| %s | %s | %s (%s) | %.2f | %d | %.2f | %.2f | %.2f | %.2f | %.3f | %.3f | %.3f | %.3f | %.1f× | %d (%d) |\n",
			delay, onOff(c.Cover), ms(res.unscaled(c.Latency)), ms(res.unscaled(c.P95)), c.Occupancy, c.Senders, c.Entropy.Max, c.Entropy.Mean, c.Entropy.P5,
			c.Entropy.Max-c.Entropy.Mean, c.Tracking, c.Timing.Success, c.Order.Success, c.Timing.Random,
			best/c.Timing.Random, c.Targets, c.Clear)
	}
	if incomplete {
		p("\n⚠ The capture's queue overflowed in this cell (the kernel dropped some of the capture's copies: see \"capture drops\" below), so the adversary missed packets and its figures there are not to be trusted.\n")
	}
	p("\n![Sender entropy and attack success against latency](%s)\n\n", chart)
	p("%s\n\n", verdict(res))

	p("### Unobservability of sending (the watched client's link, each way)\n\n")
	p("| mean delay/hop | cover | direction | data packets/s idle | busy | KS statistic (p) | classifier accuracy | windows idle/busy |\n")
	p("|---|---|---|---|---|---|---|---|\n")
	for _, c := range res.Cells {
		u := c.Unobs
		for _, d := range []struct {
			name string
			o    anonymity.LinkObservation
		}{{"client → gateway", u.Send}, {"gateway → client", u.Receive}} {
			p("| %v | %s | %s | %.1f | %.1f | %.3f (%s) | %.2f | %d/%d |\n", c.Delay, onOff(c.Cover), d.name,
				d.o.IdleRate*cfg.TimeScale, d.o.BusyRate*cfg.TimeScale, d.o.KS, pval(d.o.KSP), d.o.Accuracy, u.Idle, u.Busy)
		}
	}
	p("\n### Per-hop delay conformance (probes, cover off)\n\n")
	p("| mean delay/hop chosen | samples | mean applied | median applied (exponential: %.0f%% of the mean) | KS statistic vs exponential (p) | gateway pass-through (median) |\n", 100*math.Ln2)
	p("|---|---|---|---|---|---|\n")
	for _, c := range res.Cells {
		if k := c.Conformance; k != nil {
			want := k.Want.String()
			if cfg.TimeScale > 1 {
				want = fmt.Sprintf("%v (×%g: %v)", c.Delay, cfg.TimeScale, k.Want)
			}
			p("| %s | %d | %s | %s | %.3f (%s) | %s |\n", want, len(k.Samples), ms(k.Mean), ms(k.Median), k.KS, pval(k.KSP), ms(k.Processing))
		}
	}
	p("\n### What the capture saw\n\n")
	p("| mean delay/hop | cover | segments (between endpoints) | packets (data) | data packets per hop: c→gw, gw→L1, L1→L2, L2→L3, L3→gw, gw→c | unframed bytes | orphans | mixnode drops | capture drops | capture CPU | network CPU | handover median (p99) | packet sizes learnt (bytes) |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range res.Cells {
		cpu, netCPU := 0.0, 0.0
		if c.Elapsed > 0 {
			cpu = 100 * c.Capture.CPU.Seconds() / c.Elapsed.Seconds()
			netCPU = c.NetworkCPU.Seconds() / c.Elapsed.Seconds()
		}
		h := c.Trace.DataByHop
		p("| %v | %s | %d (%d) | %d (%d) | %d, %d, %d, %d, %d, %d | %d | %d | %s | %d | %.1f%% of a core | %.2f cores | %s (%s) | %s |\n", c.Delay, onOff(c.Cover),
			c.Trace.Segments, c.Trace.Linked, c.Trace.Events, c.Trace.DataEvents,
			h["client→gateway"], h["gateway→mix1"], h["mix1→mix2"], h["mix2→mix3"], h["mix3→gateway"], h["gateway→client"],
			c.Trace.UnframedBytes, c.Entropy.Orphans, drops(c.MixDrops), c.Capture.Drops, cpu, netCPU, ms(c.Handover), ms(c.HandoverP99), sizes(c.Trace.Sizes))
	}
	if res.Reruns > 0 {
		p("\n%d cell runs were discarded and run again because the directory's topology changed while they ran (an epoch began or a key rotated).\n", res.Reruns)
	}
	if res.LoadAvg != "" {
		p("\nLoad average of the machine when the measurement started (other work on it shares the cores): %s.\n", res.LoadAvg)
	}
	return b.String()
}

// verdict states the target for the default cell in numbers: mean sender
// entropy within 1 bit of log2(N), and the best attack no better than 2× a
// random guess.
func verdict(res *Result) string {
	for _, c := range res.Cells {
		if c.Cell != DefaultCell {
			continue
		}
		gap := c.Entropy.Max - c.Entropy.Mean
		best, name := c.BestAttack()
		ratio := best / c.Timing.Random
		var s []string
		if gap <= 1 {
			s = append(s, fmt.Sprintf("mean sender entropy %.2f bits is within 1 bit of log2(N) = %.2f (%.2f below): target met", c.Entropy.Mean, c.Entropy.Max, gap))
		} else {
			s = append(s, fmt.Sprintf("mean sender entropy %.2f bits is %.2f bits below log2(N) = %.2f: target missed by %.2f bits", c.Entropy.Mean, gap, c.Entropy.Max, gap-1))
		}
		if ratio <= 2 {
			s = append(s, fmt.Sprintf("the best attack (%s) names the sender %.1f%% of the time, %.2f× a random guess (%.1f%%): target met", name, 100*best, ratio, 100*c.Timing.Random))
		} else {
			s = append(s, fmt.Sprintf("the best attack (%s) names the sender %.1f%% of the time, %.2f× a random guess (%.1f%%): the target of 2× missed by a factor of %.2f", name, 100*best, ratio, 100*c.Timing.Random, ratio/2))
		}
		out := fmt.Sprintf("**Target, at the defaults (%v):** %s.", DefaultCell, strings.Join(s, "; "))
		if n := c.MixDrops["queue_full"] + c.MixDrops["delay_queue_full"] + c.MixDrops["outbound_queue_full"]; n > 0 || res.unscaled(c.Latency) > time.Second {
			out += fmt.Sprintf(" **But the network was saturated in this cell:** a message took %s (median) for %v of mean delay over 3 hops, "+
				"the mixnodes dropped %d packets for full queues, and the network's processes used %.2f of the machine's %d cores; "+
				"the anonymity comes from seconds of queueing, not from the chosen delays.",
				ms(res.unscaled(c.Latency)), 3*c.Delay, n, c.NetworkCPU.Seconds()/max(c.Elapsed.Seconds(), 1e-9), runtime.NumCPU())
		}
		return out
	}
	return "**Target:** the default cell (15 ms/hop, cover on) was not measured in this run."
}

// unscaled returns a duration measured in the network's time as at time
// scale 1.
func (res *Result) unscaled(d time.Duration) time.Duration {
	if res.Config.TimeScale <= 0 {
		return d
	}
	return time.Duration(float64(d) / res.Config.TimeScale)
}

// UpdateDoc replaces the generated section name of the Markdown file at
// path (between its Markers) with section, or appends it with the markers
// when the file has none.
func UpdateDoc(path, name, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("measure: %w", err)
	}
	begin, end := Markers(name)
	block := begin + "\n" + section + end
	var out []byte
	i, j := bytes.Index(old, []byte(begin)), bytes.Index(old, []byte(end))
	switch {
	case i >= 0 && j > i:
		out = append(append(append([]byte{}, old[:i]...), block...), old[j+len(end):]...)
	case i >= 0 || j >= 0:
		return fmt.Errorf("measure: %s has one marker of the generated section %q but not the other", path, name)
	default:
		out = append(append(old, '\n'), block+"\n"...)
	}
	return os.WriteFile(path, out, 0o644)
}

// drops lists the mixnodes' drops by reason, "0" for none.
func drops(m map[string]int) string {
	var parts []string
	for reason, n := range m {
		parts = append(parts, fmt.Sprintf("%d %s", n, reason))
	}
	if len(parts) == 0 {
		return "0"
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func pval(p float64) string {
	if p < 0.001 {
		return "p < 0.001"
	}
	return fmt.Sprintf("p = %.3f", p)
}

func sizes(m map[string][]int) string {
	var parts []string
	for _, k := range []string{"client→gateway", "node→node", "gateway→client"} {
		if v, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %v", k, v))
		}
	}
	return strings.Join(parts, "; ")
}
