package gateway

import (
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/internal/gwproto"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// BenchmarkGatewayStore measures the store's throughput through a whole
// gateway: b.N ack packets for an offline client arrive over one mix
// connection and are peeled and committed (stored_msgs/s), then the client
// connects and drains them in pages, confirming each page
// (drained_msgs/s). The baseline sub-benchmark commits the same number of
// messages straight into the store from the same number of goroutines as
// the gateway's store workers, without Sphinx or sockets.
func BenchmarkGatewayStore(b *testing.B) {
	b.Run("gateway", func(b *testing.B) {
		cfg := testConfig(b, b.TempDir(), nil, nil)
		// The packets come in one write, faster than they are peeled: the
		// exit queue holds them all, as TCP held them when each connection
		// peeled its own.
		cfg.MaxExitQueue = max(b.N, DefaultMaxExitQueue)
		cfg.MaxExitQueueBytes = max(b.N*sphinx.AckPacket.Len(), DefaultMaxExitQueueBytes)
		cfg.MaxExitQueuePerPeer, cfg.MaxExitQueueBytesPerPeer = cfg.MaxExitQueue, cfg.MaxExitQueueBytes
		// A replay filter for twice the packets sent: the tests' filter
		// holds 10,000 tags, and past that its false positives dropped
		// fresh packets, so that a run of more never saw them all stored.
		cfg.ReplayCapacity = max(cfg.ReplayCapacity, 2*b.N)
		g := startGateway(b, cfg)
		c := newTestClient()
		c.register(b, g)
		c.disconnect()
		waitStatsB(b, g, func(s Stats) bool { return s.ConnectedClients == 0 })
		packets := make([][]byte, b.N)
		for i := range packets {
			packets[i] = ackPacket(b, g, c.identity(), []byte("ack"))
		}
		mc := dialMix(b, g)

		b.ResetTimer()
		start := time.Now()
		mc.send(b, packets...)
		waitStatsB(b, g, func(s Stats) bool { return s.Stored == uint64(b.N) })
		stored := time.Since(start)

		start = time.Now()
		c.connect(b, g)
		for left := b.N; left > 0; {
			n := min(left, DefaultPageSize)
			ids := make([]uint64, 0, n)
			for range n {
				ids = append(ids, c.deliver(b).ID)
			}
			c.confirm(b, ids...)
			left -= n
		}
		waitStatsB(b, g, func(s Stats) bool { return s.StoredMessages == 0 })
		drained := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/stored.Seconds(), "stored_msgs/s")
		b.ReportMetric(float64(b.N)/drained.Seconds(), "drained_msgs/s")
	})
	b.Run("baseline", func(b *testing.B) {
		s := openTestStore(b, b.TempDir())
		client := newClientID()
		msgs := make([]*message, b.N)
		for i := range msgs {
			id, err := s.newID()
			if err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, AckPlaintextLen)
			rand.Read(payload)
			m := &message{client: client}
			m.id, m.kind, m.received, m.payload = id, gwproto.KindAck, time.Now(), payload
			msgs[i] = m
		}
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for w := range storeWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w * storeGroup; i < len(msgs); i += storeWorkers * storeGroup {
					if err := s.put(msgs[i:min(i+storeGroup, len(msgs))]); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "stored_msgs/s")
	})
}

// waitStatsB polls g's stats until cond holds.
func waitStatsB(b *testing.B, g *Gateway, cond func(Stats) bool) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for !cond(g.Stats()) {
		if time.Now().After(deadline) {
			b.Fatalf("timed out; the gateway's counters: %+v", g.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}
