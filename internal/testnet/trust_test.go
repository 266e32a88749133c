package testnet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/keyfile"
	"github.com/peapod-mixnet/peapod/internal/node"
)

// exchange sends count numbered messages from a to b through their client
// processes and checks that b gets each exactly once, in order.
func exchange(t *testing.T, ctx context.Context, a, b *Client, prefix string, count int) {
	t.Helper()
	epA, epB := dialWS(t, a), dialWS(t, b)
	in := newInbox(epB)
	defer in.stop()
	want := numbered(prefix, 0, count)
	if err := sendAll(ctx, epA, b.Address(), want, 0); err != nil {
		t.Fatal(err)
	}
	if err := in.waitCount(ctx, count); err != nil {
		t.Fatalf("%s: %v", prefix, err)
	}
	checkSequence(t, in.messages(), want)
}

// loadKey reads an ed25519 seed file of a process's data folder.
func loadKey(t *testing.T, path, pemType string) ed25519.PrivateKey {
	t.Helper()
	seed, err := keyfile.Load(path, pemType, ed25519.SeedSize)
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.NewKeyFromSeed(seed)
}

// madeUpMixnode is a mixnode entry for a node that does not exist, with a
// Sphinx key for rotation r.
func madeUpMixnode(t *testing.T, layer int, r uint32) (directory.Mixnode, ed25519.PrivateKey) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var sphinx [directory.KeySize]byte
	rand.Read(sphinx[:])
	return directory.Mixnode{Layer: layer, Address: "127.0.0.1:9", Identity: address.EncodeKey(pub),
		SphinxKeys: []directory.SphinxKey{directory.NewSphinxKey(r, sphinx)}}, key
}

// TestForgedTopology stands between every authority and everyone who
// fetches the topology (a proxy on each directory URL) and serves forged
// documents: one signed by a single authority (what one lying authority
// can make alone) listing a made-up mixnode in every layer and claiming the
// next epoch, then one with no signature. Every mixnode and gateway counts
// them as refused under the threshold in /metrics, as does the provider,
// the client processes and the provider log the refusal, and messages and requests keep flowing
// on the last good document meanwhile. Meanwhile the third authority also
// lies to its peers: it admits a made-up node and a copy of a real mixnode
// at another address; its peers disagree with its vote, and no document
// they publish lists either.
func TestForgedTopology(t *testing.T) {
	t.Parallel()
	refresh := []string{"--topology-refresh", "500ms"}
	n := startNet(t, Config{
		Authorities: 3, DirectoryProxy: true,
		// Epochs of a second make every client fetch the topology every
		// second; rotations of 600 epochs keep the last good document's
		// keys valid through the test.
		Epoch: time.Second, RotationEpochs: 600,
		MixnodeArgs: func(int, int) []string { return refresh },
		GatewayArgs: func(int) []string { return refresh },
	})
	ctx := ctxFor(t, 2*time.Minute)
	needProvider(t, n.cfg.Bin)
	p := startProvider(t, ctx, n, ProviderOptions{})
	a, b, _ := twoClients(t, ctx, n)
	w := newWorkload()
	req := newRequester(t, ctx, n, "requester", p, w.tr, ClientOptions{})
	exchange(t, ctx, a, b, "before", 5)
	w.echo(t, ctx, req, "before")
	good, err := n.Topology(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The liar (authority 2) admits a made-up node and moves a real one.
	liar := &directory.Client{BaseURL: n.AuthorityURLs()[2]}
	fake, fakeKey := madeUpMixnode(t, 2, good.Epoch.Rotation)
	fakeDesc := directory.Descriptor{Role: directory.RoleMixnode, Layer: 2, Address: fake.Address, Identity: fake.Identity, SphinxKeys: fake.SphinxKeys}
	if err := liar.Register(ctx, fakeDesc, fakeKey); err != nil {
		t.Fatalf("registering a made-up node with the liar: %v", err)
	}
	real := good.Mixnodes[0]
	i := slices.IndexFunc(n.Mixnodes(), func(m *Node) bool { return m.Identity() == real.Identity })
	if i < 0 {
		t.Fatalf("no mixnode process has the identity %s", real.Identity)
	}
	realKey := loadKey(t, filepath.Join(n.DataDir(n.Mixnodes()[i].Name()), node.IdentityFile), node.IdentityPEMType)
	if address.EncodeKey(realKey.Public().(ed25519.PublicKey)) != real.Identity {
		t.Fatalf("%s's identity file does not hold %s", n.Mixnodes()[i].Name(), real.Identity)
	}
	moved := directory.Descriptor{Role: directory.RoleMixnode, Layer: real.Layer, Address: "127.0.0.1:7", Identity: real.Identity, SphinxKeys: real.SphinxKeys}
	if err := liar.Register(ctx, moved, realKey); err != nil {
		t.Fatalf("moving a real node at the liar: %v", err)
	}

	// The forged documents: the good topology with a made-up mixnode in
	// every layer, of the next epoch, signed by the liar alone; then
	// unsigned.
	liarKey := loadKey(t, filepath.Join(n.DataDir(authorityName(2)), node.AuthorityKeyFile), node.AuthorityPEMType)
	forged := *good
	forged.Mixnodes = slices.Clone(good.Mixnodes)
	var madeUp []string
	for layer := 1; layer <= Layers; layer++ {
		m, _ := madeUpMixnode(t, layer, good.Epoch.Rotation)
		forged.Mixnodes = append(forged.Mixnodes, m)
		madeUp = append(madeUp, m.Identity)
	}
	forged.Epoch = good.Schedule().Info(good.Epoch.Number + 1)
	body, err := directory.EncodeTopology(&forged)
	if err != nil {
		t.Fatal(err)
	}
	signedByOne := []byte(fmt.Sprintf(`{"topology":%s,"signatures":[{"authority":%q,"signature":%q}]}`,
		body, directory.SignTopology(liarKey, body).Authority, directory.SignTopology(liarKey, body).Signature))
	unsigned := []byte(fmt.Sprintf(`{"topology":%s,"signatures":[]}`, body))

	for _, doc := range []struct {
		name string
		body []byte
	}{{"signed by one authority", signedByOne}, {"unsigned", unsigned}} {
		t.Logf("serving a forged document, %s, on every directory URL", doc.name)
		before := map[string]float64{}
		for _, nd := range n.Nodes() {
			before[nd.Name()], _ = nd.Metric(ctx, "peapod_topology_documents_refused_total", "reason", directory.RefusedUnderThreshold)
		}
		for i := range 3 {
			n.Proxy(i).Forge(doc.body)
		}
		for _, nd := range n.Nodes() {
			err := pollUntil(ctx, 100*time.Millisecond, func() (bool, error) {
				v, err := nd.Metric(ctx, "peapod_topology_documents_refused_total", "reason", directory.RefusedUnderThreshold)
				return err == nil && v > before[nd.Name()], nil
			})
			if err != nil {
				t.Fatalf("%s: %s never counted as refused under the threshold: %v", nd.Name(), doc.name, err)
			}
		}
		exchange(t, ctx, a, b, "forged-"+strings.ReplaceAll(doc.name, " ", "-"), 5)
	}
	for _, proc := range []*Process{a.Process, b.Process, p.Process} {
		if _, err := proc.WaitOutput(ctx, "refused ("+directory.RefusedUnderThreshold+")"); err != nil {
			t.Errorf("%s never logged a refused document: %v", proc.Name(), err)
		}
	}
	if v, err := scrapeMetric(ctx, p.HTTP+"/metrics", "peapod_topology_documents_refused_total", "reason", directory.RefusedUnderThreshold); err != nil || v == 0 {
		t.Errorf("the provider's /metrics counts %v documents refused under the threshold (%v)", v, err)
	}
	w.echo(t, ctx, req, "during-the-forgery")
	w.check(t, ctx, req)
	for i := range 3 {
		if n.Proxy(i).Served() == 0 {
			t.Errorf("proxy %d served no forged document: the test shows nothing", i)
		}
		n.Proxy(i).Forge(nil)
	}

	// The honest authorities never published the liar's nodes.
	for i := range 2 {
		c := &directory.Client{BaseURL: n.AuthorityURLs()[i], Trust: n.Trust()}
		top, err := c.Topology(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range top.Mixnodes {
			if m.Identity == fake.Identity || slices.Contains(madeUp, m.Identity) {
				t.Fatalf("authority %d's document lists the made-up mixnode %s", i, m.Identity)
			}
			if m.Identity == real.Identity && m.Address != real.Address {
				t.Fatalf("authority %d's document moved %s to %s", i, real.Identity, m.Address)
			}
		}
	}
	disagree, err := scrapeMetric(ctx, n.AuthorityURLs()[0]+"/metrics", "peapod_directory_peer_votes_total", "result", "disagree")
	if err != nil || disagree == 0 {
		t.Fatalf("authority 0 never disagreed with the liar's vote (%v, %v): the lie did not happen", disagree, err)
	}
	exchange(t, ctx, a, b, "after", 5)
}

// TestAuthorityDown stops one of three authorities and runs the network
// through several key rotations: documents signed by the two left keep
// coming (the nodes' new keys are in them), and messages keep flowing.
func TestAuthorityDown(t *testing.T) {
	t.Parallel()
	n := startNet(t, Config{Authorities: 3, Epoch: time.Second, RotationEpochs: 2})
	ctx := ctxFor(t, 2*time.Minute)
	a, b, _ := twoClients(t, ctx, n)
	exchange(t, ctx, a, b, "three", 5)

	if err := n.Authority(1).Stop(); err != nil {
		t.Fatal(err)
	}
	start := rotationNow(t, ctx, n)
	t.Logf("authority 1 stopped in rotation %d", start)
	var top *directory.Topology
	err := pollUntil(ctx, 100*time.Millisecond, func() (bool, error) {
		var err error
		top, err = n.Topology(ctx)
		return err == nil && top.Epoch.Rotation >= start+3, nil
	})
	if err != nil {
		t.Fatalf("no document three rotations after the stop: %v", err)
	}
	if len(top.Mixnodes) != Layers*DefaultMixnodesPerLayer || len(top.Gateways) != DefaultGateways {
		t.Fatalf("rotation %d lists %d mixnodes and %d gateways", top.Epoch.Rotation, len(top.Mixnodes), len(top.Gateways))
	}
	resp, err := http.Get(n.AuthorityURLs()[0] + directory.PathDocument)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := directory.ParseDocument(raw)
	if err != nil || len(doc.Signatures) != 2 {
		t.Fatalf("authority 0's document: %v, %d signatures; want the two running authorities'", err, len(doc.Signatures))
	}
	exchange(t, ctx, a, b, "two", 5)
}

// TestAllowList runs an authority that admits the identities of a file:
// a mixnode not on it is refused (403, counted) and stays out of the
// signed topology; once its identity is written to the file it is in,
// without the authority restarting; taken off the list and SIGHUP sent, it
// leaves.
func TestAllowList(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs processes")
	}
	bin := binaries(t)
	dir := t.TempDir()
	begin := time.Now()
	step := func(what string) { t.Logf("[%6.2fs] %s", time.Since(begin).Seconds(), what) }
	ctx := ctxFor(t, time.Minute)
	data := filepath.Join(dir, "authority")
	out, err := RunCommand(ctx, nil, bin.Mixnet, "authority-key", "--data", data)
	if err != nil || out.Code != 0 {
		t.Fatalf("authority-key: %v %+v", err, out)
	}
	key := strings.TrimSpace(out.Stdout)
	trust, err := directory.ParseTrust([]string{key}, 0)
	if err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(dir, "allow-list")
	if err := os.WriteFile(list, []byte("# nobody yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, err := freePort(netip.MustParseAddr("127.0.0.1"), true)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr.String()
	auth, err := NewProcess(ProcessConfig{Name: "authority", Path: bin.Mixnet, LogDir: dir, Ready: "directory listening",
		Args: []string{"directory", "--listen", addr.String(), "--data", data, "--allow-list", list, "--vote-interval", voteInterval}})
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Stop() })
	pid := auth.PID()
	mixAddr, err := freePort(netip.MustParseAddr("127.0.0.1"), true)
	if err != nil {
		t.Fatal(err)
	}
	mix, err := NewProcess(ProcessConfig{Name: "mixnode", Path: bin.Mixnet, LogDir: dir, Ready: "mixnode started",
		Args: []string{"mixnode", "--layer", "1", "--listen", mixAddr.String(), "--directory", url, "--authorities", key,
			"--data", filepath.Join(dir, "mixnode"), "--peak-rate", "5"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := mix.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mix.Stop() })
	id := address.EncodeKey(loadKey(t, filepath.Join(dir, "mixnode", node.IdentityFile), node.IdentityPEMType).Public().(ed25519.PublicKey))

	step("mixnode started")
	if _, err := mix.WaitOutput(ctx, "allow-list"); err != nil {
		t.Fatalf("the mixnode never logged its refusal: %v", err)
	}
	if v, err := scrapeMetric(ctx, url+"/metrics", "peapod_directory_requests_rejected_total", "reason", "not_admitted"); err != nil || v == 0 {
		t.Fatalf("not_admitted counted %v (%v)", v, err)
	}
	listed := func(want bool) error {
		c := &directory.Client{BaseURL: url, Trust: &trust}
		return pollUntil(ctx, 100*time.Millisecond, func() (bool, error) {
			top, err := c.Topology(ctx)
			if err != nil {
				return false, nil
			}
			_, found := slices.BinarySearchFunc(top.Mixnodes, id, func(m directory.Mixnode, id string) int { return strings.Compare(m.Identity, id) })
			return found == want, nil
		})
	}
	if err := listed(false); err != nil {
		t.Fatal(err)
	}

	step("refused and not listed")
	if err := os.WriteFile(list, []byte(id+" # mixnode\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := listed(true); err != nil {
		t.Fatalf("the mixnode is not listed after its identity was added: %v", err)
	}
	if _, err := auth.WaitLog(ctx, "allow-list reloaded"); err != nil {
		t.Fatal(err)
	}

	step("listed")
	if err := os.WriteFile(list, []byte("# nobody again\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := auth.signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := listed(false); err != nil {
		t.Fatalf("the mixnode is still listed after its identity was removed: %v", err)
	}
	if auth.PID() != pid || len(auth.UnexpectedExits()) != 0 {
		t.Fatalf("the authority restarted or exited: %v", auth.UnexpectedExits())
	}
}
