package directory

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
)

// Directory authorities.
//
// A network has n authorities, each a [Server] with Config.Authority set,
// and every node registers with all of them (a [Client] whose BaseURL lists
// them). The design is Tor's and Katzenpost's voting directory
// authorities, cut down to one round:
//
//   - each authority admits registrations itself (signature, allow-list,
//     rate limits), so its view of the network is its own;
//   - every VoteInterval it encodes the topology of its view for the
//     current epoch canonically ([EncodeTopology]: a deterministic rule,
//     so that authorities with the same view hold the same bytes), signs
//     the bytes and serves them with its signature at [PathVote];
//   - it fetches its peers' votes and keeps each peer signature that is
//     valid over exactly its own bytes: a peer whose view differs, by one
//     node, one key or one address, adds nothing;
//   - once it holds at least Threshold signatures (its own included) on
//     its bytes, it publishes them as the [Document] at [PathDocument],
//     and serves that document until a later one (of the same or a later
//     epoch, never an earlier one) reaches the threshold.
//
// So a node is in a published document only if at least Threshold
// authorities listed it with exactly those fields; with the default
// majority threshold one lying authority cannot add, move or re-key a node,
// and one authority down (of three) does not stop documents. A document
// lists nodes as the authorities saw them when they voted: a node that
// registers appears in the next document a threshold agrees on, within
// about one VoteInterval once every authority has its registration.

// Authority defaults.
const (
	// DefaultVoteInterval is how often an authority votes and fetches its
	// peers' votes.
	DefaultVoteInterval = 2 * time.Second
	// peerTimeout bounds one fetch of a peer's vote.
	peerTimeout = 5 * time.Second
)

// AuthorityConfig makes a [Server] a directory authority.
type AuthorityConfig struct {
	// Key is the authority's ed25519 signing key. Required.
	Key ed25519.PrivateKey
	// Peers are the other authorities of the network.
	Peers []Peer
	// Threshold is the signatures a document needs, this authority's
	// included. Zero means a majority of the len(Peers)+1 authorities.
	Threshold int
	// VoteInterval is how often the authority votes. Default
	// DefaultVoteInterval.
	VoteInterval time.Duration
	// HTTP fetches the peers' votes; nil means a client with a timeout of a
	// few seconds.
	HTTP *http.Client
}

// Peer is another authority: the base URL it serves and its public key.
type Peer struct {
	URL string
	Key ed25519.PublicKey
}

// Trust returns the trust of the network the authority belongs to: its own
// key and its peers', and the threshold.
func (c AuthorityConfig) Trust() Trust {
	t := Trust{Threshold: c.Threshold}
	if len(c.Key) == ed25519.PrivateKeySize {
		t.Authorities = append(t.Authorities, c.Key.Public().(ed25519.PublicKey))
	}
	for _, p := range c.Peers {
		t.Authorities = append(t.Authorities, p.Key)
	}
	return t
}

func (c *AuthorityConfig) applyDefaults() error {
	if c.VoteInterval == 0 {
		c.VoteInterval = DefaultVoteInterval
	}
	if c.HTTP == nil {
		c.HTTP = &http.Client{Timeout: peerTimeout}
	}
	if len(c.Key) != ed25519.PrivateKeySize {
		return fmt.Errorf("directory: Config.Authority.Key is %d bytes, want %d", len(c.Key), ed25519.PrivateKeySize)
	}
	for i, p := range c.Peers {
		if !strings.HasPrefix(p.URL, "http://") && !strings.HasPrefix(p.URL, "https://") {
			return fmt.Errorf("directory: Config.Authority.Peers[%d].URL %q is not an http(s) URL", i, p.URL)
		}
	}
	if c.VoteInterval < 0 {
		return fmt.Errorf("directory: Config.Authority.VoteInterval %s is negative", c.VoteInterval)
	}
	if err := c.Trust().Validate(); err != nil {
		return fmt.Errorf("directory: Config.Authority: %s", reason(err))
	}
	return nil
}

// authority is the voting half of a Server.
type authority struct {
	srv   *Server
	cfg   AuthorityConfig
	trust Trust
	self  string // base58 public key
	log   zerolog.Logger

	mu        sync.Mutex
	vote      []byte                       // the canonical bytes of the current vote
	voteEpoch uint64                       // its epoch
	sigs      map[string]DocumentSignature // on vote, by authority
	published []byte                       // the encoded Document served, nil before the first
	pubEpoch  uint64
}

func newAuthority(s *Server, cfg AuthorityConfig) *authority {
	return &authority{
		srv:   s,
		cfg:   cfg,
		trust: cfg.Trust(),
		self:  address.EncodeKey(cfg.Key.Public().(ed25519.PublicKey)),
		log:   s.log.With().Str("authority", address.EncodeKey(cfg.Key.Public().(ed25519.PublicKey))).Logger(),
	}
}

// run votes every VoteInterval until stop is closed.
func (a *authority) run(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	a.log.Info().Int("peers", len(a.cfg.Peers)).Int("threshold", a.trust.K()).Msg("authority voting")
	t := time.NewTicker(a.cfg.VoteInterval)
	defer t.Stop()
	for {
		a.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// round makes this authority's vote, collects the peers' signatures on it
// and publishes it once it holds enough.
func (a *authority) round(ctx context.Context) {
	t := a.srv.Topology()
	vote, err := EncodeTopology(&t)
	if err != nil {
		a.log.Error().Err(err).Msg("encoding the vote")
		return
	}
	a.mu.Lock()
	if !bytes.Equal(vote, a.vote) {
		a.vote, a.voteEpoch = vote, t.Epoch.Number
		a.sigs = map[string]DocumentSignature{a.self: SignTopology(a.cfg.Key, vote)}
	}
	a.mu.Unlock()

	var wg sync.WaitGroup
	for _, p := range a.cfg.Peers {
		wg.Go(func() { a.collect(ctx, p, vote) })
	}
	wg.Wait()
	a.publish(vote)
}

// collect fetches peer's vote and keeps its signature when it is valid over
// vote, the bytes this authority votes for.
func (a *authority) collect(ctx context.Context, p Peer, vote []byte) {
	peer := address.EncodeKey(p.Key)
	c := &Client{BaseURL: p.URL, HTTP: a.cfg.HTTP}
	urls, _ := c.baseURLs()
	body, err := c.get(ctx, urls[0], PathVote)
	result := "agree"
	defer func() { a.srv.metrics.peerVotes.WithLabelValues(result).Inc() }()
	if err != nil {
		result = "unreachable"
		a.log.Debug().Err(err).Str("peer", peer).Msg("fetching a peer's vote")
		return
	}
	d, err := ParseDocument(body)
	var sig DocumentSignature
	if err == nil {
		i := slices.IndexFunc(d.Signatures, func(s DocumentSignature) bool { return s.Authority == peer })
		if i < 0 || !verifySignature(p.Key, d.Topology, d.Signatures[i]) {
			err = errors.New("directory: the vote is not signed by the peer")
		} else {
			sig = d.Signatures[i]
		}
	}
	if err != nil {
		result = "bad_signature"
		a.log.Warn().Err(err).Str("peer", peer).Msg("a peer's vote is invalid")
		return
	}
	if !bytes.Equal(d.Topology, vote) {
		result = "disagree"
		a.log.Debug().Str("peer", peer).Msg("a peer votes for another topology")
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if bytes.Equal(a.vote, vote) {
		a.sigs[peer] = sig
	}
}

// publish makes the vote the served document when it holds enough
// signatures and is not of an earlier epoch than the one served.
func (a *authority) publish(vote []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !bytes.Equal(a.vote, vote) || len(a.sigs) < a.trust.K() {
		return
	}
	if a.published != nil && a.voteEpoch < a.pubEpoch {
		return
	}
	d := Document{Topology: vote}
	for _, s := range a.sigs {
		d.Signatures = append(d.Signatures, s)
	}
	slices.SortFunc(d.Signatures, func(x, y DocumentSignature) int { return strings.Compare(x.Authority, y.Authority) })
	enc, err := encodeDocument(d)
	if err != nil {
		a.log.Error().Err(err).Msg("encoding the document")
		return
	}
	if bytes.Equal(enc, a.published) {
		return
	}
	if a.published == nil || a.voteEpoch != a.pubEpoch {
		a.log.Info().Uint64("epoch", a.voteEpoch).Int("signatures", len(d.Signatures)).Msg("document published")
	}
	a.published, a.pubEpoch = enc, a.voteEpoch
	a.srv.metrics.documentEpoch.Set(float64(a.voteEpoch))
	a.srv.metrics.documentSignatures.Set(float64(len(d.Signatures)))
}

// handleDocument serves the published document.
func (a *authority) handleDocument(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	doc := a.published
	a.mu.Unlock()
	if doc == nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "no topology document has reached the threshold of signatures yet"})
		return
	}
	writeRaw(w, doc)
}

// handleVote serves this authority's vote, signed by it alone.
func (a *authority) handleVote(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	vote, sig := a.vote, a.sigs[a.self]
	a.mu.Unlock()
	if vote == nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "no vote yet"})
		return
	}
	enc, err := encodeDocument(Document{Topology: vote, Signatures: []DocumentSignature{sig}})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
		return
	}
	writeRaw(w, enc)
}

// encodeDocument encodes d as served.
func encodeDocument(d Document) ([]byte, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("directory: encoding the document: %w", err)
	}
	return b, nil
}

// writeRaw writes an encoded JSON body with status 200. body is shared
// between requests: it is only read.
func writeRaw(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	w.Write([]byte{'\n'})
}
