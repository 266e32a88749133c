package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
)

// TestLifecycleRotatesAndRegisters runs a node's lifecycle against a real
// directory with epochs of half a second: the node learns the schedule
// from the topology, registers its key, and registers each new key as the
// rotations pass, without anything but its own clock driving it.
func TestLifecycleRotatesAndRegisters(t *testing.T) {
	sched := directory.Schedule{Genesis: time.Now(), EpochLength: 500 * time.Millisecond, RotationEpochs: 2}
	srv, err := directory.New(directory.Config{DataDir: t.TempDir(), Schedule: sched})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	client := &directory.Client{BaseURL: "http://" + ln.Addr().String()}

	keys := openKeys(t, t.TempDir(), time.Now())
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	desc := directory.NewMixnodeDescriptor(1, netip.MustParseAddrPort("127.0.0.1:1789"), pub, nil)
	var lc *Lifecycle
	lc, err = NewLifecycle(LifecycleConfig{
		Keys: keys, Directory: client, Descriptor: desc, Identity: priv, Logger: zerolog.Nop(),
		Fetch: func(ctx context.Context) error {
			top, err := client.Topology(ctx)
			if err == nil {
				lc.Topology(top)
			}
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := lc.Start(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	defer lc.Close()

	// listed waits until the topology lists the node with a key of a
	// rotation after min, equal to the key the node holds, and returns
	// that rotation.
	listed := func(min uint32) uint32 {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			top := srv.Topology()
			for _, m := range top.Mixnodes {
				r := top.Epoch.Rotation
				key, ok := m.SphinxKeyFor(r)
				held, holds := keys.PublicKey(r)
				if m.Identity == address.EncodeKey(pub) && r > min && ok && holds && key == held {
					return r
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("not listed with its key of a rotation after %d", min)
		return 0
	}
	r := listed(0)
	r2 := listed(r + 1) // two rotations on: the node rotated and registered twice
	if r2 < r+2 {
		t.Fatalf("rotation %d after %d", r2, r)
	}
	if got := len(keys.Held()); got > MaxHeldKeys {
		t.Fatalf("the node holds %d keys", got)
	}
}
