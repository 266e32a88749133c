package testnet

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/internal/node"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// rotationNow returns the key rotation the directory's topology is in.
func rotationNow(t *testing.T, ctx context.Context, n *Network) uint32 {
	t.Helper()
	top, err := n.Topology(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return top.Epoch.Rotation
}

// heldKeyFiles lists the rotations of the Sphinx key files in a node's
// data folder.
func heldKeyFiles(t *testing.T, dir string) []uint32 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint32
	for _, e := range entries {
		num, ok := strings.CutPrefix(e.Name(), "sphinx-")
		if !ok {
			continue
		}
		r, err := strconv.ParseUint(strings.TrimSuffix(num, ".pem"), 10, 32)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		out = append(out, uint32(r))
	}
	return out
}

// TestKeyRotation runs a network whose epochs last 3 s and whose Sphinx
// keys rotate every two epochs, and sends requests to a provider across
// five rotations, none of them resent: every one gets exactly one right
// reply. One requester sends fresh SURBs with every request; the other
// sends 40 with its first and none after, so the provider replies to it on
// SURBs made before the rotations that follow, and must ask it for fresh
// ones as those expire. At the end every node holds the keys of at most
// two rotations, on disk too, none older than the previous one.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	const epoch = 3 * time.Second
	n := startNet(t, Config{Epoch: epoch, RotationEpochs: 2})
	ctx := ctxFor(t, waitTimeout+time.Minute)
	p := startProvider(t, ctx, n, ProviderOptions{})
	w := newWorkload()
	fresh := newRequester(t, ctx, n, "client-fresh", p, w.tr, ClientOptions{})
	held := newRequesterOpts(t, ctx, n, "client-held", p, w.tr, ClientOptions{}, RequesterOptions{SURBs: 40})

	start := rotationNow(t, ctx, n)
	w.echo(t, ctx, held, "held-first")
	w.check(t, ctx, held)
	held.SetSURBs(0)
	t.Logf("rotation %d: the held requester sent its SURBs; from now on it sends none", start)

	const rotations = 5
	for i := 0; ; i++ {
		r := rotationNow(t, ctx, n)
		if r >= start+rotations {
			t.Logf("rotation %d after %d rounds", r, i)
			break
		}
		w.echo(t, ctx, fresh, fmt.Sprintf("fresh-echo-%03d", i))
		w.put(t, ctx, fresh, fmt.Sprintf("fresh-put-%03d", i), fmt.Sprintf("rot/%03d", i), strconv.Itoa(int(r)))
		w.echo(t, ctx, held, fmt.Sprintf("held-echo-%03d", i))
		time.Sleep(250 * time.Millisecond) // a steady trickle, not a burst
	}
	w.check(t, ctx, fresh, held)

	now := rotationNow(t, ctx, n)
	for _, nd := range n.Nodes() {
		files := heldKeyFiles(t, n.DataDir(nd.Name()))
		if len(files) == 0 || len(files) > node.MaxHeldKeys {
			t.Errorf("%s keeps the keys of rotations %v on disk", nd.Name(), files)
		}
		for _, r := range files {
			if r+1 < now || r > now+1 {
				t.Errorf("%s keeps the key of rotation %d on disk in rotation %d", nd.Name(), r, now)
			}
		}
	}
}

// TestReplayFilterAcrossRotations pushes fresh packets through one layer-1
// mixnode at the rate its replay filters are sized for (--peak-rate) for
// six key rotations of two 1-second epochs: several times the tags one
// filter is sized for. Each key has a filter of its own, sized for the
// key's life and dropped with it, so the share of fresh packets wrongly
// refused as replays stays under the configured false-positive rate (1%
// here, so that a share can be measured at all). The same tags in one
// filter of the same size, as the node had before keys rotated, would be
// refused far more often, which the test works out beside.
func TestReplayFilterAcrossRotations(t *testing.T) {
	t.Parallel()
	const (
		epoch     = time.Second
		rate      = 50 // packets a second, pushed and configured
		fpRate    = 0.01
		rotations = 6
	)
	fpArg := strconv.FormatFloat(fpRate, 'g', -1, 64)
	n := startNet(t, Config{Epoch: epoch, RotationEpochs: 2, PeakRate: rate,
		MixnodeArgs: func(int, int) []string { return []string{"--replay-fp-rate", fpArg} }})
	ctx := ctxFor(t, waitTimeout)
	target := n.Mixnode(1, 0)
	addr, err := sphinx.NewNodeAddress(target.Announce)
	if err != nil {
		t.Fatal(err)
	}

	// The key of the directory's current rotation, looked up again at every
	// change of rotation.
	var (
		mu      sync.Mutex
		key     sphinx.PublicKey
		keyRot  uint32
		haveKey bool
	)
	refreshKey := func() error {
		top, err := n.Topology(ctx)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if haveKey && top.Epoch.Rotation == keyRot {
			return nil
		}
		for _, m := range top.Mixnodes {
			if m.Identity != target.Identity() {
				continue
			}
			k, ok := m.SphinxKeyFor(top.Epoch.Rotation)
			if !ok {
				return fmt.Errorf("%s lists no key of rotation %d", target.Name(), top.Epoch.Rotation)
			}
			if key, err = sphinx.ParsePublicKey(k[:]); err != nil {
				return err
			}
			keyRot, haveKey = top.Epoch.Rotation, true
			return nil
		}
		return fmt.Errorf("%s is not in the topology", target.Name())
	}
	if err := refreshKey(); err != nil {
		t.Fatal(err)
	}
	start := keyRot
	// Layer 1 takes packets from the topology's gateways only, over Noise:
	// the test sends as gateway-0.
	_, conn := dialAs(t, n.Gateway(0), target)
	// Packets are built by two goroutines (building costs as much as
	// peeling) and sent in batches every 100 ms.
	const batch = rate / 10
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	sent := 0
	for {
		if err := refreshKey(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		k, r := key, keyRot
		mu.Unlock()
		if r >= start+rotations {
			break
		}
		frames, err := buildFrames(batch, addr, k, node.RotationByte(r))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(frames); err != nil {
			t.Fatal(err)
		}
		sent += batch
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}

	// Every packet is accounted for: peeled (its route ends here), refused
	// as a replay, or refused for its key.
	var replays, expired float64
	err = pollUntil(ctx, 50*time.Millisecond, func() (bool, error) {
		final, err := target.Metric(ctx, "peapod_mixnode_packets_dropped_total", "reason", "final_hop")
		if err != nil {
			return false, err
		}
		if replays, err = target.Metric(ctx, "peapod_mixnode_packets_dropped_total", "reason", "replay"); err != nil {
			return false, err
		}
		if expired, err = target.Metric(ctx, "peapod_mixnode_packets_dropped_total", "reason", "expired_key"); err != nil {
			return false, err
		}
		return int(final+replays+expired) == sent, fmt.Errorf("%v peeled, %v replays, %v expired of %d", final, replays, expired, sent)
	})
	if err != nil {
		t.Fatal(err)
	}
	capacity := int(rate * (time.Duration(2+2) * epoch).Seconds())
	share := replays / float64(sent)
	single := singleFilterShare(sent, capacity, fpRate)
	t.Logf("%d fresh packets over %d rotations, %.1f filters' worth (a filter holds %d): %v refused as replays (share %.5f), %v for an expired key; one filter for all would have refused a share of %.3f",
		sent, rotations, float64(sent)/float64(capacity), capacity, replays, share, expired, single)
	if sent < 2*capacity {
		t.Fatalf("only %d packets, less than two filters' worth (%d)", sent, 2*capacity)
	}
	if share > fpRate {
		t.Errorf("%.5f of the fresh packets were refused as replays, over the configured %v", share, fpRate)
	}
	if single <= fpRate {
		t.Errorf("one filter of %d for %d tags refuses a share of %.5f: the test pushes too little to tell", capacity, sent, single)
	}
	if expired > float64(sent)/100 {
		t.Errorf("%v packets built with the current key were refused for an expired key", expired)
	}
}

// buildFrames builds n one-hop packets for the node at addr with key, each
// framed with the key-rotation byte rot, two goroutines building.
func buildFrames(n int, addr sphinx.NodeAddress, key sphinx.PublicKey, rot wire.KeyRotation) ([]byte, error) {
	packets := make([][]byte, n)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < n; i += 2 {
				packets[i], errs[w] = sphinx.NewPacket(rand.Reader, sphinx.AckPacket,
					[]sphinx.Hop{{Address: addr, PublicKey: key}}, sphinx.Destination{}, sphinx.SURBID{}, nil)
				if errs[w] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	var out []byte
	for i, p := range packets {
		if errs[i%2] != nil {
			return nil, errs[i%2]
		}
		h, err := wire.HeaderFor(p)
		if err != nil {
			return nil, err
		}
		h.KeyRotation = rot
		out = wire.AppendFrame(out, h, p)
	}
	return out, nil
}

// singleFilterShare is the share of n fresh random tags that one replay
// filter of the given capacity and false-positive rate refuses as
// replays, measured.
func singleFilterShare(n, capacity int, fpRate float64) float64 {
	f := sphinx.NewReplayFilter(capacity, fpRate)
	refused := 0
	var tag sphinx.ReplayTag
	for range n {
		rand.Read(tag[:])
		if f.Seen(&tag) {
			refused++
		}
	}
	return float64(refused) / float64(n)
}
