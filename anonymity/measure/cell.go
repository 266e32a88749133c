package measure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/peapod-mixnet/peapod/anonymity"
	"github.com/peapod-mixnet/peapod/anonymity/capture"
	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/testnet"
	"github.com/peapod-mixnet/peapod/mixnode"
)

// runner measures the cells of one network.
type runner struct {
	cfg  Config
	net  *testnet.Network
	logf func(string, ...any)
}

// cellProcesses are the processes a cell starts, and their trace nodes.
type cellProcesses struct {
	clients  []*testnet.Client
	provider *testnet.Provider
	eps      []capture.Endpoint
	parties  []*party
	provNode int // the provider's node index, -1 without one
}

func (cp *cellProcesses) stop() {
	for _, p := range cp.parties {
		if p != nil && p.ep != nil {
			p.ep.Close()
		}
	}
	for _, c := range cp.clients {
		if c != nil {
			c.Stop()
		}
	}
	if cp.provider != nil {
		cp.provider.Stop()
	}
}

// name names a process of a cell's run: prefix, the run's number (unique
// over the measurement, so that a cell run again starts fresh clients)
// and the client's number, none when it is negative.
func name(prefix string, run, i int) string {
	if i < 0 {
		return fmt.Sprintf("%s%d", prefix, run)
	}
	return fmt.Sprintf("%s%d-%02d", prefix, run, i)
}

// start starts the clients of a cell's run (in parallel, spread over the
// gateways) and its provider, and connects to their APIs.
func (r *runner) start(ctx context.Context, run int, cell Cell) (*cellProcesses, error) {
	cp := &cellProcesses{clients: make([]*testnet.Client, r.cfg.Clients), provNode: -1}
	gws := r.net.Gateways()
	delay := r.cfg.scaled(cell.Delay)
	var coverArgs []string
	if cell.Cover && r.cfg.TimeScale != 1 {
		coverArgs = []string{"--cover-main-gap", r.cfg.scaled(client.DefaultCoverMainGap).String(),
			"--cover-loop-gap", r.cfg.scaled(client.DefaultCoverLoopGap).String()}
	}
	// The provider takes its client's delay and cover gaps from its file.
	provConfig := filepath.Join(r.cfg.Dir, fmt.Sprintf("%s.toml", name("p", run, -1)))
	if err := os.WriteFile(provConfig, []byte(fmt.Sprintf("[client]\nmix_delay = %q\ncover_main_gap = %q\ncover_loop_gap = %q\n",
		delay, r.cfg.scaled(client.DefaultCoverMainGap), r.cfg.scaled(client.DefaultCoverLoopGap))), 0o600); err != nil {
		return nil, err
	}
	errs := make([]error, r.cfg.Clients+1)
	var wg sync.WaitGroup
	for i := range r.cfg.Clients {
		wg.Go(func() {
			cp.clients[i], errs[i] = r.net.StartClient(ctx, name("c", run, i), testnet.ClientOptions{
				Gateway: gws[i%len(gws)].Identity(), Delays: delay > 0, MixDelay: delay, Cover: cell.Cover, Args: coverArgs,
			})
		})
	}
	if !r.cfg.NoProvider {
		wg.Go(func() {
			cp.provider, errs[r.cfg.Clients] = r.net.StartProvider(ctx, name("p", run, -1),
				testnet.ProviderOptions{Delays: delay > 0, Cover: cell.Cover, Args: []string{"--config", provConfig}})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			cp.stop()
			return nil, err
		}
	}
	for i, c := range cp.clients {
		cp.eps = append(cp.eps, capture.Endpoint{
			Node: anonymity.Node{Name: fmt.Sprintf("client-%d", i), Role: anonymity.RoleClient},
			PIDs: []int{c.PID()},
		})
		conn, err := c.Dial(ctx)
		if err != nil {
			cp.stop()
			return nil, err
		}
		cp.parties = append(cp.parties, &party{node: i, addr: c.Address(), ep: &testnet.WSEndpoint{Conn: conn}})
	}
	if cp.provider != nil {
		cp.provNode = len(cp.eps)
		cp.eps = append(cp.eps, capture.Endpoint{
			Node: anonymity.Node{Name: "provider", Role: anonymity.RoleClient},
			PIDs: []int{cp.provider.PID()},
		})
	}
	for _, g := range gws {
		cp.eps = append(cp.eps, capture.Endpoint{
			Node: anonymity.Node{Name: g.Name(), Role: anonymity.RoleGateway},
			PIDs: []int{g.PID()}, Listen: []netip.AddrPort{g.Listen, g.ClientListen},
		})
	}
	for _, m := range r.net.Mixnodes() {
		cp.eps = append(cp.eps, capture.Endpoint{
			Node: anonymity.Node{Name: m.Name(), Role: anonymity.RoleMixnode, Layer: m.Layer},
			PIDs: []int{m.PID()}, Listen: []netip.AddrPort{m.Listen},
		})
	}
	return cp, nil
}

// maxStay is how long the adversary's pools count a packet that has not
// been seen to leave: far longer than the delays (a node that held a
// packet for 100 mean delays, or 2 s, has dropped it).
func maxStay(delay time.Duration) time.Duration { return max(2*time.Second, 100*delay) }

// snapshotInterval is how often a cell reads which process owns which
// socket while it captures.
const snapshotInterval = 500 * time.Millisecond

// cell measures one cell, the idx-th of the grid, in the measurement's
// run-th run of a cell.
func (r *runner) cell(ctx context.Context, idx, run int, cell Cell) (CellResult, error) {
	res := CellResult{Cell: cell}
	delay := r.cfg.scaled(cell.Delay)
	// The capture starts before the cell's clients do, so that no packet
	// of theirs is inside the network unseen when the traffic starts.
	capt, err := capture.Start(capture.Config{})
	if err != nil {
		return res, err
	}
	capturing := true
	defer func() {
		if capturing {
			capt.Stop()
		}
	}()
	cp, err := r.start(ctx, run, cell)
	if err != nil {
		return res, err
	}
	topoBefore, err := r.topologyPrint(ctx)
	if err != nil {
		return res, err
	}
	defer r.quiesce(ctx) // runs after cp.stop: the next cell starts on an empty network
	defer cp.stop()
	links := capture.NewLinks(cp.eps)
	if err := links.Snapshot(); err != nil {
		return res, err
	}
	// Learn the owners of connections opened later too.
	snapCtx, stopSnapshots := context.WithCancel(ctx)
	snapDone := make(chan struct{})
	go func() {
		defer close(snapDone)
		t := time.NewTicker(snapshotInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				links.Snapshot()
			case <-snapCtx.Done():
				return
			}
		}
	}()
	defer func() { stopSnapshots(); <-snapDone }()

	seed := r.cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(seed, uint64(idx)))
	led := newLedger()
	rctx, stopReceiving := context.WithCancel(ctx)
	var recv sync.WaitGroup
	recvErrs := make([]error, len(cp.parties))
	for i, p := range cp.parties {
		recv.Go(func() { recvErrs[i] = led.receive(rctx, p) })
	}
	defer func() { stopReceiving(); recv.Wait() }()

	// Without cover nothing opens the links between nodes before the
	// traffic (nodes dial a next hop when a packet needs it), so a cell's
	// first packets would wait for Noise handshakes on new links: delays
	// the exponential model has no place for, which once made the first
	// cell's no-delay attacks fail. Every client first sends itself a few
	// messages, on random routes, which open them.
	var warmed time.Time
	if !cell.Cover {
		r.warmLinks(ctx, cp, led)
		warmed = time.Now()
	}
	// Settle: cover streams running, connections between nodes open.
	select {
	case <-time.After(r.cfg.Warmup):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	drops0 := r.mixDrops(ctx)
	t0 := time.Now()
	cpu0 := r.net.CPU()
	windows := r.traffic(ctx, cp, led, rng, t0)
	drain := r.cfg.Drain
	if drain == 0 {
		drain = 5*time.Second + 100*delay
	}
	led.await(ctx, time.Now().Add(drain), led.allReceived)
	probeFrom, probeTo := time.Since(t0), time.Duration(0)
	if !cell.Cover {
		r.probe(ctx, cp, led, drain)
		probeTo = time.Since(t0)
	}
	links.Snapshot()
	segs, stats, err := capt.Stop()
	capturing = false
	if err != nil {
		return res, err
	}
	// A cell whose network changed (a node's key rotated, an epoch began,
	// a node left) measured a mixture of two networks: it is run again.
	topoAfter, err := r.topologyPrint(ctx)
	if err != nil {
		return res, err
	}
	if topoAfter != topoBefore {
		return res, fmt.Errorf("%w: before %s, after %s", errTopologyChanged, topoBefore, topoAfter)
	}
	res.Elapsed, res.Capture = time.Since(t0), stats
	res.NetworkCPU = r.net.CPU() - cpu0
	res.MixDrops = make(map[string]int)
	for reason, n := range r.mixDrops(ctx) {
		if d := int(n - drops0[reason]); d > 0 {
			res.MixDrops[reason] = d
		}
	}
	for i, err := range recvErrs {
		if err != nil {
			return res, fmt.Errorf("receiving at client %d: %w", i, err)
		}
	}
	// Times count from the start of the traffic: the warm-up is before 0.
	tr, rep := links.Trace(segs, t0)
	res.Trace = rep
	r.logf("cell %v: trace %v; capture %+v", cell, rep, stats)
	if !warmed.IsZero() {
		afterWarmup(tr, warmed.Sub(t0))
	}
	msgs := led.snapshot()
	targets, clear := findTargets(tr, msgs, t0, &res)
	res.Senders = len(tr.Senders())
	traffic := &anonymity.Trace{Nodes: tr.Nodes}
	for _, e := range tr.Events {
		if e.At >= 0 && e.At < r.cfg.scaled(r.cfg.Duration) {
			traffic.Events = append(traffic.Events, e)
		}
	}
	res.Occupancy = anonymity.MixOccupancy(traffic)
	if res.Entropy, err = anonymity.SenderEntropy(tr, targets, maxStay(delay)); err != nil {
		return res, err
	}
	var clearTargets []anonymity.Target
	right := 0
	for i, tg := range targets {
		if clear[i] {
			clearTargets = append(clearTargets, tg)
			if res.Entropy.Correct[i] {
				right++
			}
		}
	}
	if len(clearTargets) > 0 {
		res.Tracking = float64(right) / float64(len(clearTargets))
	}
	if res.Timing, err = anonymity.TimingAttack(tr, clearTargets, anonymity.TimingModel{MeanDelay: delay}); err != nil {
		return res, err
	}
	if res.Order, err = anonymity.OrderAttack(tr, clearTargets, maxStay(delay)); err != nil {
		return res, err
	}
	if err := saveTrace(filepath.Join(r.cfg.Dir, fmt.Sprintf("cell-%d.trace.gob", idx)), SavedTrace{
		Cell: cell, Trace: tr, Targets: targets, Clear: clear, Windows: windows,
	}); err != nil {
		r.logf("cell %v: %v", cell, err)
	}
	if res.Unobs, err = anonymity.Unobservability(tr, 0, windows); err != nil {
		r.logf("cell %v: unobservability: %v", cell, err)
	}
	if !cell.Cover && cell.Delay > 0 {
		c := anonymity.DelayConformance(tr, delay, probeFrom, probeTo)
		res.Conformance = &c
	}
	return res, nil
}

// traffic runs the traffic phase and returns the watched client's windows,
// from t0.
func (r *runner) traffic(ctx context.Context, cp *cellProcesses, led *ledger, rng *rand.Rand, t0 time.Time) []anonymity.Window {
	// As many busy windows as idle ones, in a random order.
	window, duration := r.cfg.scaled(r.cfg.Window), r.cfg.scaled(r.cfg.Duration)
	rate, busyRate := r.cfg.Rate/r.cfg.TimeScale, r.cfg.BusyRate/r.cfg.TimeScale
	var windows []anonymity.Window
	for at := time.Duration(0); at+window <= duration; at += window {
		windows = append(windows, anonymity.Window{From: at, To: at + window, Busy: len(windows)%2 == 1})
	}
	rng.Shuffle(len(windows), func(i, j int) { windows[i].Busy, windows[j].Busy = windows[j].Busy, windows[i].Busy })
	var wg sync.WaitGroup
	for i, p := range cp.parties {
		// Each sender gets its own generator, so that they share nothing.
		prng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		var schedule []time.Duration
		if i == 0 {
			for _, w := range windows {
				if w.Busy {
					schedule = append(schedule, poisson(prng, busyRate, w.From, w.To)...)
				}
			}
		} else {
			schedule = poisson(prng, rate, 0, duration)
		}
		wg.Go(func() {
			for n, at := range schedule {
				select {
				case <-time.After(time.Until(t0.Add(at))):
				case <-ctx.Done():
					return
				}
				id := fmt.Sprintf("m%d-%d", i, n)
				if cp.provNode >= 0 && prng.Float64() < r.cfg.ProviderShare {
					if err := led.request(ctx, p, cp.provNode, cp.provider.Address(), id); err != nil {
						r.logf("client %d: request: %v", i, err)
					}
					continue
				}
				to := prng.IntN(len(cp.parties) - 1)
				if to >= i {
					to++
				}
				if err := led.send(ctx, p, cp.parties[to], id, false); err != nil {
					r.logf("client %d: send: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	return windows
}

// poisson returns the times of a Poisson stream of rate a second in
// [from, to).
func poisson(rng *rand.Rand, rate float64, from, to time.Duration) []time.Duration {
	var out []time.Duration
	if rate <= 0 {
		return nil
	}
	for t := from; ; {
		t += time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
		if t >= to {
			return out
		}
		out = append(out, t)
	}
}

// probe sends the probe messages, one at a time, from client 1 to client
// 2, each when the last has arrived (or its wait ran out).
func (r *runner) probe(ctx context.Context, cp *cellProcesses, led *ledger, wait time.Duration) {
	from, to := cp.parties[1], cp.parties[2]
	for i := range r.cfg.Probes {
		id := fmt.Sprintf("probe-%d", i)
		if err := led.send(ctx, from, to, id, true); err != nil {
			r.logf("probe: %v", err)
			return
		}
		if !led.await(ctx, time.Now().Add(wait), func() bool { return led.isReceived(id) }) {
			r.logf("probe %d did not arrive within %v", i, wait)
		}
	}
}

// warmMessages is how many messages each client sends itself before a
// cell without cover: with two mixnodes a layer, 4 a client leave a given
// link unused about (3/4)^48 of the time.
const warmMessages = 4

// warmWait bounds the wait for those messages.
const warmWait = 10 * time.Second

// warmLinks opens the links between nodes before the traffic: every client
// sends itself warmMessages messages (recorded as probes, which are no
// targets, before the probes' window) and they are awaited.
func (r *runner) warmLinks(ctx context.Context, cp *cellProcesses, led *ledger) {
	var ids []string
	for i, p := range cp.parties {
		if p == nil || p.ep == nil || p.node == cp.provNode {
			continue
		}
		for k := range warmMessages {
			id := fmt.Sprintf("warm-%d-%d", i, k)
			if err := led.send(ctx, p, p, id, true); err != nil {
				r.logf("warming the links: %v", err)
				return
			}
			ids = append(ids, id)
		}
	}
	all := func() bool {
		for _, id := range ids {
			if !led.isReceived(id) {
				return false
			}
		}
		return true
	}
	if !led.await(ctx, time.Now().Add(warmWait), all) {
		r.logf("warming the links: not every message came back within %v", warmWait)
	}
}

// afterWarmup drops the events of tr before from, the end of warmLinks:
// the adversary's estimators take the trace as one stream, and the
// warm-up's burst (every client's messages at once) is no part of the
// traffic they measure. Left in, the few packets of that burst the
// capture's framer counts on a client's link and on no later hop (a run
// saw 6 more data packets on client→gateway than on every other hop) put
// the order attack's entries and exits out of step for the whole cell:
// at 15 ms a hop without cover it named 0.12 of the senders instead of
// 0.57, and the entropy read 2.5 bits instead of 0.9.
func afterWarmup(tr *anonymity.Trace, from time.Duration) {
	i := sort.Search(len(tr.Events), func(i int) bool { return tr.Events[i].At >= from })
	tr.Events = slices.Delete(tr.Events, 0, i)
}

// mixDrops sums, by reason, the packets the mixnodes have dropped so far
// (their peapod_mixnode_packets_dropped_total metric); a node that does
// not answer counts nothing.
func (r *runner) mixDrops(ctx context.Context) map[string]float64 {
	out := make(map[string]float64)
	for _, m := range r.net.Mixnodes() {
		for _, reason := range mixnode.DropReasons {
			if v, err := m.Metric(ctx, "peapod_mixnode_packets_dropped_total", "reason", string(reason)); err == nil {
				out[string(reason)] += v
			}
		}
	}
	return out
}

// errTopologyChanged reports that the directory's topology changed while a
// cell ran.
var errTopologyChanged = errors.New("the topology changed during the cell")

// topologyPrint returns the directory's topology in a canonical form (its
// nodes sorted by identity), so that two reads differ only when the
// network changed: a node joined, left or moved, a key was rotated or
// announced, an epoch began (once the topology carries epochs), the
// advertised parameters changed.
func (r *runner) topologyPrint(ctx context.Context) (string, error) {
	t, err := r.net.Topology(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the topology: %w", err)
	}
	return canonicalTopology(t)
}

// canonicalTopology is t as JSON with its nodes sorted by identity and its
// epoch left out.
func canonicalTopology(t *directory.Topology) (string, error) {
	c := *t
	c.Epoch = directory.EpochInfo{} // a new epoch changes nothing; new keys show in the nodes
	c.Mixnodes = slices.Clone(t.Mixnodes)
	c.Gateways = slices.Clone(t.Gateways)
	slices.SortFunc(c.Mixnodes, func(a, b directory.Mixnode) int { return strings.Compare(a.Identity, b.Identity) })
	slices.SortFunc(c.Gateways, func(a, b directory.Gateway) int { return strings.Compare(a.Identity, b.Identity) })
	b, err := json.Marshal(c)
	return string(b), err
}

// quiesceTimeout bounds the wait for the mixnodes to empty between cells.
const quiesceTimeout = time.Minute

// quiesce waits until no mixnode holds a packet (the sum of their
// peapod_mixnode_queue_depth metrics is 0: a saturated cell can leave
// seconds of queued packets, which would be cover for the next cell), or
// quiesceTimeout.
// The metrics signal nothing, so it polls them.
func (r *runner) quiesce(ctx context.Context) {
	deadline := time.Now().Add(quiesceTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var inside float64
		for _, m := range r.net.Mixnodes() {
			if v, err := m.Metric(ctx, "peapod_mixnode_queue_depth"); err == nil {
				inside += v
			}
		}
		if inside == 0 {
			return
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	r.logf("the mixnodes still held packets %v after the cell", quiesceTimeout)
}
