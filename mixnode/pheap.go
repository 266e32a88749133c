package mixnode

// The heaps a packet can be in at once, each keeping the packet's index in
// packetBuf.idx.
const (
	queueIndex = iota // the delay queue's heap, earliest first
	peerIndex         // its peer's heap, latest first
)

// before orders packets by due time, then by arrival.
func (a *packetBuf) before(b *packetBuf) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

// pheap is a binary heap of packets by due time that keeps each packet's
// index in it (packetBuf.idx[which]), so that any packet can be removed in
// O(log n). It is the earliest packet on top, or the latest with latest.
type pheap struct {
	s      []*packetBuf
	which  int
	latest bool
}

func (h *pheap) less(i, j int) bool {
	if h.latest {
		return h.s[j].before(h.s[i])
	}
	return h.s[i].before(h.s[j])
}

func (h *pheap) swap(i, j int) {
	h.s[i], h.s[j] = h.s[j], h.s[i]
	h.s[i].idx[h.which] = i
	h.s[j].idx[h.which] = j
}

// top is the packet on top, or nil.
func (h *pheap) top() *packetBuf {
	if len(h.s) == 0 {
		return nil
	}
	return h.s[0]
}

func (h *pheap) push(pb *packetBuf) {
	pb.idx[h.which] = len(h.s)
	h.s = append(h.s, pb)
	h.up(len(h.s) - 1)
}

// remove takes out the packet at index i.
func (h *pheap) remove(i int) {
	last := len(h.s) - 1
	if i != last {
		h.swap(i, last)
	}
	h.s[last] = nil
	h.s = h.s[:last]
	if i < last && !h.down(i) {
		h.up(i)
	}
}

func (h *pheap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			return
		}
		h.swap(i, parent)
		i = parent
	}
}

// down moves the packet at i towards the leaves and reports whether it
// moved.
func (h *pheap) down(i int) bool {
	start := i
	for {
		least := i
		if l := 2*i + 1; l < len(h.s) && h.less(l, least) {
			least = l
		}
		if r := 2*i + 2; r < len(h.s) && h.less(r, least) {
			least = r
		}
		if least == i {
			return i != start
		}
		h.swap(i, least)
		i = least
	}
}
