package capture

import (
	"net/netip"
	"slices"
	"testing"
)

func TestLearnSizes(t *testing.T) {
	// overhead is added to every packet, as an encrypted link adds a tag
	// and a length to each frame: the sizes move, the splitting holds.
	for _, overhead := range []int{0, 18} {
		data, ack := 2100+overhead, 400+overhead
		var lens []int
		for range 500 {
			lens = append(lens, data)
		}
		for range 300 {
			lens = append(lens, ack)
		}
		for range 50 {
			lens = append(lens, 2*data, data+ack) // written together
		}
		lens = append(lens, 77, 1234) // a handshake, a stray
		if got := LearnSizes(lens, 0.01); !slices.Equal(got, []int{ack, data}) {
			t.Errorf("overhead %d: learnt sizes %v, want [%d %d]", overhead, got, ack, data)
		}
	}
}

func TestFramerFeed(t *testing.T) {
	f := &Framer{Sizes: []int{400, 2100}}
	var s stream
	check := func(n int, want []int, wantUnframed int) {
		t.Helper()
		got, unframed := f.feed(&s, n)
		if !slices.Equal(got, want) || unframed != wantUnframed {
			t.Errorf("feed(%d) = %v, %d unframed; want %v, %d", n, got, unframed, want, wantUnframed)
		}
	}
	check(2100, []int{0, 1}, 0)
	check(4600, []int{1, 2}, 0)  // two data and an ack together
	check(1000, nil, 0)          // part of a data packet
	check(1100, []int{0, 1}, 0)  // its rest
	check(77, nil, 0)            // a handshake: kept
	check(2100, []int{0, 1}, 77) // a whole packet: the handshake was not one
}

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"0000000000000000FFFF00000100007F:0050": "127.0.0.1:80",
	} {
		got, err := parseProcAddr(in)
		if err != nil || got != netip.MustParseAddrPort(want) {
			t.Errorf("parseProcAddr(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := parseProcAddr("zz:1"); err == nil {
		t.Error("bad hex accepted")
	}
}

// A link that carries many more small control frames than data packets
// (a client's, confirming what it received) still has its data size.
func TestLearnSizesFewDataPackets(t *testing.T) {
	var lens []int
	for range 1000 {
		lens = append(lens, 41)
	}
	for range 40 {
		lens = append(lens, 2400)
	}
	if got := LearnSizes(lens, 0.002); !slices.Equal(got, []int{41, 2400}) {
		t.Errorf("learnt sizes %v, want [41 2400]", got)
	}
}

// Tiny control frames do not make the data size a "sum" of them, and a
// frequent long segment (TCP cutting a burst at a buffer boundary) is no
// packet size.
func TestLearnSizesTinyFramesAndBursts(t *testing.T) {
	var lens []int
	for range 3000 {
		lens = append(lens, 33, 41)
	}
	for range 130 {
		lens = append(lens, 2470)
	}
	for range 50 {
		lens = append(lens, 32768)
	}
	if got := LearnSizes(lens, 0.002); !slices.Equal(got, []int{33, 41, 2470}) {
		t.Errorf("learnt sizes %v, want [33 41 2470]", got)
	}
}

// A burst cut by TCP into a 32 KiB segment and the rest: the framer waits
// for the rest and then counts every packet.
func TestFramerBurst(t *testing.T) {
	f := &Framer{Sizes: []int{390, 2417}}
	var s stream
	total := 20*2417 + 3*390
	if c, u := f.feed(&s, 32768); c != nil || u != 0 {
		t.Fatalf("first part: %v, %d unframed; want it kept", c, u)
	}
	c, u := f.feed(&s, total-32768)
	if !slices.Equal(c, []int{3, 20}) || u != 0 {
		t.Errorf("burst: %v, %d unframed; want [3 20], 0", c, u)
	}
}

// A burst of more than 16 writes on a Noise link, each one data packet
// with its own overhead, cut by TCP into a 32 KiB segment and the rest:
// the framer counts every packet (it once looked for at most 16 writes in
// a run, and gave such a burst up as unframed, with the packets after it
// until its pending bytes passed maxPending).
func TestFramerBurstOfManyWrites(t *testing.T) {
	const o, ack, data = 24, 390, 2417
	f := &Framer{Sizes: []int{ack + o, data + o}, Overhead: o}
	var s stream
	total := 20 * (data + o)
	if c, u := f.feed(&s, 32768); c != nil || u != 0 {
		t.Fatalf("first part: %v, %d unframed; want it kept", c, u)
	}
	if c, u := f.feed(&s, total-32768); !slices.Equal(c, []int{0, 20}) || u != 0 {
		t.Errorf("20 writes of a data packet: %v, %d unframed; want [0 20], 0", c, u)
	}
	if c, u := f.feed(&s, data+o); !slices.Equal(c, []int{0, 1}) || u != 0 {
		t.Errorf("the packet after the burst: %v, %d unframed; want [0 1], 0", c, u)
	}
	// 12 data packets and 8 acks, each written alone, cut at 16 KiB.
	total = 12*(data+o) + 8*(ack+o)
	if c, u := f.feed(&s, 16384); c != nil || u != 0 {
		t.Fatalf("first part of the mixed burst: %v, %d unframed; want it kept", c, u)
	}
	if c, u := f.feed(&s, total-16384); !slices.Equal(c, []int{8, 12}) || u != 0 {
		t.Errorf("12 data packets and 8 acks written alone: %v, %d unframed; want [8 12], 0", c, u)
	}
}

// Small frames whose sizes can add up to anything (acks of 27 and 49
// bytes) written in a long run are not taken for a data packet.
func TestFramerRunOfSmallFrames(t *testing.T) {
	f := &Framer{Sizes: []int{27, 49, 1673}}
	var s stream
	n := 60*49 + 3*27
	if c, u := f.feed(&s, n); !slices.Equal(c, []int{3, 60, 0}) || u != 0 {
		t.Errorf("60 acks of 49 bytes and 3 of 27: %v, %d unframed; want [3 60 0]", c, u)
	}
	if c, _ := f.feed(&s, 1673+49); !slices.Equal(c, []int{0, 1, 1}) {
		t.Errorf("a data packet and an ack: %v, want [0 1 1]", c)
	}
}

// Many small sizes do not make learning slow (a search over sums of up to
// eight of ten sizes would take 10⁸ steps).
func TestLearnSizesManySmall(t *testing.T) {
	var lens []int
	for s := 33; s <= 105; s += 8 {
		for range 100 {
			lens = append(lens, s)
		}
	}
	for range 100 {
		lens = append(lens, 2470)
	}
	got := LearnSizes(lens, 0.002)
	if len(got) != 11 || got[10] != 2470 {
		t.Errorf("learnt sizes %v, want the ten small ones and 2470", got)
	}
}

// A Noise link adds its header and tag once per write, however many packets
// the write carries (peapod's node links since the Noise links): two packets
// written together are shorter than two alone. Learnt as a plain link, the
// pairs look like sizes of their own, and the largest, a run of data
// packets, is taken for the data packet; with the overhead the two sizes
// come out, and runs split into them.
func TestLearnFramerNoise(t *testing.T) {
	const o, ack, data = 24, 390, 2417 // packets without the overhead
	var lens []int
	for range 400 {
		lens = append(lens, data+o)
	}
	for range 300 {
		lens = append(lens, ack+o)
	}
	for range 60 {
		lens = append(lens, 2*data+o, data+ack+o, 2*ack+o, 3*data+o) // written together
	}
	plain := LearnFramer(lens, 0.01)
	if plain.Overhead != 0 || len(plain.Sizes) <= 2 {
		t.Errorf("as a plain link: sizes %v, overhead %d; want the pairs taken for sizes", plain.Sizes, plain.Overhead)
	}
	f := LearnFramer(lens, 0.01, o)
	if !slices.Equal(f.Sizes, []int{ack + o, data + o}) || f.Overhead != o {
		t.Fatalf("with the Noise overhead: sizes %v, overhead %d; want [%d %d], %d", f.Sizes, f.Overhead, ack+o, data+o, o)
	}
	var s stream
	for n, want := range map[int][]int{
		data + o:             {0, 1},
		2*data + o:           {0, 2},
		data + ack + o:       {1, 1},
		3*data + 2*ack + o:   {2, 3},
		2*(data+o) + ack + o: {1, 2}, // three writes in one segment
	} {
		if got, unframed := f.feed(&s, n); !slices.Equal(got, want) || unframed != 0 {
			t.Errorf("feed(%d) = %v, %d unframed; want %v", n, got, unframed, want)
		}
	}

	// A plain link's lengths keep overhead 0 when the Noise one is offered.
	var plainLens []int
	for range 400 {
		plainLens = append(plainLens, data)
	}
	for range 300 {
		plainLens = append(plainLens, ack)
	}
	for range 60 {
		plainLens = append(plainLens, 2*data, data+ack)
	}
	if g := LearnFramer(plainLens, 0.01, o); g.Overhead != 0 || !slices.Equal(g.Sizes, []int{ack, data}) {
		t.Errorf("a plain link offered the Noise overhead: sizes %v, overhead %d; want [%d %d], 0", g.Sizes, g.Overhead, ack, data)
	}
}
