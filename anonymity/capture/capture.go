// Package capture is the global passive adversary's recorder: it watches
// the TCP segments on the loopback interface, where a local peapod
// network's links run, and keeps of each only what an observer of the link
// sees without reading it: when it passed, between which two endpoints,
// and how many payload bytes it carried. It never keeps payload bytes.
//
// A [Capture] reads a Linux packet socket (AF_PACKET) bound to the
// interface: the kernel hands the socket a reference to each packet as it
// is received, timestamps it (SO_TIMESTAMPNS) and queues it; the nodes'
// own sockets, writes and timings are untouched. Nothing sits in the path
// (unlike the fault-injecting relay of internal/testnet/relay, which adds a
// hop and a copy); a full capture queue drops the capture's copy, never the
// packet, and [Stats] counts such drops. The capture's own CPU time, the
// one way it competes with the nodes for the machine, is counted too.
//
// [Links] turns segments into an anonymity.Trace: it names the endpoints
// (a listening port is a node's; the other end of a connection is the
// process that owns the socket, found in /proc: on one machine every node
// shares 127.0.0.1, so the port and its owner stand for the IP address a
// real observer would see), splits the byte stream of each direction into
// packets by the sizes observed ([Framer]), and classes each as data or
// other by its size. Frames of a fixed size plus a fixed per-frame
// overhead, as an encrypted link adds, are split the same way.
package capture

import (
	"net/netip"
	"time"
)

// Segment is one TCP segment with payload, as an observer of the link saw
// it.
type Segment struct {
	// At is the kernel's receive timestamp.
	At time.Time
	// Src and Dst are its endpoints.
	Src, Dst netip.AddrPort
	// Len is its payload length in bytes.
	Len int
}

// Stats are a capture's counters.
type Stats struct {
	// Packets counts the IPv4 packets the socket received, Drops those the
	// kernel dropped from the capture's queue (never from the network),
	// Segments the TCP segments with payload kept.
	Packets, Drops, Segments uint64
	// CPU is the CPU time of the capture's reading thread.
	CPU time.Duration
}

// Config configures a Capture.
type Config struct {
	// Interface is the interface to watch. Default "lo".
	Interface string
	// Buffer is the socket's receive buffer in bytes: what the kernel
	// queues for the capture while its thread waits for a core. Default
	// 512 MiB (the kernel charges each queued packet its whole buffer, a few
	// KiB, so this is some 10⁵ packets: several seconds of a busy network).
	Buffer int
}
