package measure

import (
	"slices"
	"sort"
	"time"

	"github.com/peapod-mixnet/peapod/anonymity"
)

// matchWindow is how long before its recipient's API handed a message
// over its last packet may have reached the recipient: the client's own
// work (decrypting, reassembling, writing to the API) on a busy machine.
const matchWindow = 250 * time.Millisecond

// ambiguity is how close before a target another data packet to the same
// recipient makes the target ambiguous: the message may have come in that
// packet, and the later one be, say, a cover loop that arrived while the
// client was handing the message over (which takes about a millisecond;
// CellResult.Handover says how long it took).
const ambiguity = 10 * time.Millisecond

// findTargets finds in the trace the delivery of each real message of the
// traffic phase: the last data packet from a gateway to its recipient
// before the recipient's API handed it over. It fills res's message
// counts and latencies, and returns the targets and which of them are clear
// (no other data packet to the recipient shortly before).
func findTargets(tr *anonymity.Trace, msgs map[string]message, t0 time.Time, res *CellResult) ([]anonymity.Target, []bool) {
	exits := make(map[int][]int) // recipient node → its data exit events, in time order
	for i, e := range tr.Events {
		if e.Class == anonymity.ClassData && tr.IsExit(e) {
			exits[e.To] = append(exits[e.To], i)
		}
	}
	ids := make([]string, 0, len(msgs))
	for id := range msgs {
		ids = append(ids, id)
	}
	slices.Sort(ids) // a stable order of targets
	var targets []anonymity.Target
	var clear []bool
	var latencies, handovers []float64
	for _, id := range ids {
		m := msgs[id]
		if m.probe {
			continue
		}
		res.Sent++
		if m.received.IsZero() {
			continue
		}
		res.Delivered++
		latencies = append(latencies, m.received.Sub(m.sent).Seconds())
		at := m.received.Sub(t0)
		ev := exits[m.to]
		// The last exit at or before at.
		j := sort.Search(len(ev), func(k int) bool { return tr.Events[ev[k]].At > at }) - 1
		if j < 0 || at-tr.Events[ev[j]].At > matchWindow {
			continue
		}
		isClear := j == 0 || tr.Events[ev[j]].At-tr.Events[ev[j-1]].At > ambiguity
		if isClear {
			res.Clear++
		}
		handovers = append(handovers, (at - tr.Events[ev[j]].At).Seconds())
		targets = append(targets, anonymity.Target{Event: ev[j], Sender: m.from})
		clear = append(clear, isClear)
	}
	// A packet carries one message: when two messages name the same
	// delivery, at least one is wrong, so neither is clear.
	uses := make(map[int]int)
	for _, tg := range targets {
		uses[tg.Event]++
	}
	for i, tg := range targets {
		if uses[tg.Event] > 1 && clear[i] {
			clear[i] = false
			res.Clear--
		}
	}
	res.Targets = len(targets)
	if len(handovers) > 0 {
		res.Handover = time.Duration(anonymity.Percentile(handovers, 50) * float64(time.Second))
		res.HandoverP99 = time.Duration(anonymity.Percentile(handovers, 99) * float64(time.Second))
	}
	if len(latencies) > 0 {
		res.Latency = time.Duration(anonymity.Percentile(latencies, 50) * float64(time.Second))
		res.P95 = time.Duration(anonymity.Percentile(latencies, 95) * float64(time.Second))
	}
	return targets, clear
}
