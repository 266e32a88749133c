package directory

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Registrar defaults.
const (
	// DefaultRegisterInterval is a third of DefaultTTL, so that two
	// refreshes in a row can fail before the node drops out of the topology.
	DefaultRegisterInterval = DefaultTTL / 3
	// DefaultRetryBackoff is the first wait after a failed registration.
	DefaultRetryBackoff = time.Second
	// deregisterTimeout bounds the deregistration made on the way out.
	deregisterTimeout = 5 * time.Second
)

// Registrar keeps a node listed in the directory: it registers the node,
// re-registers it every Interval, retries with exponential backoff after a
// failure, and deregisters it when its context ends. Mixnodes and gateways
// run one for as long as they serve, and call Update when their descriptor
// changes (a new Sphinx key), which registers the new one at once.
type Registrar struct {
	// Client reaches the directory. Required.
	Client *Client
	// Descriptor describes the node; its timestamp is set on every request.
	Descriptor Descriptor
	// Key is the private key of Descriptor.Identity. Required.
	Key ed25519.PrivateKey
	// Interval is the time between registrations; keep it well below the
	// server's TTL. Default DefaultRegisterInterval.
	Interval time.Duration
	// RetryBackoff is the first wait after a failure; it doubles with every
	// failure in a row, up to Interval. Default DefaultRetryBackoff.
	RetryBackoff time.Duration
	// Logger receives one line per change of state and one per failure;
	// the zero value discards them.
	Logger zerolog.Logger

	mu     sync.Mutex
	update *Descriptor   // from Update, for Run to take
	wake   chan struct{} // tells Run an update came
}

// Update replaces the descriptor Run keeps registered and makes Run
// register it at once (or first thing, when Run has not started). d must
// name the same identity; a descriptor that does not validate is refused.
// It is safe to call concurrently with Run.
func (r *Registrar) Update(d Descriptor) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if d.Identity != r.Descriptor.Identity {
		return errors.New("directory: Registrar.Update: the descriptor names another identity")
	}
	r.mu.Lock()
	r.update = &d
	wake := r.wakeLocked()
	r.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default:
	}
	return nil
}

// wakeLocked returns the channel that wakes Run; r.mu is held.
func (r *Registrar) wakeLocked() chan struct{} {
	if r.wake == nil {
		r.wake = make(chan struct{}, 1)
	}
	return r.wake
}

// take replaces *d with the descriptor of the last Update, if one came.
func (r *Registrar) take(d *Descriptor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.update != nil {
		*d, r.update = *r.update, nil
	}
}

// Run registers the node and keeps it registered until ctx ends, then
// deregisters it (allowing a few seconds for that). It returns an error at
// once if the descriptor or the key is unusable, the deregistration's error
// if that fails, and nil otherwise. Failed registrations are logged and
// retried, never returned.
func (r *Registrar) Run(ctx context.Context) error {
	interval := r.Interval
	if interval <= 0 {
		interval = DefaultRegisterInterval
	}
	backoff := r.RetryBackoff
	if backoff <= 0 {
		backoff = DefaultRetryBackoff
	}
	if r.Client == nil {
		return fmt.Errorf("directory: Registrar.Client is nil")
	}
	d := r.Descriptor
	r.take(&d)
	if err := d.Validate(); err != nil {
		return err
	}
	if err := checkKey(d, r.Key); err != nil {
		return err
	}
	log := r.Logger.With().Str("identity", d.Identity).Str("role", string(d.Role)).Logger()
	r.mu.Lock()
	wake := r.wakeLocked()
	r.mu.Unlock()

	timer := time.NewTimer(0)
	defer timer.Stop()
	registered, failures := false, 0
	for {
		select {
		case <-ctx.Done():
			return r.deregister(ctx, d, log)
		case <-timer.C:
		case <-wake:
			timer.Stop()
		}
		r.take(&d)
		attemptCtx, cancel := context.WithTimeout(ctx, interval)
		err := r.Client.Register(attemptCtx, d, r.Key)
		cancel()
		wait := interval
		var partial *PartialError
		switch {
		case errors.As(err, &partial):
			// Listed by the authorities that took it: keep the pace,
			// the others get it next time.
			log.Warn().Err(err).Msg("some directory authorities did not take the registration")
			registered, failures = true, 0
		case err == nil && !registered:
			log.Info().Str("address", d.Address).Msg("registered with the directory")
			registered, failures = true, 0
		case err == nil:
			failures = 0
		case ctx.Err() != nil:
			// Shutting down; the select above deregisters.
		default:
			failures++
			wait = retryDelay(backoff, interval, failures)
			registered = false
			log.Warn().Err(err).Int("failures", failures).Dur("retry_in", wait).Msg("directory registration failed")
		}
		timer.Reset(wait)
	}
}

// deregister removes the node on the way out of Run.
func (r *Registrar) deregister(ctx context.Context, d Descriptor, log zerolog.Logger) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deregisterTimeout)
	defer cancel()
	err := r.Client.Deregister(ctx, d, r.Key)
	if _, ok := errors.AsType[*PartialError](err); ok {
		// An authority that is down forgets the node after its TTL.
		log.Warn().Err(err).Msg("some directory authorities did not take the deregistration")
		return nil
	}
	if err != nil {
		log.Warn().Err(err).Msg("directory deregistration failed")
		return fmt.Errorf("directory: deregistering: %w", err)
	}
	log.Info().Msg("deregistered from the directory")
	return nil
}

// retryDelay returns the wait after the given number of failures in a row:
// backoff doubled per earlier failure, capped at limit, then reduced by up to
// half at random so that nodes failing together do not retry together.
func retryDelay(backoff, limit time.Duration, failures int) time.Duration {
	d := backoff
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}
