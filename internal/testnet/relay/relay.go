// Package relay is a fault-injecting TCP relay for the links between mixnet
// nodes. It sits in front of a node's packet listener: the node announces
// the relay's address in the directory (mixnet mixnode --announce), so every
// other node sends to the relay, which forwards to the node's real listener
// frame by frame (the framing of package wire) and on the way drops, delays,
// duplicates or reorders frames, or cuts the link altogether.
//
// Faults apply per frame and can be changed while traffic flows
// ([Relay.SetFaults]); [Relay.Cut] closes every connection and refuses new
// ones until [Relay.Restore]. A tap ([Relay.SetTap]) sees a copy of every
// frame read, which lets a test capture a packet and replay it.
//
// Node links are Noise links (package wire). A relay given the keys
// (Config.Noise, which a test harness that made every node's keys can give)
// takes part in them: it answers the sender's handshake with the target's
// key and makes its own to the target with the sender's, so that faults and
// taps act on frames as before. Without keys it relays plain frames. Two
// hooks act on the bytes on the wire instead, for tests of what an on-path
// attacker sees and can do: [Relay.SetRawTap] sees every byte read from
// senders as it came (ciphertext on a Noise link), and [Relay.SetRawTamper]
// may change or add to every write to the target.
//
// Each accepted connection gets its own connection to the target, dialled
// when it is accepted (a target that cannot be reached closes the accepted
// connection at once, as a dead node would), and two goroutines: one reads
// frames and decides their fate, the other writes them out when their delay
// has passed, in the order they were read unless a frame was picked for
// reordering. Bytes the target sends back are copied through unchanged (the
// nodes send none). A frame whose header the wire package refuses ends the
// connection, as the node itself would have done.
package relay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/internal/wire"
)

// Defaults of a [Config].
const (
	// DefaultDialTimeout bounds the connection to the target.
	DefaultDialTimeout = 2 * time.Second
	// DefaultReorderHold bounds how long a frame picked for reordering
	// waits for a later frame to overtake it; then it goes out anyway.
	DefaultReorderHold = 50 * time.Millisecond
	// DefaultQueueLen bounds the frames read and not yet written on one
	// connection; a full queue stops the reader, so TCP pushes back.
	DefaultQueueLen = 1024
)

// Faults say what happens to the frames that pass. The zero value passes
// every frame at once and unchanged.
type Faults struct {
	// DropRate is the probability, from 0 to 1, that a frame is dropped.
	DropRate float64
	// Delay holds every frame this long before it is written; Jitter adds
	// a uniform random extra of up to Jitter. Frames still leave in the
	// order they came, so a frame never overtakes an earlier one because
	// of its delay; reordering is ReorderRate's job.
	Delay, Jitter time.Duration
	// DuplicateRate is the probability that a frame is written twice.
	DuplicateRate float64
	// ReorderRate is the probability that a frame is held back and written
	// after the next frame of its connection (or after the Config's
	// ReorderHold, when no next frame comes).
	ReorderRate float64
}

// Validate reports a rate outside [0, 1] or a negative duration.
func (f Faults) Validate() error {
	for _, r := range []struct {
		name string
		v    float64
	}{{"DropRate", f.DropRate}, {"DuplicateRate", f.DuplicateRate}, {"ReorderRate", f.ReorderRate}} {
		if !(r.v >= 0 && r.v <= 1) {
			return fmt.Errorf("relay: Faults.%s %v is not between 0 and 1", r.name, r.v)
		}
	}
	if f.Delay < 0 || f.Jitter < 0 {
		return fmt.Errorf("relay: Faults.Delay %v and Jitter %v must not be negative", f.Delay, f.Jitter)
	}
	return nil
}

// Config configures a [Relay]. Zero values take the documented defaults.
type Config struct {
	// Listen is the ip:port the relay accepts connections on, for
	// example "127.0.0.1:0" for a free port. Required.
	Listen string
	// Target is the ip:port of the node's real listener. Required.
	Target string
	// Faults are the faults in force at the start.
	Faults Faults
	// Seed seeds the relay's random choices; zero draws a random seed.
	// With a seed, the choices of each connection are reproducible given
	// the order in which connections are accepted.
	Seed uint64
	// DialTimeout bounds each connection to the target. Default
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// ReorderHold is the longest a frame picked for reordering waits.
	// Default DefaultReorderHold.
	ReorderHold time.Duration
	// QueueLen bounds the frames waiting to be written on one connection.
	// Default DefaultQueueLen.
	QueueLen int
	// Noise, when set, makes the relay a party to the Noise links it
	// carries (see the package comment). Without it the relay reads plain
	// frames.
	Noise *NoiseKeys
	// Logger receives one line per connection event; the zero value
	// discards them.
	Logger zerolog.Logger
}

// NoiseKeys are the keys a relay needs to take part in Noise links.
type NoiseKeys struct {
	// Target is the key of the node behind the relay.
	Target wire.StaticKey
	// Lookup returns the key whose public half is pub (a sender's), or nil
	// when it knows none: the relay then refuses the connection.
	Lookup func(pub [wire.NoiseKeySize]byte) wire.StaticKey
}

// handshakeTimeout bounds each of a Noise relay's handshakes.
const handshakeTimeout = 5 * time.Second

// Stats are a relay's counters since it was made.
type Stats struct {
	// Read counts frames read from senders; Written counts frames written
	// to the target, duplicates included.
	Read, Written uint64
	// Dropped, Duplicated and Reordered count the frames each fault hit.
	Dropped, Duplicated, Reordered uint64
	// Accepted counts connections accepted and relayed; Refused those
	// closed at once because the relay was cut or the target could not be
	// reached; Cuts counts calls of Cut.
	Accepted, Refused, Cuts uint64
	// BadFrames counts connections ended by a frame the wire package
	// refuses.
	BadFrames uint64
	// HandshakeFailures counts Noise connections refused because a
	// handshake, with the sender or with the target, failed, or the sender's
	// key was unknown.
	HandshakeFailures uint64
	// Open is the number of connections being relayed now.
	Open int
}

// Relay forwards frames from the connections it accepts to its target,
// applying its faults. Its methods are safe for concurrent use.
type Relay struct {
	cfg Config
	ln  net.Listener
	log zerolog.Logger

	mu     sync.Mutex // guards the fields below
	faults Faults
	tap    func(wire.Header, []byte)
	rawTap func([]byte)
	tamper func([]byte) []byte
	cut    bool
	closed bool
	conns  map[*link]struct{}
	rng    *rand.Rand // seeds each link's generator

	wg sync.WaitGroup // the accept loop and every link's goroutines

	read, written, dropped, duplicated, reordered atomic.Uint64
	accepted, refused, cuts, badFrames            atomic.Uint64
	handshakeFailures                             atomic.Uint64
}

// New listens on cfg.Listen and starts relaying to cfg.Target.
func New(cfg Config) (*Relay, error) {
	if cfg.Listen == "" || cfg.Target == "" {
		return nil, errors.New("relay: Config.Listen and Config.Target are required")
	}
	if err := cfg.Faults.Validate(); err != nil {
		return nil, err
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.ReorderHold == 0 {
		cfg.ReorderHold = DefaultReorderHold
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.DialTimeout < 0 || cfg.ReorderHold < 0 || cfg.QueueLen < 0 {
		return nil, errors.New("relay: negative DialTimeout, ReorderHold or QueueLen")
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	r := &Relay{
		cfg:    cfg,
		ln:     ln,
		log:    cfg.Logger.With().Str("relay", ln.Addr().String()).Str("target", cfg.Target).Logger(),
		faults: cfg.Faults,
		conns:  make(map[*link]struct{}),
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	r.wg.Add(1)
	go r.acceptLoop()
	return r, nil
}

// Addr is the address the relay listens on: the one its node announces.
func (r *Relay) Addr() netip.AddrPort {
	return r.ln.Addr().(*net.TCPAddr).AddrPort()
}

// Target is the address the relay forwards to.
func (r *Relay) Target() string { return r.cfg.Target }

// SetFaults replaces the faults; frames read from now on get the new ones.
func (r *Relay) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	r.mu.Lock()
	r.faults = f
	r.mu.Unlock()
	return nil
}

// Faults returns the faults in force.
func (r *Relay) Faults() Faults {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.faults
}

// SetTap makes tap see every frame read from now on, before faults apply;
// nil removes it. tap runs on the reading goroutine of the frame's
// connection and must not keep packet, which is reused after it returns.
func (r *Relay) SetTap(tap func(h wire.Header, packet []byte)) {
	r.mu.Lock()
	r.tap = tap
	r.mu.Unlock()
}

// SetRawTap makes tap see every byte read from senders from now on, as it
// came over the wire (a Noise link's handshake and ciphertext); nil removes
// it. tap runs on the reading goroutine and must not keep b.
func (r *Relay) SetRawTap(tap func(b []byte)) {
	r.mu.Lock()
	r.rawTap = tap
	r.mu.Unlock()
}

// SetRawTamper makes every write to a target from now on (after the
// handshake, on a Noise link: ciphertext) go through tamper, which returns
// the bytes to write instead: changed, with bytes added, or the same; nil
// removes it. tamper runs on the writing goroutine.
func (r *Relay) SetRawTamper(tamper func(b []byte) []byte) {
	r.mu.Lock()
	r.tamper = tamper
	r.mu.Unlock()
}

func (r *Relay) rawHooks() (func([]byte), func([]byte) []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rawTap, r.tamper
}

// Cut closes every connection being relayed, dropping the frames they
// held, and refuses new connections (accepts and closes them at once) until
// Restore.
func (r *Relay) Cut() {
	r.mu.Lock()
	r.cut = true
	links := make([]*link, 0, len(r.conns))
	for l := range r.conns {
		links = append(links, l)
	}
	r.mu.Unlock()
	r.cuts.Add(1)
	for _, l := range links {
		l.close()
	}
	r.log.Debug().Int("connections", len(links)).Msg("link cut")
}

// Restore ends a Cut: new connections are relayed again.
func (r *Relay) Restore() {
	r.mu.Lock()
	r.cut = false
	r.mu.Unlock()
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	open := len(r.conns)
	r.mu.Unlock()
	return Stats{
		Read: r.read.Load(), Written: r.written.Load(),
		Dropped: r.dropped.Load(), Duplicated: r.duplicated.Load(), Reordered: r.reordered.Load(),
		Accepted: r.accepted.Load(), Refused: r.refused.Load(), Cuts: r.cuts.Load(),
		BadFrames: r.badFrames.Load(), HandshakeFailures: r.handshakeFailures.Load(), Open: open,
	}
}

// Close stops listening, closes every connection and returns when every
// goroutine of the relay has ended. It is safe to call more than once.
func (r *Relay) Close() error {
	r.mu.Lock()
	already := r.closed
	r.closed = true
	links := make([]*link, 0, len(r.conns))
	for l := range r.conns {
		links = append(links, l)
	}
	r.mu.Unlock()
	var err error
	if !already {
		err = r.ln.Close()
	}
	for _, l := range links {
		l.close()
	}
	r.wg.Wait()
	return err
}

func (r *Relay) acceptLoop() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			r.mu.Lock()
			closed := r.closed
			r.mu.Unlock()
			if !closed {
				r.log.Error().Err(err).Msg("accept failed; relay stopped")
			}
			return
		}
		r.mu.Lock()
		refuse := r.cut || r.closed
		r.mu.Unlock()
		if refuse {
			r.refuse(c)
			continue
		}
		r.wg.Add(1)
		go r.serve(c)
	}
}

// refuse closes c at once with a reset, as a node that is gone would.
func (r *Relay) refuse(c net.Conn) {
	r.refused.Add(1)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// serve dials the target for c and relays between them.
func (r *Relay) serve(in net.Conn) {
	defer r.wg.Done()
	in = &tapConn{Conn: in, r: r}
	out, err := net.DialTimeout("tcp", r.cfg.Target, r.cfg.DialTimeout)
	if err != nil {
		r.log.Debug().Err(err).Msg("target unreachable; refusing the connection")
		r.refuse(in)
		return
	}
	tc := &tamperConn{Conn: out, r: r}
	out = tc
	var rd io.Reader = in
	var wr io.Writer = out
	if r.cfg.Noise != nil {
		if rd, wr, err = r.noiseHandshakes(in, out); err != nil {
			r.handshakeFailures.Add(1)
			r.log.Debug().Err(err).Msg("refusing a connection: Noise handshake")
			out.Close()
			r.refuse(in)
			return
		}
	}
	tc.armed = true
	r.mu.Lock()
	if r.cut || r.closed {
		r.mu.Unlock()
		out.Close()
		r.refuse(in)
		return
	}
	l := &link{
		r:     r,
		in:    in,
		out:   out,
		rd:    rd,
		wr:    wr,
		queue: make(chan item, r.cfg.QueueLen),
		done:  make(chan struct{}),
		rng:   rand.New(rand.NewPCG(r.rng.Uint64(), r.rng.Uint64())),
	}
	r.conns[l] = struct{}{}
	r.mu.Unlock()
	r.accepted.Add(1)

	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); l.readLoop() }()
	go func() { defer wg.Done(); l.writeLoop() }()
	go func() {
		defer wg.Done()
		io.Copy(io.Discard, out) // the target sends nothing; this notices it closing
		l.close()
	}()
	wg.Wait()

	r.mu.Lock()
	delete(r.conns, l)
	r.mu.Unlock()
}

// noiseHandshakes answers the sender's handshake on in as the target, and
// makes one on out with the sender's key, and returns the frame streams.
func (r *Relay) noiseHandshakes(in, out net.Conn) (io.Reader, io.Writer, error) {
	deadline := time.Now().Add(handshakeTimeout)
	nin, err := wire.Respond(in, r.cfg.Noise.Target, deadline)
	if err != nil {
		return nil, nil, fmt.Errorf("relay: with the sender: %w", err)
	}
	sender := r.cfg.Noise.Lookup(nin.PeerKey())
	if sender == nil {
		return nil, nil, errors.New("relay: the sender's key is no node's")
	}
	nout, err := wire.Initiate(out, sender, r.cfg.Noise.Target.Public(), deadline)
	if err != nil {
		return nil, nil, fmt.Errorf("relay: with the target: %w", err)
	}
	return nin, nout, nil
}

// tapConn hands every byte read to the relay's raw tap.
type tapConn struct {
	net.Conn
	r *Relay
}

func (c *tapConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if tap, _ := c.r.rawHooks(); tap != nil && n > 0 {
		tap(b[:n])
	}
	return n, err
}

// tamperConn passes every write through the relay's raw tamper, once
// armed (after the handshake). Only the link's writer writes to it.
type tamperConn struct {
	net.Conn
	r     *Relay
	armed bool
}

func (c *tamperConn) Write(b []byte) (int, error) {
	if _, tamper := c.r.rawHooks(); tamper != nil && c.armed {
		if _, err := c.Conn.Write(tamper(bytes.Clone(b))); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// faultsAndTap returns the faults in force and the tap.
func (r *Relay) faultsAndTap() (Faults, func(wire.Header, []byte)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.faults, r.tap
}

// item is a frame on its way out.
type item struct {
	frame   []byte
	at      time.Time // when it may be written
	copies  int       // 1, or 2 for a duplicate
	reorder bool      // hold it until the next frame has gone out
}

// link relays one accepted connection.
type link struct {
	r     *Relay
	in    net.Conn  // from the sender
	out   net.Conn  // to the target
	rd    io.Reader // in's frames: in itself, or its Noise stream
	wr    io.Writer // out's frames: out itself, or its Noise stream
	queue chan item
	rng   *rand.Rand // used by the reading goroutine only

	closeOnce sync.Once
	done      chan struct{}
}

// close ends the link: both connections are closed and both loops end.
func (l *link) close() {
	l.closeOnce.Do(func() {
		close(l.done)
		l.in.Close()
		l.out.Close()
	})
}

// readLoop reads frames from the sender and queues those that survive.
func (l *link) readLoop() {
	defer l.close()
	br := bufio.NewReaderSize(l.rd, 64<<10)
	buf := make([]byte, wire.MaxPacketLen)
	for {
		h, packet, err := wire.ReadFrame(br, buf)
		if err != nil {
			var he *wire.HeaderError
			if errors.As(err, &he) {
				l.r.badFrames.Add(1)
				l.r.log.Debug().Err(err).Msg("bad frame; closing the connection")
			}
			return
		}
		l.r.read.Add(1)
		f, tap := l.r.faultsAndTap()
		if tap != nil {
			tap(h, packet)
		}
		if f.DropRate > 0 && l.rng.Float64() < f.DropRate {
			l.r.dropped.Add(1)
			continue
		}
		it := item{frame: wire.AppendFrame(make([]byte, 0, wire.HeaderSize+len(packet)), h, packet), copies: 1}
		delay := f.Delay
		if f.Jitter > 0 {
			delay += time.Duration(l.rng.Int64N(int64(f.Jitter)))
		}
		it.at = time.Now().Add(delay)
		if f.DuplicateRate > 0 && l.rng.Float64() < f.DuplicateRate {
			it.copies = 2
		}
		if f.ReorderRate > 0 && l.rng.Float64() < f.ReorderRate {
			it.reorder = true
		}
		select {
		case l.queue <- it:
		case <-l.done:
			return
		}
	}
}

// writeLoop writes queued frames to the target once their time has come.
func (l *link) writeLoop() {
	defer l.close()
	bw := bufio.NewWriterSize(l.wr, 64<<10)
	var (
		held     *item // a frame waiting to be overtaken
		holdTime *time.Timer
	)
	holdC := func() <-chan time.Time {
		if holdTime == nil {
			return nil
		}
		return holdTime.C
	}
	write := func(it item) bool {
		if d := time.Until(it.at); d > 0 {
			// Flush what waits before sleeping, so that delayed frames
			// do not also hold back earlier ones.
			if bw.Flush() != nil {
				return false
			}
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return false
			}
		}
		for range it.copies {
			if _, err := bw.Write(it.frame); err != nil {
				return false
			}
			l.r.written.Add(1)
		}
		if it.copies > 1 {
			l.r.duplicated.Add(1)
		}
		return true
	}
	flushIfIdle := func() bool {
		if len(l.queue) == 0 {
			return bw.Flush() == nil
		}
		return true
	}
	for {
		select {
		case <-l.done:
			return
		case it := <-l.queue:
			switch {
			case held != nil:
				// it overtakes the held frame.
				holdTime.Stop()
				h := *held
				held, holdTime = nil, nil
				if !write(it) || !write(h) {
					return
				}
				l.r.reordered.Add(1)
			case it.reorder:
				held = &it
				holdTime = time.NewTimer(time.Until(it.at) + l.r.cfg.ReorderHold)
				continue // nothing new to flush
			default:
				if !write(it) {
					return
				}
			}
			if !flushIfIdle() {
				return
			}
		case <-holdC():
			h := *held
			held, holdTime = nil, nil
			if !write(h) || !flushIfIdle() {
				return
			}
		}
	}
}
