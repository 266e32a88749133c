package wire

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/sphinx"
)

// Pool defaults.
const (
	DefaultQueueLen        = 1024
	DefaultMaxDestinations = 4096
	DefaultDialTimeout     = 5 * time.Second
	DefaultWriteTimeout    = 10 * time.Second
	DefaultMinBackoff      = 100 * time.Millisecond
	DefaultMaxBackoff      = 30 * time.Second
	DefaultPoolIdleTimeout = 5 * time.Minute
	DefaultDrainTimeout    = time.Second
	DefaultWriteBufferSize = 32 << 10
	DefaultMaxQueuedBytes  = 64 << 20
)

// maxBatch bounds the frames written between two flushes, so that one write
// deadline covers a bounded amount of work.
const maxBatch = 256

// shortLived is how long a connection must last for its loss to reset the
// reconnection backoff; a peer that accepts and drops connections at once is
// treated like one that refuses them.
const shortLived = time.Second

// PoolConfig configures a [Pool]. Zero values take the documented defaults.
type PoolConfig struct {
	// Noise, when set, secures every connection with Noise: the pool
	// sends only to destinations Noise.Peers names a key for, and only
	// once the destination has proved it holds that key. Without it the
	// pool sends plain frames: for tests and benchmarks on a trusted
	// network.
	Noise *NoiseConfig
	// QueueLen bounds the frames waiting for each destination; Send drops a
	// frame when its destination's queue is full. Default DefaultQueueLen.
	QueueLen int
	// MaxDestinations bounds the destinations with a queue at once; Send
	// drops a frame for a new destination beyond it. Default
	// DefaultMaxDestinations.
	MaxDestinations int
	// MaxQueuedBytes bounds the bytes of all frames queued or being written,
	// whatever their destinations; Send drops a frame beyond it (counted as
	// queue full). It keeps many slow or dead destinations from adding up to
	// QueueLen × MaxDestinations frames. Default DefaultMaxQueuedBytes.
	MaxQueuedBytes int
	// DialTimeout bounds each connection attempt. Default DefaultDialTimeout.
	DialTimeout time.Duration
	// WriteTimeout bounds each batch of writes; a peer that does not read
	// loses its connection. Default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before reconnecting after a
	// failed attempt: it starts at MinBackoff and doubles with every failure
	// in a row up to MaxBackoff, less up to half at random. Defaults
	// DefaultMinBackoff, DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// IdleTimeout ends a destination's connection and goroutine when it has
	// had nothing to send for this long. Default DefaultPoolIdleTimeout.
	IdleTimeout time.Duration
	// DrainTimeout bounds how long Close spends writing the frames still
	// queued. Default DefaultDrainTimeout.
	DrainTimeout time.Duration
	// WriteBufferSize is the size of each connection's write buffer.
	// Default DefaultWriteBufferSize.
	WriteBufferSize int
	// Logger receives one line per connection event (field peer); the zero
	// value discards them.
	Logger zerolog.Logger
	// OnDialFailure, when set, is called on the writer's goroutine after
	// each failed connection attempt, with the destination and the number
	// of failures in a row: a node uses it to look its next hops up again
	// at once (the destination may have moved; see [Pool.Redirect]). It
	// must not block.
	OnDialFailure func(to netip.AddrPort, failures int)
}

func (c *PoolConfig) applyDefaults() error {
	defaults := []struct {
		v *time.Duration
		d time.Duration
	}{
		{&c.DialTimeout, DefaultDialTimeout}, {&c.WriteTimeout, DefaultWriteTimeout},
		{&c.MinBackoff, DefaultMinBackoff}, {&c.MaxBackoff, DefaultMaxBackoff},
		{&c.IdleTimeout, DefaultPoolIdleTimeout}, {&c.DrainTimeout, DefaultDrainTimeout},
	}
	for _, d := range defaults {
		if *d.v == 0 {
			*d.v = d.d
		}
		if *d.v < 0 {
			return fmt.Errorf("wire: PoolConfig has a negative duration %s", *d.v)
		}
	}
	if c.QueueLen == 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.MaxDestinations == 0 {
		c.MaxDestinations = DefaultMaxDestinations
	}
	if c.WriteBufferSize == 0 {
		c.WriteBufferSize = DefaultWriteBufferSize
	}
	if c.MaxQueuedBytes == 0 {
		c.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	switch {
	case c.QueueLen < 0:
		return fmt.Errorf("wire: PoolConfig.QueueLen %d is negative", c.QueueLen)
	case c.MaxDestinations < 0:
		return fmt.Errorf("wire: PoolConfig.MaxDestinations %d is negative", c.MaxDestinations)
	case c.MaxQueuedBytes < 0:
		return fmt.Errorf("wire: PoolConfig.MaxQueuedBytes %d is negative", c.MaxQueuedBytes)
	case c.WriteBufferSize < 0:
		return fmt.Errorf("wire: PoolConfig.WriteBufferSize %d is negative", c.WriteBufferSize)
	case c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("wire: PoolConfig.MaxBackoff %s is below MinBackoff %s", c.MaxBackoff, c.MinBackoff)
	}
	if c.Noise != nil {
		n := *c.Noise // the caller's struct is left as it was
		if err := n.applyDefaults(); err != nil {
			return err
		}
		c.Noise = &n
	}
	return nil
}

// PoolStats are a Pool's counters since it was made.
type PoolStats struct {
	// Sent counts frames written to a connection and flushed to the kernel.
	// TCP gives no receipt: a frame flushed just before a connection breaks
	// counts as sent even if the peer never read it.
	Sent uint64
	// Dropped frames, by reason: the destination's queue, or the pool's
	// MaxQueuedBytes, was full (QueueFull); the connection broke while they were buffered, so some
	// may in fact have arrived (WriteError); the pool was closed before they
	// could be written (Closed); MaxDestinations destinations were already
	// queued (TooManyDestinations); Send's header or packet was invalid
	// (Invalid).
	DroppedQueueFull, DroppedWriteError, DroppedClosed, DroppedTooManyDestinations, DroppedInvalid uint64
	// Dials counts connection attempts; DialFailures the failed ones,
	// among them, with Noise, those to a destination with no key in
	// NoiseConfig.Peers (NoKey) and those whose handshake failed
	// (HandshakeFailures: the destination did not prove it holds the key
	// expected, or did not answer in time).
	Dials, DialFailures, NoKey, HandshakeFailures uint64
	// Redirected counts frames Redirect moved to another destination.
	Redirected uint64
	// Retried counts the waits between reconnection attempts that Retry
	// cut short.
	Retried uint64
	// Destinations is how many destinations have a writer now; Connected how
	// many of them have an open connection; Queued how many frames wait in
	// their queues. QueuedBytes counts the bytes held against
	// MaxQueuedBytes: frames queued, or taken by a writer and not yet
	// written.
	Destinations, Connected, Queued int
	QueuedBytes                     int64
}

// Pool sends frames to other nodes without blocking its callers. Per
// destination it keeps a bounded queue, drained by one goroutine that
// writes over a persistent TCP connection and reconnects, with exponential
// backoff, when the connection breaks. Create it with [NewPool]. Its methods
// are safe for concurrent use.
type Pool struct {
	cfg    PoolConfig
	log    zerolog.Logger
	ctx    context.Context // cancelled when Close gives up draining: aborts dials
	cancel context.CancelFunc

	mu      sync.RWMutex
	closed  bool
	closing chan struct{} // closed by Close: writers drain and stop
	// drainDeadline is when draining ends; set before closing is closed.
	drainDeadline time.Time
	dests         map[netip.AddrPort]*destination
	wg            sync.WaitGroup

	sent, dials, dialFailures, noKey, handshakeFailures                       atomic.Uint64
	droppedQueueFull, droppedWriteError, droppedClosed, droppedDests, invalid atomic.Uint64
	redirected, retried                                                       atomic.Uint64
	connected                                                                 atomic.Int64
	queuedBytes                                                               atomic.Int64 // frames accepted and not yet released
}

// destination is the queue and writer of one peer.
type destination struct {
	addr  netip.AddrPort
	queue chan *frameBuf
	log   zerolog.Logger
	// moved, set by Redirect, is where the writer hands the frame it
	// holds; wake cuts its backoff short. backingOff is set while the
	// writer waits to reconnect, and retry by Retry, to have it count its
	// failures from zero again. All guarded by Pool.mu.
	moved             netip.AddrPort
	wake              chan struct{}
	backingOff, retry bool
}

// NewPool returns a Pool. It dials nothing until the first Send.
func NewPool(cfg PoolConfig) (*Pool, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Pool{
		cfg:     cfg,
		log:     cfg.Logger,
		ctx:     ctx,
		cancel:  cancel,
		closing: make(chan struct{}),
		dests:   make(map[netip.AddrPort]*destination),
	}, nil
}

// Send queues the frame of packet with header h for to and returns at once.
// It copies packet, so the caller may reuse packet as soon as Send returns.
// It reports whether the frame was queued; a frame that was not is counted
// in the pool's stats by reason (h or packet invalid, queue full, too many
// destinations, pool closed). A queued frame may still be dropped later if
// its connection breaks or the pool is closed first.
func (p *Pool) Send(to netip.AddrPort, h Header, packet []byte) bool {
	if h.Validate() != nil || len(packet) != h.PacketLen() || !to.IsValid() {
		p.invalid.Add(1)
		return false
	}
	n := int64(HeaderSize + len(packet))
	if p.queuedBytes.Add(n) > int64(p.cfg.MaxQueuedBytes) {
		p.queuedBytes.Add(-n)
		p.droppedQueueFull.Add(1)
		return false
	}
	fb := getFrame(h.Size)
	fb.b = AppendFrame(fb.b[:0], h, packet)
	return p.enqueueFor(to, fb)
}

// enqueueFor queues fb, counted in queuedBytes already, for to, making
// its destination if it has none, and reports whether it did; a frame it
// does not queue is released and counted by reason.
func (p *Pool) enqueueFor(to netip.AddrPort, fb *frameBuf) bool {
	p.mu.RLock()
	if d := p.dests[to]; d != nil && !p.closed {
		ok := p.enqueue(d, fb)
		p.mu.RUnlock()
		return ok
	}
	p.mu.RUnlock()

	// First frame for this destination: take the write lock to add it.
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.enqueueLocked(to, fb)
}

// enqueueLocked is enqueueFor with p.mu held for writing.
func (p *Pool) enqueueLocked(to netip.AddrPort, fb *frameBuf) bool {
	if p.closed {
		p.droppedClosed.Add(1)
		p.release(fb)
		return false
	}
	d := p.dests[to]
	if d == nil {
		if len(p.dests) >= p.cfg.MaxDestinations {
			p.droppedDests.Add(1)
			p.release(fb)
			return false
		}
		d = &destination{
			addr:  to,
			queue: make(chan *frameBuf, p.cfg.QueueLen),
			log:   p.log.With().Stringer("peer", to).Logger(),
			wake:  make(chan struct{}, 1),
		}
		p.dests[to] = d
		p.wg.Add(1)
		go p.run(d)
	}
	return p.enqueue(d, fb)
}

// Redirect moves the frames queued for from to the queue of to, and has
// from's writer hand over the frame it holds for a connection too, at once
// rather than after its backoff: for a destination that moved (the node a
// frame was queued for is now listed at to). It moves only what is queued
// now; frames sent to from afterwards stay there. It returns how many
// frames it moved, the held one not counted.
func (p *Pool) Redirect(from, to netip.AddrPort) int {
	if from == to {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.dests[from]
	if d == nil || p.closed {
		return 0
	}
	moved := 0
drain:
	for {
		select {
		case fb := <-d.queue:
			if p.enqueueLocked(to, fb) {
				moved++
			}
		default:
			break drain
		}
	}
	p.redirected.Add(uint64(moved))
	d.moved = to
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return moved
}

// Retry has the writer of to, if it is waiting to reconnect after failed
// attempts, try again at once, and count its failures from zero, as after
// a first failure: for a destination known to be back (the topology lists
// it again, or lists it with a new key). It reports whether a writer was
// waiting. A destination that is still unreachable costs one more
// attempt, and its backoff grows again from MinBackoff; a caller should
// retry a destination only on news of it, never on a timer.
func (p *Pool) Retry(to netip.AddrPort) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.dests[to]
	if d == nil || p.closed || !d.backingOff {
		return false
	}
	d.retry = true
	select {
	case d.wake <- struct{}{}:
	default:
	}
	p.retried.Add(1)
	return true
}

// setBackingOff marks d as waiting to reconnect, or not, and returns
// whether Retry asked for a retry meanwhile (clearing the request).
func (p *Pool) setBackingOff(d *destination, on bool) (retry bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d.backingOff = on
	retry, d.retry = d.retry, false
	return retry
}

// takeMoved returns, once, where Redirect last moved d.
func (p *Pool) takeMoved(d *destination) (netip.AddrPort, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	to := d.moved
	d.moved = netip.AddrPort{}
	return to, to.IsValid()
}

// enqueue queues fb without blocking. The caller holds p.mu (either way),
// which keeps d's writer from retiring while it enqueues.
func (p *Pool) enqueue(d *destination, fb *frameBuf) bool {
	select {
	case d.queue <- fb:
		return true
	default:
		p.droppedQueueFull.Add(1)
		p.release(fb)
		return false
	}
}

// release returns a frame that Send accepted to the buffer pool, and its
// bytes to the MaxQueuedBytes budget.
func (p *Pool) release(fb *frameBuf) {
	p.queuedBytes.Add(-int64(len(fb.b)))
	putFrame(fb)
}

// Stats returns the pool's counters.
func (p *Pool) Stats() PoolStats {
	p.mu.RLock()
	dests, queued := len(p.dests), 0
	for _, d := range p.dests {
		queued += len(d.queue)
	}
	p.mu.RUnlock()
	return PoolStats{
		Sent:                       p.sent.Load(),
		DroppedQueueFull:           p.droppedQueueFull.Load(),
		DroppedWriteError:          p.droppedWriteError.Load(),
		DroppedClosed:              p.droppedClosed.Load(),
		DroppedTooManyDestinations: p.droppedDests.Load(),
		DroppedInvalid:             p.invalid.Load(),
		Dials:                      p.dials.Load(),
		DialFailures:               p.dialFailures.Load(),
		NoKey:                      p.noKey.Load(),
		HandshakeFailures:          p.handshakeFailures.Load(),
		Redirected:                 p.redirected.Load(),
		Retried:                    p.retried.Load(),
		Destinations:               dests,
		Connected:                  int(p.connected.Load()),
		Queued:                     queued,
		QueuedBytes:                p.queuedBytes.Load(),
	}
}

// Close stops accepting frames, gives every connected writer up to
// DrainTimeout to write what is queued, drops the rest (counted as closed),
// and returns when every goroutine of the pool has ended. It is safe to
// call more than once.
func (p *Pool) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.drainDeadline = time.Now().Add(p.cfg.DrainTimeout)
		close(p.closing)
	}
	p.mu.Unlock()
	giveUp := time.AfterFunc(p.cfg.DrainTimeout, p.cancel)
	p.wg.Wait()
	giveUp.Stop()
	p.cancel()
	return nil
}

// retire removes d when its queue is empty, and reports whether it did;
// Send then makes a new destination for the next frame to d.addr.
func (p *Pool) retire(d *destination) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(d.queue) > 0 {
		return false
	}
	delete(p.dests, d.addr)
	return true
}

// conn is a destination's open connection.
type conn struct {
	c       net.Conn // the TCP connection; w writes through Noise when the pool has it
	w       *bufio.Writer
	gone    chan struct{} // closed when the peer closes or resets
	started time.Time
}

// run is d's writer: it waits for frames, connects when it has one, writes
// them in batches, and reconnects after failures until the pool closes or d
// has been idle for IdleTimeout.
func (p *Pool) run(d *destination) {
	defer p.wg.Done()
	var (
		cn         *conn
		held       *frameBuf // the frame waiting for a connection
		failures   int       // failed dials and short-lived connections in a row
		lastActive = time.Now()
	)
	lost := func() {
		if time.Since(cn.started) < shortLived {
			failures++
		} else {
			failures = 0
		}
	}
	disconnect := func() {
		if cn != nil {
			cn.c.Close()
			<-cn.gone // the watcher has ended
			p.connected.Add(-1)
			cn = nil
		}
	}
	defer disconnect()
	idle := time.NewTimer(p.cfg.IdleTimeout)
	defer idle.Stop()

	for {
		if held == nil {
			var gone chan struct{}
			if cn != nil {
				gone = cn.gone
			}
			select {
			case held = <-d.queue:
				p.takeMoved(d) // a frame queued after a Redirect stays here
			case <-gone:
				lost()
				d.log.Debug().Msg("peer closed the connection")
				disconnect()
				continue
			case <-idle.C:
				if quiet := time.Since(lastActive); quiet < p.cfg.IdleTimeout {
					idle.Reset(p.cfg.IdleTimeout - quiet)
					continue
				}
				if p.retire(d) {
					d.log.Debug().Msg("closing an idle connection")
					return
				}
				idle.Reset(p.cfg.IdleTimeout)
				continue
			case <-p.closing:
				p.drain(d, cn, nil)
				return
			}
		}
		if cn != nil && closedChan(cn.gone) {
			// The peer went away while this writer waited: reconnect
			// rather than lose the frame in a dead socket.
			lost()
			disconnect()
		}
		if cn == nil {
			if failures > 0 {
				ok, retry := p.backoff(d, failures)
				if !ok {
					p.drain(d, nil, held)
					return
				}
				if retry {
					d.log.Info().Int("failures", failures).Msg("the peer is back: retrying at once")
					failures = 0
				}
			}
			if to, ok := p.takeMoved(d); ok {
				// Redirect moved the queue: the held frame follows it.
				if p.enqueueFor(to, held) {
					p.redirected.Add(1)
				}
				held, failures = nil, 0
				continue
			}
			var err error
			if cn, err = p.dial(p.ctx, d); err != nil {
				failures++
				if p.cfg.OnDialFailure != nil {
					p.cfg.OnDialFailure(d.addr, failures)
				}
				if closedChan(p.closing) {
					continue // the backoff above returns false
				}
				if failures == 1 {
					d.log.Warn().Err(err).Msg("cannot connect; retrying with backoff")
				} else {
					d.log.Debug().Err(err).Int("failures", failures).Msg("cannot connect")
				}
				continue
			}
			if failures > 0 {
				d.log.Info().Int("failures", failures).Msg("connected after failures")
			}
		}
		lastActive = time.Now()
		if err := p.writeBatch(d, cn, held, lastActive.Add(p.cfg.WriteTimeout)); err != nil {
			lost()
			d.log.Info().Err(err).Msg("connection failed; reconnecting")
			disconnect()
		}
		held = nil
	}
}

// backoff waits before reconnection attempt number failures+1, or until
// Redirect or Retry wakes d. It reports false if the pool closed
// meanwhile, and retry when Retry woke it.
func (p *Pool) backoff(d *destination, failures int) (ok, retry bool) {
	wait := p.cfg.MinBackoff
	for i := 1; i < failures && wait < p.cfg.MaxBackoff; i++ {
		wait *= 2
	}
	wait = min(wait, p.cfg.MaxBackoff)
	wait = wait/2 + rand.N(wait/2+1)
	t := time.NewTimer(wait)
	defer t.Stop()
	p.setBackingOff(d, true)
	select {
	case <-t.C:
		ok = true
	case <-d.wake:
		ok = true
	case <-p.closing:
	}
	return ok, p.setBackingOff(d, false)
}

// dial connects to d, runs the Noise handshake when the pool has Noise,
// and starts a watcher that notices when the peer goes away (a peer never
// sends on this connection after the handshake, so any read completing
// means it closed or reset it).
func (p *Pool) dial(ctx context.Context, d *destination) (*conn, error) {
	p.dials.Add(1)
	var key [NoiseKeySize]byte
	if p.cfg.Noise != nil {
		var ok bool
		if key, ok = p.cfg.Noise.Peers.PeerKey(d.addr); !ok {
			p.dialFailures.Add(1)
			p.noKey.Add(1)
			return nil, fmt.Errorf("wire: %v has no Noise key in the topology", d.addr)
		}
	}
	dialer := net.Dialer{Timeout: p.cfg.DialTimeout}
	c, err := dialer.DialContext(ctx, "tcp", d.addr.String())
	if err != nil {
		p.dialFailures.Add(1)
		return nil, err
	}
	var w net.Conn = c
	if p.cfg.Noise != nil {
		stop := context.AfterFunc(ctx, func() { c.Close() })
		nc, err := Initiate(c, p.cfg.Noise.Key, key, time.Now().Add(p.cfg.Noise.HandshakeTimeout))
		stop()
		if err != nil {
			c.Close()
			p.dialFailures.Add(1)
			p.handshakeFailures.Add(1)
			return nil, fmt.Errorf("wire: Noise handshake with %v: %w", d.addr, err)
		}
		w = nc
	}
	p.connected.Add(1)
	cn := &conn{c: c, w: bufio.NewWriterSize(w, p.cfg.WriteBufferSize), gone: make(chan struct{}), started: time.Now()}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(cn.gone)
		var b [64]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				return
			}
		}
	}()
	return cn, nil
}

// writeBatch writes first and whatever else is queued, up to maxBatch
// frames, then flushes, all before deadline. On failure it counts the batch
// as dropped.
func (p *Pool) writeBatch(d *destination, cn *conn, first *frameBuf, deadline time.Time) error {
	pending := 0
	err := cn.c.SetWriteDeadline(deadline)
	for fb := first; fb != nil && err == nil; {
		_, err = cn.w.Write(fb.b)
		p.release(fb)
		pending++
		fb = nil
		if pending < maxBatch {
			select {
			case fb = <-d.queue:
			default:
			}
		}
	}
	if err == nil {
		err = cn.w.Flush()
	}
	if err != nil {
		p.droppedWriteError.Add(uint64(pending))
		return err
	}
	p.sent.Add(uint64(pending))
	return nil
}

// drain runs once the pool is closing: it writes held and what d has
// queued, connecting first if cn is nil, until the drain deadline, and
// drops the rest. It closes any connection it opens.
func (p *Pool) drain(d *destination, cn *conn, held *frameBuf) {
	deadline := p.drainDeadline
	if held == nil {
		select {
		case held = <-d.queue:
		default:
			return // nothing to send
		}
	}
	if cn == nil {
		ctx, cancel := context.WithDeadline(p.ctx, deadline)
		var err error
		cn, err = p.dial(ctx, d)
		cancel()
		if err != nil {
			d.log.Debug().Err(err).Msg("cannot connect to drain the queue")
		} else {
			defer func() {
				cn.c.Close()
				<-cn.gone
				p.connected.Add(-1)
			}()
		}
	}
	for cn != nil && held != nil && time.Now().Before(deadline) {
		err := p.writeBatch(d, cn, held, deadline) // consumes held
		held = nil
		if err != nil {
			break
		}
		select {
		case held = <-d.queue:
		default:
		}
	}
	if held != nil {
		p.droppedClosed.Add(1)
		p.release(held)
	}
	for {
		select {
		case fb := <-d.queue:
			p.droppedClosed.Add(1)
			p.release(fb)
		default:
			return
		}
	}
}

// closedChan reports whether c is closed, without blocking.
func closedChan(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// frameBuf is a pooled buffer holding one encoded frame.
type frameBuf struct{ b []byte }

// framePools holds frame buffers by size tag, each with room for a frame of
// that size, so that Send allocates nothing in steady state.
var framePools [sphinx.Extended16Packet + 1]sync.Pool

func getFrame(size sphinx.PacketSize) *frameBuf {
	if fb, ok := framePools[size].Get().(*frameBuf); ok {
		return fb
	}
	return &frameBuf{b: make([]byte, 0, HeaderSize+size.Len())}
}

func putFrame(fb *frameBuf) {
	size, ok := sphinx.SizeOf(cap(fb.b) - HeaderSize)
	if !ok {
		return
	}
	fb.b = fb.b[:0]
	framePools[size].Put(fb)
}
