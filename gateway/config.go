package gateway

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"runtime"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/gwproto"
	"github.com/peapod-mixnet/peapod/internal/replaystore"
	"github.com/peapod-mixnet/peapod/internal/wire"
	"github.com/peapod-mixnet/peapod/sphinx"
)

// Defaults for the fields of [Config].
const (
	DefaultMixListenAddr       = ":1789"
	DefaultClientListenAddr    = ":9000"
	DefaultMessageTTL          = 24 * time.Hour
	DefaultPageSize            = 100
	DefaultMaxPendingPerClient = 1000
	DefaultMaxStored           = 1_000_000 // about 2.5 GB of data packets
	DefaultMaxStoredPerClient  = 100_000
	DefaultPurgeInterval       = 10 * time.Minute
	DefaultTopologyRefresh     = time.Minute
	DefaultHandshakeTimeout    = 10 * time.Second
	DefaultReplayCapacity      = sphinx.DefaultReplayCapacity
	DefaultReplaySaveInterval  = time.Minute
	DefaultMaxClients          = 100_000 // about 15 MB of registry
	DefaultMaxClientsPerSource = 1000
	DefaultClientTTL           = 30 * 24 * time.Hour
	DefaultMaxHandshakes       = 1024
	DefaultMaxHandshakesPerSrc = 64
)

// MaxPageSize bounds Config.PageSize: a page is held in memory while the
// client confirms it.
const MaxPageSize = 10000

// Config configures a [Gateway]. Zero values take the documented defaults;
// [New] applies them and validates the result in one place.
type Config struct {
	// MixListenAddr is the TCP address where mixnodes deliver frames to the
	// gateway (exit role). Default DefaultMixListenAddr; tests use
	// "127.0.0.1:0" and read the bound address with [Gateway.MixAddr].
	// Port 0 picks a free port on the first start and binds the same one on
	// every later start, remembered in DataDir (internal/node.ListenFile),
	// so that the gateway's addresses do not change; so does it for
	// ClientListenAddr.
	MixListenAddr string
	// ClientListenAddr is the TCP address of the WebSocket listener for
	// clients. Default DefaultClientListenAddr.
	ClientListenAddr string
	// AnnounceAddr is the ip:port registered with the directory as the
	// gateway's mix-facing address. Empty means the bound MixListenAddr,
	// which must then name a specific IP when DirectoryURL is set.
	AnnounceAddr string
	// ClientAnnounceURL is the ws:// or wss:// URL registered with the
	// directory for clients. Empty means ws:// and the bound
	// ClientListenAddr, which must then name a specific IP when
	// DirectoryURL is set.
	ClientAnnounceURL string
	// DataDir holds the keys (identity.pem, noise.pem, and a Sphinx key per
	// rotation, sphinx-<R>.pem), the database (gateway.db), the saved replay
	// filters (replay-<R>.bin), the network's schedule and the listen
	// addresses (files of package internal/node); it is created (0700) when
	// missing. Required.
	DataDir string
	// DirectoryURL is the directory's base URL, used to register the
	// gateway and to fetch the topology. Empty means no registration and no
	// topology: every Forward is refused and every data packet dropped,
	// since no hop can be checked; only ack packets get through.
	DirectoryURL string
	// Trust, when set, makes the gateway accept a topology only as a document
	// signed by a threshold of the directory authorities it names (see
	// directory.Client.Trust); DirectoryURL then lists the authorities'
	// URLs, separated by commas. Nil takes the unsigned topology of
	// DirectoryURL: whoever answers there chooses the gateway's view.
	Trust *directory.Trust
	// MetricsAddr is the TCP address serving /metrics and /healthz. Empty
	// means no metrics server.
	MetricsAddr string
	// MessageTTL is how long a stored message waits for its client before
	// it is purged. Default DefaultMessageTTL.
	MessageTTL time.Duration
	// PageSize is how many stored messages are handed to a client at once.
	// Default DefaultPageSize, at most MaxPageSize.
	PageSize int
	// MaxPendingPerClient bounds the live messages a connected client may
	// hold unconfirmed; further messages for it go to the store until it
	// catches up. Default DefaultMaxPendingPerClient.
	MaxPendingPerClient int
	// MaxStored bounds the messages the store holds for all clients, and
	// MaxStoredPerClient those it holds for one. A message that would go
	// past either is dropped without an ack (its sender retransmits), so
	// one flooded or long-offline client cannot fill the disk. Defaults
	// DefaultMaxStored and DefaultMaxStoredPerClient.
	MaxStored          int
	MaxStoredPerClient int
	// MaxExitQueue and MaxExitQueueBytes bound the packets from mixnodes
	// waiting to be peeled (the exit path), and MaxExitQueuePerPeer and
	// MaxExitQueueBytesPerPeer each upstream peer's part of them (a
	// layer-3 mixnode's Noise key; on a plain link, a connection). A
	// packet that does not fit evicts the newest packet of the peer holding
	// the most bytes, when that is another peer, and is dropped otherwise;
	// ExitWorkers take the peers' packets in turn. So a layer-3 node that
	// sends faster than the gateway peels loses its own packets, never
	// another node's share. Every drop is counted by reason and by peer
	// (Stats.PeerDrops). Defaults DefaultMaxExitQueue,
	// DefaultMaxExitQueueBytes, and half of each for the per-peer bounds.
	MaxExitQueue, MaxExitQueueBytes, MaxExitQueuePerPeer, MaxExitQueueBytesPerPeer int
	// ExitWorkers is how many goroutines peel packets from mixnodes.
	// Default GOMAXPROCS.
	ExitWorkers int
	// PurgeInterval is the time between purges of expired messages.
	// Default DefaultPurgeInterval.
	PurgeInterval time.Duration
	// TopologyRefresh is the time between topology fetches. Default
	// DefaultTopologyRefresh.
	TopologyRefresh time.Duration
	// HandshakeTimeout bounds a client's whole handshake, from the TCP
	// accept to the end of the gwproto handshake (the HTTP request and the
	// WebSocket upgrade included). Default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxClients bounds the registered clients, and MaxClientsPerSource
	// those registered from one source address (an IPv4 address, or the /64
	// an IPv6 address is in). A registration past either is refused with
	// gwproto.ErrRefused and a message that names the limit; a registered
	// client is never refused by them, however it authenticates. Defaults
	// DefaultMaxClients and DefaultMaxClientsPerSource; a negative
	// MaxClientsPerSource turns the per-source limit off (behind a proxy,
	// every client comes from the proxy's address).
	MaxClients          int
	MaxClientsPerSource int
	// ClientTTL is how long a registered client may go without
	// authenticating before the gateway forgets it: its registration is
	// deleted (packets for it are then dropped as for an unknown client,
	// and it must register again) and its stored messages stay until their
	// MessageTTL ends, as every stored message does. A connected client
	// is never forgotten. Expiry runs with the purge, every PurgeInterval.
	// Default DefaultClientTTL.
	ClientTTL time.Duration
	// MaxHandshakes bounds the client connections in their handshake (from
	// the TCP accept to the end of the gwproto handshake), and
	// MaxHandshakesPerSource those from one source address. A connection
	// past either is answered at once with HTTP 503 and a message naming
	// the limit, and closed, before any HTTP request or WebSocket upgrade
	// is read from it. Defaults DefaultMaxHandshakes and
	// DefaultMaxHandshakesPerSrc; a negative MaxHandshakesPerSource turns
	// the per-source limit off.
	MaxHandshakes          int
	MaxHandshakesPerSource int
	// ReplayCapacity sizes the Sphinx replay filter of a gateway without a
	// directory (one Sphinx key for ever; see [sphinx.NewReplayFilter],
	// about 3 bytes a tag). Default DefaultReplayCapacity (about 30 MB). A
	// gateway of a network sizes each key's filter from PeakRate instead.
	ReplayCapacity int
	// PeakRate is the packets a second each Sphinx key's replay filter is
	// sized for, over the key's whole life (directory.Schedule.KeyLifetime);
	// a higher rate measured over the previous key's life raises it.
	// Default node.DefaultPeakRate (500).
	PeakRate float64
	// ReplayFalsePositiveRate is the share of fresh packets each replay
	// filter may wrongly refuse once full (at its capacity). Default
	// sphinx.DefaultReplayFalsePositiveRate (1e-5).
	ReplayFalsePositiveRate float64
	// ReplaySaveInterval is how often the replay filter is saved to
	// ReplayFilterFile while the gateway runs; it is also saved when the
	// gateway closes, so that a restarted gateway still refuses the packets
	// it processed before. A crash forgets at most this long of packets. A
	// negative value saves only on Close. Default DefaultReplaySaveInterval;
	// a positive value below one second is refused, since each save writes
	// the whole filter.
	ReplaySaveInterval time.Duration
	// Logger receives the gateway's logs; the zero value discards them.
	Logger zerolog.Logger
	// Now is the gateway's clock (handshake timestamps, message ages).
	// Default time.Now.
	Now func() time.Time
}

// applyDefaults fills in zero fields and then checks the result.
func (c *Config) applyDefaults() error {
	if c.MixListenAddr == "" {
		c.MixListenAddr = DefaultMixListenAddr
	}
	if c.ClientListenAddr == "" {
		c.ClientListenAddr = DefaultClientListenAddr
	}
	if c.MessageTTL == 0 {
		c.MessageTTL = DefaultMessageTTL
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.MaxPendingPerClient == 0 {
		c.MaxPendingPerClient = DefaultMaxPendingPerClient
	}
	if c.MaxStored == 0 {
		c.MaxStored = DefaultMaxStored
	}
	if c.MaxStoredPerClient == 0 {
		c.MaxStoredPerClient = DefaultMaxStoredPerClient
	}
	if c.PurgeInterval == 0 {
		c.PurgeInterval = DefaultPurgeInterval
	}
	if c.TopologyRefresh == 0 {
		c.TopologyRefresh = DefaultTopologyRefresh
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.ReplayCapacity == 0 {
		c.ReplayCapacity = DefaultReplayCapacity
	}
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
	if c.MaxClientsPerSource == 0 {
		c.MaxClientsPerSource = DefaultMaxClientsPerSource
	}
	if c.ClientTTL == 0 {
		c.ClientTTL = DefaultClientTTL
	}
	if c.MaxHandshakes == 0 {
		c.MaxHandshakes = DefaultMaxHandshakes
	}
	if c.MaxHandshakesPerSource == 0 {
		c.MaxHandshakesPerSource = DefaultMaxHandshakesPerSrc
	}
	if c.ReplaySaveInterval == 0 {
		c.ReplaySaveInterval = DefaultReplaySaveInterval
	}
	if c.MaxExitQueue == 0 {
		c.MaxExitQueue = DefaultMaxExitQueue
	}
	if c.MaxExitQueueBytes == 0 {
		c.MaxExitQueueBytes = DefaultMaxExitQueueBytes
	}
	if c.MaxExitQueuePerPeer == 0 {
		c.MaxExitQueuePerPeer = max(c.MaxExitQueue/2, 1)
	}
	if c.MaxExitQueueBytesPerPeer == 0 {
		c.MaxExitQueueBytesPerPeer = max(c.MaxExitQueueBytes/2, wire.MaxPacketLen)
	}
	if c.ExitWorkers == 0 {
		c.ExitWorkers = runtime.GOMAXPROCS(0)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.DataDir == "":
		return errors.New("gateway: Config.DataDir is required")
	case c.MessageTTL < 0:
		return fmt.Errorf("gateway: Config.MessageTTL %s is negative", c.MessageTTL)
	case c.PageSize < 0 || c.PageSize > MaxPageSize:
		return fmt.Errorf("gateway: Config.PageSize %d is out of range 1..%d", c.PageSize, MaxPageSize)
	case c.MaxPendingPerClient < 0:
		return fmt.Errorf("gateway: Config.MaxPendingPerClient %d is negative", c.MaxPendingPerClient)
	case c.MaxStored < 0 || c.MaxStoredPerClient < 0:
		return fmt.Errorf("gateway: Config.MaxStored %d or MaxStoredPerClient %d is negative", c.MaxStored, c.MaxStoredPerClient)
	case c.MaxExitQueue < 0:
		return fmt.Errorf("gateway: Config.MaxExitQueue %d is negative", c.MaxExitQueue)
	case c.MaxExitQueuePerPeer < 0 || c.MaxExitQueuePerPeer > c.MaxExitQueue:
		return fmt.Errorf("gateway: Config.MaxExitQueuePerPeer %d is not between 1 and MaxExitQueue (%d)", c.MaxExitQueuePerPeer, c.MaxExitQueue)
	case c.MaxExitQueueBytes < wire.MaxPacketLen:
		return fmt.Errorf("gateway: Config.MaxExitQueueBytes %d is less than the largest packet (%d bytes)", c.MaxExitQueueBytes, wire.MaxPacketLen)
	case c.MaxExitQueueBytesPerPeer < wire.MaxPacketLen || c.MaxExitQueueBytesPerPeer > c.MaxExitQueueBytes:
		return fmt.Errorf("gateway: Config.MaxExitQueueBytesPerPeer %d is not between the largest packet (%d bytes) and MaxExitQueueBytes (%d)",
			c.MaxExitQueueBytesPerPeer, wire.MaxPacketLen, c.MaxExitQueueBytes)
	case c.ExitWorkers < 0:
		return fmt.Errorf("gateway: Config.ExitWorkers %d is negative", c.ExitWorkers)
	case c.PurgeInterval < 0:
		return fmt.Errorf("gateway: Config.PurgeInterval %s is negative", c.PurgeInterval)
	case c.TopologyRefresh < 0:
		return fmt.Errorf("gateway: Config.TopologyRefresh %s is negative", c.TopologyRefresh)
	case c.HandshakeTimeout < 0:
		return fmt.Errorf("gateway: Config.HandshakeTimeout %s is negative", c.HandshakeTimeout)
	case c.MaxClients < 0:
		return fmt.Errorf("gateway: Config.MaxClients %d is negative", c.MaxClients)
	case c.ClientTTL < 0:
		return fmt.Errorf("gateway: Config.ClientTTL %s is negative", c.ClientTTL)
	case c.MaxHandshakes < 0:
		return fmt.Errorf("gateway: Config.MaxHandshakes %d is negative", c.MaxHandshakes)
	case c.ReplayCapacity < 0:
		return fmt.Errorf("gateway: Config.ReplayCapacity %d is negative", c.ReplayCapacity)
	case c.PeakRate < 0 || math.IsInf(c.PeakRate, 0) || math.IsNaN(c.PeakRate):
		return fmt.Errorf("gateway: Config.PeakRate %v is not a packet rate", c.PeakRate)
	case !(c.ReplayFalsePositiveRate >= 0 && c.ReplayFalsePositiveRate < 1):
		return fmt.Errorf("gateway: Config.ReplayFalsePositiveRate %v is not between 0 and 1", c.ReplayFalsePositiveRate)
	case c.ReplaySaveInterval > 0 && c.ReplaySaveInterval < replaystore.MinInterval:
		return fmt.Errorf("gateway: Config.ReplaySaveInterval %s is below %s", c.ReplaySaveInterval, replaystore.MinInterval)
	}
	if c.AnnounceAddr != "" {
		if _, err := parseAnnounceAddr(c.AnnounceAddr); err != nil {
			return err
		}
	}
	if c.ClientAnnounceURL != "" {
		if err := checkClientURL(c.ClientAnnounceURL); err != nil {
			return err
		}
	}
	if c.DirectoryURL != "" {
		if err := directory.CheckURLs(c.DirectoryURL); err != nil {
			return fmt.Errorf("gateway: Config.DirectoryURL: %w", err)
		}
	}
	if c.Trust != nil {
		if err := c.Trust.Validate(); err != nil {
			return fmt.Errorf("gateway: Config.Trust: %w", err)
		}
	}
	return nil
}

// parseAnnounceAddr parses an address others can reach: a literal IP that
// is neither unspecified nor multicast, and a port.
func parseAnnounceAddr(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("gateway: announce address %q is not a literal ip:port", s)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if !reachable(ap) {
		return netip.AddrPort{}, fmt.Errorf("gateway: announce address %q is not an address others can reach", s)
	}
	return ap, nil
}

// reachable reports whether ap can be announced: a specific IP and a port.
func reachable(ap netip.AddrPort) bool {
	a := ap.Addr()
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && a.Zone() == "" && ap.Port() != 0
}

// checkClientURL checks the form of a ws:// or wss:// URL; the directory
// checks the rest when the gateway registers.
func checkClientURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return fmt.Errorf("gateway: client announce URL %q is not a ws:// or wss:// URL", s)
	}
	return nil
}

// frameLimit is the read limit of a client's WebSocket, before and after
// the handshake.
const frameLimit = gwproto.MaxFrameSize
