package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/internal/cli"
	"github.com/peapod-mixnet/peapod/internal/testbuild"
	"github.com/peapod-mixnet/peapod/localnet"
	"github.com/peapod-mixnet/peapod/wsapi"
)

// TestRunMetrics runs `client run --metrics` against a local network: a
// message to the application and one from it move the delivered, sent and
// ack counters on /metrics, the gateway link is 1, the WebSocket API counts
// the connection and the send, and nothing on the page names the client's
// or its correspondent's address. A bad --metrics address is refused before
// anything starts, and one in use stops the command with a clear message.
func TestRunMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)

	for _, addr := range []string{"localhost", "127.0.0.1:http", "127.0.0.1:70000", "127.0.0.1:9100:1"} {
		r := runCmd(t, bin, "", "run", "--metrics", addr, "--data", t.TempDir())
		if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "client: --metrics "+strconv.Quote(addr)) {
			t.Errorf("--metrics %s: %+v", addr, r)
		}
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r := runCmd(t, bin, "", "run", "--metrics", busy.Addr().String(), "--ws", "127.0.0.1:0", "--data", t.TempDir(), "--directory", "http://127.0.0.1:1")
	if r.code != cli.ExitError || !strings.Contains(r.stderr, "client run: the metrics server (--metrics): ") ||
		!strings.Contains(r.stderr, "address already in use") {
		t.Fatalf("--metrics on a port in use: %+v", r)
	}

	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := localnet.Start(ctx, localnet.Config{DataDir: t.TempDir(), DirectoryAddr: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	runX := startCmd(t, bin, "run", "--data", filepath.Join(t.TempDir(), "x"), "--directory", n.DirectoryURL(), "--no-delay", "--no-cover",
		"--ws", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--log-level", "info")
	metricsURL := runX.field(t, "serving metrics", "metrics")
	wsURL := runX.field(t, "client running", "websocket")
	addrX := runX.field0(t, "client running", "address")
	if got := listeningPorts(t, runX.cmd.Process.Pid); got >= 0 && got != 2 {
		t.Errorf("client run --metrics listens on %d ports, want 2 (the WebSocket API and the metrics)", got)
	}

	z := startClient(t, n, log)
	app := dialApp(t, wsURL)
	to, err := z.Send(ctx, parseAddress(t, addrX), []byte("to the app"))
	if err != nil {
		t.Fatal(err)
	}
	if got := receive(t, app); string(got.Data) != "to the app" {
		t.Fatalf("the application got %q", got.Data)
	}
	if err := to.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := app.Send(ctx, wsapi.Send{Recipient: z.Address(), Data: []byte("from the app")}); err != nil {
		t.Fatal(err)
	}
	if m, err := z.Receive(ctx); err != nil || string(m.Data) != "from the app" {
		t.Fatalf("z got %q, %v", m.Data, err)
	}

	// The ack of the application's message comes back after z has it.
	var got map[string]float64
	for deadline := time.Now().Add(30 * time.Second); ; {
		got = scrape(t, metricsURL)
		if got["peapod_client_acks_total"] >= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for name, ok := range map[string]bool{
		"peapod_client_acks_total":                                  got["peapod_client_acks_total"] >= 1,
		"peapod_client_packets_sent_total":                          got["peapod_client_packets_sent_total"] >= 1,
		"peapod_client_delivered_total":                             got["peapod_client_delivered_total"] == 1,
		"peapod_client_packets_received_total":                      got["peapod_client_packets_received_total"] >= 1,
		"peapod_client_cover_sent_total":                            got["peapod_client_cover_sent_total"] == 0,
		"peapod_client_gateway_connected":                           got["peapod_client_gateway_connected"] == 1,
		"peapod_client_api_connections":                             got["peapod_client_api_connections"] == 1,
		`peapod_client_api_requests_total{type="send"}`:             got[`peapod_client_api_requests_total{type="send"}`] == 1,
		`peapod_client_api_errors_total{kind="other"}`:              got[`peapod_client_api_errors_total{kind="other"}`] == 0,
		`peapod_topology_documents_refused_total{reason="invalid"}`: got[`peapod_topology_documents_refused_total{reason="invalid"}`] == 0,
	} {
		if v, present := got[name]; !ok || !present {
			t.Errorf("%s = %v (present %v)", name, v, present)
		}
	}
	page := httpGet(t, metricsURL)
	for _, a := range []string{addrX, z.Address().String()} {
		for part := range strings.FieldsFuncSeq(a, func(r rune) bool { return r == '.' || r == '@' }) {
			if strings.Contains(page, part) {
				t.Errorf("/metrics names %s, part of the address %s", part, a)
			}
		}
	}
	if h := httpGet(t, strings.TrimSuffix(metricsURL, "/metrics")+"/healthz"); !strings.Contains(h, `"status":"ok"`) {
		t.Errorf("/healthz: %s", h)
	}
	runX.stop(t, syscall.SIGTERM)
}

// built is the client binary the process tests share, built once.
var built = testbuild.New("peapod-client-test-", testbuild.Target{Out: "client", Pkg: "."})

// TestMain removes the shared binary after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	built.Remove()
	os.Exit(code)
}

// buildBinary builds the client command once, for every test that runs it.
func buildBinary(t *testing.T) string {
	t.Helper()
	return built.Path(t, "client")
}

// httpGet returns the body of a 200 answer to GET url.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v: %s", url, resp.Status, err, body)
	}
	return string(body)
}

// scrape returns the samples of a Prometheus text page, by name with
// labels as the page writes them.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(httpGet(t, url)))
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// listeningPorts counts the TCP sockets process pid listens on, from
// /proc; -1 where /proc does not show them.
func listeningPorts(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Logf("no /proc to count listeners: %v", err)
		return -1
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name())
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	n := 0
	for _, table := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/" + table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
			if len(f) > 9 && f[3] == "0A" && inodes[f[9]] {
				n++
			}
		}
	}
	return n
}
