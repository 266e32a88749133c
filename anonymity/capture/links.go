package capture

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/peapod-mixnet/peapod/anonymity"
	"github.com/peapod-mixnet/peapod/internal/wire"
)

// noiseOverhead is what a Noise link adds to each write (docs/protocol.md
// §2): the frame header and the AEAD tag of the message. Links between
// nodes are Noise links when the network has a directory; the framer of
// node links tries it beside a plain link's 0.
const noiseOverhead = wire.NoiseHeaderSize + 16

// Endpoint is a party at the end of links: a node of the network or a
// client, run by processes on this machine.
type Endpoint struct {
	Node anonymity.Node
	// PIDs are the processes whose sockets are this endpoint's.
	PIDs []int
	// Listen are its listening addresses.
	Listen []netip.AddrPort
}

// Links names the endpoints of captured segments and turns them into an
// anonymity.Trace: each end of a segment is the endpoint whose process owns
// the socket with those local and remote addresses, or the one listening
// at that address. Call Snapshot while the network runs (after its
// connections are open, and again later: connections may be re-opened) so
// that it learns which process owns each socket. Its methods are safe for
// concurrent use.
type Links struct {
	eps []Endpoint

	listen map[netip.AddrPort]int // listening address → endpoint index

	mu     sync.Mutex
	owners map[[2]netip.AddrPort]int // (local, remote) of a socket → endpoint index
}

// NewLinks returns Links for the endpoints.
func NewLinks(eps []Endpoint) *Links {
	l := &Links{eps: eps, listen: make(map[netip.AddrPort]int), owners: make(map[[2]netip.AddrPort]int)}
	for i, e := range eps {
		for _, a := range e.Listen {
			l.listen[a] = i
		}
	}
	return l
}

// Snapshot learns the owners of the endpoints' open sockets from /proc.
func (l *Links) Snapshot() error {
	pidEP := make(map[int]int)
	var pids []int
	for i, e := range l.eps {
		for _, p := range e.PIDs {
			if p > 0 {
				pidEP[p] = i
				pids = append(pids, p)
			}
		}
	}
	owners, err := socketOwners(pids)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for a, pid := range owners {
		l.owners[a] = pidEP[pid]
	}
	return nil
}

// ownerLocked names the endpoint at local of the connection between local
// and remote: the owner of that socket, or the node listening at local.
func (l *Links) ownerLocked(local, remote netip.AddrPort) (int, bool) {
	if i, ok := l.owners[[2]netip.AddrPort{local, remote}]; ok {
		return i, true
	}
	i, ok := l.listen[local]
	return i, ok
}

// TraceReport says how the segments became a trace.
type TraceReport struct {
	// Segments counts the segments given; Linked those between two
	// endpoints, which are in the trace; Unlinked the others (the
	// harness's own connections, the directory's, and any whose owner no
	// snapshot saw).
	Segments, Linked, Unlinked int
	// Sizes are the packet sizes learnt for each kind of link.
	Sizes map[string][]int
	// UnframedBytes counts bytes of linked segments that added up to no
	// whole packet (handshakes, and packets cut by the end of the capture).
	UnframedBytes int
	// Events counts packets in the trace, DataEvents the data packets.
	Events, DataEvents int
	// DataByHop counts the data packets on each hop of a route, such as
	// "gateway→mix1": with nothing lost, every hop carries about as many.
	DataByHop map[string]int
}

// minSizeShare is the share of a link kind's segments that one length needs
// to be taken for a packet size: data packets can be a few percent of a
// client's segments when it sends little and confirms often.
const minSizeShare = 0.002

// Trace turns segments into a trace whose times count from start.
func (l *Links) Trace(segs []Segment, start time.Time) (*anonymity.Trace, TraceReport) {
	rep := TraceReport{Segments: len(segs), Sizes: make(map[string][]int), DataByHop: make(map[string]int)}
	tr := &anonymity.Trace{}
	for _, e := range l.eps {
		tr.Nodes = append(tr.Nodes, e.Node)
	}
	type linked struct {
		seg      Segment
		from, to int
	}
	var ls []linked
	byKind := make(map[string][]int)
	l.mu.Lock()
	for _, s := range segs {
		from, okF := l.ownerLocked(s.Src, s.Dst)
		to, okT := l.ownerLocked(s.Dst, s.Src)
		if !okF || !okT || from == to {
			rep.Unlinked++
			continue
		}
		rep.Linked++
		ls = append(ls, linked{s, from, to})
		k := kind(tr.Nodes[from], tr.Nodes[to])
		byKind[k] = append(byKind[k], s.Len)
	}
	l.mu.Unlock()

	framers := make(map[string]*Framer)
	for k, lens := range byKind {
		if k == "node→node" {
			framers[k] = LearnFramer(lens, minSizeShare, noiseOverhead)
		} else {
			framers[k] = LearnFramer(lens, minSizeShare)
		}
		rep.Sizes[k] = framers[k].Sizes
	}
	streams := make(map[[2]netip.AddrPort]*stream)
	for _, x := range ls {
		f := framers[kind(tr.Nodes[x.from], tr.Nodes[x.to])]
		key := [2]netip.AddrPort{x.seg.Src, x.seg.Dst}
		st := streams[key]
		if st == nil {
			st = &stream{}
			streams[key] = st
		}
		counts, unframed := f.feed(st, x.seg.Len)
		rep.UnframedBytes += unframed
		at := x.seg.At.Sub(start)
		for i, c := range counts {
			class := anonymity.ClassOther
			if i == len(f.Sizes)-1 {
				class = anonymity.ClassData
				rep.DataEvents += c
				rep.DataByHop[hop(tr.Nodes[x.from], tr.Nodes[x.to])] += c
			}
			for range c {
				tr.Events = append(tr.Events, anonymity.Event{At: at, From: x.from, To: x.to, Class: class})
			}
		}
	}
	tr.Sort()
	rep.Events = len(tr.Events)
	return tr, rep
}

// kind names the kind of a link for learning packet sizes: a client's link
// each way, and the links between nodes.
func kind(from, to anonymity.Node) string {
	switch {
	case from.Role == anonymity.RoleClient:
		return "client→gateway"
	case to.Role == anonymity.RoleClient:
		return "gateway→client"
	}
	return "node→node"
}

// hop names the hop of a route a link is.
func hop(from, to anonymity.Node) string {
	name := func(n anonymity.Node) string {
		if n.Role == anonymity.RoleMixnode {
			return fmt.Sprintf("mix%d", n.Layer)
		}
		return n.Role.String()
	}
	return name(from) + "→" + name(to)
}

// String summarises the report.
func (r TraceReport) String() string {
	return fmt.Sprintf("%d segments (%d between endpoints), %d packets (%d data), %d bytes unframed, sizes %v, data by hop %v",
		r.Segments, r.Linked, r.Events, r.DataEvents, r.UnframedBytes, r.Sizes, r.DataByHop)
}
