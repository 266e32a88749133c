package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestTimestampsStrictlyIncrease(t *testing.T) {
	var stamps timestamper
	frozen := time.Now()
	const workers, each = 8, 1000
	var mu sync.Mutex
	seen := make(map[int64]bool, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var last int64
			got := make([]int64, 0, each)
			for i := range each {
				now := frozen
				if i%2 == 1 {
					now = frozen.Add(-time.Hour) // the clock steps back
				}
				ts := stamps.next(now)
				if ts <= last {
					t.Errorf("timestamp %d after %d", ts, last)
				}
				last = ts
				got = append(got, ts)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, ts := range got {
				if seen[ts] {
					t.Errorf("timestamp %d handed out twice", ts)
				}
				seen[ts] = true
			}
		})
	}
	wg.Wait()
	if ts := stamps.next(frozen.Add(time.Hour)); ts != frozen.Add(time.Hour).UnixNano() {
		t.Errorf("once the clock is ahead again, the timestamp is %d, want the clock's %d", ts, frozen.Add(time.Hour).UnixNano())
	}
}

func TestClientReportsRefusal(t *testing.T) {
	clock := newFakeClock()
	clock.Advance(time.Hour)
	ts := startServer(t, Config{Now: clock.Now})
	n := newMixnode(t, 1)
	err := ts.client.Register(context.Background(), n.desc, n.key)
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusBadRequest || !strings.Contains(se.Message, "clock") {
		t.Fatalf("Register against a server an hour ahead: %v, want a 400 StatusError about the clock", err)
	}
	if !strings.HasPrefix(err.Error(), "directory: server answered 400 Bad Request: timestamp is") {
		t.Errorf("error reads %q", err)
	}
}

func TestClientChecksBeforeSending(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests.Add(1) }))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL}
	a, b := newMixnode(t, 1), newMixnode(t, 1)
	if err := c.Register(context.Background(), a.desc, b.key); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("Register signed with another node's key: %v", err)
	}
	if err := c.Register(context.Background(), a.desc, a.key[:10]); err == nil || !strings.Contains(err.Error(), "signing key is 10 bytes") {
		t.Errorf("Register with a short key: %v", err)
	}
	bad := a.desc
	bad.Layer = 7
	if err := c.Deregister(context.Background(), bad, a.key); err == nil || !strings.Contains(err.Error(), "layer 7") {
		t.Errorf("Deregister of an invalid descriptor: %v", err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
	if _, err := (&Client{}).Topology(context.Background()); err == nil || !strings.Contains(err.Error(), "BaseURL") {
		t.Errorf("Topology without BaseURL: %v", err)
	}
}

func TestClientTopology(t *testing.T) {
	m, g := newMixnode(t, 2).desc, newGateway(t).desc
	keys := func(k []SphinxKey) string { b, _ := json.Marshal(k); return string(b) }
	entries := fmt.Sprintf(`"mixnodes":[{"layer":2,"address":%q,"identity":%q,"sphinx_keys":%s%%s}],`+
		`"gateways":[{"address":%q,"client_address":%q,"identity":%q,"sphinx_keys":%s}],`+
		`"epoch":{"number":10,"start":36000000000000,"length":3600000000000,"rotation_epochs":6,"rotation":1}`,
		m.Address, m.Identity, keys(m.SphinxKeys), g.Address, g.ClientAddress, g.Identity, keys(g.SphinxKeys))
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string // error substring; empty for success
	}{
		{"plain", 200, "{" + fmt.Sprintf(entries, "") + "}", ""},
		{"fields a newer server adds", 200, `{"version":2,` + fmt.Sprintf(entries, `,"stake":5`) + "}", ""},
		{"invalid entry", 200, "{" + strings.Replace(fmt.Sprintf(entries, ""), `"layer":2`, `"layer":9`, 1) + "}", "mixnode 0"},
		{"epoch in the wrong rotation", 200, "{" + strings.Replace(fmt.Sprintf(entries, ""), `"rotation":1`, `"rotation":2`, 1) + "}", "directory: epoch: epoch 10 is not in rotation 2"},
		{"no epoch", 200, "{" + strings.Split(fmt.Sprintf(entries, ""), `,"epoch"`)[0] + "}", "directory: epoch: epoch length 0s is out of range"},
		{"not JSON", 200, "<html>", "decoding the topology"},
		{"refused", 503, `{"error":"maintenance"}`, "503 Service Unavailable: maintenance"},
		{"refused without a body", 502, ``, "502 Bad Gateway: Bad Gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != PathTopology || r.Method != http.MethodGet {
					t.Errorf("request %s %s", r.Method, r.URL.Path)
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			topo, err := (&Client{BaseURL: srv.URL + "/"}).Topology(context.Background())
			if tc.want == "" {
				if err != nil || len(topo.Mixnodes) != 1 || len(topo.Gateways) != 1 || topo.Mixnodes[0].Identity != m.Identity {
					t.Fatalf("Topology() = %+v, %v", topo, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Topology() error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
