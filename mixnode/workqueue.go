package mixnode

import (
	"github.com/peapod-mixnet/peapod/internal/fairq"
	"github.com/peapod-mixnet/peapod/internal/wire"
)

// workQueue holds the packets waiting for a worker to peel them: one FIFO
// per upstream peer, served in turn, bounded in all and per peer (see
// fairq.Queue).
type workQueue struct {
	q *fairq.Queue[*packetBuf]
}

func newWorkQueue(q fairq.Quota) workQueue {
	return workQueue{fairq.New[*packetBuf](q)}
}

// push queues pb. It returns the packets it evicted to make room, for the
// caller to drop, and false when pb itself was refused (the caller drops
// it too).
func (w workQueue) push(pb *packetBuf) (evicted []*packetBuf, ok bool) {
	return w.q.Push(pb.from.ID(), pb, len(pb.b))
}

// pop waits for a packet and returns it, the oldest of the peer whose turn
// it is; nil once the queue is closed.
func (w workQueue) pop() *packetBuf {
	pb, _, _ := w.q.Pop()
	return pb
}

func (w workQueue) close()              { w.q.Close() }
func (w workQueue) drain() []*packetBuf { return w.q.Drain() }
func (w workQueue) len() int            { return w.q.Len() }

// perPeer adds what each peer holds to byPeer.
func (w workQueue) perPeer(byPeer map[string]*PeerQueue) {
	w.q.PerPeer(func(id wire.PeerID, packets, _ int) {
		peerQueue(byPeer, id.String()).Work += packets
	})
}

// peerQueue returns byPeer's entry for peer, made if needed.
func peerQueue(byPeer map[string]*PeerQueue, peer string) *PeerQueue {
	pq := byPeer[peer]
	if pq == nil {
		pq = &PeerQueue{Peer: peer}
		byPeer[peer] = pq
	}
	return pq
}
