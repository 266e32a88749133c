package client

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/directory"
)

// Defaults of a zero Config.
const (
	DefaultMixDelay         = 15 * time.Millisecond
	DefaultCoverMainGap     = 20 * time.Millisecond
	DefaultCoverLoopGap     = 200 * time.Millisecond
	DefaultWindow           = 512
	DefaultMaxQueuedPackets = 1 << 16
	DefaultInboxSize        = 4096
	DefaultRetransmitBase   = 1500 * time.Millisecond
	DefaultTopologyRefresh  = 5 * time.Minute
	DefaultReplyKeyTTL      = 24 * time.Hour
	DefaultMaxGapWait       = 30 * time.Second
	DefaultConfirmInterval  = 5 * time.Millisecond
	DefaultSURBRequestWait  = 20 * time.Second
)

// Bounds on what a client takes from the mixnet, where anyone who knows its
// address can send it anything.
const (
	// DefaultMaxMessageSize is the largest message data sent or received:
	// 16 MiB, the largest request frame of the WebSocket API
	// (nymapi.DefaultMaxFrameSize).
	DefaultMaxMessageSize = 16 << 20
	// DefaultMaxIncompleteBytes bounds the memory held for messages whose
	// fragments have not all arrived: four of the largest messages.
	DefaultMaxIncompleteBytes = 64 << 20
	// DefaultInboxBytes bounds the data of the messages received and not
	// yet taken by Receive.
	DefaultInboxBytes = 128 << 20
)

// Nym's reply SURB policy (reference §4).
const (
	DefaultMinSURBs       = 10  // ask for more below this
	DefaultMaxSURBs       = 200 // keep at most this many per sender
	DefaultSURBRequest    = 20  // how many to ask for at a time (Nym: 10 to 50)
	DefaultMaxSURBRequest = 500 // the most an anonymous sender sends on one request
)

// Bounds on what a replier keeps for its anonymous senders, whose sender
// tags cost them nothing.
const (
	// DefaultMaxSURBSenders is how many senders' SURB pools a replier keeps.
	DefaultMaxSURBSenders = 4096
	// DefaultMaxSURBsHeld is how many SURBs a replier keeps from all its
	// senders: about 30 MB in memory and as much on disk.
	DefaultMaxSURBsHeld = 20_000
)

// Config configures a Client. The zero value of every field but DataDir and
// DirectoryURL is usable: it gives Nym's defaults, with delays and cover
// traffic on.
type Config struct {
	// DataDir holds the client's keys and state. Required.
	DataDir string
	// DirectoryURL is the base URL of the network's directory. Required.
	DirectoryURL string
	// Trust, when set, makes the client accept a topology only as a document
	// signed by a threshold of the directory authorities it names (see
	// directory.Client.Trust); DirectoryURL then lists the authorities'
	// URLs, separated by commas. Nil takes the unsigned topology of
	// DirectoryURL: whoever answers there chooses the client's view.
	Trust *directory.Trust
	// Gateway is the base58 identity of the gateway to register with. Empty
	// keeps the gateway the client registered with before, or picks one at
	// random on first start. Naming another gateway than the one in DataDir
	// moves the client there, which changes its address.
	Gateway string

	// MixDelay is the mean per-hop delay (exponentially distributed) of
	// the packets this client sends; zero takes the network's advertised
	// value, or DefaultMixDelay. AckDelay is the same for acks, defaulting
	// to the mix delay. NoDelay turns delays off altogether (tests and
	// benchmarks only: it removes the mixing that hides timing).
	MixDelay time.Duration
	AckDelay time.Duration
	NoDelay  bool

	// Cover configures cover traffic.
	Cover CoverConfig

	// Window bounds the fragments sent and not yet acknowledged; more wait
	// in the send queue. Default DefaultWindow.
	Window int
	// MaxQueuedPackets bounds the send queue; Send blocks when it is full.
	MaxQueuedPackets int
	// InboxSize bounds the messages received and not yet taken by Receive;
	// when it is full the client stops reading from its gateway, which keeps
	// the rest. Default DefaultInboxSize.
	InboxSize int
	// InboxBytes bounds the same messages by the bytes of their data, those
	// that wait for an earlier message of their sender (MaxGapWait)
	// included: while they hold InboxBytes or more, the client reads nothing
	// from its gateway. The message that crosses the bound is kept, so the
	// most held is InboxBytes plus one message. Default DefaultInboxBytes.
	InboxBytes int
	// MaxMessageSize bounds the data of a message, both ways: Send,
	// SendAnonymous and Reply refuse a larger one, and a message from the
	// mixnet is dropped as soon as its fragments name more fragments than
	// a message of that size takes (however few of them arrived), or when
	// its data is larger. Its sender's gateway has acknowledged the
	// fragments, so a sender with a larger bound than its recipient loses
	// such messages. Default DefaultMaxMessageSize.
	MaxMessageSize int
	// MaxIncompleteBytes bounds the memory held for messages whose
	// fragments have not all arrived (fragments, and a fixed estimate of
	// the bookkeeping per set of up to 255). When a fragment takes it past
	// the bound, the messages that have gone longest without a new
	// fragment are dropped, and are lost: their fragments were
	// acknowledged. At least twice MaxMessageSize. Default
	// DefaultMaxIncompleteBytes.
	MaxIncompleteBytes int
	// RetransmitBase is the constant term of the retransmission timeout:
	// (sum of the packet's delays + sum of its ack's delays) × 1.5 +
	// RetransmitBase. Default 1.5 s, Nym's.
	RetransmitBase time.Duration
	// TopologyRefresh is how often the directory is read again.
	TopologyRefresh time.Duration
	// MaxGapWait is how long a message waits for an earlier one from the
	// same sender before the gap is skipped. A skipped message that arrives
	// later is still delivered, out of order, if it is among the last 256
	// its stream skipped and the client has not restarted since; otherwise
	// it is taken for a duplicate and dropped. The wait stands still while
	// the app takes nothing and InboxBytes are held (the client reads
	// nothing from its gateway then, where the missing message may wait).
	// Default DefaultMaxGapWait.
	MaxGapWait time.Duration
	// ConfirmInterval is how often received messages are confirmed to the
	// gateway (and the client's state committed first).
	ConfirmInterval time.Duration

	// SURBs configures the reply SURB policy.
	SURBs SURBConfig

	// Workers is how many goroutines build packets. Default GOMAXPROCS.
	Workers int
	// Logger receives the client's logs; the zero value discards them.
	Logger zerolog.Logger
	// Rand is the source of randomness. Default crypto/rand.Reader.
	Rand io.Reader
}

// CoverConfig configures Loopix-style cover traffic. With both streams on, an
// observer of the client's link sees packets at a steady Poisson rate whether
// or not the client has anything to say.
type CoverConfig struct {
	// Disabled turns both streams off: real packets go out as soon as they
	// are built. For benchmarks and tests.
	Disabled bool
	// MainGap is the mean gap of the main Poisson stream, which sends a real
	// packet when one is queued and a cover packet otherwise. Default 20 ms.
	MainGap time.Duration
	// LoopGap is the mean gap of the loop cover stream. Default 200 ms.
	LoopGap time.Duration
}

// SURBConfig is the reply SURB policy, on both sides.
type SURBConfig struct {
	// Min is the count below which a replier asks the sender for more.
	Min int
	// Max is the most SURBs a replier keeps per sender (its newest).
	// As a sender, a client keeps the reply keys of its newest
	// Max + 2 × MaxRequest SURBs per recipient and forgets older ones, so
	// that a recipient asking for SURBs again and again cannot make it
	// hoard keys; a recipient that keeps more SURBs than that may find its
	// oldest ones no longer answered.
	Max int
	// Request is how many a replier asks for at a time.
	Request int
	// MaxRequest caps how many an anonymous sender sends on one request.
	MaxRequest int
	// RequestWait is how long a replier waits for SURBs it asked for (from
	// the request, or from the last part of the answer to come) before
	// asking again or, with none left, failing the replies that wait.
	RequestWait time.Duration
	// KeyTTL is how long a sender keeps the keys to open replies.
	KeyTTL time.Duration

	// MaxSenders bounds the anonymous senders a replier keeps SURBs for,
	// and MaxHeld the SURBs it keeps from all of them, in memory and in
	// its data folder (at most one message's SURBs more, for a moment).
	// Past either, the pools of the senders least recently heard from or
	// replied to are dropped whole: their SURBs deleted, their waiting
	// replies failed with ErrNoSURBs. Defaults DefaultMaxSURBSenders and
	// DefaultMaxSURBsHeld; MaxHeld is at least Max.
	MaxSenders int
	MaxHeld    int
	// Lifetime is how long a replier keeps a SURB it received before it
	// throws it away unused: a SURB older than its sender's KeyTTL can
	// no longer be opened. Default KeyTTL. Whatever Lifetime says, a SURB
	// is dropped sooner when the Sphinx keys it was made with expire (see
	// Client.SURBLifetime): on a network with the default schedule that is
	// at most 8 hours after it was made.
	Lifetime time.Duration
}

// replyKeysPerTag bounds the reply keys a sender keeps for one recipient:
// the SURBs the recipient keeps, and two of the largest batches it may ask
// for on their way.
func (s SURBConfig) replyKeysPerTag() int { return s.Max + 2*s.MaxRequest }

func (c *Config) applyDefaults() error {
	if c.DataDir == "" {
		return errors.New("client: Config.DataDir is required")
	}
	if err := directory.CheckURLs(c.DirectoryURL); err != nil {
		return fmt.Errorf("client: Config.DirectoryURL: %w", err)
	}
	if c.Trust != nil {
		if err := c.Trust.Validate(); err != nil {
			return fmt.Errorf("client: Config.Trust: %w", err)
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	def(&c.Cover.MainGap, DefaultCoverMainGap)
	def(&c.Cover.LoopGap, DefaultCoverLoopGap)
	def(&c.RetransmitBase, DefaultRetransmitBase)
	def(&c.TopologyRefresh, DefaultTopologyRefresh)
	def(&c.MaxGapWait, DefaultMaxGapWait)
	def(&c.ConfirmInterval, DefaultConfirmInterval)
	def(&c.SURBs.RequestWait, DefaultSURBRequestWait)
	def(&c.SURBs.KeyTTL, DefaultReplyKeyTTL)
	def(&c.SURBs.Lifetime, c.SURBs.KeyTTL)
	defInt(&c.Window, DefaultWindow)
	defInt(&c.MaxQueuedPackets, DefaultMaxQueuedPackets)
	defInt(&c.InboxSize, DefaultInboxSize)
	defInt(&c.InboxBytes, DefaultInboxBytes)
	defInt(&c.MaxMessageSize, DefaultMaxMessageSize)
	defInt(&c.MaxIncompleteBytes, max(DefaultMaxIncompleteBytes, 2*c.MaxMessageSize))
	defInt(&c.SURBs.Min, DefaultMinSURBs)
	defInt(&c.SURBs.Max, DefaultMaxSURBs)
	defInt(&c.SURBs.Request, DefaultSURBRequest)
	defInt(&c.SURBs.MaxRequest, DefaultMaxSURBRequest)
	defInt(&c.SURBs.MaxSenders, DefaultMaxSURBSenders)
	defInt(&c.SURBs.MaxHeld, max(DefaultMaxSURBsHeld, c.SURBs.Max))
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	for name, d := range map[string]time.Duration{
		"MixDelay": c.MixDelay, "AckDelay": c.AckDelay, "Cover.MainGap": c.Cover.MainGap,
		"Cover.LoopGap": c.Cover.LoopGap, "RetransmitBase": c.RetransmitBase,
		"TopologyRefresh": c.TopologyRefresh, "MaxGapWait": c.MaxGapWait,
		"ConfirmInterval": c.ConfirmInterval, "SURBs.RequestWait": c.SURBs.RequestWait,
		"SURBs.KeyTTL": c.SURBs.KeyTTL, "SURBs.Lifetime": c.SURBs.Lifetime,
	} {
		if d < 0 {
			return fmt.Errorf("client: Config.%s %v is negative", name, d)
		}
	}
	for name, n := range map[string]int{
		"Window": c.Window, "MaxQueuedPackets": c.MaxQueuedPackets, "InboxSize": c.InboxSize,
		"SURBs.Min": c.SURBs.Min, "SURBs.Max": c.SURBs.Max, "SURBs.Request": c.SURBs.Request,
		"SURBs.MaxRequest": c.SURBs.MaxRequest, "Workers": c.Workers,
		"SURBs.MaxSenders": c.SURBs.MaxSenders, "SURBs.MaxHeld": c.SURBs.MaxHeld,
		"InboxBytes": c.InboxBytes, "MaxMessageSize": c.MaxMessageSize, "MaxIncompleteBytes": c.MaxIncompleteBytes,
	} {
		if n < 0 {
			return fmt.Errorf("client: Config.%s %d is negative", name, n)
		}
	}
	if c.SURBs.Min >= c.SURBs.Max {
		return fmt.Errorf("client: Config.SURBs.Min %d must be below SURBs.Max %d", c.SURBs.Min, c.SURBs.Max)
	}
	if c.MaxMessageSize > maxMessageSize {
		return fmt.Errorf("client: Config.MaxMessageSize %d is above %d", c.MaxMessageSize, maxMessageSize)
	}
	if c.MaxIncompleteBytes < 2*c.MaxMessageSize {
		return fmt.Errorf("client: Config.MaxIncompleteBytes %d must be at least twice MaxMessageSize %d", c.MaxIncompleteBytes, c.MaxMessageSize)
	}
	if c.SURBs.MaxHeld < c.SURBs.Max {
		return fmt.Errorf("client: Config.SURBs.MaxHeld %d must be at least SURBs.Max %d", c.SURBs.MaxHeld, c.SURBs.Max)
	}
	return nil
}
