package mixnode

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/fairq"
	"github.com/peapod-mixnet/peapod/internal/replaystore"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// Defaults of a [Config].
const (
	// DefaultListenAddr is Nym's mixnode port on every interface.
	DefaultListenAddr = "0.0.0.0:1789"
	// DefaultMaxQueue bounds the packets of each of the work queue and the
	// delay queue.
	DefaultMaxQueue = 4096
	// DefaultMaxQueueBytes bounds the bytes of each of the two queues: 64
	// MiB, room for 4096 packets of up to 16 KiB (regular packets are 2413
	// bytes; extended32 ones about 33 KB).
	DefaultMaxQueueBytes = 64 << 20
	// DelayBoundFactor times the mean delay the network advertises is the
	// longest delay a node honours when Config.MaxDelay is zero. Honest
	// senders draw exponential delays, which exceed 20 times their mean
	// with probability e^-20 (2 in a billion); a packet asking for more is
	// held for the bound, not dropped.
	DelayBoundFactor = 20
	// MinDelayBound is the least delay bound derived from the topology, for
	// networks that advertise a mean of zero or close to it.
	MinDelayBound = 100 * time.Millisecond
	// DefaultMaxDelay is the delay bound of a node whose topology advertises
	// no mean delay (or that has no directory), and the most a bound
	// derived from the topology may be: far beyond any delay an honest
	// sender draws, short enough that a sender cannot park packets in a
	// node for long.
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
	// DataDir holds the node's keys (identity.pem, noise.pem, and a Sphinx
	// key per rotation, sphinx-<R>.pem), created with permissions 0700/0600,
	// their saved replay filters (replay-<R>.bin), the network's schedule
	// and the listen address (files of package internal/node). Required.
	DataDir string
	// DirectoryURL is the base URL of the directory the node registers with,
	// such as "http://127.0.0.1:8090", and fetches the topology from: the
	// node then forwards a packet only to a next hop of the topology (a
	// mixnode of the next layer, or a gateway after layer 3): a packet for
	// a hop it does not know waits for a fetch of the topology, and is
	// dropped (DropUnknownHop) if the hop is still unknown then. "" (the
	// default) registers nowhere and forwards to any next hop.
	DirectoryURL string
	// Trust, when set, makes the mixnode accept a topology only as a document
	// signed by a threshold of the directory authorities it names (see
	// directory.Client.Trust); DirectoryURL then lists the authorities'
	// URLs, separated by commas. Nil takes the unsigned topology of
	// DirectoryURL: whoever answers there chooses the mixnode's view.
	Trust *directory.Trust
	// TopologyRefresh is the time between topology fetches when
	// DirectoryURL is set; a next hop the topology held does not list also
	// triggers a fetch, at most one a second (internal/hops). Default
	// DefaultTopologyRefresh.
	TopologyRefresh time.Duration
	// ReplayCapacity is how many packets the replay filter of a node
	// without a directory (one Sphinx key for ever) is sized for; at the
	// default, sphinx.DefaultReplayCapacity (10 million), it takes about 30
	// MB. A node of a network sizes each key's filter from PeakRate instead.
	ReplayCapacity int
	// PeakRate is the packets a second each Sphinx key's replay filter is
	// sized for, over the key's whole life (directory.Schedule.KeyLifetime),
	// so that the filter's false-positive rate stays under its target until
	// the key is wiped; a higher rate measured over the previous key's life
	// raises it. Default node.DefaultPeakRate (500).
	PeakRate float64
	// ReplayFalsePositiveRate is the share of fresh packets each replay
	// filter may wrongly refuse once full (at its capacity). Default
	// sphinx.DefaultReplayFalsePositiveRate (1e-5).
	ReplayFalsePositiveRate float64
	// ReplaySaveInterval is how often the replay filter is saved to
	// ReplayFilterFile while the node runs; it is also saved when the node
	// closes. A negative value saves only then (a crash then forgets every
	// packet since the start). Default DefaultReplaySaveInterval; a positive
	// value below one second is refused, since each save writes the whole
	// filter.
	ReplaySaveInterval time.Duration
	// Workers is how many goroutines peel packets. Default GOMAXPROCS.
	Workers int
	// MaxQueue and MaxQueueBytes bound the packets waiting to be peeled
	// and, separately, the packets held in the delay queue. Each upstream
	// peer (a Noise key; on a plain link, a connection) has a part of each
	// queue, at most MaxQueuePerPeer packets and MaxQueueBytesPerPeer
	// bytes. A packet that does not fit makes room by evicting a packet of
	// the peer holding the most bytes, when that peer is another: the
	// newest waiting to be peeled, or the latest due to leave the delay
	// queue. When its own peer holds the most, it is dropped instead, or,
	// in the delay queue, takes the place of its peer's latest packet if
	// it is due sooner. So a peer sending faster than the node empties
	// its queues loses its own packets, the ones asking for the longest
	// delays first, never another peer's share. Workers take packets from
	// the peers in turn. Every drop is counted (by reason, and by peer in
	// Stats.PeerDrops). Defaults DefaultMaxQueue, DefaultMaxQueueBytes,
	// and half of each for the per-peer bounds.
	MaxQueue, MaxQueueBytes, MaxQueuePerPeer, MaxQueueBytesPerPeer int
	// MaxDelay is the longest delay the node honours; a packet asking for
	// more is held for MaxDelay only (counted in Stats.DelaysClamped). Zero
	// (the default) derives it from the topology: DelayBoundFactor times
	// the mean delay the directory advertises, at least MinDelayBound and
	// at most DefaultMaxDelay; DefaultMaxDelay when the topology advertises
	// no mean (clients then choose their own) or there is no directory.
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
	if c.MaxQueueBytes == 0 {
		c.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if c.MaxQueuePerPeer == 0 {
		c.MaxQueuePerPeer = max(c.MaxQueue/2, 1)
	}
	if c.MaxQueueBytesPerPeer == 0 {
		c.MaxQueueBytesPerPeer = max(c.MaxQueueBytes/2, wire.MaxPacketLen)
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
		if err := directory.CheckURLs(c.DirectoryURL); err != nil {
			return fmt.Errorf("mixnode: Config.DirectoryURL: %w", err)
		}
	}
	if c.Trust != nil {
		if err := c.Trust.Validate(); err != nil {
			return fmt.Errorf("mixnode: Config.Trust: %w", err)
		}
	}

	switch {
	case c.Layer < 1 || c.Layer > 3:
		return fmt.Errorf("mixnode: Config.Layer %d is not 1, 2 or 3", c.Layer)
	case c.DataDir == "":
		return errors.New("mixnode: Config.DataDir is required")
	case c.ReplayCapacity < 0:
		return fmt.Errorf("mixnode: Config.ReplayCapacity %d is negative", c.ReplayCapacity)
	case c.PeakRate < 0 || math.IsInf(c.PeakRate, 0) || math.IsNaN(c.PeakRate):
		return fmt.Errorf("mixnode: Config.PeakRate %v is not a packet rate", c.PeakRate)
	case !(c.ReplayFalsePositiveRate >= 0 && c.ReplayFalsePositiveRate < 1):
		return fmt.Errorf("mixnode: Config.ReplayFalsePositiveRate %v is not between 0 and 1", c.ReplayFalsePositiveRate)
	case c.ReplaySaveInterval > 0 && c.ReplaySaveInterval < replaystore.MinInterval:
		return fmt.Errorf("mixnode: Config.ReplaySaveInterval %s is below %s", c.ReplaySaveInterval, replaystore.MinInterval)
	case c.Workers < 0:
		return fmt.Errorf("mixnode: Config.Workers %d is negative", c.Workers)
	case c.MaxQueue < 0:
		return fmt.Errorf("mixnode: Config.MaxQueue %d is negative", c.MaxQueue)
	case c.MaxQueuePerPeer < 0 || c.MaxQueuePerPeer > c.MaxQueue:
		return fmt.Errorf("mixnode: Config.MaxQueuePerPeer %d is not between 1 and MaxQueue (%d)", c.MaxQueuePerPeer, c.MaxQueue)
	case c.MaxQueueBytes < wire.MaxPacketLen:
		return fmt.Errorf("mixnode: Config.MaxQueueBytes %d is less than the largest packet (%d bytes)", c.MaxQueueBytes, wire.MaxPacketLen)
	case c.MaxQueueBytesPerPeer < wire.MaxPacketLen || c.MaxQueueBytesPerPeer > c.MaxQueueBytes:
		return fmt.Errorf("mixnode: Config.MaxQueueBytesPerPeer %d is not between the largest packet (%d bytes) and MaxQueueBytes (%d)",
			c.MaxQueueBytesPerPeer, wire.MaxPacketLen, c.MaxQueueBytes)
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

// queueQuota is the quota of each of the node's queues.
func (c *Config) queueQuota() fairq.Quota {
	return fairq.Quota{Packets: c.MaxQueue, Bytes: c.MaxQueueBytes, PeerPackets: c.MaxQueuePerPeer, PeerBytes: c.MaxQueueBytesPerPeer}
}
