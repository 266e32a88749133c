package framework

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client"
)

// Defaults of a ClientTransportConfig.
const (
	DefaultFlushTimeout = 5 * time.Second
)

// ClientTransportConfig configures a ClientTransport.
type ClientTransportConfig struct {
	// Client configures the embedded client; its DataDir and DirectoryURL
	// are required.
	Client client.Config
	// FlushTimeout bounds how long Close waits for replies in flight to be
	// delivered to the requesters' gateways. Default DefaultFlushTimeout.
	FlushTimeout time.Duration
	// Logger receives the transport's logs.
	Logger zerolog.Logger
}

// ClientTransport is a Transport over a peapod client embedded in the
// process (package client), which joins a peapod network from its
// directory URL. The client's keys stay in its data folder, so the address
// is the same at every start.
//
// It is an AddressSigner: it lends the Host the client's identity key, so
// that the provider's descriptor is self-certifying. And it is a
// SURBCounter.
type ClientTransport struct {
	c     *client.Client
	log   zerolog.Logger
	flush time.Duration

	ctx        context.Context // ends at Close, for delivery watchers
	cancel     context.CancelFunc
	deliveries sync.WaitGroup

	mu      sync.Mutex
	started bool
	closed  bool
}

var (
	_ Transport     = (*ClientTransport)(nil)
	_ AddressSigner = (*ClientTransport)(nil)
	_ SURBCounter   = (*ClientTransport)(nil)
	_ topologyGuard = (*ClientTransport)(nil)
)

// topologyGuard is a transport that checks the network's signed topology
// documents and counts those it refuses.
type topologyGuard interface {
	// TopologyRefused returns the documents refused, by reason (every
	// reason of directory.RefusedReasons).
	TopologyRefused() map[string]uint64
}

// NewClientTransport creates the client (its keys are made on first use)
// without connecting it.
func NewClientTransport(cfg ClientTransportConfig) (*ClientTransport, error) {
	if cfg.FlushTimeout < 0 {
		return nil, fmt.Errorf("framework: ClientTransportConfig.FlushTimeout %v is negative", cfg.FlushTimeout)
	}
	if cfg.FlushTimeout == 0 {
		cfg.FlushTimeout = DefaultFlushTimeout
	}
	c, err := client.New(cfg.Client)
	if err != nil {
		return nil, err
	}
	t := &ClientTransport{c: c, log: cfg.Logger, flush: cfg.FlushTimeout}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t, nil
}

// Client returns the embedded client.
func (t *ClientTransport) Client() *client.Client { return t.c }

// Start connects the client to its gateway.
func (t *ClientTransport) Start(ctx context.Context) error {
	t.mu.Lock()
	if t.started || t.closed {
		t.mu.Unlock()
		return errors.New("framework: transport already started or closed")
	}
	t.started = true
	t.mu.Unlock()
	return t.c.Start(ctx)
}

// Address returns the client's address.
func (t *ClientTransport) Address() address.Address { return t.c.Address() }

// Connected reports whether the client is connected to its gateway.
func (t *ClientTransport) Connected() bool {
	t.mu.Lock()
	started := t.started
	t.mu.Unlock()
	return started && t.c.Connected()
}

// AddressSigner returns the client's identity key.
func (t *ClientTransport) AddressSigner() crypto.Signer { return t.c.Signer() }

// Receive returns the next message the client received.
func (t *ClientTransport) Receive(ctx context.Context) (Message, error) {
	m, err := t.c.Receive(ctx)
	if errors.Is(err, client.ErrClosed) {
		return Message{}, ErrTransportClosed
	}
	if err != nil {
		return Message{}, fmt.Errorf("framework: receiving: %w", err)
	}
	return Message{Data: m.Data, SenderTag: m.SenderTag}, nil
}

// Reply queues data for the sender and watches its delivery in the
// background; a reply that fails later (the sender's SURBs ran out and it
// sent no more) is logged.
func (t *ClientTransport) Reply(ctx context.Context, tag address.SenderTag, data []byte) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrTransportClosed
	}
	t.deliveries.Add(1)
	t.mu.Unlock()
	d, err := t.c.Reply(ctx, tag, data)
	if err != nil {
		t.deliveries.Done()
		if errors.Is(err, client.ErrClosed) {
			return ErrTransportClosed
		}
		return fmt.Errorf("framework: replying: %w", err)
	}
	go func() {
		defer t.deliveries.Done()
		if err := d.Wait(t.ctx); err != nil && t.ctx.Err() == nil {
			t.log.Warn().Err(err).Msg("reply not delivered")
		}
	}()
	return nil
}

// SURBStats is what the client holds of its senders' reply SURBs.
func (t *ClientTransport) SURBStats() SURBStats {
	st := t.c.Stats()
	lim := t.c.Limits()
	return SURBStats{Held: st.SURBsHeld, Senders: st.SURBSenders, SendersEvicted: st.SURBSendersEvicted,
		MaxSenders: lim.SURBSenders, MaxHeld: lim.SURBsHeld}
}

// TopologyRefused returns the topology documents the client refused, by
// reason.
func (t *ClientTransport) TopologyRefused() map[string]uint64 { return t.c.Stats().TopologyRefused }

// Close waits up to FlushTimeout for replies in flight to be delivered,
// then closes the client.
func (t *ClientTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		t.deliveries.Wait()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	flushed := make(chan struct{})
	go func() { t.deliveries.Wait(); close(flushed) }()
	select {
	case <-flushed:
	case <-time.After(t.flush):
		t.log.Warn().Msg("replies still in flight at close")
	}
	t.cancel()
	err := t.c.Close()
	<-flushed
	return err
}
