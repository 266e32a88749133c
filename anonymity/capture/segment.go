package capture

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// parseSegment reads the IPv4 and TCP headers at the start of pkt and
// returns the segment's endpoints and payload length; false for anything
// but a TCP segment with payload, or headers it cannot read.
func parseSegment(pkt []byte) (Segment, bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return Segment{}, false
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if ihl < 20 || pkt[9] != 6 || len(pkt) < ihl+20 || total < ihl+20 {
		return Segment{}, false
	}
	tcp := pkt[ihl:]
	doff := int(tcp[12]>>4) * 4
	payload := total - ihl - doff
	if doff < 20 || payload <= 0 {
		return Segment{}, false
	}
	src := netip.AddrFrom4([4]byte(pkt[12:16]))
	dst := netip.AddrFrom4([4]byte(pkt[16:20]))
	return Segment{
		Src: netip.AddrPortFrom(src, binary.BigEndian.Uint16(tcp[0:2])),
		Dst: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(tcp[2:4])),
		Len: payload,
	}, true
}

func sortSegments(s []Segment) {
	slices.SortStableFunc(s, func(a, b Segment) int { return a.At.Compare(b.At) })
}
