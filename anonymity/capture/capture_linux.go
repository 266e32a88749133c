//go:build linux

package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Capture records the TCP segments on an interface until Stop.
type Capture struct {
	fd   int
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	segs []Segment
	st   Stats
	err  error
}

// pollInterval bounds how long the reader waits in one receive, so that
// Stop is noticed.
const pollInterval = 100 * time.Millisecond

// Available reports why a capture cannot run here (not root, no packet
// sockets), or nil.
func Available() error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_IP)))
	if err != nil {
		return fmt.Errorf("capture: packet sockets need CAP_NET_RAW (root): %w", err)
	}
	unix.Close(fd)
	return nil
}

// Start opens the packet socket and starts recording.
func Start(cfg Config) (*Capture, error) {
	if cfg.Interface == "" {
		cfg.Interface = "lo"
	}
	if cfg.Buffer == 0 {
		cfg.Buffer = 512 << 20
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	// SOCK_DGRAM: packets without their link-layer header; ETH_P_IP: IPv4
	// only, and only as received (the loopback's outgoing copies are not
	// delivered to protocol-specific sockets), so each packet once.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_IP)))
	if err != nil {
		return nil, fmt.Errorf("capture: packet socket (needs CAP_NET_RAW): %w", err)
	}
	fail := func(what string, err error) (*Capture, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("capture: %s: %w", what, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
		return fail("bind", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, cfg.Buffer); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, cfg.Buffer); err != nil {
			return fail("receive buffer", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail("kernel timestamps", err)
	}
	tv := unix.NsecToTimeval(pollInterval.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("receive timeout", err)
	}
	// Packets queued before Start count as drops of nothing: reset.
	unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	c := &Capture{fd: fd, stop: make(chan struct{}), done: make(chan struct{})}
	go c.read()
	return c, nil
}

// Stop ends the capture, once it has read what the kernel queued before,
// and returns the segments, in time order, and the
// counters.
func (c *Capture) Stop() ([]Segment, Stats, error) {
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	sortSegments(c.segs)
	return c.segs, c.st, c.err
}

// read runs on a thread of its own, so that its CPU time can be read.
func (c *Capture) read() {
	defer close(c.done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Headers only: 60 bytes of IPv4 header and 60 of TCP at most.
	buf := make([]byte, 128)
	oob := make([]byte, 128)
	var segs []Segment
	var packets uint64
	var err error
	// After Stop, what the kernel already queued is still read (without
	// waiting), up to the first empty receive.
	draining := false
	for {
		flags := unix.MSG_TRUNC
		if !draining && c.stopped() {
			draining = true
		}
		if draining {
			flags |= unix.MSG_DONTWAIT
		}
		n, oobn, _, _, rerr := unix.Recvmsg(c.fd, buf, oob, flags)
		if rerr != nil {
			if errors.Is(rerr, unix.EAGAIN) && draining {
				break
			}
			if errors.Is(rerr, unix.EAGAIN) || errors.Is(rerr, unix.EINTR) {
				continue
			}
			err = fmt.Errorf("capture: receive: %w", rerr)
			break
		}
		packets++
		s, ok := parseSegment(buf[:min(n, len(buf))])
		if !ok {
			continue
		}
		s.At = timestamp(oob[:oobn])
		segs = append(segs, s)
	}
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	stats, serr := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	unix.Close(c.fd)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.segs, c.err = segs, err
	c.st = Stats{Packets: packets, Segments: uint64(len(segs)),
		CPU: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	if serr == nil {
		c.st.Drops = uint64(stats.Drops)
	}
}

func (c *Capture) stopped() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// timestamp reads the SO_TIMESTAMPNS control message, or takes the time
// now when there is none.
func timestamp(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
				return time.Unix(sec, nsec)
			}
		}
	}
	return time.Now()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
