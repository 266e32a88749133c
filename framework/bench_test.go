package framework

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/framework/requester"
)

// benchConcurrency is how many requests each benchmark keeps in flight.
const benchConcurrency = 8

// BenchmarkProviderEcho measures echo requests end to end through a local
// mixnet with zero mix delay and cover traffic off: a requester's client
// sends each request anonymously with reply SURBs, through three mixnodes
// and the gateways, to the provider's embedded client; the host hands it
// to the echo plugin over gRPC and the reply travels back on the SURBs.
// It reports requests/s and the latency's p50 and p99.
//
// The baseline sub-benchmark is the same round trip between two bare
// clients (one replies with what it gets), measured on the same network in
// the same run: the difference is the provider host's cost.
func BenchmarkProviderEcho(b *testing.B) {
	n := startLocalnet(b, b.TempDir())
	payload := []byte("hello through the mixnet")

	b.Run("provider", func(b *testing.B) {
		h := startNetworkHost(b, n, b.TempDir(), Config{Plugins: PluginsConfig{Dir: pluginDir(b, pluginEcho)}})
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		s, err := requester.Connect(ctx, requester.Config{
			ProviderURL: "http://" + h.HTTPAddr(),
			ProviderKey: h.Key(),
			Client:      fastClient(b),
			Options:     requester.Options{Resend: -1},
		})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		runRoundTrips(b, func(ctx context.Context, i int) error {
			reply, err := s.Do(ctx, "echo", payload)
			if err == nil && string(reply) != string(payload) {
				err = fmt.Errorf("reply %q", reply)
			}
			return err
		})
	})

	b.Run("baseline", func(b *testing.B) {
		sender, replier := startBenchClient(b, n), startBenchClient(b, n)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { // the replier echoes
			for {
				m, err := replier.Receive(ctx)
				if err != nil {
					return
				}
				if m.SenderTag != nil {
					replier.Reply(ctx, *m.SenderTag, m.Data)
				}
			}
		}()
		var mu sync.Mutex
		waiting := make(map[string]chan struct{})
		go func() { // the sender matches replies by content
			for {
				m, err := sender.Receive(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				if ch := waiting[string(m.Data)]; ch != nil {
					close(ch)
					delete(waiting, string(m.Data))
				}
				mu.Unlock()
			}
		}()
		runRoundTrips(b, func(ctx context.Context, i int) error {
			msg := fmt.Sprintf("%s %d", payload, i)
			ch := make(chan struct{})
			mu.Lock()
			waiting[msg] = ch
			mu.Unlock()
			if _, err := sender.SendAnonymous(ctx, replier.Address(), []byte(msg), requester.DefaultSURBs); err != nil {
				return err
			}
			select {
			case <-ch:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	})
}

func startBenchClient(b *testing.B, n interface{ DirectoryURL() string }) *client.Client {
	b.Helper()
	cfg := fastClient(b)
	cfg.DataDir, cfg.DirectoryURL = b.TempDir(), n.DirectoryURL()
	c, err := client.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// runRoundTrips runs b.N round trips, benchConcurrency at a time, and
// reports requests/s and the latency's p50 and p99 in milliseconds.
func runRoundTrips(b *testing.B, roundTrip func(ctx context.Context, i int) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// One warm-up round trip: routes, SURB keys and plugin connections.
	if err := roundTrip(ctx, -1); err != nil {
		b.Fatal(err)
	}
	latencies := make([]time.Duration, b.N)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range min(benchConcurrency, b.N) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N || failed.Load() != nil {
					return
				}
				t0 := time.Now()
				if err := roundTrip(ctx, i); err != nil {
					failed.Store(&err)
					return
				}
				latencies[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
	slices.Sort(latencies)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(ms(latencies[len(latencies)/2]), "p50-ms")
	b.ReportMetric(ms(latencies[(len(latencies)*99)/100]), "p99-ms")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
