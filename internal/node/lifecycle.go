package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/directory"
)

// Lifecycle keeps a node's Sphinx keys in step with the network's
// schedule and the node registered with its directory: it takes the
// schedule from every topology the node fetches (Topology), updates the keys
// at every epoch boundary on its own clock, even while the directory cannot
// be reached, and registers the node again, at once, whenever the keys it
// announces change. Create it with [NewLifecycle], run it with
// [Lifecycle.Start] and stop it with [Lifecycle.Close].
type Lifecycle struct {
	cfg LifecycleConfig
	log zerolog.Logger

	kick chan struct{} // a new schedule: recompute the next boundary

	mu        sync.Mutex
	registrar *directory.Registrar // nil until the node has keys to announce
	regCancel context.CancelFunc
	regDone   chan struct{}
	regErr    error // the registrar's result, once regDone is closed
	starting  bool  // Start was called
	started   bool  // Start has started the epoch clock
	closed    bool

	cancel context.CancelFunc
	done   chan struct{}
}

// LifecycleConfig configures a [Lifecycle].
type LifecycleConfig struct {
	// Keys are the node's Sphinx keys. Required.
	Keys *SphinxKeys
	// Directory is where the node registers; nil registers nowhere.
	Directory *directory.Client
	// Descriptor is the node's descriptor; the Lifecycle fills in its
	// Sphinx keys. Required with Directory.
	Descriptor directory.Descriptor
	// Identity signs the registrations. Required with Directory.
	Identity ed25519.PrivateKey
	// Fetch fetches the topology (and hands it to Topology); while the
	// node knows no schedule, the Lifecycle calls it every few seconds
	// (backing off to scheduleRetryMax). Nil when the node fetches on its
	// own often enough.
	Fetch func(context.Context) error
	// Logger receives the lifecycle's logs.
	Logger zerolog.Logger
}

// NewLifecycle returns a Lifecycle for cfg. It does nothing until Start. A
// descriptor the directory could never accept (with keys filled in) is an
// error.
func NewLifecycle(cfg LifecycleConfig) (*Lifecycle, error) {
	if cfg.Keys == nil {
		return nil, errors.New("node: LifecycleConfig.Keys is nil")
	}
	if cfg.Directory != nil {
		if len(cfg.Identity) != ed25519.PrivateKeySize {
			return nil, errors.New("node: LifecycleConfig.Identity is required with a directory")
		}
		check := cfg.Descriptor
		check.SphinxKeys = []directory.SphinxKey{directory.NewSphinxKey(0, [directory.KeySize]byte{})}
		if err := check.Validate(); err != nil {
			return nil, fmt.Errorf("node: cannot register: %w", err)
		}
	}
	return &Lifecycle{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1), done: make(chan struct{})}, nil
}

// firstRegisterTimeout bounds the first registration Start waits for.
const firstRegisterTimeout = 5 * time.Second

// Start starts the epoch clock and, when the node has keys to announce, the
// registrar. With wait set, Start makes the first registration itself
// (bounded by ctx and a few seconds) before it returns, and logs a failure
// rather than return it: the registrar keeps trying. Start may be called
// once.
func (l *Lifecycle) Start(ctx context.Context, wait bool) error {
	l.mu.Lock()
	if l.starting || l.closed {
		l.mu.Unlock()
		return errors.New("node: Lifecycle started twice or after Close")
	}
	l.starting = true
	l.mu.Unlock()

	if _, err := l.cfg.Keys.Update(time.Now()); err != nil {
		l.log.Error().Err(err).Msg("updating the Sphinx keys")
	}
	if _, ok := l.cfg.Keys.Schedule(); !ok {
		l.log.Warn().Msg("the network's schedule is not known yet (no topology fetched): the node has no Sphinx key, and registers once it has")
	}
	if wait && l.cfg.Directory != nil {
		if keys := l.cfg.Keys.Announce(time.Now()); len(keys) > 0 {
			d := l.descriptor(keys)
			first, cancel := context.WithTimeout(ctx, firstRegisterTimeout)
			err := l.cfg.Directory.Register(first, d, l.cfg.Identity)
			cancel()
			if err != nil {
				l.log.Warn().Err(err).Msg("first registration with the directory failed; retrying in the background")
			}
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		cancel()
		return errors.New("node: Lifecycle closed while starting")
	}
	l.started, l.cancel = true, cancel
	l.mu.Unlock()
	// The registrar starts only now, after the first registration, so that
	// the two never race (a later request would be refused as a replay).
	l.announce()
	go l.run(runCtx)
	return nil
}

// descriptor is the configured descriptor with keys.
func (l *Lifecycle) descriptor(keys []directory.SphinxKey) directory.Descriptor {
	d := l.cfg.Descriptor
	d.SphinxKeys = keys
	return d
}

// Topology takes up the schedule of a topology the node fetched. Call it
// with every fetched topology; it never blocks for long.
func (l *Lifecycle) Topology(t *directory.Topology) {
	s, err := t.Epoch.Schedule()
	if err != nil {
		return // Client.Topology validated it; nothing to take
	}
	changed, err := l.cfg.Keys.SetSchedule(s, time.Now())
	if err != nil {
		l.log.Error().Err(err).Msg("taking up the network's schedule")
	}
	if changed {
		l.announce()
	}
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// boundaryMargin is how long after an epoch boundary the keys are updated,
// so that a timer firing a little early does not miss it.
const boundaryMargin = 5 * time.Millisecond

// Fetches of the topology while the schedule is unknown.
const (
	scheduleRetryMin = time.Second
	scheduleRetryMax = 10 * time.Second
)

// run updates the keys at every epoch boundary until ctx ends, and fetches
// the topology while the schedule is unknown.
func (l *Lifecycle) run(ctx context.Context) {
	defer close(l.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	retry := scheduleRetryMin
	for {
		timer.Stop()
		s, known := l.cfg.Keys.Schedule()
		switch {
		case known:
			// From the last Update's time, not the clock's: an Update (from
			// a fetched topology) for a time before a boundary may end after
			// it, and the boundary is still due.
			timer.Reset(time.Until(s.NextEpoch(l.cfg.Keys.UpdatedAt())) + boundaryMargin)
		case l.cfg.Fetch != nil:
			timer.Reset(retry)
		}
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
			continue
		case <-timer.C:
		}
		if !known {
			if err := l.cfg.Fetch(ctx); err != nil {
				retry = min(2*retry, scheduleRetryMax)
			}
			continue
		}
		changed, err := l.cfg.Keys.Update(time.Now())
		if err != nil {
			l.log.Error().Err(err).Msg("updating the Sphinx keys")
		}
		if changed {
			l.announce()
		}
	}
}

// announce registers the keys the node announces now: it starts the
// registrar the first time there are any, and updates it after. Before
// Start it does nothing: Start announces.
func (l *Lifecycle) announce() {
	if l.cfg.Directory == nil {
		return
	}
	keys := l.cfg.Keys.Announce(time.Now())
	if len(keys) == 0 {
		return
	}
	d := l.descriptor(keys)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || !l.started {
		return
	}
	if l.registrar != nil {
		if err := l.registrar.Update(d); err != nil {
			l.log.Error().Err(err).Msg("registering the new keys")
		}
		return
	}
	l.registrar = &directory.Registrar{Client: l.cfg.Directory, Descriptor: d, Key: l.cfg.Identity, Logger: l.log}
	ctx, cancel := context.WithCancel(context.Background())
	l.regCancel, l.regDone = cancel, make(chan struct{})
	r, done := l.registrar, l.regDone
	go func() {
		defer close(done)
		l.regErr = r.Run(ctx) // read by Close after done
	}()
}

// Close deregisters the node and stops the epoch clock; it returns once
// its goroutines have ended, with the deregistration's error. The keys
// stay open (close them once the node has stopped peeling packets).
func (l *Lifecycle) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	started, cancel, regCancel, regDone := l.started, l.cancel, l.regCancel, l.regDone
	l.mu.Unlock()
	if started {
		cancel()
		<-l.done
	}
	if regCancel != nil {
		regCancel()
		<-regDone
		return l.regErr
	}
	return nil
}

// Registered reports whether the node has started registering (it has
// keys to announce).
func (l *Lifecycle) Registered() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.registrar != nil
}
