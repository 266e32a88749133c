// Command soak runs a peapod network of separate processes for a set time
// (10 minutes by default) with steady traffic to a provider and random
// restarts of mixnodes, gateways, the provider and its plugins, then prints
// what happened and exits non-zero if any request was lost or answered
// twice, or a process died on its own.
//
//	go run ./internal/testnet/cmd/soak [-duration 10m] [-clients 4] [-rate 4]
//	                                   [-restart-every 20s] [-kill] [-seed N] [-flood]
//
// `make soak` runs it. The network is the test network of package testnet:
// a directory, two mixnodes per layer, two gateways, the provider with the
// echo and kvstore plugins, and -clients `client run` processes, each
// sending -rate requests a second (echo and kv puts, alternately) and never
// resending, so that every reply the system loses shows. A restart stops a
// process and starts it again on the same data and ports: mixnodes and
// plugins with SIGKILL, gateways and the provider with SIGTERM (a graceful
// stop that must lose nothing); -kill makes every restart a SIGKILL. At the
// end the kv store must hold every key whose put succeeded. -flood adds
// attackers (see flood.go): a request flood, half-open handshakes and
// registrations, which must not cost the regular traffic anything.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/peapod-mixnet/peapod/internal/testnet"
)

func main() {
	os.Exit(run())
}

type options struct {
	duration, restartEvery, drain time.Duration
	clients                       int
	rate                          float64
	kill, race, delays, keep      bool
	seed                          uint64
	dir                           string

	flood              bool
	floodRate          float64
	floodTags          int
	floodHandshakes    int
	floodRegisterEvery time.Duration
}

// floodMaxClientsPerSource is the gateways' registration cap per source
// address in a -flood run, low enough for the attacker to meet it.
const floodMaxClientsPerSource = 100

func run() int {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long traffic runs")
	flag.DurationVar(&o.restartEvery, "restart-every", 20*time.Second, "mean time between restarts (exponentially distributed)")
	flag.DurationVar(&o.drain, "drain", 2*time.Minute, "how long to wait for the last replies after traffic stops")
	flag.IntVar(&o.clients, "clients", 4, "requesting clients (`client run` processes)")
	flag.Float64Var(&o.rate, "rate", 4, "requests a second per client")
	flag.BoolVar(&o.kill, "kill", false, "restart every process with SIGKILL (gateways and the provider too)")
	flag.BoolVar(&o.race, "race", false, "build the binaries with -race")
	flag.BoolVar(&o.delays, "delays", false, "mixing delays on (the default 15 ms per hop); off by default")
	flag.Uint64Var(&o.seed, "seed", 0, "seed of the restart schedule (0: random)")
	flag.StringVar(&o.dir, "dir", "", "folder for data and logs (default: a temporary one, removed on success)")
	flag.BoolVar(&o.keep, "keep", false, "keep the folder even on success")
	flag.BoolVar(&o.flood, "flood", false, "run attackers beside the traffic: a request flood, half-open handshakes, registrations")
	flag.Float64Var(&o.floodRate, "flood-rate", 10, "with -flood: the flooder's requests a second")
	flag.IntVar(&o.floodTags, "flood-tags", 1, "with -flood: the sender tags the flood comes from, in turn (a client process each)")
	flag.IntVar(&o.floodHandshakes, "flood-handshakes", 80, "with -flood: half-open handshakes held at each gateway (its limit per source is 64)")
	flag.DurationVar(&o.floodRegisterEvery, "flood-register-every", 250*time.Millisecond, "with -flood: time between registrations of fresh identities")
	flag.Parse()
	if o.clients < 1 || o.rate <= 0 || o.duration <= 0 || o.restartEvery <= 0 {
		fmt.Fprintln(os.Stderr, "soak: -clients, -rate, -duration and -restart-every must be positive")
		return 2
	}
	if o.flood && (o.floodRate <= 0 || o.floodTags <= 0 || o.floodHandshakes < 0 || o.floodRegisterEvery <= 0) {
		fmt.Fprintln(os.Stderr, "soak: -flood-rate, -flood-tags and -flood-register-every must be positive, -flood-handshakes not negative")
		return 2
	}
	if o.seed == 0 {
		o.seed = rand.Uint64()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer testnet.RemoveBuilds()
	s, err := newSoak(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	failed := s.run(ctx)
	if err := s.net.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "soak: stopping the network:", err)
		failed = true
	}
	s.print(os.Stdout)
	if failed || s.failed() {
		fmt.Printf("\nSOAK FAILED; logs in %s\n", s.net.LogDir())
		return 1
	}
	fmt.Println("\nsoak passed: nothing lost, nothing delivered twice")
	if o.dir == "" && !o.keep {
		os.RemoveAll(s.dir)
	} else {
		fmt.Printf("logs in %s\n", s.net.LogDir())
	}
	return 0
}

// soak is one run.
type soak struct {
	o        options
	dir      string
	net      *testnet.Network
	provider *testnet.Provider
	tracker  *testnet.Tracker
	reqs     []*testnet.Requester
	flood    *flood // with -flood
	rng      *rand.Rand
	logf     func(string, ...any)

	mu       sync.Mutex
	puts     map[string]string // id → key of every put sent
	restarts map[string]int    // by target kind
	failures []string          // restarts that did not come back
	kvWrong  []string
}

func newSoak(ctx context.Context, o options) (*soak, error) {
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%7.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	dir := o.dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "peapod-soak-"); err != nil {
			return nil, err
		}
	}
	logf("building the binaries (race %v)", o.race)
	bin, err := testnet.Build(ctx, testnet.BuildOptions{Race: o.race})
	if err != nil {
		return nil, err
	}
	if bin.Provider == "" {
		return nil, errors.New("no cmd/provider in this module")
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	ncfg := testnet.Config{Dir: dir, Bin: bin, Logf: logf}
	if o.flood {
		ncfg.GatewayArgs = func(int) []string {
			return []string{"--max-clients-per-source", fmt.Sprint(floodMaxClientsPerSource)}
		}
	}
	n, err := testnet.Start(sctx, ncfg)
	if err != nil {
		return nil, err
	}
	s := &soak{
		o: o, dir: dir, net: n, tracker: testnet.NewTracker(),
		rng:  rand.New(rand.NewPCG(o.seed, o.seed>>1|1)),
		logf: logf, puts: make(map[string]string), restarts: make(map[string]int),
	}
	popts := testnet.ProviderOptions{Delays: o.delays}
	if s.provider, err = n.StartProvider(sctx, "provider", popts); err != nil {
		n.Close()
		return nil, err
	}
	for i := range o.clients {
		c, err := n.StartClient(sctx, fmt.Sprintf("client-%d", i), testnet.ClientOptions{Delays: o.delays})
		if err != nil {
			n.Close()
			return nil, err
		}
		conn, err := c.Dial(sctx)
		if err != nil {
			n.Close()
			return nil, err
		}
		s.reqs = append(s.reqs, testnet.NewRequester(&testnet.WSEndpoint{Conn: conn}, s.provider.Address(), s.tracker, testnet.RequesterOptions{}))
	}
	if o.flood {
		if s.flood, err = s.startFlood(sctx); err != nil {
			n.Close()
			return nil, err
		}
	}
	logf("soak: %d clients at %.1f requests/s each for %v, a restart every %v on average (seed %d), data in %s",
		o.clients, o.rate, o.duration, o.restartEvery, o.seed, dir)
	return s, nil
}

// run drives traffic and restarts; it reports whether it had to stop early.
func (s *soak) run(ctx context.Context) bool {
	tctx, cancel := context.WithTimeout(ctx, s.o.duration)
	defer cancel()
	var wg sync.WaitGroup
	for i, r := range s.reqs {
		wg.Add(1)
		go func() { defer wg.Done(); s.traffic(tctx, i, r) }()
	}
	if s.flood != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.flood.run(tctx) }()
	}
	s.restartLoop(tctx)
	wg.Wait()
	early := ctx.Err() != nil
	s.logf("traffic stopped; waiting up to %v for the last replies", s.o.drain)
	dctx, dcancel := context.WithTimeout(ctx, s.o.drain)
	defer dcancel()
	if err := s.tracker.WaitAll(dctx); err != nil {
		s.logf("%v", err)
	}
	s.checkKV(ctx)
	for _, r := range s.reqs {
		r.Close()
	}
	if s.flood != nil {
		s.flood.close()
	}
	return early
}

// traffic sends requests from requester i at the configured rate until
// ctx ends.
func (s *soak) traffic(ctx context.Context, i int, r *testnet.Requester) {
	every(ctx, time.Duration(float64(time.Second)/s.o.rate), func(n int) {
		id := fmt.Sprintf("c%d-%06d", i, n)
		// The end of the traffic must not cut a send short: a WebSocket
		// write abandoned half way closes the connection (package wsapi),
		// and the requester is still needed for the last replies.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		var err error
		if n%2 == 0 {
			err = r.Request(sctx, id, "echo", []byte("soak "+id))
		} else {
			key := "soak/" + id
			s.mu.Lock()
			s.puts[id] = key
			s.mu.Unlock()
			b, _ := json.Marshal(map[string]string{"op": "put", "key": key, "value": id})
			err = r.Request(sctx, id, "kv", b)
		}
		cancel()
		if err != nil {
			s.logf("client-%d: sending %s: %v", i, id, err)
		}
	})
}

// every calls f(0), f(1), … once every gap until ctx ends.
func every(ctx context.Context, gap time.Duration, f func(n int)) {
	t := time.NewTicker(gap)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f(n)
	}
}

// restartLoop restarts a random process every so often until ctx ends.
func (s *soak) restartLoop(ctx context.Context) {
	for {
		wait := time.Duration(s.rng.ExpFloat64() * float64(s.o.restartEvery))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		s.restartOne(ctx)
	}
}

// restartOne picks a target and restarts it.
func (s *soak) restartOne(ctx context.Context) {
	type target struct {
		kind, name string
		do         func(context.Context) error
	}
	var targets []target
	for _, m := range s.net.Mixnodes() {
		targets = append(targets, target{"mixnode", m.Name(), func(ctx context.Context) error {
			m.Kill()
			// Down for a while: the clients must route around it.
			time.Sleep(time.Duration(1+s.rng.IntN(5)) * time.Second)
			return m.Start(ctx)
		}})
	}
	for _, g := range s.net.Gateways() {
		targets = append(targets, target{"gateway", g.Name(), func(ctx context.Context) error {
			return s.restartProcess(ctx, g.Process, g.Start)
		}})
	}
	p := s.provider
	targets = append(targets, target{"provider", p.Name(), func(ctx context.Context) error {
		return s.restartProcess(ctx, p.Process, p.Start)
	}})
	for _, plugin := range []string{"echo", "kvstore"} {
		targets = append(targets, target{"plugin", "plugin " + plugin, func(ctx context.Context) error {
			// It may still be coming back from the last kill.
			if _, err := p.WaitPlugin(ctx, plugin, 0); err != nil {
				return err
			}
			old, err := p.KillPlugin(plugin)
			if err != nil {
				return err
			}
			_, err = p.WaitPlugin(ctx, plugin, old)
			return err
		}})
	}
	tg := targets[s.rng.IntN(len(targets))]
	s.logf("restarting %s", tg.name)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	err := tg.do(rctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.failures = append(s.failures, fmt.Sprintf("%s: %v", tg.name, err))
		s.logf("restarting %s failed: %v", tg.name, err)
		return
	}
	s.restarts[tg.kind]++
}

// restartProcess stops p (SIGTERM, or SIGKILL with -kill) and starts it.
func (s *soak) restartProcess(ctx context.Context, p *testnet.Process, start func(context.Context) error) error {
	if s.o.kill {
		p.Kill()
	} else if err := p.Stop(); err != nil {
		return fmt.Errorf("stopping: %w", err)
	}
	return start(ctx)
}

// checkKV lists the store and checks that every successful put is in it.
func (s *soak) checkKV(ctx context.Context) {
	if len(s.reqs) == 0 {
		return
	}
	r := s.reqs[0]
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	present := make(map[string]bool)
	// List a thousand ids at a time (ids are c<i>-<6 digits>): a reply
	// holds at most 1000 keys.
	pages := int(s.o.duration.Seconds()*s.o.rate)/1000 + 1
	for c := 0; c < len(s.reqs); c++ {
		for d := range pages {
			prefix := fmt.Sprintf("soak/c%d-%03d", c, d)
			b, _ := json.Marshal(map[string]string{"op": "list", "prefix": prefix})
			rep, err := r.Call(cctx, fmt.Sprintf("list-%d-%d", c, d), "kv", b)
			if err != nil || rep.Err != nil {
				s.kvWrong = append(s.kvWrong, fmt.Sprintf("list %s: %v %v", prefix, err, rep))
				return
			}
			var lr struct {
				Keys      []string `json:"keys"`
				Truncated bool     `json:"truncated"`
			}
			if err := json.Unmarshal(rep.Data, &lr); err != nil || lr.Truncated {
				s.kvWrong = append(s.kvWrong, fmt.Sprintf("list %s: %v (truncated %v)", prefix, err, lr.Truncated))
				return
			}
			for _, k := range lr.Keys {
				present[k] = true
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, key := range s.puts {
		var ok bool
		for _, rq := range s.reqs {
			if reps := rq.Replies(id); len(reps) > 0 && reps[0].Err == nil {
				ok = true
			}
		}
		if ok && !present[key] {
			s.kvWrong = append(s.kvWrong, "missing "+key)
		}
	}
}

// failed reports whether the run broke a promise.
func (s *soak) failed() bool {
	rep := s.tracker.Report()
	return rep.Lost > 0 || rep.Duplicated > 0 || rep.Unknown > 0 || len(s.failures) > 0 ||
		len(s.kvWrong) > 0 || len(s.net.UnexpectedExits()) > 0
}

// print writes the report.
func (s *soak) print(w *os.File) {
	rep := s.tracker.Report()
	fmt.Fprintf(w, "\npeapod soak: %v, %d clients × %.1f requests/s, seed %d, restarts by %s\n\n",
		s.o.duration, s.o.clients, s.o.rate, s.o.seed, map[bool]string{false: "SIGKILL (nodes, plugins) and SIGTERM (gateways, provider)", true: "SIGKILL"}[s.o.kill])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "messages sent\t%d\n", rep.Sent)
	fmt.Fprintf(tw, "delivered\t%d\n", rep.Delivered)
	fmt.Fprintf(tw, "lost\t%d\n", rep.Lost)
	fmt.Fprintf(tw, "duplicated\t%d\n", rep.Duplicated)
	outcomes := make([]string, 0, len(rep.Outcomes))
	for k, v := range rep.Outcomes {
		outcomes = append(outcomes, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(outcomes)
	fmt.Fprintf(tw, "replies by outcome\t%s\n", strings.Join(outcomes, ", "))
	fmt.Fprintf(tw, "latency p50 / p99 / max\t%v / %v / %v\n", rep.P50.Round(time.Millisecond), rep.P99.Round(time.Millisecond), rep.Max.Round(time.Millisecond))
	s.mu.Lock()
	total := 0
	var kinds []string
	for k, v := range s.restarts {
		total += v
		kinds = append(kinds, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(kinds)
	fmt.Fprintf(tw, "restarts survived\t%d (%s)\n", total, strings.Join(kinds, ", "))
	fmt.Fprintf(tw, "restarts that failed\t%d\n", len(s.failures))
	fmt.Fprintf(tw, "kv check\t%s\n", map[bool]string{true: "every successful put is in the store", false: fmt.Sprintf("%d problems", len(s.kvWrong))}[len(s.kvWrong) == 0])
	s.mu.Unlock()
	tw.Flush()
	if len(rep.Missing) > 0 {
		fmt.Fprintf(w, "\nlost (first %d): %v\n", len(rep.Missing), rep.Missing)
	}
	for _, f := range s.failures {
		fmt.Fprintf(w, "restart failure: %s\n", f)
	}
	for i, k := range s.kvWrong {
		if i == 10 {
			fmt.Fprintf(w, "… %d kv problems in all\n", len(s.kvWrong))
			break
		}
		fmt.Fprintf(w, "kv: %s\n", k)
	}
	for _, u := range s.net.UnexpectedExits() {
		fmt.Fprintf(w, "process died on its own: %s\n", u)
	}
	for _, r := range s.reqs {
		for _, p := range r.Problems() {
			fmt.Fprintf(w, "client problem: %s\n", p)
		}
	}
	if s.flood != nil {
		s.flood.print(w)
	}
	fmt.Fprintf(w, "\npeak RSS per process:\n%s", s.net.ResourceTable())
}
