package testnet

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/directory"
)

// TestNodeDownAcrossRotation kills the one layer-2 mixnode of a network
// whose keys rotate every 4 s (2 s epochs: shorter ones leave a node
// restarted on a loaded machine too little time to announce its next key),
// keeps it down until the rotations of every key it held have ended, and
// starts it again. It comes back with fresh
// keys: none of its key files or listed keys is one it had before, none is
// for a rotation that has ended, and requests, whose routes must all cross
// it, get exactly one right reply.
func TestNodeDownAcrossRotation(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{MixnodesPerLayer: 1, Epoch: 2 * time.Second, RotationEpochs: 2})
	ctx := ctxFor(t, waitTimeout+time.Minute)
	p := startProvider(t, ctx, n, ProviderOptions{})
	w := newWorkload()
	r := newRequester(t, ctx, n, "client-1", p, w.tr, ClientOptions{})
	w.echo(t, ctx, r, "before")
	w.check(t, ctx, r)

	mix := n.Mixnode(2, 0)
	oldKeys := listedKeys(t, ctx, n, mix.Identity())
	mix.Kill()
	oldFiles := heldKeyFiles(t, n.DataDir(mix.Name()))
	if len(oldFiles) == 0 {
		t.Fatalf("%s held no key files", mix.Name())
	}
	last := slices.Max(oldFiles)
	t.Logf("%s killed holding the keys of rotations %v", mix.Name(), oldFiles)
	if err := pollUntil(ctx, 100*time.Millisecond, func() (bool, error) {
		return rotationNow(t, ctx, n) > last+1, nil
	}); err != nil {
		t.Fatal(err)
	}
	restartRot := rotationNow(t, ctx, n)
	if err := mix.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// It registers its fresh keys once it has read the schedule.
	var fresh []directory.SphinxKey
	if err := pollUntil(ctx, 50*time.Millisecond, func() (bool, error) {
		fresh = listedKeys(t, ctx, n, mix.Identity())
		for _, k := range fresh {
			if k.Rotation >= restartRot {
				return true, nil
			}
		}
		return false, fmt.Errorf("listed keys %v", fresh)
	}); err != nil {
		t.Fatalf("%s did not list a key of rotation %d or later: %v", mix.Name(), restartRot, err)
	}
	for _, k := range fresh {
		if k.Rotation < restartRot {
			t.Errorf("%s lists a key of rotation %d, ended before its restart in rotation %d", mix.Name(), k.Rotation, restartRot)
		}
		for _, o := range oldKeys {
			if o.Key == k.Key {
				t.Errorf("%s lists for rotation %d the key it had for rotation %d before it went down", mix.Name(), k.Rotation, o.Rotation)
			}
		}
	}
	for _, rot := range heldKeyFiles(t, n.DataDir(mix.Name())) {
		if slices.Contains(oldFiles, rot) || rot < restartRot {
			t.Errorf("%s keeps the key file of rotation %d after its restart in rotation %d (it had %v)", mix.Name(), rot, restartRot, oldFiles)
		}
	}
	for i := range 5 {
		w.echo(t, ctx, r, fmt.Sprintf("after-%02d", i))
	}
	w.check(t, ctx, r)
	t.Logf("restarted in rotation %d with keys %v; every reply by rotation %d", restartRot, fresh, rotationNow(t, ctx, n))
}

// listedKeys returns the Sphinx keys the topology lists for the mixnode
// identity.
func listedKeys(t testing.TB, ctx context.Context, n *Network, identity string) []directory.SphinxKey {
	t.Helper()
	top, err := n.Topology(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range top.Mixnodes {
		if m.Identity == identity {
			return m.SphinxKeys
		}
	}
	return nil
}
