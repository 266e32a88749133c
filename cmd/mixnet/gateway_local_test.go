package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/cli"
	"github.com/peapod-mixnet/peapod/internal/testbuild"
)

func TestGatewayConfigFileAndFlags(t *testing.T) {
	path := writeFile(t, `
[gateway]
listen = "127.0.0.1:1790"
client_listen = "127.0.0.1:9001"
data = "/from/file"
message_ttl = "2h"
page_size = 50

[log]
level = "warn"
`)
	cfg := defaultGatewayFile()
	err := parseConfig(command("gateway", io.Discard, io.Discard), []string{"--config", path, "--page-size", "20", "--directory=http://127.0.0.1:8090"}, &cfg, bindGatewayFlags)
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Gateway
	if g.Listen != "127.0.0.1:1790" || g.ClientListen != "127.0.0.1:9001" || g.Data != "/from/file" || g.MessageTTL != 2*time.Hour || cfg.Log.Level != "warn" {
		t.Fatalf("file values not applied: %+v", cfg)
	}
	if g.PageSize != 20 || g.Directory != "http://127.0.0.1:8090" {
		t.Fatalf("flags did not override the file: %+v", g)
	}

	bad := writeFile(t, "[gateway]\npage_sise = 3\n")
	cfg = defaultGatewayFile()
	if err := parseConfig(command("gateway", io.Discard, io.Discard), []string{"--config", bad}, &cfg, bindGatewayFlags); err == nil {
		t.Fatal("an unknown key was accepted")
	}
}

func TestLocalConfigDefaults(t *testing.T) {
	cfg := defaultLocalFile()
	if err := parseConfig(command("local", io.Discard, io.Discard), []string{"--mix-delay", "0s"}, &cfg, bindLocalFlags); err != nil {
		t.Fatal(err)
	}
	l := cfg.Local
	if l.Data != "./.peapod/network" || l.DirectoryAddr != "127.0.0.1:8090" || l.MixDelay != 0 || l.MixnodesPerLayer != 2 || l.Gateways != 2 {
		t.Fatalf("config %+v", l)
	}
	if code := run([]string{"local", "--gateways", "0", "--directory-addr", "127.0.0.1:0", "--data", t.TempDir()}, io.Discard, io.Discard); code != cli.ExitUsage {
		t.Fatalf("--gateways 0: exit %d, want %d", code, cli.ExitUsage)
	}
}

// built is the mixnet binary the process tests share, built once.
var built = testbuild.New("peapod-mixnet-test-", testbuild.Target{Out: "mixnet", Pkg: "."})

// TestMain removes the shared binary after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	built.Remove()
	os.Exit(code)
}

// buildBinary builds the mixnet command once, for every test that runs it.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	return built.Path(t, "mixnet")
}

// TestLocalProcess runs `mixnet local`: the whole network registers with
// three authorities and is in a document a majority of them signed, the mix
// delay is advertised, and SIGTERM stops it cleanly.
func TestLocalProcess(t *testing.T) {
	bin := buildBinary(t)
	p := start(t, bin, "local", "--directory-addr", "127.0.0.1:0", "--data", t.TempDir(), "--mix-delay", "20ms")
	url := p.field(t, "local network running", "directory")
	if delay := p.last["mix_delay"]; delay != "20ms" {
		t.Errorf("the log says mix_delay %v; a duration in a log line carries its unit: want \"20ms\"", delay)
	}
	keys, _ := p.last["authorities"].(string)
	trust, err := directory.ParseTrust(strings.Split(keys, ","), 0)
	if err != nil || len(trust.Authorities) != 3 || !strings.Contains(url, ",") {
		t.Fatalf("authorities %v (%v) at %s, want 3 keys and their URLs", trust.Keys(), err, url)
	}
	top, err := (&directory.Client{BaseURL: url, Trust: &trust}).Topology(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Mixnodes) != 6 || len(top.Gateways) != 2 {
		t.Fatalf("topology has %d mixnodes and %d gateways, want 6 and 2", len(top.Mixnodes), len(top.Gateways))
	}
	if top.Params == nil || top.Params.MeanMixDelay != int64(20*time.Millisecond) {
		t.Fatalf("params %+v, want a 20ms mean mix delay", top.Params)
	}
	p.stop(t)
}

// TestGatewayProcess runs a directory and a gateway as processes: the
// gateway registers at start, and deregisters on SIGTERM.
func TestGatewayProcess(t *testing.T) {
	bin := buildBinary(t)
	dir := start(t, bin, "directory", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--open")
	client := &directory.Client{BaseURL: "http://" + dir.field(t, "directory listening", "addr")}
	gw := start(t, bin, "gateway", "--listen", "127.0.0.1:0", "--client-listen", "127.0.0.1:0",
		"--directory", client.BaseURL, "--data", t.TempDir(), "--replay-capacity", "10000")
	identity := gw.field(t, "gateway started", "identity")

	// The first registration is made before "gateway started".
	top, err := client.Topology(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	g, ok := top.Gateway(identity)
	if !ok || !strings.HasPrefix(g.ClientAddress, "ws://127.0.0.1:") {
		t.Fatalf("gateway listed as %+v (%v)", g, ok)
	}
	gw.stop(t)
	if top, err = client.Topology(context.Background()); err != nil || len(top.Gateways) != 0 {
		t.Fatalf("after the gateway exited: %+v, %v", top, err)
	}
	dir.stop(t)
}
