package directory

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// BenchmarkHealth is the baseline: one HTTP round trip over loopback that
// does no work.
func BenchmarkHealth(b *testing.B) {
	ts := startServer(b, Config{})
	for b.Loop() {
		if status, _ := ts.get(b, PathHealth); status != http.StatusOK {
			b.Fatal(status)
		}
	}
}

// BenchmarkRegister measures signed registrations over loopback, each
// verified and persisted (bbolt commit with fsync) before the response.
func BenchmarkRegister(b *testing.B) {
	ts := startServer(b, Config{})
	n := newMixnode(b, 1)
	for b.Loop() {
		if err := ts.client.Register(context.Background(), n.desc, n.key); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "registrations/s")
}

// BenchmarkTopology measures GET /v1/topology with 1000 nodes listed,
// decoded and validated by the client.
func BenchmarkTopology(b *testing.B) {
	ts := startServer(b, Config{})
	const nodes = 1000
	for i := range nodes {
		n := newMixnode(b, 1+i%3)
		if i%10 == 0 {
			n = newGateway(b)
		}
		n.desc.Timestamp = time.Now().UnixNano()
		if err := ts.Server.register(n.desc); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		topo, err := ts.client.Topology(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if len(topo.Mixnodes)+len(topo.Gateways) != nodes {
			b.Fatalf("%d nodes listed", len(topo.Mixnodes)+len(topo.Gateways))
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "topologies/s")
}
