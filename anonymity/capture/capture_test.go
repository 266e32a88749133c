package capture

import (
	"io"
	"net"
	"testing"
)

// A capture sees the segments of a loopback connection with their true
// payload lengths and endpoints, once each, in order.
func TestCaptureLoopback(t *testing.T) {
	ln, got := sink(t)
	capt, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// Go sets TCP_NODELAY: each write leaves as a segment of its own.
	sizes := []int{1000, 2000, 3000}
	for _, n := range sizes {
		if _, err := c.Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if n := <-got; n != 6000 {
		t.Fatalf("the listener read %d bytes, want 6000", n)
	}
	segs, st, err := capt.Stop()
	if err != nil {
		t.Fatal(err)
	}
	dst := ln.Addr().(*net.TCPAddr).AddrPort()
	src := c.LocalAddr().(*net.TCPAddr).AddrPort()
	var lens []int
	for i, s := range segs {
		if s.Dst == dst && s.Src == src {
			lens = append(lens, s.Len)
		}
		if i > 0 && s.At.Before(segs[i-1].At) {
			t.Fatal("segments out of time order")
		}
	}
	if len(lens) != 3 || lens[0] != 1000 || lens[1] != 2000 || lens[2] != 3000 {
		t.Errorf("captured payload lengths %v, want [1000 2000 3000]", lens)
	}
	if st.Segments == 0 || st.Packets < st.Segments {
		t.Errorf("stats %+v", st)
	}
}

func TestParseSegmentRejects(t *testing.T) {
	for name, pkt := range map[string][]byte{
		"empty":     nil,
		"ipv6":      append([]byte{0x60}, make([]byte, 40)...),
		"short tcp": append([]byte{0x45, 0, 0, 30, 0, 0, 0, 0, 64, 6}, make([]byte, 20)...),
	} {
		if _, ok := parseSegment(pkt); ok {
			t.Errorf("%s: parsed", name)
		}
	}
}

// sink skips t when no capture can run here, and otherwise listens on
// loopback, reads every connection to its end and sends the number of bytes
// each carried on the channel.
func sink(t *testing.T) (net.Listener, <-chan int) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan int, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				n, _ := io.Copy(io.Discard, c)
				got <- int(n)
			}()
		}
	}()
	return ln, got
}
