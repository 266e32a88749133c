package mixnode

import (
	"testing"
	"time"
)

// BenchmarkWorkQueue measures a packet's way through the fair work queue
// (push from one of 4 peers, pop by one worker) against the baseline in
// the same run: the buffered channel the node used before, which shares
// nothing between peers. Reported: ns/packet of each and ratio-to-channel.
func BenchmarkWorkQueue(b *testing.B) {
	const peers, batch = 4, 64
	pbs := make([]*packetBuf, batch)
	for i := range pbs {
		pbs[i] = testPacket(testPeer(i%peers), 2413)
	}
	q := newWorkQueue(bigQuota(4096))
	ch := make(chan *packetBuf, 4096)
	var queueTime, chanTime time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		start := time.Now()
		for _, pb := range pbs {
			q.push(pb)
		}
		for range pbs {
			q.pop()
		}
		mid := time.Now()
		for _, pb := range pbs {
			ch <- pb
		}
		for range pbs {
			<-ch
		}
		queueTime += mid.Sub(start)
		chanTime += time.Since(mid)
	}
	n := float64((b.N + batch - 1) / batch * batch)
	b.ReportMetric(float64(queueTime.Nanoseconds())/n, "ns/packet")
	b.ReportMetric(float64(chanTime.Nanoseconds())/n, "channel-ns/packet")
	b.ReportMetric(float64(queueTime)/float64(chanTime), "ratio-to-channel")
}

// BenchmarkDelayQueue measures a packet's way through the delay queue
// (push with a random-ish due time from one of 4 peers, then popDue of the
// whole batch), the heaps of the queue and of its peer included, against
// the same batch through the single heap it had before (pheap alone, the
// same code without the peer's heap and shares). Reported: ns/packet of
// each and ratio-to-heap.
func BenchmarkDelayQueue(b *testing.B) {
	const peers, batch = 4, 256
	pbs := make([]*packetBuf, batch)
	for i := range pbs {
		pbs[i] = testPacket(testPeer(i%peers), 2413)
	}
	q := newDelayQueue(bigQuota(4096))
	var h pheap
	var out []*packetBuf
	var queueTime, heapTime time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; done += batch {
		start := time.Now()
		for i, pb := range pbs {
			q.push(time.Duration(i*7919%batch), pb.to, pb)
		}
		out, _, _ = q.popDue(time.Hour, out[:0])
		mid := time.Now()
		for i, pb := range pbs {
			pb.at, pb.seq = time.Duration(i*7919%batch), uint64(i)
			h.push(pb)
		}
		for h.top() != nil {
			h.remove(0)
		}
		queueTime += mid.Sub(start)
		heapTime += time.Since(mid)
	}
	n := float64((b.N + batch - 1) / batch * batch)
	b.ReportMetric(float64(queueTime.Nanoseconds())/n, "ns/packet")
	b.ReportMetric(float64(heapTime.Nanoseconds())/n, "heap-ns/packet")
	b.ReportMetric(float64(queueTime)/float64(heapTime), "ratio-to-heap")
}
