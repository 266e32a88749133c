package testnet

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/peapod-mixnet/peapod/directory"
)

// voteInterval is the test authorities' --vote-interval: a node that
// registers is in a signed document within a fraction of a second.
const voteInterval = "100ms"

// authorityName is the process and data folder name of authority i: the
// first is "directory", as when the network had one directory.
func authorityName(i int) string {
	if i == 0 {
		return "directory"
	}
	return fmt.Sprintf("directory-%d", i)
}

// startAuthorities starts Config.Authorities `mixnet directory` processes
// that know each other, each with a key made beforehand with `mixnet
// authority-key`, and the proxies in front of them when Config asks.
func (n *Network) startAuthorities(ctx context.Context) error {
	count := n.cfg.Authorities
	for i := range count {
		out, err := exec.CommandContext(ctx, n.cfg.Bin.Mixnet, "authority-key", "--data", n.DataDir(authorityName(i))).Output()
		if err != nil {
			return fmt.Errorf("testnet: mixnet authority-key: %w", err)
		}
		n.authKeys = append(n.authKeys, strings.TrimSpace(string(out)))
		addr, err := n.port(true)
		if err != nil {
			return err
		}
		n.authAddrs = append(n.authAddrs, addr)
	}
	for i := range count {
		var peers []string
		for j := range count {
			if j != i {
				peers = append(peers, "http://"+n.authAddrs[j].String()+"="+n.authKeys[j])
			}
		}
		args := []string{"directory", "--listen", n.authAddrs[i].String(), "--data", n.DataDir(authorityName(i)),
			"--open", "--vote-interval", voteInterval, "--log-level", n.cfg.LogLevel}
		if len(peers) > 0 {
			args = append(args, "--peers", strings.Join(peers, ","))
		}
		if n.cfg.DirectoryTTL > 0 {
			args = append(args, "--ttl", n.cfg.DirectoryTTL.String())
		}
		if n.cfg.MixDelay > 0 {
			args = append(args, "--mix-delay", n.cfg.MixDelay.String())
		}
		if n.cfg.Epoch > 0 {
			args = append(args, "--epoch", n.cfg.Epoch.String())
		}
		if n.cfg.RotationEpochs > 0 {
			args = append(args, "--rotation-epochs", strconv.Itoa(n.cfg.RotationEpochs))
		}
		p, err := NewProcess(ProcessConfig{Name: authorityName(i), Path: n.cfg.Bin.Mixnet, Args: args, LogDir: n.logDir,
			Ready: "directory listening", Logf: n.cfg.Logf})
		if err != nil {
			return err
		}
		n.authorities = append(n.authorities, p)
		if n.cfg.DirectoryProxy {
			proxy, err := newDirectoryProxy(n.hostIP, "http://"+n.authAddrs[i].String())
			if err != nil {
				return err
			}
			n.proxies = append(n.proxies, proxy)
		}
	}
	errc := make(chan error, count)
	for _, p := range n.authorities {
		go func() { errc <- p.Start(ctx) }()
	}
	var errs []error
	for range count {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("testnet: starting the authorities: %w", errs[0])
	}
	return nil
}

// DirectoryURL is what the nodes, clients and providers are given as
// --directory: the authorities' URLs (their proxies' with
// Config.DirectoryProxy), separated by commas.
func (n *Network) DirectoryURL() string {
	if urls, _ := n.oneProcessTrust(); urls != "" {
		return urls
	}
	if len(n.proxies) > 0 {
		urls := make([]string, len(n.proxies))
		for i, p := range n.proxies {
			urls[i] = p.URL
		}
		return strings.Join(urls, ",")
	}
	return strings.Join(n.AuthorityURLs(), ",")
}

// AuthorityURLs are the authorities' own URLs, proxies bypassed.
func (n *Network) AuthorityURLs() []string {
	urls := make([]string, len(n.authAddrs))
	for i, a := range n.authAddrs {
		urls[i] = "http://" + a.String()
	}
	return urls
}

// AuthorityKeys is what the nodes, clients and providers are given as
// --authorities: the authorities' base58 keys, separated by commas.
func (n *Network) AuthorityKeys() string {
	if _, keys := n.oneProcessTrust(); keys != "" {
		return keys
	}
	return strings.Join(n.authKeys, ",")
}

// Trust is the trust the network's consumers have.
func (n *Network) Trust() *directory.Trust {
	t, err := directory.ParseTrust(strings.Split(n.AuthorityKeys(), ","), 0)
	if err != nil {
		panic("testnet: the authorities' own keys do not parse: " + err.Error())
	}
	return &t
}

// DirectoryAddr is the first authority's listening address.
func (n *Network) DirectoryAddr() netip.AddrPort {
	if n.cfg.OneProcess {
		return n.oneAddr
	}
	return n.authAddrs[0]
}

// Directory is the first authority's process.
func (n *Network) Directory() *Process { return n.authorities[0] }

// Authority is authority i's process (from 0), or nil.
func (n *Network) Authority(i int) *Process {
	if i < 0 || i >= len(n.authorities) {
		return nil
	}
	return n.authorities[i]
}

// Proxy is the proxy in front of authority i, nil without
// Config.DirectoryProxy.
func (n *Network) Proxy(i int) *DirectoryProxy {
	if i < 0 || i >= len(n.proxies) {
		return nil
	}
	return n.proxies[i]
}

// DirectoryProxy is an HTTP reverse proxy in front of one authority, where
// a test stands between the authority and everyone who fetches the
// topology from it (a man in the middle on the directory URL).
type DirectoryProxy struct {
	// URL is the proxy's base URL.
	URL string

	srv    *http.Server
	mu     sync.Mutex
	forged []byte // served at directory.PathDocument instead of the authority's, when set
	served int    // forged documents served
}

// newDirectoryProxy serves a proxy to target on a free port of ip.
func newDirectoryProxy(ip netip.Addr, target string) (*DirectoryProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		return nil, err
	}
	p := &DirectoryProxy{URL: "http://" + ln.Addr().String()}
	forward := httputil.NewSingleHostReverseProxy(u)
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		forged := p.forged
		if forged != nil && r.URL.Path == directory.PathDocument {
			p.served++
		}
		p.mu.Unlock()
		if forged != nil && r.URL.Path == directory.PathDocument {
			w.Header().Set("Content-Type", "application/json")
			w.Write(forged)
			return
		}
		forward.ServeHTTP(w, r)
	})}
	go p.srv.Serve(ln)
	return p, nil
}

// Forge makes the proxy answer every request for the topology document
// with doc; nil passes them on to the authority again.
func (p *DirectoryProxy) Forge(doc []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forged = doc
}

// Served is how many forged documents the proxy has served.
func (p *DirectoryProxy) Served() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served
}

// Close stops the proxy.
func (p *DirectoryProxy) Close() error { return p.srv.Close() }
