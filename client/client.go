// Package client is the app side of the mixnet: it turns an app's messages
// into fixed-size Sphinx packets and back, reliably and anonymously.
//
// A Client holds long-lived keys in its data folder (an ed25519 identity, an
// X25519 encryption key and an ack key), so its Address never changes. It
// registers with a gateway once and authenticates on every reconnect,
// reconnecting by itself with backoff. Every message is split into fragments
// (Nym's 7- or 10-byte headers, sets of up to 255, chained beyond); each
// fragment travels in its own packet, end-to-end encrypted to the recipient
// and routed through one random mixnode of each of three layers to the
// recipient's gateway, with exponentially distributed per-hop delays. Every
// packet carries a SURB-ack; a fragment whose ack does not come back in time
// is sent again on a fresh route, and a message counts as delivered only when
// every fragment is acknowledged. A window bounds the fragments in flight.
//
// Anonymous messages carry reply SURBs and a per-recipient sender tag; the
// recipient replies through them without learning the sender's address, asks
// for more SURBs when it runs low, and reports a failure rather than stall
// when none are left. SURBs, reply keys and sender tags are kept in the data
// folder, so a restart loses none.
//
// With cover traffic on (the default), packets leave at the rate of a Poisson
// stream whether or not there is anything to send, and a second stream sends
// loop packets; cover packets are indistinguishable on the wire.
//
// Received messages come out of Receive in the order each sender sent them,
// but for one that comes after the client gave up waiting for it
// (Config.MaxGapWait): it is delivered late, out of order.
// The nymapi package serves a Client over Nym's native WebSocket API.
package client

import (
	"container/list"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client/internal/fragment"
	"github.com/peapod-mixnet/peapod/client/internal/ordering"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/keyfile"
)

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("client: closed")

// Client is a mixnet client. Its methods are safe for concurrent use.
type Client struct {
	cfg   Config
	log   zerolog.Logger
	keys  *keys
	state *state
	dir   *directory.Client
	link  *link
	stats counters

	view    atomic.Pointer[netView]
	viewMu  sync.Mutex // serialises topology fetches
	viewAt  time.Time  // when view was fetched; guarded by viewMu
	fetchAt time.Time  // when the last fetch was tried; guarded by viewMu
	// unroutable counts the fetches in a row whose topology could not
	// route and was not taken (see errUnroutable); guarded by viewMu.
	unroutable int
	// topoKick asks watchTopology for a fetch, and then to send again the
	// fragments whose first hop the new topology does not list.
	topoKick chan struct{}
	// staleKick is when (unix ns) suspectTopology last kicked.
	staleKick atomic.Int64
	health    health
	bindMu    sync.Mutex
	bind      *gatewayBinding
	addr      address.Address
	started   atomic.Bool

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	spawnMu sync.RWMutex // orders spawn against Close's Wait

	// Sending.
	queue   chan *pendingFragment // first sends, waiting for the window
	window  chan struct{}         // one token per fragment in flight
	jobs    chan *pendingFragment // to the packet builders
	mu      sync.Mutex            // guards what follows
	pending map[fragment.ID]*pendingFragment
	streams map[string]*outStream
	lanes   map[uint64]int

	// Replies, both sides (guarded by mu).
	tags       map[address.Address]address.SenderTag
	tagTargets map[address.SenderTag]address.Address
	replyKeys  *replyKeyring
	pools      map[address.SenderTag]*surbPool
	poolLRU    list.List // of *surbPool, least recently used first
	// replyCost is what reply fragments cost in SURBs, to size requests
	// for more.
	replyCost replyCost
	surbsHeld int // in all pools
	seen      seenSURBs
	// answered is when each recipient's last request for SURBs was
	// answered: the copies of one request are answered once.
	answered map[address.SenderTag]time.Time

	// Receiving (guarded by recvMu).
	recvMu sync.Mutex
	reasm  *fragment.Reassembler
	// partialAdd are fragments of incomplete messages, and partialDone
	// the sets of messages completed since, to record in state.db before
	// the next confirmation to the gateway (see persistPartials).
	partialAdd  []fragment.Fragment
	partialDone []int32
	// partialPruned is when expire last pruned the fragments on disk
	// (used by the maintenance loop only).
	partialPruned time.Time
	order         *ordering.Buffer[*inboxItem]
	orderDirty    bool
	orderSaved    map[[streamIDSize]byte]uint64 // what state.db holds
	inbox         chan *inboxItem
	inboxBytes    int           // data of the items held by order or in inbox
	inboxRoom     chan struct{} // closed and replaced when inboxBytes goes down
	inboxFull     atomic.Bool   // deliver waits for inboxRoom
	// The ordering buffer's clock (see orderClockLocked): orderPaused is
	// the time it stopped (zero: running); orderLag the total of the stops
	// before.
	orderPaused time.Time
	orderLag    time.Duration
	inboxKey    uint64 // the last key given to an inbox item
	releaseSeq  uint64 // the last release order given
}

// counters are the client's statistics.
type counters struct {
	packetsSent, coverSent, retransmits, acks, received, undecryptable, badMessages atomic.Uint64
	delivered, duplicates, poolsEvicted, surbRequests                               atomic.Uint64
}

// Stats is a snapshot of the client's counters.
type Stats struct {
	PacketsSent   uint64 // real and cover packets handed to the gateway
	CoverSent     uint64
	Retransmits   uint64
	Acks          uint64 // acks that matched a fragment in flight
	Received      uint64 // data packets delivered by the gateway
	Undecryptable uint64
	BadMessages   uint64
	Delivered     uint64 // messages handed to the app
	InFlight      int    // fragments sent and not yet acknowledged
	Queued        int    // fragments waiting for the window
	SURBsHeld     int    // reply SURBs held, from every anonymous sender
	SURBSenders   int    // anonymous senders whose SURBs are held
	// SURBSendersEvicted counts the senders whose SURBs were dropped to
	// keep within SURBs.MaxSenders and SURBs.MaxHeld.
	SURBSendersEvicted uint64
	// SURBRequests counts the requests for more SURBs this client sent to
	// anonymous senders (each attempt once, however many copies it took).
	SURBRequests uint64
	// InboxBytes is the data of the messages received and not yet taken
	// (bounded by Config.InboxBytes); IncompleteBytes what is held for
	// messages not complete yet (bounded by Config.MaxIncompleteBytes).
	InboxBytes      int
	IncompleteBytes int
	// InboxFull is true while the client reads nothing from its gateway
	// because the messages not yet taken hold Config.InboxBytes.
	InboxFull bool
	// OrderHeld is how many complete messages wait for an earlier one from
	// their sender; OrderSkipped counts the sequence numbers given up on
	// after Config.MaxGapWait (their messages, if they come, are delivered
	// late, out of order). The gap wait stands still while InboxFull and
	// the app has messages to take.
	OrderHeld    int
	OrderSkipped uint64
	// IncompleteDropped counts incomplete messages dropped to keep within
	// MaxIncompleteBytes, or after ten minutes without a new fragment;
	// TooLong those dropped because their fragments made them longer than
	// MaxMessageSize allows.
	IncompleteDropped uint64
	TooLong           uint64
	Reconnects        uint64
	Connected         bool
	// TopologyRefused counts the topology documents refused (with
	// Config.Trust set), by reason: see directory.RefusedReasons.
	TopologyRefused map[string]uint64
}

// New loads or creates the client's keys and state in cfg.DataDir. Call Start
// to connect.
func New(cfg Config) (*Client, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	k, err := loadKeys(cfg.DataDir, cfg.Rand)
	if err != nil {
		return nil, err
	}
	st, err := openState(filepath.Join(cfg.DataDir, stateFile))
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:        cfg,
		log:        cfg.Logger.With().Str("component", "client").Logger(),
		keys:       k,
		state:      st,
		dir:        &directory.Client{BaseURL: cfg.DirectoryURL, Trust: cfg.Trust},
		queue:      make(chan *pendingFragment, cfg.MaxQueuedPackets),
		window:     make(chan struct{}, cfg.Window),
		jobs:       make(chan *pendingFragment, cfg.Window),
		pending:    map[fragment.ID]*pendingFragment{},
		streams:    map[string]*outStream{},
		lanes:      map[uint64]int{},
		tagTargets: map[address.SenderTag]address.Address{},
		pools:      map[address.SenderTag]*surbPool{},
		reasm: fragment.NewReassembler(fragment.Config{
			MaxPendingBytes: cfg.MaxIncompleteBytes,
			MaxMessageLen:   cfg.MaxMessageSize + maxFraming,
		}),
		inboxRoom: make(chan struct{}),
		seen:      seenSURBs{capacity: seenSURBsPerHeld * cfg.SURBs.MaxHeld},
		order:     ordering.New[*inboxItem](ordering.Config{MaxGapWait: cfg.MaxGapWait}),
		topoKick:  make(chan struct{}, 1),
	}
	c.link = newLink(c)
	if err := c.loadState(); err != nil {
		st.close()
		return nil, err
	}
	if b, err := loadBinding(cfg.DataDir); err == nil {
		c.bind = b
	} else if !errors.Is(err, keyfile.ErrNotFound) {
		st.close()
		return nil, err
	}
	return c, nil
}

func (c *Client) loadState() error {
	var err error
	if c.tags, err = c.state.loadTags(); err != nil {
		return fmt.Errorf("client: loading sender tags: %w", err)
	}
	for a, t := range c.tags {
		c.tagTargets[t] = a
	}
	keys, err := c.state.loadReplyKeys()
	if err != nil {
		return fmt.Errorf("client: loading reply keys: %w", err)
	}
	c.replyKeys = newReplyKeyring(c.cfg.SURBs.replyKeysPerTag())
	if old := c.replyKeys.load(keys); len(old) > 0 {
		if err := c.state.deleteReplyKeys(old); err != nil {
			return fmt.Errorf("client: deleting reply keys beyond the bound: %w", err)
		}
	}
	if err := c.loadSURBs(); err != nil {
		return err
	}
	partials, err := c.state.loadPartials()
	if err != nil {
		return fmt.Errorf("client: loading the fragments of incomplete messages: %w", err)
	}
	for _, f := range partials {
		// Recorded only while their message was incomplete: they cannot
		// complete one by themselves; the rest comes from the gateway.
		c.reasm.Add(time.Now(), f)
	}
	order, err := c.state.loadOrder()
	if err != nil {
		return fmt.Errorf("client: loading the delivery order: %w", err)
	}
	items, err := c.state.loadInbox()
	if err != nil {
		return fmt.Errorf("client: loading the inbox: %w", err)
	}
	// Messages already released to the app were past their stream's
	// position even if the saved positions lag behind them (a crash between
	// the two writes): move the positions on, so nothing is delivered twice.
	saved := make(map[[streamIDSize]byte]uint64, len(order))
	for id, next := range order {
		saved[id] = next
	}
	var released, held []*inboxItem
	for _, it := range items {
		c.inboxBytes += len(it.msg.Data)
		c.inboxKey = max(c.inboxKey, it.key)
		c.releaseSeq = max(c.releaseSeq, it.released)
		if it.released != 0 {
			released = append(released, it)
			if it.pos.seq+1 > order[it.pos.stream] {
				order[it.pos.stream] = it.pos.seq + 1
			}
		} else {
			held = append(held, it)
		}
	}
	c.order.Restore(order)
	c.orderSaved = saved
	c.orderDirty = len(released) > 0
	c.inbox = make(chan *inboxItem, max(c.cfg.InboxSize, len(items)))
	for _, it := range released {
		c.inbox <- it
	}
	// Held messages wait for their gap again.
	now := c.orderNowLocked(time.Now())
	for _, it := range held {
		for _, r := range c.order.Push(now, it.pos.stream, it.pos.seq, it) {
			c.releaseSeq++
			r.released = c.releaseSeq
			if err := c.state.saveInbox(nil, []*inboxItem{r}); err != nil {
				return fmt.Errorf("client: %w", err)
			}
			c.inbox <- r
		}
	}
	return nil
}

// Start reads the topology, picks a gateway on first start, and connects. It
// returns once the client is connected and registered, or when ctx ends (the
// client keeps trying in the background until Close).
func (c *Client) Start(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("client: already started")
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.firstTopology(ctx); err != nil {
		c.cancel()
		return err
	}
	if err := c.chooseGateway(); err != nil {
		c.cancel()
		return err
	}
	c.log = c.log.With().Str("address", c.addr.String()).Logger()

	c.spawn(func() { c.link.run(c.ctx) })
	c.spawn(func() { c.link.confirmLoop(c.ctx, c.cfg.ConfirmInterval) })
	if !c.cfg.Cover.Disabled {
		c.spawn(func() { c.link.coverLoop(c.ctx) })
	}
	for range c.cfg.Workers {
		c.spawn(c.buildLoop)
	}
	c.spawn(c.dispatchLoop)
	c.spawn(c.maintenanceLoop)
	c.spawn(c.watchTopology)

	select {
	case <-c.link.connected:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("client: connecting to the gateway: %w", ctx.Err())
	}
}

// spawn runs f on a goroutine that Close waits for. Once the client is
// closing, f does not run.
func (c *Client) spawn(f func()) {
	c.spawnMu.RLock()
	defer c.spawnMu.RUnlock()
	if c.ctx.Err() != nil {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

func (c *Client) chooseGateway() error {
	c.bindMu.Lock()
	defer c.bindMu.Unlock()
	v := c.view.Load()
	if c.cfg.Gateway != "" {
		id, err := address.DecodeKey(c.cfg.Gateway, ed25519.PublicKeySize)
		if err != nil {
			return fmt.Errorf("client: Config.Gateway: %w", err)
		}
		if c.bind == nil || string(c.bind.identity) != string(id) {
			if c.bind != nil {
				c.log.Warn().Str("gateway", c.cfg.Gateway).Msg("moving to another gateway: the client's address changes")
			}
			c.bind = &gatewayBinding{identity: id}
		}
	}
	if c.bind == nil {
		if len(v.gateways) == 0 {
			return errors.New("client: the topology lists no gateway")
		}
		ids := make([]string, 0, len(v.gateways))
		for id := range v.gateways {
			ids = append(ids, id)
		}
		c.bind = &gatewayBinding{identity: ed25519.PublicKey(ids[rand.IntN(len(ids))])}
	}
	c.addr = address.Address{}
	copy(c.addr.Identity[:], c.keys.identityPublic())
	c.addr.Encryption = c.keys.encPub
	copy(c.addr.Gateway[:], c.bind.identity)
	return nil
}

func (c *Client) binding() gatewayBinding {
	c.bindMu.Lock()
	defer c.bindMu.Unlock()
	return *c.bind
}

func (c *Client) setBinding(b *gatewayBinding) error {
	b.registered = true
	if err := saveBinding(c.cfg.DataDir, b); err != nil {
		return err
	}
	c.bindMu.Lock()
	c.bind = b
	c.bindMu.Unlock()
	return nil
}

// Address is the client's mixnet address. It is valid after Start.
func (c *Client) Address() address.Address { return c.addr }

// Signer signs with the client's identity key, the key whose public half is
// the identity part of its Address: what the client signs is attributable
// to the address alone (a provider signs its descriptor with it).
func (c *Client) Signer() crypto.Signer { return c.keys.identity }

// Connected reports whether the client is connected to its gateway now.
func (c *Client) Connected() bool { return c.link.session.Load() != nil }

// Stats returns a snapshot of the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	inFlight := len(c.pending)
	surbs, senders := c.surbsHeld, len(c.pools)
	c.mu.Unlock()
	c.recvMu.Lock()
	inboxBytes, reasm, order := c.inboxBytes, c.reasm.Stats(), c.order.Stats()
	c.recvMu.Unlock()
	return Stats{
		PacketsSent:        c.stats.packetsSent.Load(),
		CoverSent:          c.stats.coverSent.Load(),
		Retransmits:        c.stats.retransmits.Load(),
		Acks:               c.stats.acks.Load(),
		Received:           c.stats.received.Load(),
		Undecryptable:      c.stats.undecryptable.Load(),
		BadMessages:        c.stats.badMessages.Load(),
		Delivered:          c.stats.delivered.Load(),
		InFlight:           inFlight - len(c.queue),
		Queued:             len(c.queue),
		SURBsHeld:          surbs,
		SURBSenders:        senders,
		SURBSendersEvicted: c.stats.poolsEvicted.Load(),
		SURBRequests:       c.stats.surbRequests.Load(),
		InboxBytes:         inboxBytes,
		IncompleteBytes:    reasm.PendingBytes,
		InboxFull:          c.inboxFull.Load(),
		OrderHeld:          order.Held,
		OrderSkipped:       order.Skipped,
		IncompleteDropped:  reasm.DroppedForMemory + reasm.Expired,
		TooLong:            reasm.TooLong,
		Reconnects:         uint64(c.link.reconnect.Load()),
		Connected:          c.Connected(),
		TopologyRefused:    c.dir.Refused(),
	}
}

// Close stops the client: its goroutines end, messages not yet delivered fail
// with ErrClosed, and its state is saved.
func (c *Client) Close() error {
	if c.started.Load() && c.cancel != nil {
		// Confirm what has been received while the gateway link is still up,
		// so that the gateway does not hand it over again after a restart.
		c.link.flushConfirms()
		c.spawnMu.Lock()
		c.cancel()
		c.spawnMu.Unlock()
		c.wg.Wait()
		c.failAll(ErrClosed)
		c.persistOrder()
	}
	return c.state.close()
}

// surbTick is how often the SURB pools are checked (SURBs expiring,
// requests to ask again): often enough for networks whose epochs last a second.
// The other clean-ups run every expireEvery ticks.
const (
	surbTick    = 250 * time.Millisecond
	expireEvery = 4
)

// maintenanceLoop checks the SURB pools, and expires reply keys, partial
// messages and ordering gaps.
func (c *Client) maintenanceLoop() {
	tick := time.NewTicker(surbTick)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-c.ctx.Done():
			return
		case now := <-tick.C:
			c.expireSURBs(now)
			c.checkSURBRequests(now)
			if n%expireEvery == 0 {
				c.expire(now)
			}
		}
	}
}

// meanDelays returns the mean per-hop delays of packets and acks.
func (c *Client) meanDelays(v *netView) (mix, ack time.Duration) {
	if c.cfg.NoDelay {
		return 0, 0
	}
	mix = c.cfg.MixDelay
	if mix == 0 {
		mix = DefaultMixDelay
		if v.meanDelay != nil {
			mix = *v.meanDelay
		}
	}
	ack = c.cfg.AckDelay
	if ack == 0 {
		ack = mix
	}
	return mix, ack
}
