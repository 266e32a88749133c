package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func benchClient(b *testing.B, n *testNet, gw int) *Client {
	cfg := testConfig(b, n, gw)
	cfg.Logger = zerolog.Nop()
	if w := os.Getenv("PEAPOD_WINDOW"); w != "" {
		cfg.Window, _ = strconv.Atoi(w)
	}
	return startClient(b, cfg)
}

// BenchmarkSendToSelf sends 1 KB messages to the client itself over the local
// network (zero mix delay, cover traffic off), one at a time, and reports the
// round trip from Send to Receive.
func BenchmarkSendToSelf(b *testing.B) {
	n := startTestNet(b, netOptions{})
	c := benchClient(b, n, 0)
	msg := make([]byte, 1024)
	rand.Read(msg)
	ctx := context.Background()
	// Warm up routes and connections.
	for range 5 {
		c.Send(ctx, c.Address(), msg)
		c.Receive(ctx)
	}
	rtts := make([]time.Duration, 0, b.N)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := c.Send(ctx, c.Address(), msg); err != nil {
			b.Fatal(err)
		}
		m, err := c.Receive(ctx)
		if err != nil || !bytes.Equal(m.Data, msg) {
			b.Fatalf("received %d bytes, %v", len(m.Data), err)
		}
		rtts = append(rtts, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(rtts)
	b.ReportMetric(float64(len(rtts))/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkBulkTransfer sends a 5 MB message from one client to another
// (different gateways) over the local network, zero mix delay and no cover
// traffic, and reports MB/s from Send until the whole message is received.
func BenchmarkBulkTransfer(b *testing.B) {
	n := startTestNet(b, netOptions{})
	a := benchClient(b, n, 0)
	r := benchClient(b, n, 1)
	big := make([]byte, 5<<20)
	rand.Read(big)
	ctx := context.Background()
	b.SetBytes(int64(len(big)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := a.Send(ctx, r.Address(), big); err != nil {
			b.Fatal(err)
		}
		m, err := r.Receive(ctx)
		if err != nil || len(m.Data) != len(big) {
			b.Fatalf("received %d bytes, %v", len(m.Data), err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(a.Stats().Retransmits), "retransmits")
}
