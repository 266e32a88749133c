package testnet

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/wsapi"
)

var (
	flagRace = flag.Bool("testnet.race", os.Getenv("TESTNET_RACE") != "",
		"build the network's binaries with -race (also TESTNET_RACE=1)")
	flagFull = flag.Bool("testnet.full", os.Getenv("TESTNET_FULL") != "",
		"run the full-length load scenario: 50 client processes for a minute (also TESTNET_FULL=1)")
	flagLogs = flag.Bool("testnet.logs", false, "print every process's whole log at the end, pass or fail")
	flagDir  = flag.String("testnet.dir", os.Getenv("TESTNET_DIR"),
		"keep every test's data and logs in this folder (one subfolder per test) instead of a temporary one (also TESTNET_DIR)")
)

// binaries builds the programs once per test process.
func binaries(t testing.TB) *Binaries {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b, err := Build(ctx, BuildOptions{Race: *flagRace})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// needProvider skips a test when cmd/provider was not built.
func needProvider(t testing.TB, b *Binaries) {
	t.Helper()
	if b.Provider == "" || b.Plugin("echo") == "" || b.Plugin("kvstore") == "" {
		t.Skip("cmd/provider or the example plugins are not in this module yet")
	}
}

// startNet starts a network for t. When t ends it stops every process,
// reports each one's peak RSS, fails t on a process that ended without
// being asked to, and prints the logs of every process if t failed.
func startNet(t testing.TB, cfg Config) *Network {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a network of processes")
	}
	cfg.Dir = t.TempDir()
	if *flagDir != "" {
		cfg.Dir = filepath.Join(*flagDir, strings.ReplaceAll(t.Name(), "/", "_"))
		os.RemoveAll(cfg.Dir)
	}
	cfg.Bin = binaries(t)
	start := time.Now()
	cfg.Logf = func(format string, args ...any) {
		t.Logf("[%6.2fs] %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Read the resources before Close: a process's last sample is
		// taken while it runs.
		unexpected := n.UnexpectedExits()
		if err := n.Close(); err != nil {
			t.Errorf("stopping the network: %v", err)
		}
		t.Logf("resources of every process (peak RSS from VmHWM):\n%s", n.ResourceTable())
		for _, u := range unexpected {
			t.Errorf("process ended unexpectedly: %s", u)
		}
		if t.Failed() || *flagLogs {
			for _, p := range n.Processes() {
				b, _ := os.ReadFile(p.LogPath())
				s := string(b)
				if !*flagLogs && len(s) > 64<<10 {
					s = "…\n" + s[len(s)-64<<10:]
				}
				t.Logf("===== log of %s (%s):\n%s", p.Name(), p.LogPath(), s)
			}
		}
	})
	return n
}

// ctxFor returns a context that ends after d or when t ends.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// dialWS opens an Endpoint on a client process's API.
func dialWS(t testing.TB, c *Client) *WSEndpoint {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := c.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ep := &WSEndpoint{Conn: conn}
	t.Cleanup(func() { ep.Close() })
	return ep
}

// inbox collects the messages an Endpoint receives, in arrival order.
type inbox struct {
	mu      sync.Mutex
	msgs    []client.Message
	errs    []string
	changed chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

func newInbox(ep Endpoint) *inbox {
	ctx, cancel := context.WithCancel(context.Background())
	in := &inbox{changed: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(in.done)
		for {
			m, err := ep.Receive(ctx)
			in.mu.Lock()
			if err != nil {
				in.errs = append(in.errs, err.Error())
			} else {
				in.msgs = append(in.msgs, m)
			}
			close(in.changed)
			in.changed = make(chan struct{})
			in.mu.Unlock()
			if err != nil {
				if _, ok := err.(*ClientError); !ok {
					return
				}
			}
		}
	}()
	return in
}

func (in *inbox) stop() {
	in.cancel()
	<-in.done
}

// waitEnd waits until the endpoint ends by itself (its client died or
// closed the connection).
func (in *inbox) waitEnd(ctx context.Context) error {
	select {
	case <-in.done:
		return nil
	case <-ctx.Done():
		in.stop()
		return fmt.Errorf("the endpoint did not end: %w", ctx.Err())
	}
}

// waitCount waits until the inbox holds at least n messages.
func (in *inbox) waitCount(ctx context.Context, n int) error {
	for {
		in.mu.Lock()
		got, changed := len(in.msgs), in.changed
		in.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-changed:
		case <-in.done:
			in.mu.Lock()
			defer in.mu.Unlock()
			return fmt.Errorf("the endpoint ended after %d of %d messages: %v", got, n, in.errs)
		case <-ctx.Done():
			return fmt.Errorf("%d of %d messages arrived: %w", got, n, ctx.Err())
		}
	}
}

func (in *inbox) messages() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]string, len(in.msgs))
	for i, m := range in.msgs {
		out[i] = string(m.Data)
	}
	return out
}

// checkSequence checks that got is exactly want, and says what was lost,
// duplicated or out of order.
func checkSequence(t testing.TB, got, want []string) {
	t.Helper()
	checkSet(t, got, want)
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("out of order from position %d: got %v…, want %v…", i, head(got[i:]), head(want[i:]))
			break
		}
	}
}

// checkSet fails t unless got holds every message of want exactly once,
// in any order.
func checkSet(t testing.TB, got, want []string) {
	t.Helper()
	count := make(map[string]int)
	for _, g := range got {
		count[g]++
	}
	var lost, dup []string
	for _, w := range want {
		switch count[w] {
		case 0:
			lost = append(lost, w)
		case 1:
		default:
			dup = append(dup, w)
		}
	}
	if len(lost) > 0 || len(dup) > 0 {
		t.Errorf("lost %d: %v; duplicated %d: %v", len(lost), head(lost), len(dup), head(dup))
	}
	if len(got) != len(want) {
		t.Errorf("got %d messages, want %d", len(got), len(want))
	}
}

func head(s []string) []string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// numbered returns the messages prefix-from … prefix-(to-1).
func numbered(prefix string, from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%05d", prefix, i))
	}
	return out
}

// sendAll sends each message to to through ep, one every gap.
func sendAll(ctx context.Context, ep Endpoint, to address.Address, msgs []string, gap time.Duration) error {
	for _, m := range msgs {
		if err := ep.Send(ctx, to, []byte(m)); err != nil {
			return fmt.Errorf("sending %s: %w", m, err)
		}
		if gap > 0 {
			select {
			case <-time.After(gap):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// quiet waits d for stray arrivals (duplicates can only be seen by
// waiting for them) and fails t if the inbox grew past want.
func (in *inbox) quiet(t testing.TB, d time.Duration, want int) {
	t.Helper()
	time.Sleep(d)
	if got := len(in.messages()); got != want {
		t.Errorf("%d messages after a quiet %v, want %d", got, d, want)
	}
}

func joinLines(lines []string) string { return strings.Join(lines, "\n") }

// wsConn is a connection to a client's WebSocket API.
type wsConn = wsapi.Conn

// TestMain removes the binaries the tests built.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	RemoveBuilds()
	loadPlugins.Remove()
	os.Exit(code)
}
