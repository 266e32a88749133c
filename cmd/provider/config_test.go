package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/framework"
	"github.com/peapod-mixnet/peapod/internal/cli"
	"github.com/peapod-mixnet/peapod/internal/cli/clitest"
)

// quietCommand is the provider's command line with its output discarded.
var quietCommand = cli.Command{Name: "provider", Stdout: io.Discard, Stderr: io.Discard}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "provider.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigFileAndFlags: every section of the file is read, flags win over
// it, and the values reach the host's and the network's configurations.
func TestConfigFileAndFlags(t *testing.T) {
	path := writeConfig(t, `
[provider]
data = "/var/lib/peapod"
plugins = "/opt/plugins"
plugin_paths = ["/opt/extra/upper"]
drain_timeout = "3s"
descriptor_ttl = "2h"

[http]
listen = "127.0.0.1:9000"

[network]
directory_listen = "127.0.0.1:9100"
mix_delay = "40ms"
mixnodes_per_layer = 3
gateways = 1

[client]
mix_delay = "5ms"
no_cover = true
cover_main_gap = "100ms"
cover_loop_gap = "1s"
max_surb_senders = 100
max_surbs_held = 3000
surb_lifetime = "1h"

[limits]
max_concurrent = 4
queue_size = 8
request_timeout = "2s"
max_request_size = 1000
max_reply_size = 2000
reply_timeout = "7s"

[idempotence]
window = "1m"
max_entries = 10
max_bytes = 100
max_entries_per_requester = 3
max_bytes_per_requester = 50

[log]
level = "debug"
`)
	cfg := defaultConfig()
	if err := parseArgs(quietCommand, []string{"--config", path, "--http", "127.0.0.1:9001", "--max-concurrent", "6", "--no-delay"}, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Listen != "127.0.0.1:9001" || cfg.Limits.MaxConcurrent != 6 || !cfg.Client.NoDelay {
		t.Errorf("flags did not override the file: %+v", cfg)
	}
	h := cfg.hostConfig("http://127.0.0.1:9100", nil, "/opt/plugins", zerolog.Nop())
	switch {
	case h.DataDir != "/var/lib/peapod/provider", h.DirectoryURL != "http://127.0.0.1:9100", h.NymClientURL != "":
		t.Errorf("host: %+v", h)
	case h.Plugins.Dir != "/opt/plugins" || len(h.Plugins.Paths) != 1:
		t.Errorf("plugins: %+v", h.Plugins)
	case h.Limits.QueueSize != 8 || h.Limits.RequestTimeout != 2*time.Second || h.Limits.MaxRequestSize != 1000 ||
		h.Limits.MaxReplySize != 2000 || h.Limits.ReplyTimeout != 7*time.Second:
		t.Errorf("limits: %+v", h.Limits)
	case h.Idempotence.Window != time.Minute || h.Idempotence.MaxEntries != 10 || h.Idempotence.MaxBytes != 100 ||
		h.Idempotence.MaxEntriesPerRequester != 3 || h.Idempotence.MaxBytesPerRequester != 50:
		t.Errorf("idempotence: %+v", h.Idempotence)
	case h.DrainTimeout != 3*time.Second || h.DescriptorTTL != 2*time.Hour:
		t.Errorf("times: %v %v", h.DrainTimeout, h.DescriptorTTL)
	case h.Client.MixDelay != 5*time.Millisecond || !h.Client.NoDelay || !h.Client.Cover.Disabled ||
		h.Client.Cover.MainGap != 100*time.Millisecond || h.Client.Cover.LoopGap != time.Second ||
		h.Client.SURBs.MaxSenders != 100 || h.Client.SURBs.MaxHeld != 3000 || h.Client.SURBs.Lifetime != time.Hour:
		t.Errorf("client: %+v", h.Client)
	}
	n := cfg.networkConfig(zerolog.Nop())
	if n.DataDir != "/var/lib/peapod/network" || n.DirectoryAddr != "127.0.0.1:9100" || n.MixnodesPerLayer != 3 || n.Gateways != 1 {
		t.Errorf("network: %+v", n)
	}
	if n.MeanMixDelay != 0 {
		t.Errorf("--no-delay: the network still advertises %v", n.MeanMixDelay)
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg := defaultConfig()
	if err := parseArgs(quietCommand, nil, &cfg); err != nil {
		t.Fatal(err)
	}
	if !cfg.embedded() || cfg.HTTP.Listen != "127.0.0.1:8080" || cfg.Provider.Data != "./.peapod" {
		t.Errorf("defaults: %+v", cfg)
	}
	if n := cfg.networkConfig(zerolog.Nop()); n.MeanMixDelay != 15*time.Millisecond || n.DirectoryAddr != "127.0.0.1:8090" {
		t.Errorf("network defaults: %+v", n)
	}
	cfg.Provider.NymClient = "ws://127.0.0.1:1977"
	if h := cfg.hostConfig("http://ignored", nil, "", zerolog.Nop()); h.DirectoryURL != "" || h.NymClientURL == "" || cfg.embedded() {
		t.Errorf("nym mode: %+v", h)
	}
}

func TestConfigErrors(t *testing.T) {
	unknown := writeConfig(t, "[provider]\ndata = \"x\"\nnope = 1\n[extra]\nkey = 2\n")
	cfg := defaultConfig()
	err := parseArgs(quietCommand, []string{"--config", unknown}, &cfg)
	if err == nil || !strings.Contains(err.Error(), "provider.nope") || !strings.Contains(err.Error(), "extra") {
		t.Errorf("unknown keys: %v", err)
	}
	malformed := writeConfig(t, "[provider\n")
	cfg = defaultConfig()
	if err := parseArgs(quietCommand, []string{"--config", malformed}, &cfg); err == nil {
		t.Error("a malformed file was accepted")
	}
	bare := writeConfig(t, "[limits]\nrequest_timeout = 5\n")
	cfg = defaultConfig()
	err = parseArgs(quietCommand, []string{"--config", bare}, &cfg)
	if err == nil || !strings.Contains(err.Error(), `limits.request_timeout = 5: a duration needs a unit and quotes, such as request_timeout = "5s"`) {
		t.Errorf("a bare number as a duration: %v", err)
	}
	cfg = defaultConfig()
	if err := parseArgs(quietCommand, []string{"-h"}, &cfg); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	for _, args := range [][]string{
		{"--directory", "http://x", "--nym-client", "ws://y"},
		{"--data", ""},
		{"--mix-delay", "-1s"},
	} {
		cfg := defaultConfig()
		err := parseArgs(quietCommand, args, &cfg)
		if err == nil {
			err = cfg.check()
		}
		if err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	cfg = defaultConfig()
	negative := writeConfig(t, "[client]\ncover_loop_gap = \"-1s\"\n")
	if err := parseArgs(quietCommand, []string{"--config", negative}, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.check(); err == nil || !strings.Contains(err.Error(), "cover_loop_gap") {
		t.Errorf("a negative cover gap: %v", err)
	}
}

// exampleConfig is the example file shipped for operators.
const exampleConfig = "../../examples/config/provider.toml"

// TestExampleConfig: examples/config/provider.toml has every key, with the
// command's defaults, and the provider accepts it (the command's checks
// and the host's, with the library's defaults applied);
// TestProviderProcess runs the binary with it.
func TestExampleConfig(t *testing.T) {
	var file fileConfig
	clitest.CheckExample(t, exampleConfig, &file, defaultConfig())
	cfg := defaultConfig()
	if err := parseArgs(quietCommand, []string{"--config", exampleConfig, "--data", t.TempDir()}, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.check(); err != nil {
		t.Fatal(err)
	}
	if _, err := framework.New(cfg.hostConfig("http://127.0.0.1:1", nil, "", zerolog.Nop())); err != nil {
		t.Fatalf("the host refuses the example: %v", err)
	}
}
