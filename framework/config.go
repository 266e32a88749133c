package framework

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/framework/descriptor"
	"github.com/peapod-mixnet/peapod/handlers"
	"github.com/peapod-mixnet/peapod/plugins"
)

// Defaults for the zero fields of a Config.
const (
	DefaultHTTPAddr           = "127.0.0.1:8080"
	DefaultMaxConcurrent      = 32
	DefaultQueueSize          = 256
	DefaultRequestTimeout     = 10 * time.Second
	DefaultMaxRequestSize     = 256 << 10
	DefaultMaxReplySize       = plugins.DefaultMaxReplySize
	DefaultReplyTimeout       = 30 * time.Second
	DefaultIdempotenceWindow  = 10 * time.Minute
	DefaultIdempotenceEntries = 10_000
	DefaultIdempotenceBytes   = 64 << 20
	// DefaultIdempotenceEntriesPerRequester and
	// DefaultIdempotenceBytesPerRequester are a tenth of the totals: ten
	// busy requesters share the memory before any pushes another out.
	DefaultIdempotenceEntriesPerRequester = DefaultIdempotenceEntries / 10
	DefaultIdempotenceBytesPerRequester   = DefaultIdempotenceBytes / 10
	DefaultDescriptorTTL                  = 24 * time.Hour
	DefaultDrainTimeout                   = 10 * time.Second
)

// Config configures a Host. Zero values take the defaults above; negative
// numbers are an error.
//
// The transport is chosen by exactly one of Transport, NymClientURL and
// DirectoryURL.
type Config struct {
	// DataDir holds the provider's state: its identity key (provider.pem),
	// the secret its requester ids are derived with (requester.pem), the
	// embedded client's folder (client/) and the plugins' data folders
	// (plugins/NAME/). It is created (0700) when missing. Required.
	DataDir string

	// DirectoryURL selects the embedded peapod client (ClientTransport),
	// joining the network whose directory is at this URL (or whose
	// directory authorities are at these URLs, separated by commas); its
	// state lives in DataDir/client, so the provider's address survives
	// restarts.
	DirectoryURL string
	// Client tunes the embedded client (mix delays, cover traffic, SURB
	// policy, logger). Its DataDir and DirectoryURL are set by the Host.
	// Its Trust, the network's directory authorities, is published in the
	// descriptor's network section.
	Client client.Config
	// NymClientURL selects an external Nym native client (NymTransport)
	// at this WebSocket URL, such as "ws://127.0.0.1:1977".
	NymClientURL string
	// Nym tunes the Nym client transport. Its URL is set by the Host.
	Nym NymTransportConfig
	// Transport, if not nil, is used as it is; the Host starts and closes
	// it. For tests and for embedding peapod in another program.
	Transport Transport
	// Network says which network Transport is on, as the descriptor
	// publishes it. Required with Transport, ignored otherwise.
	Network descriptor.Network

	// Plugins says which plugins to run.
	Plugins PluginsConfig
	// Services are in-process services, served besides the plugins'. A
	// plugin service of the same name is shadowed by the in-process one.
	Services []Service

	// HTTP configures the HTTP endpoint.
	HTTP HTTPConfig
	// Limits bound the work the Host accepts.
	Limits Limits
	// Idempotence configures the memory of replies that makes a repeated
	// request get the first reply again.
	Idempotence IdempotenceConfig

	// DescriptorTTL is how long a signed descriptor is valid; the Host signs
	// a fresh one when half of it has passed. At most
	// descriptor.MaxLifetime.
	DescriptorTTL time.Duration
	// DrainTimeout bounds how long Close waits for requests in flight.
	DrainTimeout time.Duration

	// Logger receives the host's logs; the zero value discards them.
	Logger zerolog.Logger
	// Now is the clock; nil means time.Now. For tests.
	Now func() time.Time
}

// PluginsConfig says which plugins a Host runs; see plugins.SupervisorConfig.
type PluginsConfig struct {
	// Dir is the plugins folder: every executable file in it is a plugin.
	// Empty means none.
	Dir string
	// Paths are further plugin executables.
	Paths []string
	// MinBackoff and MaxBackoff bound the delay before a crashed plugin is
	// restarted; zero takes the plugins package's defaults.
	MinBackoff, MaxBackoff time.Duration
	// StartTimeout bounds a plugin's start; zero takes the default.
	StartTimeout time.Duration
}

// Service is an in-process service.
type Service struct {
	handlers.ServiceInfo
	Handler handlers.Handler
}

// HTTPConfig configures the HTTP endpoint.
type HTTPConfig struct {
	// Addr is the address to listen on, host:port. Default
	// DefaultHTTPAddr; port 0 picks a free port (see Host.HTTPAddr).
	Addr string
	// Disabled turns the endpoint off; Host.Handler still serves it.
	Disabled bool
}

// Limits bound the work a Host accepts. Requests beyond them are refused
// with an error reply rather than queued without bound.
type Limits struct {
	// MaxConcurrent is how many requests run at once. Default
	// DefaultMaxConcurrent.
	MaxConcurrent int
	// QueueSize is how many accepted requests may wait for a free slot.
	// Each requester (sender tag) has its own lane of the queue, and free
	// slots take a request from each lane in turn. When the queue is full,
	// a request is answered "overloaded" at once, unless its requester has
	// fewer requests queued than the one with the most (or as many, and was
	// seen earlier): then that one's newest request is answered
	// "overloaded" instead, and this one queued. Default DefaultQueueSize.
	QueueSize int
	// RequestTimeout bounds each request's handling; past it the requester
	// gets "timeout". Default DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxRequestSize is the longest request message, in bytes (the whole
	// JSON envelope); a longer one is answered "too_large". Default
	// DefaultMaxRequestSize.
	MaxRequestSize int
	// MaxReplySize is the longest reply payload, in bytes (before base64);
	// a handler that returns more is answered "too_large". Default
	// DefaultMaxReplySize.
	MaxReplySize int
	// ReplyTimeout bounds how long the Host waits for the transport to
	// accept one reply. Default DefaultReplyTimeout.
	ReplyTimeout time.Duration
}

// IdempotenceConfig configures the memory of replies. A request whose
// sender tag and id match one seen within Window is not run again: it gets
// the first reply (or waits for it, if the first is still running). The
// memory is bounded in all and per requester (sender tag): a requester
// past its own quota forgets its own oldest replies; when the whole memory
// is full, the requester holding the most replies loses its oldest (among
// equals, the one first seen last), so a flood, from one tag or many new
// ones, does not push out the replies of the requesters seen before it. A
// reply larger than MaxBytesPerRequester is not kept at all.
type IdempotenceConfig struct {
	// Window is how long a reply is remembered. Default
	// DefaultIdempotenceWindow.
	Window time.Duration
	// MaxEntries bounds the replies remembered. Default
	// DefaultIdempotenceEntries.
	MaxEntries int
	// MaxBytes bounds the bytes of the replies remembered. Default
	// DefaultIdempotenceBytes.
	MaxBytes int
	// MaxEntriesPerRequester and MaxBytesPerRequester bound the replies
	// remembered for one sender tag; at most MaxEntries and MaxBytes.
	// Defaults DefaultIdempotenceEntriesPerRequester and
	// DefaultIdempotenceBytesPerRequester (or the totals, if smaller).
	MaxEntriesPerRequester int
	MaxBytesPerRequester   int
}

// applyDefaults checks c and fills in its defaults.
func (c *Config) applyDefaults() error {
	if c.DataDir == "" {
		return errors.New("framework: Config.DataDir is required")
	}
	chosen := 0
	for _, set := range []bool{c.Transport != nil, c.NymClientURL != "", c.DirectoryURL != ""} {
		if set {
			chosen++
		}
	}
	if chosen != 1 {
		return errors.New("framework: set exactly one of Config.Transport, Config.NymClientURL and Config.DirectoryURL")
	}
	if c.Transport != nil {
		switch c.Network.Type {
		case descriptor.NetworkPeapod:
			if err := checkURL(c.Network.Directory, "http", "https"); err != nil {
				return fmt.Errorf("framework: Config.Network.Directory: %w", err)
			}
		case descriptor.NetworkNym:
		default:
			return fmt.Errorf("framework: Config.Network.Type %q: want %q or %q", c.Network.Type, descriptor.NetworkPeapod, descriptor.NetworkNym)
		}
	}
	if c.NymClientURL != "" {
		if err := checkURL(c.NymClientURL, "ws", "wss"); err != nil {
			return fmt.Errorf("framework: Config.NymClientURL: %w", err)
		}
	}
	if c.DirectoryURL != "" {
		if err := directory.CheckURLs(c.DirectoryURL); err != nil {
			return fmt.Errorf("framework: Config.DirectoryURL: %w", err)
		}
	}
	if c.HTTP.Addr == "" {
		c.HTTP.Addr = DefaultHTTPAddr
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Limits.RequestTimeout", &c.Limits.RequestTimeout, DefaultRequestTimeout},
		{"Limits.ReplyTimeout", &c.Limits.ReplyTimeout, DefaultReplyTimeout},
		{"Idempotence.Window", &c.Idempotence.Window, DefaultIdempotenceWindow},
		{"DescriptorTTL", &c.DescriptorTTL, DefaultDescriptorTTL},
		{"DrainTimeout", &c.DrainTimeout, DefaultDrainTimeout},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return fmt.Errorf("framework: Config.%s %v is negative", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"Limits.MaxConcurrent", &c.Limits.MaxConcurrent, DefaultMaxConcurrent},
		{"Limits.QueueSize", &c.Limits.QueueSize, DefaultQueueSize},
		{"Limits.MaxRequestSize", &c.Limits.MaxRequestSize, DefaultMaxRequestSize},
		{"Limits.MaxReplySize", &c.Limits.MaxReplySize, DefaultMaxReplySize},
		{"Idempotence.MaxEntries", &c.Idempotence.MaxEntries, DefaultIdempotenceEntries},
		{"Idempotence.MaxBytes", &c.Idempotence.MaxBytes, DefaultIdempotenceBytes},
		// After the totals, which their defaults depend on.
		{"Idempotence.MaxEntriesPerRequester", &c.Idempotence.MaxEntriesPerRequester, -1},
		{"Idempotence.MaxBytesPerRequester", &c.Idempotence.MaxBytesPerRequester, -1},
	}
	for _, n := range ints {
		if *n.v < 0 {
			return fmt.Errorf("framework: Config.%s %d is negative", n.name, *n.v)
		}
		if *n.v == 0 {
			*n.v = n.def
		}
	}
	id := &c.Idempotence
	if id.MaxEntriesPerRequester < 0 {
		id.MaxEntriesPerRequester = min(DefaultIdempotenceEntriesPerRequester, id.MaxEntries)
	}
	if id.MaxBytesPerRequester < 0 {
		id.MaxBytesPerRequester = min(DefaultIdempotenceBytesPerRequester, id.MaxBytes)
	}
	if id.MaxEntriesPerRequester > id.MaxEntries || id.MaxBytesPerRequester > id.MaxBytes {
		return fmt.Errorf("framework: Config.Idempotence per requester (%d entries, %d bytes) exceeds the totals (%d entries, %d bytes)",
			id.MaxEntriesPerRequester, id.MaxBytesPerRequester, id.MaxEntries, id.MaxBytes)
	}
	if c.DescriptorTTL > maxDescriptorTTL {
		return fmt.Errorf("framework: Config.DescriptorTTL %v is longer than %v", c.DescriptorTTL, maxDescriptorTTL)
	}
	if c.DescriptorTTL < minDescriptorTTL {
		return fmt.Errorf("framework: Config.DescriptorTTL %v is shorter than %v", c.DescriptorTTL, minDescriptorTTL)
	}
	for i, s := range c.Services {
		if !handlers.ValidServiceName(s.Name) {
			return fmt.Errorf("framework: Config.Services[%d]: invalid service name %q", i, s.Name)
		}
		if s.Handler == nil {
			return fmt.Errorf("framework: Config.Services[%d] (%s) has no handler", i, s.Name)
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Bounds of Config.DescriptorTTL.
const (
	minDescriptorTTL = time.Minute
	maxDescriptorTTL = 31 * 24 * time.Hour // descriptor.MaxLifetime
)

func checkURL(s string, schemes ...string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	for _, scheme := range schemes {
		if u.Scheme == scheme && u.Host != "" {
			return nil
		}
	}
	return fmt.Errorf("%q is not a %s URL", s, schemes[0])
}
