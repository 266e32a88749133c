package localnet

import (
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/directory"
)

// TestEveryNodeAnnounces runs a network whose keys rotate every two epochs
// of two seconds and reads its topology every 50 ms for three whole
// rotations after the one it starts in: every node is always listed, with
// the current rotation's key, and in the last epoch of each rotation it
// lists the next one's too (what clients make reply SURBs with) within half
// an epoch. (Epochs of a second left too little time on a machine under a
// load of 50.)
func TestEveryNodeAnnounces(t *testing.T) {
	const epoch = 2 * time.Second
	n := startNetwork(t, Config{DataDir: t.TempDir(), EpochLength: epoch, RotationEpochs: 2})
	defer n.Close()
	sched := n.Directory().Schedule()
	first := sched.RotationStart(sched.RotationAt(time.Now()) + 1) // the first whole rotation
	end := sched.RotationStart(sched.RotationAt(time.Now()) + 4)
	// The nodes register the next key at the start of the last epoch of a
	// rotation; it must be in a published document before that epoch ends,
	// when the key comes into use. In between, each of the three
	// authorities writes the registration to disk (eight come at once) and
	// a majority must vote for the same view (every 100 ms): on a loaded
	// machine that took 1.5 s of the 2 s epoch.
	const settle = epoch
	type seen struct {
		epoch uint64
		id    string
	}
	announced := map[seen]time.Duration{} // how long into the epoch
	check := func(kind, id string, keys []directory.SphinxKey, e directory.EpochInfo, now time.Time) {
		if len(keys) == 0 || keys[0].Rotation != e.Rotation {
			t.Fatalf("epoch %d (rotation %d): %s %s lists keys %v", e.Number, e.Rotation, kind, id, keys)
		}
		s := seen{e.Number, id}
		if _, ok := announced[s]; !ok && len(keys) == 2 && keys[1].Rotation == e.Rotation+1 {
			announced[s] = now.Sub(sched.EpochStart(e.Number))
		}
	}
	checked := 0
	for now := time.Now(); now.Before(end); now = time.Now() {
		top := fetchTopology(t, n)
		if now.Before(first) {
			time.Sleep(50 * time.Millisecond)
			continue // the nodes have only just started
		}
		if got := len(top.Mixnodes) + len(top.Gateways); got != 8 {
			t.Fatalf("epoch %d: %d nodes listed, want 8", top.Epoch.Number, got)
		}
		for _, m := range top.Mixnodes {
			check("mixnode", m.Identity, m.SphinxKeys, top.Epoch, now)
		}
		for _, g := range top.Gateways {
			check("gateway", g.Identity, g.SphinxKeys, top.Epoch, now)
		}
		checked++
		time.Sleep(50 * time.Millisecond)
	}
	var latest time.Duration
	for r := sched.RotationAt(first); sched.RotationStart(r + 1).Before(end); r++ {
		last := sched.Epoch(sched.RotationStart(r+1)) - 1
		for _, id := range n.identities() {
			after, ok := announced[seen{last, id}]
			if !ok || after >= settle {
				t.Errorf("epoch %d, the last of rotation %d: node %s listed its next key %v into it (seen: %v)", last, r, id, after, ok)
			}
			latest = max(latest, after)
		}
	}
	t.Logf("%d topologies checked; the latest next key was listed %v into its epoch", checked, latest)
}
