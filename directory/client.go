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
	"strings"
	"sync/atomic"
	"time"

	"github.com/peapod-mixnet/peapod/address"
)

// maxErrorBody bounds how much of an error response the client reads.
const maxErrorBody = 4 << 10

// Client talks to a directory server. Its methods are safe for concurrent
// use.
type Client struct {
	// BaseURL is the server's URL without the /v1/... path, such as
	// "http://192.0.2.1:8080".
	BaseURL string
	// HTTP sends the requests; nil means http.DefaultClient. Bound each call
	// with its context.
	HTTP *http.Client
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
// [Topology.Validate]. Fields it does not know are ignored, so that a newer
// server can add some.
func (c *Client) Topology(ctx context.Context) (*Topology, error) {
	req, err := c.newRequest(ctx, http.MethodGet, PathTopology, nil)
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
	var t Topology
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, fmt.Errorf("directory: decoding the topology: %w", err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
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

// send makes and sends a signed request to path.
func (c *Client) send(ctx context.Context, path string, d Descriptor, key ed25519.PrivateKey) error {
	if err := checkKey(d, key); err != nil {
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
	req, err := c.newRequest(ctx, http.MethodPost, path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, sign(key, path, body))
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

func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	if c.BaseURL == "" {
		return nil, errors.New("directory: Client.BaseURL is empty")
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
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
