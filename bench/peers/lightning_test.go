package peers

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	sphinx "github.com/lightningnetwork/lightning-onion"
)

// lightningPool is how many distinct onions the lightning-onion benchmarks
// cycle through; the replay log is renewed (outside the timer) each time the
// pool wraps around.
const lightningPool = 512

// lightningOnionSize is the size of a BOLT 4 onion on the wire: version,
// compressed ephemeral key, 1300 bytes of routing information, HMAC.
const lightningOnionSize = 1 + 33 + 1300 + sphinx.HMACSize

// lightningRoute is the benchmarked node's key and a pool of distinct onions
// for a four-hop route on which that node is the first hop, both encoded and
// parsed. It is built once per process.
type lightningRoute struct {
	key    *btcec.PrivateKey
	wire   [][]byte
	parsed []*sphinx.OnionPacket
}

var lightningPackets = sync.OnceValues(func() (*lightningRoute, error) {
	var path sphinx.PaymentPath
	var first *btcec.PrivateKey
	for i := range 4 {
		k, err := btcec.NewPrivateKey()
		if err != nil {
			return nil, err
		}
		if i == 0 {
			first = k
		}
		payload, err := sphinx.NewTLVHopPayload(forwardTLV(uint64(1000*(i+1)), uint32(800_000+40*i), uint64(i+1)))
		if err != nil {
			return nil, err
		}
		path[i] = sphinx.OnionHop{NodePub: *k.PubKey(), HopPayload: payload}
	}
	r := &lightningRoute{key: first}
	for range lightningPool {
		// A fresh session key per onion: the replay log is keyed by the
		// shared secret, so onions made with one session key are replays.
		session, err := btcec.NewPrivateKey()
		if err != nil {
			return nil, err
		}
		pkt, err := sphinx.NewOnionPacket(&path, session, nil, sphinx.RandPacketFiller)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := pkt.Encode(&buf); err != nil {
			return nil, err
		}
		if buf.Len() != lightningOnionSize {
			return nil, fmt.Errorf("peers: lightning-onion encoded a %d-byte onion, want %d", buf.Len(), lightningOnionSize)
		}
		r.wire = append(r.wire, buf.Bytes())
		r.parsed = append(r.parsed, pkt)
	}
	return r, nil
})

// forwardTLV is a typical intermediate hop's BOLT 4 TLV payload:
// amt_to_forward (type 2), outgoing_cltv_value (type 4) and short_channel_id
// (type 6), here with fixed-width values.
func forwardTLV(amt uint64, cltv uint32, scid uint64) []byte {
	p := []byte{2, 8}
	p = binary.BigEndian.AppendUint64(p, amt)
	p = append(p, 4, 4)
	p = binary.BigEndian.AppendUint32(p, cltv)
	p = append(p, 6, 8)
	return binary.BigEndian.AppendUint64(p, scid)
}

// newLightningRouter returns a started router for key with an empty
// in-memory replay log.
func newLightningRouter(tb testing.TB, key *btcec.PrivateKey) *sphinx.Router {
	tb.Helper()
	router := sphinx.NewRouter(&sphinx.PrivKeyECDH{PrivKey: key}, sphinx.NewMemoryReplayLog())
	if err := router.Start(); err != nil {
		tb.Fatal(err)
	}
	return router
}

// BenchmarkLightningOnionProcess is one hop of lightning-onion (the Sphinx
// of Lightning's BOLT 4, as lnd uses it), wire to wire like
// BenchmarkPeapodProcess: decode a 1366-byte onion (which parses the
// compressed secp256k1 ephemeral key, a square root), Router.ProcessOnionPacket
// with the in-memory replay log (a Go map of shared-secret hash prefixes), and
// encode the next hop's onion into a reused buffer.
//
// Per hop that is a secp256k1 ECDH (variable-base scalar multiplication and
// SHA-256 of the point), a second scalar multiplication to blind the
// ephemeral key, HMAC-SHA256 key derivations, HMAC-SHA256 over the 1300-byte
// routing information, 2600 bytes of ChaCha20 key stream, and the TLV hop
// payload's parsing. A BOLT 4 onion has no payload beyond its routing
// information (the payment travels in the HTLC beside it), so unlike peapod
// there is no per-hop encryption of a message body; bytes/op counts the 1366
// onion bytes.
//
// The onions are distinct (a fresh session key each), since the replay log
// refuses a repeated shared secret; lightning-onion's own
// BenchmarkProcessPacket instead replaces the router after every packet. The
// log is replaced outside the timer when the pool wraps around.
func BenchmarkLightningOnionProcess(b *testing.B) {
	floor()
	r, err := lightningPackets()
	if err != nil {
		b.Fatal(err)
	}
	router := newLightningRouter(b, r.key)
	var in bytes.Reader
	var out bytes.Buffer
	out.Grow(lightningOnionSize)
	b.SetBytes(lightningOnionSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%len(r.wire) == 0 {
			b.StopTimer()
			router.Stop()
			router = newLightningRouter(b, r.key)
			b.StartTimer()
		}
		in.Reset(r.wire[i%len(r.wire)])
		var pkt sphinx.OnionPacket
		if err := pkt.Decode(&in); err != nil {
			b.Fatal(err)
		}
		res, err := router.ProcessOnionPacket(&pkt, nil, uint32(i))
		if err != nil {
			b.Fatal(err)
		}
		if res.Action != sphinx.MoreHops {
			b.Fatalf("the first hop got action %v", res.Action)
		}
		out.Reset()
		if err := res.NextPacket.Encode(&out); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	router.Stop()
	reportFloorRatio(b)
}

// BenchmarkLightningOnionProcessParsed is Router.ProcessOnionPacket alone on
// onions decoded outside the timer, the scope of lightning-onion's own
// BenchmarkProcessPacket: no parsing of the ephemeral key and no encoding of
// the next onion.
func BenchmarkLightningOnionProcessParsed(b *testing.B) {
	floor()
	r, err := lightningPackets()
	if err != nil {
		b.Fatal(err)
	}
	router := newLightningRouter(b, r.key)
	b.SetBytes(lightningOnionSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%len(r.parsed) == 0 {
			b.StopTimer()
			router.Stop()
			router = newLightningRouter(b, r.key)
			b.StartTimer()
		}
		res, err := router.ProcessOnionPacket(r.parsed[i%len(r.parsed)], nil, uint32(i))
		if err != nil {
			b.Fatal(err)
		}
		if res.Action != sphinx.MoreHops {
			b.Fatalf("the first hop got action %v", res.Action)
		}
	}
	b.StopTimer()
	router.Stop()
	reportFloorRatio(b)
}
