package gateway

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/internal/gwproto"
)

// splitPayload never panics, and what it accepts re-encodes to the same
// bytes.
func FuzzSplitPayload(f *testing.F) {
	ok, _ := appendPayload(nil, mustAddrPort("192.0.2.1:1789"), fakeAck(3), []byte("message"))
	f.Add(ok)
	v6, _ := appendPayload(nil, mustAddrPort("[2001:db8::1]:1789"), fakeAck(4), nil)
	f.Add(v6)
	f.Add(make([]byte, AckPrefixSize))
	f.Add([]byte{4, 0, 1})
	f.Fuzz(func(t *testing.T, p []byte) {
		hop, ack, rest, err := splitPayload(p)
		if err != nil {
			return
		}
		if len(ack) != SURBAckSize {
			t.Fatalf("ack of %d bytes", len(ack))
		}
		again, err := appendPayload(nil, hop, ack, rest)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, p) {
			t.Fatalf("re-encoded %x, want %x", again, p)
		}
	})
}

// decodeRecord never panics, and decode(encode(x)) == x.
func FuzzRecord(f *testing.F) {
	f.Add(uint64(1), int64(0), uint8(gwproto.KindMessage), []byte("payload"))
	f.Add(uint64(1<<40), time.Now().UnixNano(), uint8(gwproto.KindAck), []byte{})
	f.Add(uint64(7), int64(-1), uint8(9), []byte{1})
	f.Fuzz(func(t *testing.T, id uint64, ts int64, kind uint8, payload []byte) {
		key := binary.BigEndian.AppendUint64(nil, id)
		// Any bytes: no panic.
		decodeRecord(key, payload)
		decodeClientRecord(payload)

		m := &storedMessage{id: id, kind: gwproto.DeliverKind(kind), received: time.Unix(0, ts), payload: payload}
		got, err := decodeRecord(key, encodeRecord(m))
		if m.kind != gwproto.KindMessage && m.kind != gwproto.KindAck {
			if err == nil {
				t.Fatalf("kind %d accepted", kind)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if got.id != id || got.kind != m.kind || !got.received.Equal(m.received) || !bytes.Equal(got.payload, payload) {
			t.Fatalf("got %+v, want %+v", got, m)
		}

		var k [gwproto.KeySize]byte
		copy(k[:], payload)
		var ip [16]byte
		copy(ip[:], payload[min(len(payload), gwproto.KeySize):])
		src := sourceOfAddr(netip.AddrFrom16(ip))
		gk, gts, gsrc, err := decodeClientRecord(encodeClientRecord(k, ts, src))
		if err != nil || gk != k || gts != ts || gsrc != src {
			t.Fatalf("client record: %x %d %v %v, want source %v", gk, gts, gsrc, err, src)
		}
	})
}
