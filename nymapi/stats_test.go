package nymapi

import (
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/wsapi"
)

// TestStats counts connections, refusals, requests by type and error
// answers by kind, and NewCollector exports the same numbers.
func TestStats(t *testing.T) {
	ts := startServer(t, Config{MaxConnections: 2})
	to := mustParse(t, nymExample)

	if c := dialStatus(t, ts.url, http.Header{"Origin": {"https://evil.example"}}); c != http.StatusForbidden {
		t.Fatalf("foreign origin: status %d", c)
	}
	resp, err := http.Get("http" + strings.TrimPrefix(ts.url, "ws"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r := dialRaw(t, ts.url)
	r2 := dialRaw(t, ts.url)
	r2.binary(wsapi.SelfAddress{}) // answered: registered
	r2.readBinary()
	if c := dialStatus(t, ts.url, nil); c != http.StatusServiceUnavailable {
		t.Fatalf("third connection: status %d", c)
	}

	r.binary(wsapi.Send{Recipient: to, Data: []byte("x")})
	ts.fake.nextCall(t)
	r.binary(wsapi.SelfAddress{})
	r.readBinary()
	r.write(websocket.BinaryMessage, []byte{})
	r.wantBinaryError(wsapi.KindEmptyRequest, "no data")
	r.write(websocket.BinaryMessage, []byte{0x06})
	r.wantBinaryError(wsapi.KindUnknownRequest, "6")
	r.json(`{"type":"send",`)
	r.wantTextError(wsapi.KindMalformedRequest, "invalid JSON")
	ts.fake.mu.Lock()
	ts.fake.sendErr = client.ErrNoSURBs
	ts.fake.mu.Unlock()
	r.binary(wsapi.Reply{SenderTag: testTag, Data: []byte("x")})
	ts.fake.nextCall(t)
	r.wantBinaryError(wsapi.KindOther, "no reply SURBs")

	st := ts.Stats()
	if st.Connections != 2 || st.Accepted != 2 || st.OriginsRefused != 1 {
		t.Errorf("connections %d, accepted %d, origins refused %d; want 2, 2, 1", st.Connections, st.Accepted, st.OriginsRefused)
	}
	check := func(what string, got, want map[string]uint64) {
		t.Helper()
		if !maps.Equal(got, want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	check("refused", st.Refused, map[string]uint64{"full": 1, "handshake": 2})
	check("requests", st.Requests, map[string]uint64{"send": 1, "send_anonymous": 0, "reply": 1, "self_address": 2,
		"closed_connection": 0, "get_lane_queue_length": 0})
	check("errors", st.Errors, map[string]uint64{"empty_request": 1, "too_short_request": 0, "unknown_request": 1,
		"malformed_request": 1, "other": 1})

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(ts.Server))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + `="` + l.GetValue() + `"}`
			}
			got[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	for name, want := range map[string]float64{
		"peapod_client_api_connections":                                  2,
		"peapod_client_api_connections_accepted_total":                   2,
		`peapod_client_api_connections_refused_total{reason="full"}`:     1,
		`peapod_client_api_requests_total{type="send"}`:                  1,
		`peapod_client_api_requests_total{type="get_lane_queue_length"}`: 0,
		`peapod_client_api_errors_total{kind="other"}`:                   1,
		"peapod_client_api_origins_refused_total":                        1,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
}
