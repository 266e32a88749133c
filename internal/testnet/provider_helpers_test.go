package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/framework/envelope"
)

// startProvider starts a provider with both example plugins on n.
func startProvider(t testing.TB, ctx context.Context, n *Network, opts ProviderOptions) *Provider {
	t.Helper()
	needProvider(t, n.cfg.Bin)
	p, err := n.StartProvider(ctx, "provider", opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newRequester starts a client process called name and returns a
// Requester to p over its WebSocket API, recording into tr, that never
// resends: every reply the system loses shows as lost.
func newRequester(t testing.TB, ctx context.Context, n *Network, name string, p *Provider, tr *Tracker, opts ClientOptions) *Requester {
	t.Helper()
	return newRequesterOpts(t, ctx, n, name, p, tr, opts, RequesterOptions{})
}

// newRequesterOpts is newRequester with RequesterOptions.
func newRequesterOpts(t testing.TB, ctx context.Context, n *Network, name string, p *Provider, tr *Tracker, opts ClientOptions, ropts RequesterOptions) *Requester {
	t.Helper()
	c, err := n.StartClient(ctx, name, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRequester(dialWS(t, c), p.Address(), tr, ropts)
	t.Cleanup(func() {
		r.Close()
		if probs := r.Problems(); len(probs) > 0 {
			t.Errorf("%s saw messages that were not replies, or client errors:\n%s", name, joinLines(probs))
		}
	})
	return r
}

// kvRequest is the data of a kv request.
func kvRequest(op, key, value string) []byte {
	m := map[string]string{"op": op}
	if key != "" {
		m["key"] = key
	}
	if value != "" {
		m["value"] = value
	}
	b, _ := json.Marshal(m)
	return b
}

// kvList lists every key with prefix through r and returns them.
func kvList(t *testing.T, ctx context.Context, r *Requester, id, prefix string) []string {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"op": "list", "prefix": prefix})
	rep, err := r.Call(ctx, id, "kv", b)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Err != nil {
		t.Fatalf("list: %v", rep.Err)
	}
	var lr struct {
		Keys      []string `json:"keys"`
		Truncated bool     `json:"truncated"`
	}
	if err := json.Unmarshal(rep.Data, &lr); err != nil {
		t.Fatalf("list reply %q: %v", rep.Data, err)
	}
	if lr.Truncated {
		t.Fatalf("list of %q truncated", prefix)
	}
	return lr.Keys
}

// kvGet reads key through r; found is false for not_found.
func kvGet(t *testing.T, ctx context.Context, r *Requester, id, key string) (value string, found bool) {
	t.Helper()
	rep, err := r.Call(ctx, id, "kv", kvRequest("get", key, ""))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Err != nil {
		if rep.Err.Code == "not_found" {
			return "", false
		}
		t.Fatalf("get %s: %v", key, rep.Err)
	}
	var vr struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(rep.Data, &vr); err != nil {
		t.Fatalf("get reply %q: %v", rep.Data, err)
	}
	return vr.Value, true
}

// expectation is what the reply to one request must be.
type expectation struct {
	service string
	data    []byte // the request's data
	want    []byte // the reply's data for an ok reply
	// codes, when set, are error codes accepted instead of an ok reply.
	codes []string
}

// workload sends requests and checks their replies.
type workload struct {
	tr     *Tracker
	expect map[string]expectation
}

func newWorkload() *workload {
	return &workload{tr: NewTracker(), expect: make(map[string]expectation)}
}

// echo sends an echo request with id through r.
func (w *workload) echo(t testing.TB, ctx context.Context, r *Requester, id string, codes ...string) {
	t.Helper()
	data := []byte("echo payload " + id + " " + strings.Repeat("x", len(id)*7))
	w.send(t, ctx, r, id, expectation{service: "echo", data: data, want: data, codes: codes})
}

// put sends a kv put of key=value through r.
func (w *workload) put(t testing.TB, ctx context.Context, r *Requester, id, key, value string, codes ...string) {
	t.Helper()
	w.send(t, ctx, r, id, expectation{service: "kv", data: kvRequest("put", key, value), want: []byte(`{"ok":true}`), codes: codes})
}

func (w *workload) send(t testing.TB, ctx context.Context, r *Requester, id string, e expectation) {
	t.Helper()
	w.expect[id] = e
	if err := r.Request(ctx, id, e.service, e.data); err != nil {
		t.Fatalf("request %s: %v", id, err)
	}
}

// check waits for every reply and checks each against its expectation:
// nothing lost, nothing twice, every reply right.
func (w *workload) check(t testing.TB, ctx context.Context, rs ...*Requester) Report {
	t.Helper()
	if err := w.tr.WaitAll(ctx); err != nil {
		t.Error(err)
	}
	rep := w.tr.Report()
	t.Logf("requests: %v", rep)
	if rep.Lost > 0 || rep.Duplicated > 0 || rep.Unknown > 0 {
		t.Errorf("lost %d (%v), duplicated %d, unknown %d", rep.Lost, rep.Missing, rep.Duplicated, rep.Unknown)
	}
	wrong := 0
	for id, e := range w.expect {
		var replies []*envelope.Reply
		for _, r := range rs {
			replies = append(replies, r.Replies(id)...)
		}
		if len(replies) == 0 {
			continue // counted as lost
		}
		if err := e.verify(replies[0]); err != nil {
			if wrong++; wrong <= 10 {
				t.Errorf("reply to %s: %v", id, err)
			}
		}
	}
	if wrong > 10 {
		t.Errorf("… %d wrong replies in all", wrong)
	}
	return rep
}

func (e expectation) verify(r *envelope.Reply) error {
	if r.Err != nil {
		if slices.Contains(e.codes, r.Err.Code) {
			return nil
		}
		return fmt.Errorf("error %s: %s", r.Err.Code, r.Err.Message)
	}
	if !bytes.Equal(r.Data, e.want) {
		return fmt.Errorf("data %q, want %q", truncate(r.Data, 80), truncate(e.want, 80))
	}
	return nil
}

// ids returns prefix-0 … prefix-(n-1).
func ids(prefix string, n int) []string { return numbered(prefix, 0, n) }

// waitTimeout is how long a scenario waits for all its replies.
const waitTimeout = 3 * time.Minute
