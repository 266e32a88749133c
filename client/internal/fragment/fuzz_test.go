package fragment

import (
	"bytes"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	f.Add(append(header(0x12345678, 10, 3, 0), "payload"...))
	f.Add(append(header(1, 255, 1, 0x7fffffff), 0, 1, 2))
	f.Add(append(header(2, 255, 255, 3), 9))
	f.Add(header(5, 3, 2, 9))
	f.Add([]byte{0x80, 0, 0, 1, 1, 1, 0x01, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		frag, err := Parse(b)
		if err != nil {
			return
		}
		if err := frag.Validate(); err != nil {
			t.Fatalf("Parse returned an invalid fragment: %v", err)
		}
		if frag.WireLen() != len(b) {
			t.Fatalf("WireLen %d, parsed %d bytes", frag.WireLen(), len(b))
		}
		if enc := frag.AppendBinary(nil); !bytes.Equal(enc, b) {
			t.Fatalf("AppendBinary(Parse(%x)) = %x", b, enc)
		}
	})
}

func FuzzParseID(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 2})
	f.Add([]byte{0x80, 0, 0, 1, 2})
	f.Add([]byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ParseID(b)
		if err != nil {
			return
		}
		if enc := id.AppendBinary(nil); !bytes.Equal(enc, b) {
			t.Fatalf("AppendBinary(ParseID(%x)) = %x", b, enc)
		}
	})
}

// FuzzSplit checks the round trip Split, wire form, Parse, Reassembler for
// arbitrary messages and capacities.
func FuzzSplit(f *testing.F) {
	f.Add([]byte("hello"), uint16(0), uint64(1))
	f.Add(bytes.Repeat([]byte{1}, 2000), uint16(0), uint64(2))
	f.Add(bytes.Repeat([]byte{0}, 4000), uint16(3), uint64(3))
	f.Fuzz(func(t *testing.T, msg []byte, c uint16, seed uint64) {
		capacity := MinCapacity + int(c)%300
		rng := seeded(seed)
		frags, err := Split(msg, capacity, prngReader{rng})
		if err != nil {
			t.Fatal(err)
		}
		r := NewReassembler(Config{})
		var got []byte
		for k, i := range rng.Perm(len(frags)) {
			enc := frags[i].AppendBinary(nil)
			if len(enc) != capacity {
				t.Fatalf("fragment of %d bytes, capacity %d", len(enc), capacity)
			}
			p, err := Parse(enc)
			if err != nil {
				t.Fatal(err)
			}
			m, complete, err := r.Add(t0, p)
			if err != nil {
				t.Fatal(err)
			}
			if complete != (k == len(frags)-1) {
				t.Fatalf("complete=%v after %d of %d", complete, k+1, len(frags))
			}
			got = m
		}
		if !bytes.Equal(got, msg) {
			t.Fatal("round trip differs")
		}
	})
}

// fuzzMessages are real messages the Reassembler fuzz test mixes with
// arbitrary fragments: one fragment, two sets and three sets at the smallest
// capacity.
type fuzzMessage struct {
	msg   []byte
	frags []Fragment
}

func newFuzzMessages(tb testing.TB) ([]fuzzMessage, []int32) {
	var msgs []fuzzMessage
	var ids []int32
	for i, size := range []int{5, 2000, 4000} {
		msg, frags := splitN(tb, uint64(100+i), size, MinCapacity)
		for _, f := range frags {
			if f.SetID <= fuzzFakeIDs {
				tb.Fatalf("real set id %d collides with the fake ids", f.SetID)
			}
			if f.Index == 1 {
				ids = append(ids, f.SetID)
			}
		}
		msgs = append(msgs, fuzzMessage{msg, frags})
	}
	return msgs, ids
}

// Set ids 1..fuzzFakeIDs are used by arbitrary fragments.
const fuzzFakeIDs = 4

// FuzzReassemblerAdd feeds a Reassembler real fragments of known messages,
// arbitrary fragments (whose links may name the real sets) and expiries.
// Properties: no panic; the bookkeeping stays consistent and within
// MaxPendingBytes; a real fragment is never refused (the longest real
// message is MaxMessageLen long); a delivered real message is exactly the
// message sent.
func FuzzReassemblerAdd(f *testing.F) {
	msgs, realIDs := newFuzzMessages(f)
	f.Add([]byte{0, 0, 1, 0, 2, 1, 1, 0})
	f.Add([]byte{2, 1, 3, 2, 1, 40, 7, 2, 1, 3, 3, 0, 40, 8, 3, 200})
	f.Add(bytes.Repeat([]byte{1, 7, 13}, 300))
	f.Fuzz(func(t *testing.T, data []byte) {
		// The longest real message is exactly as long as a message may be,
		// so arbitrary fragments meet the limit and real ones never do.
		r := NewReassembler(Config{MaxPendingBytes: 1 << 16, Timeout: 10 * time.Second, RememberCompleted: 8, MaxMessageLen: 4000})
		now := t0
		next := func() byte {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return b
		}
		for ops := 1; len(data) > 0; ops++ {
			switch op := next(); op % 4 {
			case 0, 1: // a real fragment
				m := &msgs[int(op/4)%len(msgs)]
				i := (int(next())<<8 | int(next())) % len(m.frags)
				got, complete, err := r.Add(now, m.frags[i])
				if err != nil {
					t.Fatalf("real fragment %v refused: %v", m.frags[i].ID(), err)
				}
				if complete && !bytes.Equal(got, m.msg) {
					t.Fatalf("delivered %d bytes that differ from the %d-byte message", len(got), len(m.msg))
				}
			case 2: // an arbitrary fragment
				frag := Fragment{
					SetID: int32(1 + next()%fuzzFakeIDs),
					Total: next(),
					Index: next(),
				}
				pool := append([]int32{0, 1, 2, 3, 4}, realIDs...)
				link := pool[int(next())%len(pool)]
				if next()%2 == 0 {
					frag.PreviousSetID = link
				} else {
					frag.NextSetID = link
				}
				n := int(next()) % 48
				frag.Payload = bytes.Repeat([]byte{next()}, n)
				_, _, _ = r.Add(now, frag)
			case 3:
				now = now.Add(time.Duration(next()) * 100 * time.Millisecond)
				r.Expire(now)
			}
			// The full check walks every fragment slot; do it now and then.
			if st := r.Stats(); st.PendingBytes > r.cfg.MaxPendingBytes {
				t.Fatalf("pending bytes %d above the bound", st.PendingBytes)
			}
			if ops%32 == 0 {
				if err := r.invariants(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := r.invariants(); err != nil {
			t.Fatal(err)
		}
	})
}
