// Package requester is the requester's side of a peapod provider: it
// discovers a provider from its HTTP endpoint, checks the signed
// descriptor, and sends requests through the mixnet anonymously, with reply
// SURBs, matching each reply to its request.
//
// The usual way in is [Connect], which does all of it:
//
//	s, err := requester.Connect(ctx, requester.Config{ProviderURL: "http://127.0.0.1:8080"})
//	...
//	defer s.Close()
//	reply, err := s.Do(ctx, "echo", []byte("hello"))
//
// [Fetch] alone fetches and verifies a descriptor; [New] alone wraps a
// running client.Client. A reply that reports a failure comes back as a
// *handlers.Error, carrying the provider's error code; so does a request
// over the limit the provider publishes (code "too_large"), which is not
// sent at all.
package requester

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/framework/descriptor"
	"github.com/peapod-mixnet/peapod/framework/envelope"
	"github.com/peapod-mixnet/peapod/handlers"
)

// Defaults of the zero values of Options and Config.
const (
	// DefaultSURBs is how many reply SURBs go with each request: enough for
	// a reply of about 20 KB; for longer ones the provider asks for more.
	DefaultSURBs = 10
	// DefaultResend is how long Do waits for a reply before sending the
	// request again with the same id (which the provider answers without
	// running it twice).
	DefaultResend = 20 * time.Second
	// DefaultFetchTimeout bounds fetching the descriptor when no
	// http.Client is given.
	DefaultFetchTimeout = 10 * time.Second
)

// idSize is the number of random bytes in a request id (22 characters in
// base64url, within envelope.MaxIDLen).
const idSize = 16

// Fetch gets the descriptor at ProviderID(providerURL) +
// descriptor.WellKnownPath and verifies it with opts (see
// descriptor.Verify). hc may be nil.
func Fetch(ctx context.Context, hc *http.Client, providerURL string, opts descriptor.VerifyOptions) (*descriptor.Descriptor, error) {
	id, err := ProviderID(providerURL)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = &http.Client{Timeout: DefaultFetchTimeout}
	}
	target := id + descriptor.WellKnownPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("requester: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("requester: fetching the descriptor: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("requester: fetching the descriptor: %s answered %s", target, resp.Status)
	}
	doc, err := io.ReadAll(io.LimitReader(resp.Body, descriptor.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("requester: fetching the descriptor: %w", err)
	}
	d, err := descriptor.Verify(doc, opts)
	if err != nil {
		return nil, fmt.Errorf("requester: %s: %w", target, err)
	}
	return d, nil
}

// Options tune a Requester.
type Options struct {
	// SURBs is how many reply SURBs go with each request. Default
	// DefaultSURBs.
	SURBs int
	// Resend is how long to wait for a reply before sending the request
	// again with the same id; negative never resends. Default
	// DefaultResend (Connect makes it longer for a provider whose
	// published request timeout is longer).
	Resend time.Duration
	// MaxRequestSize, when positive, is the provider's limit on a request
	// message (the whole envelope, in bytes): Do refuses a longer request
	// without sending it, as the provider would. Connect sets it from the
	// descriptor's limits when it is 0; negative turns the check off.
	MaxRequestSize int
	// Logger receives the requester's logs.
	Logger zerolog.Logger
}

// Requester sends requests to one provider through a client and matches
// the replies. It reads every message the client receives: give it a
// client of its own. Its methods are safe for concurrent use.
type Requester struct {
	c    *client.Client
	to   address.Address
	opts Options
	log  zerolog.Logger

	ctx        context.Context
	cancel     context.CancelFunc
	done       chan struct{}
	deliveries sync.WaitGroup // requests not yet acknowledged

	mu      sync.Mutex
	closed  bool
	waiting map[string]chan *envelope.Reply
}

// New starts a Requester for the provider at to, over c, which must be
// started. Close stops it (but not c).
func New(c *client.Client, to address.Address, opts Options) *Requester {
	if opts.SURBs <= 0 {
		opts.SURBs = DefaultSURBs
	}
	if opts.Resend == 0 {
		opts.Resend = DefaultResend
	}
	r := &Requester{c: c, to: to, opts: opts, log: opts.Logger, done: make(chan struct{}), waiting: make(map[string]chan *envelope.Reply)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	go r.receiveLoop()
	return r
}

// Do sends one request to service and returns the reply's data. A reply
// that reports a failure is returned as a *handlers.Error with the
// provider's code and message. Without a reply within Options.Resend, the
// request is sent again with the same id; the provider does not run it
// twice. Do returns when the reply comes or ctx ends.
func (r *Requester) Do(ctx context.Context, service string, data []byte) ([]byte, error) {
	id, err := newID()
	if err != nil {
		return nil, err
	}
	msg, err := (&envelope.Request{ID: id, Service: service, Data: data}).AppendJSON(nil)
	if err != nil {
		return nil, fmt.Errorf("requester: %w", err)
	}
	if limit := r.opts.MaxRequestSize; limit > 0 && len(msg) > limit {
		return nil, &TooLargeError{Size: len(msg), DataSize: len(data), Limit: limit}
	}
	ch := make(chan *envelope.Reply, 1)
	r.mu.Lock()
	r.waiting[id] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.waiting, id)
		r.mu.Unlock()
	}()

	var (
		timer  *time.Timer
		resend <-chan time.Time
	)
	if r.opts.Resend > 0 {
		timer = time.NewTimer(r.opts.Resend)
		defer timer.Stop()
		resend = timer.C
	}
	for attempt := 1; ; attempt++ {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, errRequesterClosed
		}
		r.deliveries.Add(1)
		r.mu.Unlock()
		d, err := r.c.SendAnonymous(ctx, r.to, msg, r.opts.SURBs)
		if err != nil {
			r.deliveries.Done()
			return nil, fmt.Errorf("requester: sending the request: %w", err)
		}
		go func() {
			defer r.deliveries.Done()
			select {
			case <-d.Done():
			case <-r.ctx.Done():
			}
		}()
		if timer != nil {
			timer.Reset(r.opts.Resend)
		}
		select {
		case rep := <-ch:
			if rep.Err != nil {
				return nil, rep.Err
			}
			return rep.Data, nil
		case <-resend:
			r.log.Info().Int("attempt", attempt+1).Msg("no reply yet; sending the request again")
		case <-ctx.Done():
			return nil, fmt.Errorf("requester: waiting for the reply: %w", ctx.Err())
		case <-r.done:
			return nil, errRequesterClosed
		}
	}
}

var errRequesterClosed = errors.New("requester: closed")

// TooLargeError is Do's error for a request over the provider's published
// size limit (Options.MaxRequestSize), which is not sent. It unwraps to the
// *handlers.Error with code "too_large" the provider would have answered,
// so that AsError and code checks treat both alike.
type TooLargeError struct {
	// Size is the request message's size, the whole envelope; DataSize the
	// data's, before base64.
	Size, DataSize int
	// Limit is the provider's limit on Size.
	Limit int
}

// MaxData returns about the most data that fits in the limit.
func (e *TooLargeError) MaxData() int {
	overhead := e.Size - base64.StdEncoding.EncodedLen(e.DataSize)
	return max(0, (e.Limit-overhead)/4*3)
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("requester: a request of %d bytes of data is %d bytes as sent, over the provider's limit of %d bytes "+
		"(at most about %d bytes of data fit); not sent", e.DataSize, e.Size, e.Limit, e.MaxData())
}

// Unwrap returns the provider's answer to such a request.
func (e *TooLargeError) Unwrap() error {
	return handlers.Errorf(handlers.CodeTooLarge, "request of %d bytes; the limit is %d (not sent)", e.Size, e.Limit)
}

// closeFlush bounds how long Close waits for requests sent to be
// acknowledged by the provider's gateway, so that closing the client right
// after does not cut their acknowledgements short.
const closeFlush = 2 * time.Second

// Close waits a moment for the requests sent to be acknowledged, stops the
// Requester's receiving goroutine, and returns when it has ended.
func (r *Requester) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	flushed := make(chan struct{})
	go func() { r.deliveries.Wait(); close(flushed) }()
	select {
	case <-flushed:
	case <-time.After(closeFlush):
	}
	r.cancel()
	<-r.done
	<-flushed
	return nil
}

// receiveLoop hands each reply to the request waiting for it. Replies to
// no waiting request (a second reply to a request sent twice) and messages
// that are not replies are dropped.
func (r *Requester) receiveLoop() {
	defer close(r.done)
	for {
		m, err := r.c.Receive(r.ctx)
		if err != nil {
			if r.ctx.Err() == nil && !errors.Is(err, client.ErrClosed) {
				r.log.Warn().Err(err).Msg("receiving")
			}
			return
		}
		rep, err := envelope.ParseReply(m.Data)
		if err != nil {
			r.log.Warn().Err(err).Msg("a message that is not a reply")
			continue
		}
		if rep.ID == "" && rep.Err != nil {
			// The provider could not read a request of ours at all.
			r.log.Warn().Str("code", rep.Err.Code).Str("error", rep.Err.Message).Msg("the provider refused an unreadable request")
			continue
		}
		r.mu.Lock()
		ch := r.waiting[rep.ID]
		r.mu.Unlock()
		if ch == nil {
			continue
		}
		select {
		case ch <- rep:
		default: // a duplicate reply; the first is waiting to be taken
		}
	}
}

// newID returns a random request id.
func newID() (string, error) {
	var b [idSize]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("requester: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Config configures Connect.
type Config struct {
	// ProviderURL is the provider's HTTP endpoint, such as
	// "http://127.0.0.1:8080". Required.
	ProviderURL string
	// ProviderKey, if not nil, pins the provider's descriptor key: a
	// descriptor signed by another key is refused.
	ProviderKey ed25519.PublicKey
	// KnownProviders, if not nil, remembers the provider's key on first
	// use and refuses a descriptor signed by another key later with a
	// *KeyChangedError (when no ProviderKey is pinned). A program that
	// keeps a client data folder keeps it there:
	// OpenKnownProviders(filepath.Join(dir, KnownProvidersFile)).
	KnownProviders *KnownProviders
	// Directory, when set, is the directory of the network the requester
	// uses: a descriptor that names another network is refused with a
	// *NetworkMismatchError before anything is sent, even on first use,
	// when nothing is pinned or remembered. Empty accepts the network the
	// descriptor names (trusted as far as the descriptor is).
	Directory string
	// Warn receives Discover's warnings (first use, nothing pinned over
	// http, a descriptor that is not self-certifying); nil logs them at
	// warn level with Options.Logger.
	Warn func(string)
	// HTTPClient fetches the descriptor; nil uses a client with
	// DefaultFetchTimeout.
	HTTPClient *http.Client
	// DataDir is the mixnet client's folder. Empty makes a temporary one,
	// removed by Close: a new identity and sender tag every time.
	DataDir string
	// Client tunes the mixnet client (delays, cover traffic, logger); its
	// DataDir and DirectoryURL are set by Connect. Its Trust, when set, is
	// the directory authorities the requester trusts: a provider whose
	// descriptor names others is refused (ErrOtherAuthorities). When it is
	// nil, Connect takes the authorities from the descriptor.
	Client client.Config
	// Options tune the Requester.
	Options Options
}

// Session is a connection to one provider: its verified descriptor, a
// running mixnet client on the provider's network, and a Requester over it.
type Session struct {
	*Requester
	*Discovery
	// Client is the mixnet client.
	Client *client.Client
	tmpDir string
}

// ErrNymNetwork is returned by Connect for a provider on Nym's mixnet,
// which a peapod client cannot join: talk to it through a Nym client.
var ErrNymNetwork = errors.New("requester: the provider is on Nym's mixnet; use a Nym client to reach it")

// Connect fetches and verifies the provider's descriptor, starts a client
// on the provider's network, and returns a Session ready for Do. ctx bounds
// the connecting only.
func Connect(ctx context.Context, cfg Config) (_ *Session, err error) {
	disc, err := discover(ctx, cfg.HTTPClient, cfg.ProviderURL, cfg.ProviderKey, cfg.KnownProviders, yourNetwork{cfg.Directory, cfg.Client.Trust})
	if err != nil {
		return nil, err
	}
	for _, w := range disc.Warnings {
		if cfg.Warn != nil {
			cfg.Warn(w)
		} else {
			cfg.Options.Logger.Warn().Str("provider", disc.ProviderID).Msg(w)
		}
	}
	d := disc.Descriptor
	if d.Network.Type != descriptor.NetworkPeapod {
		return nil, ErrNymNetwork
	}
	s := &Session{Discovery: disc}
	cc := cfg.Client
	cc.DataDir, cc.DirectoryURL = cfg.DataDir, d.Network.Directory
	if cc.Trust, err = networkTrust(cfg.Client.Trust, d.Network); err != nil {
		return nil, fmt.Errorf("requester: %s: %w", disc.ProviderID, err)
	}
	if cc.DataDir == "" {
		if s.tmpDir, err = os.MkdirTemp("", "peapod-requester-"); err != nil {
			return nil, fmt.Errorf("requester: %w", err)
		}
		cc.DataDir = s.tmpDir
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.Client, err = client.New(cc); err != nil {
		return nil, err
	}
	if err = s.Client.Start(ctx); err != nil {
		return nil, err
	}
	s.Requester = New(s.Client, d.Address, withLimits(cfg.Options, d.Limits))
	return s, nil
}

// networkTrust returns the trust the client joins the provider's network
// with: the configured one (discover has checked that the descriptor does
// not contradict it), or else the descriptor's, or nil when neither names
// authorities.
func networkTrust(configured *directory.Trust, n descriptor.Network) (*directory.Trust, error) {
	if configured != nil {
		return configured, nil
	}
	return n.Trust()
}

// resendMargin is what a resend waits beyond the provider's request
// timeout: the time for the request and its reply to cross the mixnet.
const resendMargin = 10 * time.Second

// withLimits returns opts adjusted to the limits a provider publishes (nil
// when it publishes none): its request size limit, unless opts has one,
// and a resend interval no shorter than its request timeout plus
// resendMargin, unless opts sets one.
func withLimits(opts Options, l *descriptor.Limits) Options {
	if l == nil {
		return opts
	}
	if opts.MaxRequestSize == 0 {
		opts.MaxRequestSize = l.MaxRequestSize
	}
	if opts.Resend == 0 && l.RequestTimeout+resendMargin > DefaultResend {
		opts.Resend = l.RequestTimeout + resendMargin
	}
	return opts
}

// Close stops the Requester and the client, and removes a temporary data
// folder.
func (s *Session) Close() error {
	var errs []error
	if s.Requester != nil {
		errs = append(errs, s.Requester.Close())
	}
	if s.Client != nil {
		errs = append(errs, s.Client.Close())
	}
	if s.tmpDir != "" {
		errs = append(errs, os.RemoveAll(s.tmpDir))
	}
	return errors.Join(errs...)
}

// AsError returns the provider's error in err, if err is one.
func AsError(err error) (*handlers.Error, bool) {
	var e *handlers.Error
	ok := errors.As(err, &e)
	return e, ok
}
