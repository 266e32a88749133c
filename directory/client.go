package directory

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/peapod-mixnet/peapod/address"
)

// maxErrorBody bounds how much of an error response the client reads.
const maxErrorBody = 4 << 10

// Client talks to a directory server, or to a network's directory
// authorities. Its methods are safe for concurrent use; set its fields
// before the first call.
type Client struct {
	// BaseURL is the server's URL without the /v1/... path, such as
	// "http://192.0.2.1:8080", or the URLs of several authorities separated
	// by commas. Topology asks them in turn until one answers with a
	// document it accepts; Register and Deregister go to every one.
	BaseURL string
	// HTTP sends the requests; nil means http.DefaultClient. Bound each call
	// with its context.
	HTTP *http.Client
	// Trust, when set, makes Topology fetch the signed [Document] at
	// PathDocument and accept it only when it passes [Document.Verify]
	// with Trust, is not older than the last topology this Client accepted,
	// and not more than one epoch behind the clock. Without it Topology
	// takes the unsigned topology at PathTopology: whoever answers on
	// BaseURL chooses the network.
	Trust *Trust
	// Now is the clock for the staleness check; nil means time.Now.
	Now func() time.Time

	held    atomic.Uint64 // epoch of the last accepted document, plus one (0: none)
	refusal refusals
}

// StatusError is returned when the server refuses a request.
type StatusError struct {
	// StatusCode is the HTTP status, such as 401 for a bad signature or 409
	// for a timestamp that is not after the last accepted one.
	StatusCode int
	// Message is the server's reason.
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("directory: server answered %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Topology fetches the current topology and checks it with
// [Topology.Validate]; with Trust set, it fetches and verifies the signed
// document instead (see [Client.Trust]) and counts every refused document
// by reason ([Client.Refused]). Without Trust, fields it does not know are
// ignored, so that a newer server can add some.
func (c *Client) Topology(ctx context.Context) (*Topology, error) {
	urls, err := c.baseURLs()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, base := range urls {
		t, err := c.topologyFrom(ctx, base)
		if err == nil {
			return t, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// topologyFrom fetches the topology from one server.
func (c *Client) topologyFrom(ctx context.Context, base string) (*Topology, error) {
	path := PathTopology
	if c.Trust != nil {
		path = PathDocument
	}
	body, err := c.get(ctx, base, path)
	if err != nil {
		return nil, err
	}
	if c.Trust != nil {
		t, err := c.accept(body)
		if rej, ok := errors.AsType[*RefusedError](err); ok {
			c.refusal.add(rej.Reason)
			return nil, &fromError{url: base, err: err}
		}
		return t, err
	}
	var t Topology
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, fmt.Errorf("directory: decoding the topology: %w", err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// fromError is an error of one server of several: it names the server.
type fromError struct {
	url string
	err error
}

func (e *fromError) Error() string { return "directory: " + e.url + ": " + reason(e.err) }

func (e *fromError) Unwrap() error { return e.err }

// accept verifies a signed document against c.Trust and the epoch held,
// and holds its epoch.
func (c *Client) accept(body []byte) (*Topology, error) {
	d, err := ParseDocument(body)
	if err != nil {
		return nil, err
	}
	t, err := d.Verify(*c.Trust)
	if err != nil {
		return nil, err
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	for {
		held := c.held.Load()
		if err := checkFresh(t, held-1, held > 0, now()); err != nil {
			return nil, err
		}
		if t.Epoch.Number+1 <= held || c.held.CompareAndSwap(held, t.Epoch.Number+1) {
			return t, nil
		}
	}
}

// Refused returns how many documents this Client refused, by reason (every
// one of RefusedReasons, zeros included).
func (c *Client) Refused() map[string]uint64 { return c.refusal.snapshot() }

// get fetches path from base and returns the body of a 200 answer.
func (c *Client) get(ctx context.Context, base, path string) ([]byte, error) {
	req, err := newRequest(ctx, base, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("directory: fetching the topology: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxTopologySize+1))
	if err != nil {
		return nil, fmt.Errorf("directory: fetching the topology: %w", err)
	}
	if len(body) > MaxTopologySize {
		return nil, fmt.Errorf("directory: topology is larger than %d bytes", MaxTopologySize)
	}
	return body, nil
}

// baseURLs splits BaseURL into the servers' URLs.
func (c *Client) baseURLs() ([]string, error) {
	urls := splitURLs(c.BaseURL)
	if len(urls) == 0 {
		return nil, errors.New("directory: Client.BaseURL is empty")
	}
	return urls, nil
}

func splitURLs(s string) []string {
	var out []string
	for u := range strings.SplitSeq(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// CheckURLs reports whether s is a usable Client.BaseURL: one or more
// http:// or https:// URLs with a host, separated by commas. The error
// names the URL that is not.
func CheckURLs(s string) error {
	urls := splitURLs(s)
	if len(urls) == 0 {
		return errors.New("directory: no directory URL")
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("directory: %q is not an http:// or https:// URL", raw)
		}
	}
	return nil
}

// NewRefusedCollector returns a Prometheus collector of the documents c
// refused: peapod_topology_documents_refused_total{reason}, one series per
// reason of RefusedReasons.
func NewRefusedCollector(c *Client) prometheus.Collector {
	return &refusedCollector{c: c, desc: prometheus.NewDesc("peapod_topology_documents_refused_total",
		"Topology documents from the directory authorities refused, by reason.", []string{"reason"}, nil)}
}

type refusedCollector struct {
	c    *Client
	desc *prometheus.Desc
}

func (r *refusedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

func (r *refusedCollector) Collect(ch chan<- prometheus.Metric) {
	for why, n := range r.c.Refused() {
		ch <- prometheus.MustNewConstMetric(r.desc, prometheus.CounterValue, float64(n), why)
	}
}

// refusals counts refused documents by reason.
type refusals struct {
	mu     sync.Mutex
	counts map[string]uint64
}

func (r *refusals) add(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = make(map[string]uint64)
	}
	r.counts[why]++
}

func (r *refusals) snapshot() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]uint64, len(RefusedReasons))
	for _, why := range RefusedReasons {
		out[why] = r.counts[why]
	}
	return out
}

// Register registers (or refreshes) the node that d describes, signed with
// key, the private key of d.Identity. It sets d's timestamp itself, so that
// timestamps increase strictly within the process even if the clock stands
// still or steps back.
func (c *Client) Register(ctx context.Context, d Descriptor, key ed25519.PrivateKey) error {
	return c.send(ctx, PathRegister, d, key)
}

// Deregister removes the node that d describes from the directory; the
// rules of Register apply.
func (c *Client) Deregister(ctx context.Context, d Descriptor, key ed25519.PrivateKey) error {
	return c.send(ctx, PathDeregister, d, key)
}

// send makes a signed request to path and sends it to every server of
// BaseURL; it fails when one of them refuses it or cannot be reached, with
// a *PartialError when others took it.
func (c *Client) send(ctx context.Context, path string, d Descriptor, key ed25519.PrivateKey) error {
	if err := checkKey(d, key); err != nil {
		return err
	}
	urls, err := c.baseURLs()
	if err != nil {
		return err
	}
	d.Timestamp = processTimestamps.next(time.Now())
	if err := d.Validate(); err != nil {
		return err
	}
	body, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	sig := sign(key, path, body)
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for i, base := range urls {
		wg.Go(func() {
			errs[i] = c.post(ctx, base, path, body, sig)
			if errs[i] != nil && len(urls) > 1 {
				errs[i] = &fromError{url: base, err: errs[i]}
			}
		})
	}
	wg.Wait()
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed > 0 && failed < len(urls) {
		return &PartialError{Reached: len(urls) - failed, Err: errors.Join(errs...)}
	}
	return errors.Join(errs...)
}

// PartialError is the error of a registration or deregistration that some
// of a Client's servers took and others did not (one authority down, or
// refusing): Reached servers have it.
type PartialError struct {
	Reached int
	Err     error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("directory: %d servers took the request, not the others: %s", e.Reached, reason(e.Err))
}

func (e *PartialError) Unwrap() error { return e.Err }

// post sends one signed request to the server at base.
func (c *Client) post(ctx context.Context, base, path string, body []byte, sig string) error {
	req, err := newRequest(ctx, base, http.MethodPost, path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, sig)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("directory: %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusError(resp)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody)) // lets the connection be reused
	return nil
}

// checkKey reports whether key is the private key of d's identity.
func checkKey(d Descriptor, key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("directory: signing key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if address.EncodeKey(key.Public().(ed25519.PublicKey)) != d.Identity {
		return errors.New("directory: signing key does not match the descriptor's identity")
	}
	return nil
}

func newRequest(ctx context.Context, base, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, body)
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	return req, nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// statusError turns a refusal into a *StatusError carrying the server's
// reason, or the status text when the body holds none.
func statusError(resp *http.Response) error {
	msg := http.StatusText(resp.StatusCode)
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body errorBody
	if json.Unmarshal(raw, &body) == nil && body.Error != "" {
		msg = body.Error
	}
	return &StatusError{StatusCode: resp.StatusCode, Message: msg}
}

// timestamper hands out strictly increasing request timestamps.
type timestamper struct {
	last atomic.Int64 // the last timestamp handed out
}

// processTimestamps serves every Client of the process, so that timestamps
// increase across clients that share a node's identity.
var processTimestamps timestamper

// next returns now in unix nanoseconds, or one more than the last timestamp
// handed out if that is not already later.
func (t *timestamper) next(now time.Time) int64 {
	for {
		last := t.last.Load()
		ts := max(now.UnixNano(), last+1)
		if t.last.CompareAndSwap(last, ts) {
			return ts
		}
	}
}
