package mixnode

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/internal/node"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// TestRouteThroughThreeNodes sends packets along mixnode → mixnode →
// mixnode → sink over real sockets: they arrive intact, and delays are
// honoured (a packet delayed at the second hop arrives after one sent
// later without delay).
func TestRouteThroughThreeNodes(t *testing.T) {
	withMetrics := func(c *Config) { c.MetricsAddr = "127.0.0.1:0" }
	n1, n2, n3 := newNode(t, 1, withMetrics), newNode(t, 2, withMetrics), newNode(t, 3, withMetrics)
	s := newSink(t)

	msg := []byte("through three mixnodes")
	p := packet(t, sphinx.RegularPacket, msg, hop(t, n1, 0), hop(t, n2, 0), hop(t, n3, 0), s.hop(t))
	send(t, n1, p)
	if got := s.open(t, s.next(t).packet); !bytes.Equal(got, msg) {
		t.Fatalf("the sink got %q, want %q", got, msg)
	}

	const long = 400 * time.Millisecond
	slow := packet(t, sphinx.RegularPacket, []byte("slow"), hop(t, n1, 0), hop(t, n2, long), hop(t, n3, 0), s.hop(t))
	fast := packet(t, sphinx.RegularPacket, []byte("fast"), hop(t, n1, 0), hop(t, n2, 5*time.Millisecond), hop(t, n3, 0), s.hop(t))
	sentAt := time.Now()
	send(t, n1, slow, fast) // slow first, on one connection
	first, second := s.next(t), s.next(t)
	if got := s.open(t, first.packet); string(got) != "fast" {
		t.Fatalf("first arrival is %q, want the fast packet", got)
	}
	if got := s.open(t, second.packet); string(got) != "slow" {
		t.Fatalf("second arrival is %q, want the slow packet", got)
	}
	if d := second.at.Sub(sentAt); d < long {
		t.Fatalf("the slow packet arrived after %v, before its %v delay", d, long)
	}

	for _, n := range []*Node{n1, n2, n3} {
		st := settled(t, n, 3)
		if st.Forwarded != 3 || st.DroppedTotal() != 0 {
			t.Fatalf("layer %d: %+v", n.Layer(), st)
		}
		// Each node has its own registry.
		body := get(t, n, PathMetrics, http.StatusOK)
		for _, want := range []string{"peapod_mixnode_packets_received_total 3", "peapod_mixnode_packets_forwarded_total 3", `peapod_mixnode_packets_dropped_total{reason="replay"} 0`, `peapod_mixnode_queue_depth{queue="delay"} 0`} {
			if !strings.Contains(body, want) {
				t.Fatalf("layer %d metrics lack %q:\n%s", n.Layer(), want, body)
			}
		}
	}
}

// TestReplayDropped sends a packet twice: the first node drops the copy.
func TestReplayDropped(t *testing.T) {
	n1, n2 := newNode(t, 1, nil), newNode(t, 2, nil)
	s := newSink(t)
	p := packet(t, sphinx.AckPacket, []byte("once"), hop(t, n1, 0), hop(t, n2, 0), s.hop(t))
	send(t, n1, p)
	s.next(t)
	send(t, n1, p) // a new connection, the same packet
	st := settled(t, n1, 2)
	if st.Dropped[DropReplay] != 1 || st.Forwarded != 1 {
		t.Fatalf("first node: %+v", st)
	}
	if st := settled(t, n2, 1); st.DroppedTotal() != 0 {
		t.Fatalf("second node saw the replay: %+v", st)
	}
	select {
	case <-s.arrivals:
		t.Fatal("the replayed packet reached the sink")
	default:
	}
}

// TestReplayDroppedAfterRestart processes a packet, stops the node and
// starts it again on the same DataDir: the node drops the same packet as a
// replay, and still forwards fresh ones. The filter is saved by Close
// ("closed"), or by the periodic save while the first node still runs, as
// it would be found after a crash ("crashed").
func TestReplayDroppedAfterRestart(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "closed", true: "crashed"}[crash], func(t *testing.T) {
			dir := t.TempDir()
			inDir := func(c *Config) { c.DataDir, c.ReplaySaveInterval = dir, -1 }
			if crash {
				inDir = func(c *Config) { c.DataDir, c.ReplaySaveInterval = dir, time.Second }
			}
			n1, n2, s := newNode(t, 1, inDir), newNode(t, 2, nil), newSink(t)
			p := packet(t, sphinx.AckPacket, []byte("once"), hop(t, n1, 0), hop(t, n2, 0), s.hop(t))
			send(t, n1, p)
			s.next(t)
			settled(t, n1, 1)
			if crash {
				eventually(t, "the periodic save writes the filter", func() bool {
					_, err := os.Stat(filepath.Join(dir, node.StaticReplayFile))
					return err == nil
				})
				// The "crashed" node still holds its port: the restarted one
				// takes another.
				if err := os.Remove(filepath.Join(dir, node.ListenFile)); err != nil {
					t.Fatal(err)
				}
			} else if err := n1.Close(); err != nil {
				t.Fatal(err)
			}

			again := newNode(t, 1, inDir)
			if again.SphinxKey() != n1.SphinxKey() {
				t.Fatal("the restarted node has another Sphinx key")
			}
			send(t, again, p)
			if st := settled(t, again, 1); st.Dropped[DropReplay] != 1 || st.Forwarded != 0 {
				t.Fatalf("restarted node: %+v", st)
			}
			fresh := packet(t, sphinx.AckPacket, []byte("fresh"), hop(t, again, 0), hop(t, n2, 0), s.hop(t))
			send(t, again, fresh)
			if got := s.open(t, s.next(t).packet); !bytes.HasPrefix(got, []byte("fresh")) {
				t.Fatalf("the sink got %q", got)
			}
			if st := settled(t, n2, 2); st.DroppedTotal() != 0 {
				t.Fatalf("second node: %+v", st)
			}
		})
	}
}

// TestBadPacketsAndConnections throws every kind of bad input at a node and
// checks each is dropped or cut off while the node keeps serving.
func TestBadPacketsAndConnections(t *testing.T) {
	n := newNode(t, 1, func(c *Config) {
		c.FrameTimeout = 200 * time.Millisecond
		c.IdleTimeout = 400 * time.Millisecond
		c.MaxDelay = 50 * time.Millisecond
	})
	s := newSink(t)
	other := newNode(t, 2, nil)

	// A well-formed frame whose packet is random bytes.
	random := make([]byte, sphinx.RegularPacket.Len())
	rand.Read(random)
	send(t, n, random)
	// A packet made for another node.
	send(t, n, packet(t, sphinx.AckPacket, nil, hop(t, other, 0), s.hop(t)))
	// A route that ends at this node.
	send(t, n, packet(t, sphinx.AckPacket, []byte("for me?"), hop(t, n, 0)))
	// A delay beyond MaxDelay: held for MaxDelay only.
	sent := time.Now()
	send(t, n, packet(t, sphinx.AckPacket, []byte("clamped"), hop(t, n, time.Hour), s.hop(t)))
	if got := s.open(t, s.next(t).packet); !bytes.HasPrefix(got, []byte("clamped")) {
		t.Fatalf("the sink got %q", got)
	}
	if held := time.Since(sent); held < 50*time.Millisecond {
		t.Fatalf("the packet asking for an hour was held %v, less than MaxDelay", held)
	}
	st := settled(t, n, 4)
	if st.Dropped[DropAuthentication] != 2 || st.Dropped[DropFinalHop] != 1 || st.DelaysClamped != 1 || st.Forwarded != 1 {
		t.Fatalf("stats %+v", st)
	}

	// Garbage bytes: the connection is closed.
	garbage := make([]byte, 500)
	rand.Read(garbage)
	garbage[0] = 0x42
	waitClosedByPeer(t, sendRaw(t, n, garbage))
	// A frame whose size tag says ack but which carries a regular-sized
	// packet: the ack-sized prefix is peeled (and fails), the rest is read
	// as the next header and refused.
	wrongSize := append([]byte{wire.Version, byte(sphinx.AckPacket), 0, 0}, random...)
	wrongSize[wire.HeaderSize+sphinx.AckPacket.Len()] = 0x42
	waitClosedByPeer(t, sendRaw(t, n, wrongSize))
	regular := packet(t, sphinx.RegularPacket, nil, hop(t, n, 0), s.hop(t))
	// An unknown size tag.
	waitClosedByPeer(t, sendRaw(t, n, append([]byte{wire.Version, 9, 0, 0}, regular...)))
	// Half a frame, then silence: closed by the frame deadline.
	waitClosedByPeer(t, sendRaw(t, n, frames(t, regular)[:100]))
	// A connection that sends nothing: closed by the idle deadline.
	waitClosedByPeer(t, dial(t, n))
	// A frame cut short by the peer closing.
	c := sendRaw(t, n, frames(t, regular)[:1000])
	c.(interface{ CloseWrite() error }).CloseWrite()
	waitClosedByPeer(t, c)

	st = settled(t, n, 5)
	if st.MalformedFrames != 3 || st.FrameTimeouts != 1 || st.IdleTimeouts == 0 || st.TruncatedFrames != 1 {
		t.Fatalf("connection stats %+v", st)
	}
	if st.Dropped[DropAuthentication] != 3 {
		t.Fatalf("the wrong-size frame was not dropped: %+v", st)
	}

	// The node still serves.
	good := packet(t, sphinx.RegularPacket, []byte("still here"), hop(t, n, 0), s.hop(t))
	send(t, n, good)
	if got := s.open(t, s.next(t).packet); string(got) != "still here" {
		t.Fatalf("got %q", got)
	}
}

// sendRaw writes raw bytes to n over a new connection.
func sendRaw(t testing.TB, n *Node, b []byte) net.Conn {
	t.Helper()
	c := dial(t, n)
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestOverloadDrops floods a node that has one worker and a tiny queue: it
// drops and counts instead of queueing, and accounts for every packet.
func TestOverloadDrops(t *testing.T) {
	n := newNode(t, 1, func(c *Config) {
		c.Workers = 1
		c.MaxQueue = 2
	})
	s := newSink(t)
	const count = 60
	ps := packets(t, count, sphinx.AckPacket, hop(t, n, 0), s.hop(t))
	send(t, n, ps...)
	st := settled(t, n, count)
	if st.Dropped[DropQueueFull] == 0 || st.Forwarded == 0 {
		t.Fatalf("stats %+v", st)
	}
	if st.Dropped[DropQueueFull]+st.Forwarded != count {
		t.Fatalf("drops other than overload: %+v", st)
	}
	for range st.Forwarded {
		s.next(t)
	}
}

// TestDelayQueueBound fills the delay queue: packets beyond MaxQueue are
// dropped, the others leave when their delay has passed.
func TestDelayQueueBound(t *testing.T) {
	n := newNode(t, 1, func(c *Config) { c.MaxQueue, c.MaxQueuePerPeer = 2, 2 })
	s := newSink(t)
	ps := packets(t, 5, sphinx.AckPacket, hop(t, n, 300*time.Millisecond), s.hop(t))
	c := dial(t, n) // one peer: its later packets are refused, evicting none
	for i, p := range ps {
		if _, err := c.Write(frames(t, p)); err != nil {
			t.Fatal(err)
		}
		// One at a time, so the work queue (also 2) never overflows.
		eventually(t, fmt.Sprintf("packet %d is peeled", i), func() bool {
			st := n.Stats()
			return uint64(st.DelayQueue)+st.Dropped[DropDelayQueueFull]+st.Forwarded == uint64(i+1)
		})
	}
	st := settled(t, n, 5)
	if st.Dropped[DropDelayQueueFull] != 3 || st.Forwarded != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDropRate checks the fault injection drops about the configured share.
func TestDropRate(t *testing.T) {
	const rate, count = 0.3, 300
	n := newNode(t, 1, func(c *Config) { c.DropRate = rate })
	s := newSink(t)
	ps := packets(t, count, sphinx.AckPacket, hop(t, n, 0), s.hop(t))
	send(t, n, ps...)
	st := settled(t, n, count)
	injected := float64(st.Dropped[DropInjected])
	// Five standard deviations of the binomial: fails once in millions.
	mean, sd := rate*count, math.Sqrt(count*rate*(1-rate))
	if math.Abs(injected-mean) > 5*sd {
		t.Fatalf("%v of %d packets dropped at rate %v", injected, count, rate)
	}
	if st.Forwarded+st.Dropped[DropInjected] != count {
		t.Fatalf("other drops: %+v", st)
	}
}

func TestMetricsAndHealth(t *testing.T) {
	n := newNode(t, 1, func(c *Config) { c.MetricsAddr = "127.0.0.1:0" })
	if body := get(t, n, PathHealth, http.StatusOK); !strings.Contains(body, `"ok"`) {
		t.Fatalf("health: %s", body)
	}
	random := make([]byte, sphinx.AckPacket.Len())
	send(t, n, random)
	settled(t, n, 1)
	body := get(t, n, PathMetrics, http.StatusOK)
	for _, r := range DropReasons {
		want := fmt.Sprintf("peapod_mixnode_packets_dropped_total{reason=%q} %d", r, map[bool]int{true: 1}[r == DropAuthentication])
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %q", want)
		}
	}
	if !strings.Contains(body, "go_goroutines") {
		t.Fatal("metrics lack the Go runtime's")
	}
}

// get fetches path from n's metrics server and checks the status.
func get(t testing.TB, n *Node, path string, status int) string {
	t.Helper()
	resp, err := http.Get("http://" + n.MetricsAddr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return string(body)
}

func TestLifecycle(t *testing.T) {
	cfg := Config{ListenAddr: "127.0.0.1:0", Layer: 1, DataDir: t.TempDir(), ReplayCapacity: testReplayCapacity}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n.Addr().IsValid() {
		t.Fatal("Addr is set before Start")
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err == nil {
		t.Fatal("a second Start succeeded")
	}
	if !n.Addr().IsValid() || n.Addr().Port() == 0 || n.AnnounceAddr() != n.Addr() {
		t.Fatalf("Addr %v, AnnounceAddr %v", n.Addr(), n.AnnounceAddr())
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := n.Start(context.Background()); err == nil {
		t.Fatal("Start after Close succeeded")
	}

	// Close without Start.
	cfg.DataDir = t.TempDir()
	idle, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAnnounceAddr checks that an announced address with port 0 takes the
// bound port.
func TestAnnounceAddr(t *testing.T) {
	n := newNode(t, 1, func(c *Config) {
		c.ListenAddr = "0.0.0.0:0"
		c.AnnounceAddr = "127.0.0.1:0"
	})
	if n.AnnounceAddr().String() != fmt.Sprintf("127.0.0.1:%d", n.Addr().Port()) {
		t.Fatalf("announce %v, listening on %v", n.AnnounceAddr(), n.Addr())
	}
	// Packets routed to the announced address arrive.
	s := newSink(t)
	send(t, n, packet(t, sphinx.AckPacket, []byte("hi"), hop(t, n, 0), s.hop(t)))
	s.next(t)
}

func TestConfigRefused(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Layer = 0 }, "Layer"},
		{func(c *Config) { c.Layer = 4 }, "Layer"},
		{func(c *Config) { c.DataDir = "" }, "DataDir"},
		{func(c *Config) { c.ListenAddr = "localhost:1789" }, "ListenAddr"},
		{func(c *Config) { c.ListenAddr = "127.0.0.1" }, "ListenAddr"},
		{func(c *Config) { c.ListenAddr = "127.0.0.1:99999" }, "ListenAddr"},
		{func(c *Config) { c.AnnounceAddr = "0.0.0.0:1789" }, "AnnounceAddr"},
		{func(c *Config) { c.AnnounceAddr = "example.org:1789" }, "AnnounceAddr"},
		{func(c *Config) { c.ListenAddr = ":1789"; c.DirectoryURL = "http://127.0.0.1:1" }, "AnnounceAddr"},
		{func(c *Config) { c.DirectoryURL = "ftp://x" }, "DirectoryURL"},
		{func(c *Config) { c.DropRate = 1.5 }, "DropRate"},
		{func(c *Config) { c.DropRate = math.NaN() }, "DropRate"},
		{func(c *Config) { c.MaxQueue = -1 }, "MaxQueue"},
		{func(c *Config) { c.MaxQueue, c.MaxQueuePerPeer = 10, 11 }, "MaxQueuePerPeer"},
		{func(c *Config) { c.MaxQueueBytes = 1000 }, "MaxQueueBytes"},
		{func(c *Config) { c.MaxQueueBytesPerPeer = 1000 }, "MaxQueueBytesPerPeer"},
		{func(c *Config) { c.Workers = -1 }, "Workers"},
		{func(c *Config) { c.MaxDelay = -1 }, "MaxDelay"},
		{func(c *Config) { c.ReplayCapacity = -1 }, "ReplayCapacity"},
		{func(c *Config) { c.ReplaySaveInterval = time.Millisecond }, "ReplaySaveInterval"},
	}
	for _, tc := range cases {
		cfg := Config{ListenAddr: "127.0.0.1:0", Layer: 1, DataDir: dir, ReplayCapacity: testReplayCapacity}
		tc.change(&cfg)
		_, err := New(cfg)
		if err == nil || !strings.HasPrefix(err.Error(), "mixnode: Config."+tc.want) {
			t.Errorf("%+v: %v, want an error naming %s", cfg, err, tc.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg := Config{Layer: 2, DataDir: "x"}
	if err := cfg.applyDefaults(); err != nil {
		t.Fatal(err)
	}
	if cfg.ListenAddr != DefaultListenAddr || cfg.MaxQueue != DefaultMaxQueue || cfg.Workers < 1 ||
		cfg.ReplayCapacity != sphinx.DefaultReplayCapacity || cfg.MaxDelay != 0 || cfg.OutboundQueue != DefaultOutboundQueue ||
		cfg.ReplaySaveInterval != DefaultReplaySaveInterval || cfg.MaxQueueBytes != DefaultMaxQueueBytes ||
		cfg.MaxQueuePerPeer != DefaultMaxQueue/2 || cfg.MaxQueueBytesPerPeer != DefaultMaxQueueBytes/2 {
		t.Fatalf("defaults: %+v", cfg)
	}
}

// TestDelayBound: the bound derived from the advertised mean is
// DelayBoundFactor times it, within MinDelayBound and DefaultMaxDelay.
func TestDelayBound(t *testing.T) {
	for _, tc := range []struct{ mean, want time.Duration }{
		{0, MinDelayBound},
		{time.Millisecond, MinDelayBound},
		{15 * time.Millisecond, 300 * time.Millisecond},
		{50 * time.Millisecond, time.Second},
		{time.Second, 20 * time.Second},
		{10 * time.Second, DefaultMaxDelay},
		{time.Duration(math.MaxInt64), DefaultMaxDelay},
	} {
		if got := delayBound(tc.mean); got != tc.want {
			t.Errorf("delayBound(%v) = %v, want %v", tc.mean, got, tc.want)
		}
	}
}

// TestCloseEndsEverything closes a node holding delayed packets: they are
// dropped and counted, and every goroutine of the node has ended.
func TestCloseEndsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	s := newSink(t)
	n, err := New(Config{ListenAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", Layer: 1, DataDir: t.TempDir(), ReplayCapacity: testReplayCapacity})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	held := packets(t, 3, sphinx.AckPacket, hop(t, n, 20*time.Second), s.hop(t))
	c := send(t, n, held...)
	send(t, n, packet(t, sphinx.AckPacket, nil, hop(t, n, 0), s.hop(t)))
	s.next(t)
	eventually(t, "the packets are delayed", func() bool { return n.Stats().DelayQueue == 3 })

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosedByPeer(t, c)
	st := n.Stats()
	if st.Dropped[DropShutdown] != 3 || st.Forwarded != 1 || st.Received != 4 || st.DelayQueue != 0 {
		t.Fatalf("after Close: %+v", st)
	}
	c.Close()
	// The sink's server is the only thing left running.
	eventually(t, "the node's goroutines end", func() bool { return runtime.NumGoroutine() <= before+sinkGoroutines(s) })
}

// sinkGoroutines is how many goroutines a sink runs: its Serve loop and one
// per open connection.
func sinkGoroutines(s *sink) int { return 1 + s.srv.Stats().Active }
