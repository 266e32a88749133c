// Package measure runs a peapod network of processes on this machine,
// drives its clients, records every link with package anonymity/capture
// and computes the estimators of package anonymity for each cell of a grid
// of mean mixing delays and cover traffic on or off; report.go writes the
// results as docs/anonymity.md and chart.go as an SVG chart. `mixnet
// measure` and `make anonymity` run it.
//
// Each cell starts fresh clients (Config.Clients `client run` processes,
// spread over the gateways, and a provider with the echo plugin) with the
// cell's delay and cover flags while the capture runs, waits for them to
// settle (Config.Warmup; in a cell without cover, after every client has
// sent itself a few messages, which open the links between nodes), and
// then:
//
//   - every client but the first sends real one-packet messages as a
//     Poisson stream of Config.Rate a second, each to another client or,
//     one in Config.ProviderShare, as a request to the provider, whose
//     reply comes back on the requester's SURBs;
//   - the first client is the watched one: in windows of Config.Window it
//     is busy (Config.BusyRate messages a second) or idle (none), half of
//     the windows each, in a random order, for the unobservability
//     estimator;
//   - once every message has arrived (or Config.Drain has passed) and when
//     cover traffic is off, a probe sends Config.Probes messages one at a
//     time, each only after the last arrived, so that each mixnode's input
//     and output pair up with certainty, for the delay-conformance
//     estimator.
//
// The harness knows who sent each message and when its recipient's API
// handed it over; the message's target is the last data packet its
// gateway sent the recipient before then. Everything else the estimators
// use is the capture: time, link and size.
package measure

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/peapod-mixnet/peapod/anonymity"
	"github.com/peapod-mixnet/peapod/anonymity/capture"
	"github.com/peapod-mixnet/peapod/internal/testnet"
)

// Cell is one point of the grid.
type Cell struct {
	// Delay is the mean per-hop mixing delay the clients choose; zero runs
	// them with --no-delay.
	Delay time.Duration
	// Cover turns the clients' and the provider's cover traffic on.
	Cover bool
}

func (c Cell) String() string {
	cover := "cover off"
	if c.Cover {
		cover = "cover on"
	}
	return fmt.Sprintf("%v/hop, %s", c.Delay, cover)
}

// Defaults of a Config.
const (
	DefaultClients       = 20
	DefaultDuration      = 20 * time.Second
	DefaultRate          = 1.0
	DefaultProviderShare = 0.2
	DefaultWindow        = time.Second
	DefaultBusyRate      = 10.0
	DefaultProbes        = 100
	DefaultWarmup        = 2 * time.Second
)

// DefaultGrid is the grid `mixnet measure` runs: each delay with cover on
// and off.
func DefaultGrid() []Cell {
	var g []Cell
	for _, d := range []time.Duration{0, 5 * time.Millisecond, 15 * time.Millisecond, 50 * time.Millisecond} {
		g = append(g, Cell{d, true}, Cell{d, false})
	}
	return g
}

// UseShortMode turns c into the short mode that `make test` runs
// (TestMeasureShort) and `mixnet measure --short`: 6 clients, 4 s of
// traffic a cell at time scale 2, and three cells: no delay and no cover
// (the adversary must follow nearly every message), 15 ms without cover,
// and the defaults.
func (c *Config) UseShortMode() {
	c.Clients, c.Duration, c.Window, c.Probes, c.Warmup, c.TimeScale = 6, 4*time.Second, 500*time.Millisecond, 30, time.Second, 2
	c.Grid = []Cell{{Delay: 0}, {Delay: 15 * time.Millisecond}, DefaultCell}
}

// Config configures a measurement. Zero values take the defaults.
type Config struct {
	// Bin are the programs; Dir the folder of every process's data and
	// logs. Required.
	Bin *testnet.Binaries
	Dir string
	// Grid are the cells to measure. Default DefaultGrid.
	Grid []Cell
	// Clients is the number of clients. Default DefaultClients.
	Clients int
	// NoProvider leaves the provider out: clients only send to each other.
	NoProvider bool
	// Duration is how long the traffic of each cell runs.
	Duration time.Duration
	// Rate is the real messages per second of each client (but the
	// watched one): the load.
	Rate float64
	// ProviderShare is the share of messages that are requests to the
	// provider.
	ProviderShare float64
	// Window and BusyRate shape the watched client's traffic.
	Window   time.Duration
	BusyRate float64
	// Probes is the number of probe messages of a cell without cover.
	Probes int
	// Warmup is how long clients run before the capture starts.
	Warmup time.Duration
	// Drain bounds the wait for the last messages; zero: 5 s plus 100
	// mean delays.
	Drain time.Duration
	// TimeScale stretches the network's time: every mean delay and cover
	// gap is multiplied by it, and the real messages' rates, the watched
	// client's windows and the traffic's duration scaled to match, so that
	// the network carries 1/TimeScale of the load per second and every
	// product of a rate and a delay (the packets inside a mix, λ/μ; the
	// cover packets per real one) is what it is at scale 1. The Loopix
	// model's anonymity depends on those products only; what does not
	// scale is the nodes' processing time, which then weighs less against
	// the delays (in the adversary's favour). It lets a machine too small
	// for a grid's load measure it without saturating; the report divides
	// latencies and multiplies packet rates back. Default 1.
	TimeScale float64
	// Seed seeds the traffic's random choices; zero draws one.
	Seed uint64
	// MixnodeArgs adds flags to every mixnode's command line (for
	// example a long epoch).
	MixnodeArgs []string
	// Logf receives one line per step; nil discards them.
	Logf func(format string, args ...any)
}

func (c *Config) applyDefaults() error {
	if c.Bin == nil || c.Dir == "" {
		return errors.New("measure: Config.Bin and Config.Dir are required")
	}
	if c.Grid == nil {
		c.Grid = DefaultGrid()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Duration, DefaultDuration)
	def(&c.Window, DefaultWindow)
	def(&c.Warmup, DefaultWarmup)
	if c.Clients == 0 {
		c.Clients = DefaultClients
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.ProviderShare == 0 {
		c.ProviderShare = DefaultProviderShare
	}
	if c.BusyRate == 0 {
		c.BusyRate = DefaultBusyRate
	}
	if c.Probes == 0 {
		c.Probes = DefaultProbes
	}
	if c.TimeScale == 0 {
		c.TimeScale = 1
	}
	switch {
	case c.Clients < 3:
		return fmt.Errorf("measure: Config.Clients %d: need at least 3 (a watched client, a prober and a recipient)", c.Clients)
	case c.Rate < 0 || c.BusyRate < 0 || c.ProviderShare < 0 || c.ProviderShare > 1:
		return errors.New("measure: Config.Rate, BusyRate or ProviderShare out of range")
	case c.TimeScale < 1 || c.TimeScale > 100:
		return fmt.Errorf("measure: Config.TimeScale %g: want 1 to 100", c.TimeScale)
	case c.Duration < 2*c.Window:
		return fmt.Errorf("measure: Config.Duration %v is shorter than two windows of %v", c.Duration, c.Window)
	}
	for _, cell := range c.Grid {
		if cell.Delay < 0 {
			return fmt.Errorf("measure: cell %v has a negative delay", cell)
		}
	}
	if c.Bin.Provider == "" || c.Bin.Plugin("echo") == "" {
		c.NoProvider = true
	}
	return nil
}

// scaled returns d stretched by the time scale: the network's time of a
// duration d at scale 1.
func (c *Config) scaled(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.TimeScale)
}

// CellResult is what one cell measured.
type CellResult struct {
	Cell
	// Senders is the number of candidate senders (clients and the
	// provider) the trace shows.
	Senders int
	// Sent and Delivered count the real messages (replies included) of the
	// traffic phase; Targets those whose delivery was found in the trace,
	// and Clear those of them with no other data packet to the same
	// recipient in the 10 ms before (else the message may have come in that
	// one, and the target be a cover loop that arrived while the client
	// handed the message over) and no other message matched to the same
	// packet. The entropy is over every target; the
	// attacks' success rates over the clear ones, so that a mismatched
	// target never counts as the adversary's failure.
	Sent, Delivered, Targets, Clear int
	// Handover and HandoverP99 are the median and 99th percentile of the
	// time from a target to its recipient's API handing the message over.
	Handover, HandoverP99 time.Duration
	// Occupancy is the mean number of data packets inside a mixnode during
	// the traffic phase (λ/μ in the Loopix paper).
	Occupancy float64
	// Latency is the median and P95 the 95th percentile of the real
	// messages' time from the sender's API to the recipient's, as
	// measured (in the network's time: Config.TimeScale times longer than
	// at scale 1).
	Latency, P95 time.Duration
	// Entropy is over every target; Tracking is the share of clear
	// targets whose most likely sender by the entropy's distribution is
	// right. Timing is the timing attack and Order the order attack on
	// the clear targets.
	Entropy  anonymity.EntropyResult
	Tracking float64
	Timing   anonymity.TimingResult
	Order    anonymity.OrderResult
	Unobs    anonymity.UnobservabilityResult
	// Conformance is measured in cells without cover and with a delay.
	Conformance *anonymity.ConformanceResult
	// MixDrops counts, by reason, the packets the mixnodes dropped during
	// the capture (from their metrics: the harness's view, not the
	// adversary's).
	MixDrops map[string]int
	Capture  capture.Stats
	Trace    capture.TraceReport
	// Elapsed is the time from the start of the traffic to the end of the
	// capture (the capture starts with the warm-up, before), and NetworkCPU the CPU time the
	// network's processes (nodes, clients, provider) used in it.
	Elapsed, NetworkCPU time.Duration
}

// BestAttack is the highest of the attacks' success rates, and its name.
func (r *CellResult) BestAttack() (float64, string) {
	best, name := r.Tracking, "tracking"
	if r.Timing.Success > best {
		best, name = r.Timing.Success, "timing"
	}
	if r.Order.Success > best {
		best, name = r.Order.Success, "order"
	}
	return best, name
}

// Result is a whole measurement.
type Result struct {
	Config Config
	Cells  []CellResult
	// Started is when it started, Elapsed how long it took.
	Started time.Time
	Elapsed time.Duration
	// LoadAvg is /proc/loadavg's first three fields at the start.
	LoadAvg string
	// Reruns counts the cells measured again because the network's
	// topology changed while they ran (an epoch or a key rotation).
	Reruns int
}

// cellAttempts is how many times a cell is run before a topology that
// keeps changing fails the measurement.
const cellAttempts = 3

// Run starts the network, measures every cell and stops the network.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	if err := capture.Available(); err != nil {
		return nil, fmt.Errorf("measure: %w", err)
	}
	res := &Result{Config: cfg, Started: time.Now(), LoadAvg: loadAvg()}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	ncfg := testnet.Config{Dir: filepath.Join(cfg.Dir, "network"), Bin: cfg.Bin, Logf: logf}
	if len(cfg.MixnodeArgs) > 0 {
		ncfg.MixnodeArgs = func(int, int) []string { return cfg.MixnodeArgs }
	}
	net, err := testnet.Start(startCtx, ncfg)
	if err != nil {
		return nil, fmt.Errorf("measure: starting the network: %w", err)
	}
	defer net.Close()
	r := &runner{cfg: cfg, net: net, logf: logf}
	run := 0
	for i, cell := range cfg.Grid {
		logf("cell %d of %d: %v", i+1, len(cfg.Grid), cell)
		var cr CellResult
		for attempt := 1; ; attempt++ {
			cr, err = r.cell(ctx, i, run, cell)
			run++
			if errors.Is(err, errTopologyChanged) && attempt < cellAttempts {
				logf("cell %v: %v; measuring it again", cell, err)
				res.Reruns++
				continue
			}
			break
		}
		if err != nil {
			return res, fmt.Errorf("measure: cell %v: %w", cell, err)
		}
		logf("cell %v: %d senders, entropy mean %.2f p5 %.2f of %.2f bits; tracking %.3f, timing %.3f, random %.3f; %d targets (%d clear) of %d messages",
			cell, cr.Senders, cr.Entropy.Mean, cr.Entropy.P5, cr.Entropy.Max, cr.Tracking, cr.Timing.Success,
			cr.Timing.Random, cr.Targets, cr.Clear, cr.Delivered)
		res.Cells = append(res.Cells, cr)
	}
	if bad := net.UnexpectedExits(); len(bad) > 0 {
		return res, fmt.Errorf("measure: processes exited on their own: %v", bad)
	}
	res.Elapsed = time.Since(res.Started)
	return res, nil
}

// loadAvg reads the machine's load averages, "" when it cannot.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
