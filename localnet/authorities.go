package localnet

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/node"
)

// authority is one of the network's directory authorities.
type authority struct {
	srv  *directory.Server
	key  ed25519.PrivateKey // wiped once srv is closed
	url  string
	done chan struct{} // closed when Serve has returned
}

// Authority defaults of a local network.
const (
	// DefaultAuthorities is how many directory authorities a local network
	// runs; a document needs a majority of them.
	DefaultAuthorities = 3
	// voteInterval is how often the local authorities vote: often, so that
	// a node that registers is in a signed document within a fraction of a
	// second.
	voteInterval = 100 * time.Millisecond
	// localRegisterRate is the registrations a second each authority takes
	// from 127.0.0.1, where every node of the network is.
	localRegisterRate = 1000
)

// authorityDir is the data folder of authority i: DataDir/directory for the
// first (where a network of one directory kept it), DataDir/directory-<i>
// for the others.
func (n *Network) authorityDir(i int) string {
	if i == 0 {
		return filepath.Join(n.cfg.DataDir, "directory")
	}
	return filepath.Join(n.cfg.DataDir, fmt.Sprintf("directory-%d", i))
}

// startAuthorities starts Config.Authorities directory authorities that
// know each other: the first on Config.DirectoryAddr, the others on ports
// of their own, kept across restarts. They admit the network's own nodes
// only (an allow-list the network fills as it makes them) unless
// Config.Open is set.
func (n *Network) startAuthorities(ctx context.Context) error {
	count := n.cfg.Authorities
	lns := make([]net.Listener, count)
	keys := make([]ed25519.PrivateKey, count)
	closeAll := func() {
		for i := range count {
			if lns[i] != nil {
				lns[i].Close()
			}
			clear(keys[i])
		}
	}
	for i := range count {
		addr := "127.0.0.1:0"
		if i == 0 {
			addr = n.cfg.DirectoryAddr
		}
		var err error
		if keys[i], err = node.LoadAuthorityKey(n.authorityDir(i)); err != nil {
			closeAll()
			return fmt.Errorf("localnet: authority %d: %w", i, err)
		}
		if lns[i], err = node.Listen(ctx, n.authorityDir(i), "http", addr); err != nil {
			closeAll()
			return fmt.Errorf("localnet: authority %d: %w", i, err)
		}
		n.trust.Authorities = append(n.trust.Authorities, keys[i].Public().(ed25519.PublicKey))
	}
	if !n.cfg.Open {
		n.allow, _ = directory.NewAllowList(nil)
	}
	for i := range count {
		ac := &directory.AuthorityConfig{Key: keys[i], VoteInterval: voteInterval}
		for j := range count {
			if j != i {
				ac.Peers = append(ac.Peers, directory.Peer{URL: "http://" + lns[j].Addr().String(), Key: n.trust.Authorities[j]})
			}
		}
		name := fmt.Sprintf("directory-%d", i)
		srv, err := directory.New(directory.Config{
			DataDir:      n.authorityDir(i),
			Schedule:     directory.Schedule{EpochLength: n.cfg.EpochLength, RotationEpochs: n.cfg.RotationEpochs},
			Params:       &directory.Params{MeanMixDelay: int64(n.cfg.MeanMixDelay)},
			AllowList:    n.allow,
			RegisterRate: localRegisterRate,
			Authority:    ac,
			Logger:       n.cfg.Logger.With().Str("node", name).Logger(),
		})
		if err != nil {
			for j := i; j < count; j++ {
				lns[j].Close()
				clear(keys[j])
			}
			return fmt.Errorf("localnet: authority %d: %w", i, err)
		}
		a := &authority{srv: srv, key: keys[i], url: "http://" + lns[i].Addr().String(), done: make(chan struct{})}
		n.auths = append(n.auths, a)
		go func(ln net.Listener) {
			defer close(a.done)
			if err := srv.Serve(ln); err != nil {
				n.log.Error().Err(err).Str("authority", name).Msg("directory authority stopped serving")
			}
		}(lns[i])
	}
	return n.waitDocument(ctx)
}

// waitDocument waits until the authorities have published a first
// document, so that the nodes learn the network's schedule from their first
// fetch.
func (n *Network) waitDocument(ctx context.Context) error {
	c := &directory.Client{BaseURL: n.DirectoryURL(), Trust: n.Trust()}
	t := time.NewTicker(listedPoll)
	defer t.Stop()
	for {
		_, err := c.Topology(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("localnet: no signed topology document from the authorities: %w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// admit puts a node's identity on the authorities' allow-list.
func (n *Network) admit(id ed25519.PublicKey) {
	if n.allow != nil {
		n.allow.Add(address.EncodeKey(id))
	}
}

// closeAuthorities stops every authority.
func (n *Network) closeAuthorities() error {
	var errs []error
	for _, a := range n.auths {
		if err := a.srv.Close(); err != nil {
			errs = append(errs, err)
		}
		<-a.done
		clear(a.key)
	}
	return errors.Join(errs...)
}

// listedPoll is how often Start looks at the signed topology while it
// waits for the nodes' registrars and the authorities' votes, which signal
// nothing.
const listedPoll = 10 * time.Millisecond

// waitListed waits until a document signed by the authorities lists every
// node of the network.
func (n *Network) waitListed(ctx context.Context) error {
	want := n.identities()
	c := &directory.Client{BaseURL: n.DirectoryURL(), Trust: n.Trust()}
	t := time.NewTicker(listedPoll)
	defer t.Stop()
	for {
		missing := len(want)
		if top, err := c.Topology(ctx); err == nil {
			listed := make(map[string]bool, len(top.Mixnodes)+len(top.Gateways))
			for _, m := range top.Mixnodes {
				listed[m.Identity] = true
			}
			for _, g := range top.Gateways {
				listed[g.Identity] = true
			}
			missing = 0
			for _, id := range want {
				if !listed[id] {
					missing++
				}
			}
		}
		if missing == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("localnet: %d of %d nodes not in a signed topology document: %w", missing, len(want), ctx.Err())
		case <-t.C:
		}
	}
}

// DirectoryURL is the directory authorities' base URLs separated by commas,
// the first at Config.DirectoryAddr: what directory.Client.BaseURL and the
// nodes' and clients' DirectoryURL take.
func (n *Network) DirectoryURL() string {
	urls := make([]string, len(n.auths))
	for i, a := range n.auths {
		urls[i] = a.url
	}
	return strings.Join(urls, ",")
}

// Trust is what a consumer of the network's topology trusts: the
// authorities' keys, a majority of them needed.
func (n *Network) Trust() *directory.Trust {
	t := n.trust
	return &t
}

// Directory is the first directory authority.
func (n *Network) Directory() *directory.Server { return n.auths[0].srv }

// Authorities returns the directory authorities' servers.
func (n *Network) Authorities() []*directory.Server {
	out := make([]*directory.Server, len(n.auths))
	for i, a := range n.auths {
		out[i] = a.srv
	}
	return out
}
