package peers

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/sphinx"
)

// peapodPool is how many distinct packets the peapod benchmark cycles
// through; the replay filter is renewed (outside the timer) each time the
// pool wraps around.
const peapodPool = 512

// peapodRoute is the benchmarked node's key and a pool of distinct regular
// packets for a four-hop route on which that node is the first hop. It is
// built once per process: making the packets costs more than the benchmark.
type peapodRoute struct {
	key  *sphinx.PrivateKey
	pkts [][]byte
}

var peapodPackets = sync.OnceValues(func() (*peapodRoute, error) {
	route := make([]sphinx.Hop, 4)
	var first *sphinx.PrivateKey
	for i := range route {
		k, err := sphinx.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			first = k
		}
		addr, err := sphinx.NewNodeAddress(netip.MustParseAddrPort(fmt.Sprintf("127.0.0.%d:%d", i+1, 1789+i)))
		if err != nil {
			return nil, err
		}
		route[i] = sphinx.Hop{Address: addr, PublicKey: k.PublicKey(), Delay: time.Duration(i+1) * time.Millisecond}
	}
	msg := make([]byte, sphinx.RegularPacket.PlaintextLen())
	r := &peapodRoute{key: first, pkts: make([][]byte, peapodPool)}
	for i := range r.pkts {
		pkt, err := sphinx.NewPacket(rand.Reader, sphinx.RegularPacket, route, sphinx.Destination{}, sphinx.SURBID{}, msg)
		if err != nil {
			return nil, err
		}
		r.pkts[i] = pkt
	}
	return r, nil
})

// BenchmarkPeapodProcess is one hop of a peapod regular packet (2413 bytes:
// a 348-byte header and a 2065-byte payload) at a node with the default
// 10-million-tag replay filter, the same work as peapod's
// sphinx.BenchmarkProcessRegular: bytes in, the re-wrapped packet out into a
// buffer the caller provides. Per hop that is one X25519 shared secret, one
// X25519 blinding of the group element, key derivation (HKDF-SHA256),
// HMAC-SHA256 over the 300-byte routing information, AES-128-CTR over it, a
// Bloom-filter replay check, and a Lioness (ChaCha20 and keyed BLAKE-256)
// decryption of the whole payload.
//
// The packets are distinct, since the filter refuses repeats. When the pool
// wraps around, the filter is replaced outside the timer; the old one is
// collected first so that the new one reuses its memory, as
// sphinx.BenchmarkProcessRegular clears its filter in place: a filter on
// pages fresh from the OS would have the loop measure page faults instead of
// a node in steady state.
func BenchmarkPeapodProcess(b *testing.B) {
	floor()
	r, err := peapodPackets()
	if err != nil {
		b.Fatal(err)
	}
	newProcessor := func() *sphinx.Processor {
		return sphinx.NewProcessor(r.key, sphinx.NewReplayFilter(sphinx.DefaultReplayCapacity, sphinx.DefaultReplayFalsePositiveRate))
	}
	proc := newProcessor()
	dst := make([]byte, 0, sphinx.RegularPacket.Len())
	b.SetBytes(int64(sphinx.RegularPacket.Len()))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%len(r.pkts) == 0 {
			b.StopTimer()
			proc = nil
			runtime.GC()
			proc = newProcessor()
			b.StartTimer()
		}
		res, err := proc.Process(dst, r.pkts[i%len(r.pkts)])
		if err != nil {
			b.Fatal(err)
		}
		if res.Final {
			b.Fatal("the first hop got a final result")
		}
	}
	b.StopTimer()
	reportFloorRatio(b)
}
