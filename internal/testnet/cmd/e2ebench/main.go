// Command e2ebench measures a peapod network of separate processes end to
// end, for the echo service: requests a second, latency, bytes a second for
// large replies, and the CPU time all processes spend per request. It runs
// the network twice, with no mixing delay and with the default mean of 15 ms
// per hop (cover traffic off both times), and writes its tables into
// docs/benchmarks.md, between the lines <!-- e2e:begin --> and
// <!-- e2e:end --> (added at the end of the file when missing), and a latency
// chart into docs/e2e-latency.svg. `make bench` runs it after the Go
// benchmarks.
//
//	go run ./internal/testnet/cmd/e2ebench [-load 20s] [-clients 4] [-window 4]
//	                                       [-docs docs] [-no-write]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/peapod-mixnet/peapod/internal/testnet"
)

// Markers of the section this program owns in docs/benchmarks.md.
const (
	beginMarker = "<!-- e2e:begin -->"
	endMarker   = "<!-- e2e:end -->"
)

type options struct {
	load, largeFor        time.Duration
	clients, window       int
	sequential, largeSize int
	docs                  string
	write, race           bool
}

func main() {
	var o options
	flag.DurationVar(&o.load, "load", 20*time.Second, "length of the throughput phase of each mode")
	flag.DurationVar(&o.largeFor, "large-for", 15*time.Second, "length of the large-reply phase of each mode")
	flag.IntVar(&o.clients, "clients", 4, "requesting clients (`client run` processes)")
	flag.IntVar(&o.window, "window", 4, "requests each client keeps outstanding in the throughput phase")
	flag.IntVar(&o.sequential, "sequential", 100, "requests sent one at a time for the unloaded latency")
	flag.IntVar(&o.largeSize, "large", 128<<10, "payload of the large echo requests and replies, bytes")
	flag.StringVar(&o.docs, "docs", "docs", "folder of benchmarks.md and e2e-latency.svg")
	flag.BoolVar(&o.write, "write", true, "write the results into the docs folder (false: print only)")
	flag.BoolVar(&o.race, "race", false, "build the binaries with -race (the figures then mean little)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, o)
	testnet.RemoveBuilds()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2ebench:", err)
		os.Exit(1)
	}
}

// mode is one configuration of the network.
type mode struct {
	name   string
	delays bool
}

// result is what one mode measured.
type result struct {
	mode
	requests     int
	elapsed      time.Duration
	loaded       []time.Duration // latencies in the throughput phase, sorted
	unloaded     []time.Duration // latencies of sequential requests, sorted
	cpu          time.Duration   // CPU of every process during the throughput phase
	cpuByRole    map[string]time.Duration
	large        int // large replies received
	largeBytes   int64
	largeElapsed time.Duration
	largeLat     []time.Duration
	rss          []testnet.ProcessReport
	lost, dups   int
}

func run(ctx context.Context, o options) error {
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	bin, err := testnet.Build(ctx, testnet.BuildOptions{Race: o.race})
	if err != nil {
		return err
	}
	if bin.Provider == "" {
		return fmt.Errorf("no cmd/provider in this module")
	}
	var results []*result
	for _, m := range []mode{{"no mixing delay", false}, {"15 ms mean delay per hop", true}} {
		logf("mode: %s", m.name)
		r, err := measure(ctx, o, bin, m, logf)
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		results = append(results, r)
	}
	table := render(o, results)
	fmt.Println(table)
	if !o.write {
		return nil
	}
	if err := updateDoc(filepath.Join(o.docs, "benchmarks.md"), table); err != nil {
		return err
	}
	svg := chart(results)
	if err := os.WriteFile(filepath.Join(o.docs, "e2e-latency.svg"), svg, 0o644); err != nil {
		return err
	}
	logf("wrote %s and %s", filepath.Join(o.docs, "benchmarks.md"), filepath.Join(o.docs, "e2e-latency.svg"))
	return nil
}

// measure runs one mode's network and its three phases.
func measure(ctx context.Context, o options, bin *testnet.Binaries, m mode, logf func(string, ...any)) (*result, error) {
	dir, err := os.MkdirTemp("", "peapod-e2ebench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	n, err := testnet.Start(sctx, testnet.Config{Dir: dir, Bin: bin})
	if err != nil {
		return nil, err
	}
	defer n.Close()
	p, err := n.StartProvider(sctx, "provider", testnet.ProviderOptions{Delays: m.delays})
	if err != nil {
		return nil, err
	}
	tr := testnet.NewTracker()
	var reqs []*testnet.Requester
	defer func() {
		for _, r := range reqs {
			r.Close()
		}
	}()
	for i := range o.clients {
		c, err := n.StartClient(sctx, fmt.Sprintf("client-%d", i), testnet.ClientOptions{Delays: m.delays})
		if err != nil {
			return nil, err
		}
		conn, err := c.Dial(sctx)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, testnet.NewRequester(&testnet.WSEndpoint{Conn: conn}, p.Address(), tr, testnet.RequesterOptions{}))
	}
	res := &result{mode: m}
	payload := bytes.Repeat([]byte("e"), 100)
	call := func(r *testnet.Requester, id string, data []byte) (time.Duration, error) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		t0 := time.Now()
		rep, err := r.Call(cctx, id, "echo", data)
		if err != nil {
			return 0, err
		}
		if rep.Err != nil || !bytes.Equal(rep.Data, data) {
			return 0, fmt.Errorf("%s: wrong reply %+v", id, rep.Err)
		}
		return time.Since(t0), nil
	}

	// Warm up: every client's SURBs and routes, the provider's plugins.
	for i, r := range reqs {
		for j := range 5 {
			if _, err := call(r, fmt.Sprintf("warm-%d-%d", i, j), payload); err != nil {
				return nil, err
			}
		}
	}

	// Unloaded latency: one request at a time.
	logf("  unloaded latency: %d requests one at a time", o.sequential)
	for i := range o.sequential {
		d, err := call(reqs[i%len(reqs)], fmt.Sprintf("seq-%d", i), payload)
		if err != nil {
			return nil, err
		}
		res.unloaded = append(res.unloaded, d)
	}

	// Throughput: clients × window requests outstanding for o.load.
	logf("  throughput: %d clients × %d outstanding for %v", o.clients, o.window, o.load)
	cpu0 := cpuByProcess(n)
	t0 := time.Now()
	end := t0.Add(o.load)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	for ci, r := range reqs {
		for w := range o.window {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Now().Before(end); i++ {
					d, err := call(r, fmt.Sprintf("load-%d-%d-%d", ci, w, i), payload)
					mu.Lock()
					if err != nil {
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						return
					}
					res.loaded = append(res.loaded, d)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	res.elapsed = time.Since(t0)
	res.cpuByRole = make(map[string]time.Duration)
	for name, c := range cpuByProcess(n) {
		d := c - cpu0[name]
		res.cpu += d
		res.cpuByRole[role(name)] += d
	}
	res.requests = len(res.loaded)
	if firstErr != nil {
		return nil, firstErr
	}

	// Large replies: one client, one request at a time, with enough SURBs
	// for the whole reply.
	logf("  large replies: %d-byte echoes for %v", o.largeSize, o.largeFor)
	c, err := n.StartClient(sctx, "client-large", testnet.ClientOptions{Delays: m.delays})
	if err != nil {
		return nil, err
	}
	conn, err := c.Dial(sctx)
	if err != nil {
		return nil, err
	}
	big := testnet.NewRequester(&testnet.WSEndpoint{Conn: conn}, p.Address(), tr,
		testnet.RequesterOptions{SURBs: o.largeSize/1500 + 20})
	reqs = append(reqs, big)
	large := bytes.Repeat([]byte("L"), o.largeSize)
	t0 = time.Now()
	for i := 0; time.Since(t0) < o.largeFor || i < 3; i++ {
		d, err := call(big, fmt.Sprintf("large-%d", i), large)
		if err != nil {
			return nil, err
		}
		res.large++
		res.largeBytes += int64(len(large))
		res.largeLat = append(res.largeLat, d)
	}
	res.largeElapsed = time.Since(t0)

	rep := tr.Report()
	res.lost, res.dups = rep.Lost, rep.Duplicated
	res.rss = n.Resources()
	sortDurations(res.loaded)
	sortDurations(res.unloaded)
	sortDurations(res.largeLat)
	logf("  %d requests in %v: %.0f/s, p50 %v, p99 %v; CPU %.3f ms a request",
		res.requests, res.elapsed.Round(time.Millisecond), float64(res.requests)/res.elapsed.Seconds(),
		testnet.Percentile(res.loaded, 50), testnet.Percentile(res.loaded, 99),
		float64(res.cpu.Microseconds())/1000/float64(max(res.requests, 1)))
	return res, nil
}

func sortDurations(d []time.Duration) { slices.Sort(d) }

// cpuByProcess reads the CPU time of every process of n (children
// included) by name.
func cpuByProcess(n *testnet.Network) map[string]time.Duration {
	out := make(map[string]time.Duration)
	for _, p := range n.Processes() {
		out[p.Name()] = p.CPU()
	}
	return out
}

// roles are the groups of processes the CPU table shows.
var roles = []string{"clients", "gateways", "mixnodes", "provider and plugins", "directory"}

// role names the group of the process called name.
func role(name string) string {
	switch {
	case strings.HasPrefix(name, "client"):
		return "clients"
	case strings.HasPrefix(name, "gateway"):
		return "gateways"
	case strings.HasPrefix(name, "mixnode"):
		return "mixnodes"
	case strings.HasPrefix(name, "provider"):
		return "provider and plugins"
	}
	return "directory"
}

// render formats the results as the markdown section.
func render(o options, rs []*result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## End to end, process network (`make bench`: internal/testnet/cmd/e2ebench)\n\n")
	fmt.Fprintf(&b, "Measured %s on %d CPUs (%s, %s), commit %s. Each mode is a fresh network of separate processes on loopback: a directory, 2 mixnodes per layer, 2 gateways, the provider with the echo and kvstore plugins, and %d `client run` processes driven over their WebSocket API; cover traffic off; 10 reply SURBs a request. Latency is from the request leaving the application to its reply arriving (requester → mixnet → provider → echo plugin → mixnet → requester). CPU is the sum over every process of the network (mixnodes, gateways, directory, provider and plugins, clients) during the throughput phase, divided by the requests it completed.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH, runtime.Version(), commit(), o.clients)
	fmt.Fprintf(&b, "| mode | requests/s | latency p50 | latency p99 | unloaded p50 | unloaded p99 | large replies (%d KiB) | CPU s per request |\n", o.largeSize>>10)
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %s | %s | %.0f KB/s (p50 %s) | %.4f |\n",
			r.name, float64(r.requests)/r.elapsed.Seconds(),
			ms(testnet.Percentile(r.loaded, 50)), ms(testnet.Percentile(r.loaded, 99)),
			ms(testnet.Percentile(r.unloaded, 50)), ms(testnet.Percentile(r.unloaded, 99)),
			float64(r.largeBytes)/r.largeElapsed.Seconds()/1000, ms(testnet.Percentile(r.largeLat, 50)),
			r.cpu.Seconds()/float64(max(r.requests, 1)))
	}
	fmt.Fprintf(&b, "\nThroughput phase: %d clients × %d requests outstanding, %v, 100-byte echoes. Unloaded: %d requests one at a time. Large replies: one client, one %d-byte echo at a time (the request is as large), for %v; KB/s counts reply payload bytes. Lost or duplicated replies over all phases: ",
		o.clients, o.window, o.load, o.sequential, o.largeSize, o.largeFor)
	for i, r := range rs {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %d lost, %d duplicated", r.name, r.lost, r.dups)
	}
	b.WriteString(".\n\nCPU per request in the throughput phase, by role (ms):\n\n| mode |")
	for _, r := range roles {
		fmt.Fprintf(&b, " %s |", r)
	}
	b.WriteString(" all |\n|---|")
	for range roles {
		b.WriteString("---:|")
	}
	b.WriteString("---:|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s |", r.name)
		n := float64(max(r.requests, 1))
		for _, ro := range roles {
			fmt.Fprintf(&b, " %.2f |", float64(r.cpuByRole[ro].Microseconds())/1000/n)
		}
		fmt.Fprintf(&b, " %.2f |\n", float64(r.cpu.Microseconds())/1000/n)
	}
	b.WriteString("\n![Latency of echo requests, by mode](e2e-latency.svg)\n\n")
	b.WriteString("Peak RSS (MiB) of each process over the whole run of each mode:\n\n")
	b.WriteString("| process |")
	for _, r := range rs {
		fmt.Fprintf(&b, " %s |", r.name)
	}
	b.WriteString("\n|---|")
	for range rs {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for i, pr := range rs[0].rss {
		fmt.Fprintf(&b, "| %s |", pr.Name)
		for _, r := range rs {
			if i < len(r.rss) && r.rss[i].Name == pr.Name {
				fmt.Fprintf(&b, " %.1f |", float64(r.rss[i].PeakRSS)/(1<<20))
			} else {
				b.WriteString(" |")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("\nRerun with `make bench` (or `go run ./internal/testnet/cmd/e2ebench`); `-load`, `-clients`, `-window` change the load.\n")
	return b.String()
}

func ms(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000)
	default:
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	}
}

// commit is the short hash of HEAD, "unknown" outside a git checkout.
func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// updateDoc puts section between the markers of the file at path, adding
// the markers at its end (or creating the file) when they are missing, and
// leaves the rest of the file as it was.
func updateDoc(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	doc := string(old)
	block := beginMarker + "\n" + section + endMarker
	i, j := strings.Index(doc, beginMarker), strings.Index(doc, endMarker)
	switch {
	case i >= 0 && j > i:
		doc = doc[:i] + block + doc[j+len(endMarker):]
	case i >= 0 || j >= 0:
		return fmt.Errorf("%s has one e2e marker without the other; fix it by hand", path)
	case doc == "":
		doc = "# peapod benchmarks\n\n" + block + "\n"
	default:
		if !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		doc += "\n" + block + "\n"
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
