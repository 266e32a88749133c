package mixnode

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/internal/replaystore"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// Defaults of a [Config].
const (
	// DefaultListenAddr is Nym's mixnode port on every interface.
	DefaultListenAddr = "0.0.0.0:1789"
	// DefaultMaxQueue bounds each of the work queue and the delay queue. With
	// regular packets (2413 bytes) a full queue holds about 10 MB; with
	// extended32 packets about 135 MB.
	DefaultMaxQueue = 4096
	// DefaultMaxDelay is far beyond any delay an honest sender draws (Nym's
	// mean is 15 ms a hop), and short enough that a sender cannot park
	// packets in a node for long.
	DefaultMaxDelay = 30 * time.Second
	// DefaultOutboundQueue bounds the packets waiting for each next hop.
	DefaultOutboundQueue = 1024
	// DefaultReplaySaveInterval is how often the replay filter is saved:
	// a crash forgets at most this long of packets (see ReplayFilterFile).
	DefaultReplaySaveInterval = time.Minute
	// DefaultTopologyRefresh is the time between topology fetches, as the
	// gateway's.
	DefaultTopologyRefresh = time.Minute
)

// Config configures a [Node]. Zero values take the documented defaults;
// [New] applies them and validates the result in one place.
type Config struct {
	// ListenAddr is the literal ip:port where the node accepts packets; an
	// empty host means every interface. Port 0 picks a free port on the
	// first start and binds the same one on every later start, remembered
	// in DataDir (internal/node.ListenFile), so that the node's address does
	// not change (see Node.Addr). Default DefaultListenAddr.
	ListenAddr string
	// AnnounceAddr is the literal ip:port published in the directory, where
	// other nodes and clients send packets. Port 0 means the port the node
	// listens on. Default: the address the node listens on, which must then
	// not be a wildcard address if DirectoryURL is set.
	AnnounceAddr string
	// MetricsAddr is where a small HTTP server answers /metrics (Prometheus
	// text) and /healthz; "" (the default) runs no server.
	MetricsAddr string
	// Layer is the node's layer in the mixnet, 1 to 3. Required.
	Layer int
	// DataDir holds the node's keys (identity.pem, noise.pem, sphinx.pem), created with
	// permissions 0700/0600 on first start, and its saved replay filter
	// (replay.bin). Required.
	DataDir string
	// DirectoryURL is the base URL of the directory the node registers with,
	// such as "http://127.0.0.1:8090", and fetches the topology from: the
	// node then forwards a packet only to a next hop of the topology (a
	// mixnode of the next layer, or a gateway after layer 3): a packet for
	// a hop it does not know waits for a fetch of the topology, and is
	// dropped (DropUnknownHop) if the hop is still unknown then. "" (the
	// default) registers nowhere and forwards to any next hop.
	DirectoryURL string
	// TopologyRefresh is the time between topology fetches when
	// DirectoryURL is set; a next hop the topology held does not list also
	// triggers a fetch, at most one a second (internal/hops). Default
	// DefaultTopologyRefresh.
	TopologyRefresh time.Duration
	// ReplayCapacity is how many packets the replay filter is sized for; at
	// the default, sphinx.DefaultReplayCapacity (10 million), it takes about
	// 30 MB.
	ReplayCapacity int
	// ReplaySaveInterval is how often the replay filter is saved to
	// ReplayFilterFile while the node runs; it is also saved when the node
	// closes. A negative value saves only then (a crash then forgets every
	// packet since the start). Default DefaultReplaySaveInterval; a positive
	// value below one second is refused, since each save writes the whole
	// filter.
	ReplaySaveInterval time.Duration
	// Workers is how many goroutines peel packets. Default GOMAXPROCS.
	Workers int
	// MaxQueue bounds the packets waiting to be peeled and, separately, the
	// packets held in the delay queue; a packet beyond either bound is
	// dropped and counted. Default DefaultMaxQueue.
	MaxQueue int
	// MaxDelay is the longest delay the node honours; a packet asking for
	// more is dropped and counted. Default DefaultMaxDelay.
	MaxDelay time.Duration
	// DropRate is for fault-injection tests only: the share of received
	// packets, 0 to 1, dropped at random (counted as DropInjected). Default
	// 0.
	DropRate float64
	// MaxConns bounds the inbound connections; zero takes the wire
	// package's default (1024).
	MaxConns int
	// IdleTimeout closes an inbound connection that starts no frame for
	// this long; zero takes the wire package's default (10 minutes).
	IdleTimeout time.Duration
	// FrameTimeout closes an inbound connection that does not complete a
	// started frame within this long; zero takes the wire package's default
	// (30 seconds).
	FrameTimeout time.Duration
	// OutboundQueue bounds the packets waiting for each next hop. Default
	// DefaultOutboundQueue.
	OutboundQueue int
	// Logger receives the node's logs; the zero value discards them.
	Logger zerolog.Logger
}

// applyDefaults fills in zero fields and then checks the result.
func (c *Config) applyDefaults() error {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if c.ReplayCapacity == 0 {
		c.ReplayCapacity = sphinx.DefaultReplayCapacity
	}
	if c.ReplaySaveInterval == 0 {
		c.ReplaySaveInterval = DefaultReplaySaveInterval
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.MaxQueue == 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = DefaultMaxDelay
	}
	if c.OutboundQueue == 0 {
		c.OutboundQueue = DefaultOutboundQueue
	}
	if c.TopologyRefresh == 0 {
		c.TopologyRefresh = DefaultTopologyRefresh
	}

	listenIP, err := parseListenAddr(c.ListenAddr)
	if err != nil {
		return err
	}
	if c.AnnounceAddr != "" {
		ap, err := netip.ParseAddrPort(c.AnnounceAddr)
		if err != nil {
			return fmt.Errorf("mixnode: Config.AnnounceAddr %q is not a literal ip:port", c.AnnounceAddr)
		}
		if !reachable(ap.Addr()) {
			return fmt.Errorf("mixnode: Config.AnnounceAddr %q is not an address other hosts can reach", c.AnnounceAddr)
		}
	} else if c.DirectoryURL != "" && !reachable(listenIP) {
		return fmt.Errorf("mixnode: Config.AnnounceAddr is required when ListenAddr %q is a wildcard address and DirectoryURL is set", c.ListenAddr)
	}
	if c.DirectoryURL != "" {
		u, err := url.Parse(c.DirectoryURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("mixnode: Config.DirectoryURL %q is not an http:// or https:// URL", c.DirectoryURL)
		}
	}

	switch {
	case c.Layer < 1 || c.Layer > 3:
		return fmt.Errorf("mixnode: Config.Layer %d is not 1, 2 or 3", c.Layer)
	case c.DataDir == "":
		return errors.New("mixnode: Config.DataDir is required")
	case c.ReplayCapacity < 0:
		return fmt.Errorf("mixnode: Config.ReplayCapacity %d is negative", c.ReplayCapacity)
	case c.ReplaySaveInterval > 0 && c.ReplaySaveInterval < replaystore.MinInterval:
		return fmt.Errorf("mixnode: Config.ReplaySaveInterval %s is below %s", c.ReplaySaveInterval, replaystore.MinInterval)
	case c.Workers < 0:
		return fmt.Errorf("mixnode: Config.Workers %d is negative", c.Workers)
	case c.MaxQueue < 0:
		return fmt.Errorf("mixnode: Config.MaxQueue %d is negative", c.MaxQueue)
	case c.MaxDelay < 0:
		return fmt.Errorf("mixnode: Config.MaxDelay %s is negative", c.MaxDelay)
	case !(c.DropRate >= 0 && c.DropRate <= 1):
		return fmt.Errorf("mixnode: Config.DropRate %v is not between 0 and 1", c.DropRate)
	case c.MaxConns < 0:
		return fmt.Errorf("mixnode: Config.MaxConns %d is negative", c.MaxConns)
	case c.IdleTimeout < 0:
		return fmt.Errorf("mixnode: Config.IdleTimeout %s is negative", c.IdleTimeout)
	case c.FrameTimeout < 0:
		return fmt.Errorf("mixnode: Config.FrameTimeout %s is negative", c.FrameTimeout)
	case c.OutboundQueue < 0:
		return fmt.Errorf("mixnode: Config.OutboundQueue %d is negative", c.OutboundQueue)
	case c.TopologyRefresh < 0:
		return fmt.Errorf("mixnode: Config.TopologyRefresh %s is negative", c.TopologyRefresh)
	}
	return nil
}

// parseListenAddr checks that s is "ip:port" or ":port" with a literal IP
// and returns the IP (the IPv4 wildcard for an empty host).
func parseListenAddr(s string) (netip.Addr, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("mixnode: Config.ListenAddr %q: %w", s, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return netip.Addr{}, fmt.Errorf("mixnode: Config.ListenAddr %q has an invalid port", s)
	}
	if host == "" {
		return netip.IPv4Unspecified(), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("mixnode: Config.ListenAddr %q does not have a literal IP", s)
	}
	return ip, nil
}

// reachable reports whether ip can be published as a node address.
func reachable(ip netip.Addr) bool {
	return ip.IsValid() && !ip.IsUnspecified() && !ip.IsMulticast() && ip.Zone() == ""
}
