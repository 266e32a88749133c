package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/peapod-mixnet/peapod/address"
	"github.com/peapod-mixnet/peapod/directory"
	"github.com/peapod-mixnet/peapod/internal/cli"
	"github.com/peapod-mixnet/peapod/internal/node"
)

// directorySection is the [directory] section of `mixnet directory`.
type directorySection struct {
	// Listen is the ip:port of the HTTP server.
	Listen string `toml:"listen"`
	// Data is the folder of the database.
	Data string `toml:"data"`
	// TTL is how long a node stays listed without refreshing.
	TTL time.Duration `toml:"ttl"`
	// MaxNodes bounds the identities tracked (0: the default).
	MaxNodes int `toml:"max_nodes"`
	// MaxClockSkew bounds the age of a signed request (0: the default).
	MaxClockSkew time.Duration `toml:"max_clock_skew"`
	// MixDelay is the mean per-hop delay advertised to senders with the
	// topology, from which mixnodes also derive the longest delay they
	// honour (0: none, and each client uses its own default).
	MixDelay time.Duration `toml:"mix_delay"`
	// Epoch is the length of the network's epochs and RotationEpochs the
	// epochs of each Sphinx key rotation (0: the defaults, 1h and 6).
	Epoch          time.Duration `toml:"epoch"`
	RotationEpochs int           `toml:"rotation_epochs"`
	// Peers are the other authorities, each "URL=KEY" (the base58 key
	// another authority logs at start), separated by commas.
	Peers string `toml:"peers"`
	// Threshold is the signatures a document needs (0: a majority of the
	// authorities, peers and this one).
	Threshold int `toml:"threshold"`
	// VoteInterval is how often the authority votes (0: the default, 2s).
	VoteInterval time.Duration `toml:"vote_interval"`
	// AllowList is a file of the node identities admitted, one base58 key
	// a line; it is read again when it changes and on SIGHUP. Open admits
	// every identity instead: one of the two is required.
	AllowList string `toml:"allow_list"`
	Open      bool   `toml:"open"`
	// RegisterRate and RegisterRateTotal bound signed requests a second,
	// per source address and in all (0: the defaults, 20 and 500).
	RegisterRate      float64 `toml:"register_rate"`
	RegisterRateTotal float64 `toml:"register_rate_total"`
}

func defaultDirectoryFile() mixnetFile {
	return mixnetFile{
		Directory: directorySection{Listen: "127.0.0.1:8090", TTL: directory.DefaultTTL},
		Log:       defaultLog(),
	}
}

func bindDirectoryFlags(fs *flag.FlagSet, c *mixnetFile) {
	d := &c.Directory
	fs.StringVar(&d.Listen, "listen", d.Listen, "`ip:port` of the HTTP server")
	fs.StringVar(&d.Data, "data", d.Data, "`folder` of the database (required)")
	fs.DurationVar(&d.TTL, "ttl", d.TTL, "how long a node stays listed without refreshing")
	fs.IntVar(&d.MaxNodes, "max-nodes", d.MaxNodes, "most node identities tracked (0: the default)")
	fs.DurationVar(&d.MaxClockSkew, "max-clock-skew", d.MaxClockSkew, "largest accepted clock difference of a signed request (0: the default)")
	fs.DurationVar(&d.MixDelay, "mix-delay", d.MixDelay, "mean per-hop delay advertised to senders, from which mixnodes bound the delays they honour (0: none; each client uses its own default, 15ms, and mixnodes honour up to 30s)")
	scheduleFlags(fs, &d.Epoch, &d.RotationEpochs)
	fs.StringVar(&d.Peers, "peers", d.Peers, "the other directory authorities, each `URL=KEY`, separated by commas (default: none, a network of one authority)")
	fs.IntVar(&d.Threshold, "threshold", d.Threshold, "authority signatures a topology document needs, this one's included (0: a majority)")
	fs.DurationVar(&d.VoteInterval, "vote-interval", d.VoteInterval, "how often the authority signs its view and fetches its peers' (0: 2s)")
	fs.StringVar(&d.AllowList, "allow-list", d.AllowList, "`file` of the node identity keys admitted, one a line; re-read when it changes and on SIGHUP")
	fs.BoolVar(&d.Open, "open", d.Open, "admit every node identity that signs its registration (local and test networks)")
	fs.Float64Var(&d.RegisterRate, "register-rate", d.RegisterRate, "signed requests a second accepted from one address (0: 20)")
	fs.Float64Var(&d.RegisterRateTotal, "register-rate-total", d.RegisterRateTotal, "signed requests a second accepted in all (0: 500)")
	c.Log.flags(fs)
}

// parsePeers parses --peers: URL=KEY items separated by commas.
func parsePeers(s string) ([]directory.Peer, error) {
	var peers []directory.Peer
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		url, key, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("peer %q is not URL=KEY", item)
		}
		trust, err := directory.ParseTrust([]string{key}, 0)
		if err != nil {
			return nil, fmt.Errorf("peer %s: %v", url, err)
		}
		peers = append(peers, directory.Peer{URL: url, Key: trust.Authorities[0]})
	}
	return peers, nil
}

// loadAllowList reads the allow-list file at path.
func loadAllowList(path string) ([]string, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return directory.ParseAllowList(text)
}

// watchAllowList replaces list's content with the file at path whenever the
// file's modification time or size changes (checked every second) and on
// every value of hup (SIGHUP), until ctx ends. A file that does not parse is
// logged and the list kept as it was.
func watchAllowList(ctx context.Context, path string, list *directory.AllowList, hup <-chan os.Signal, log zerolog.Logger) {
	stamp := func() string {
		fi, err := os.Stat(path)
		if err != nil {
			return ""
		}
		return fmt.Sprint(fi.ModTime().UnixNano(), fi.Size())
	}
	last := stamp()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		why := "changed"
		select {
		case <-ctx.Done():
			return
		case <-hup:
			why = "SIGHUP"
		case <-tick.C:
			now := stamp()
			if now == last {
				continue
			}
			last = now
		}
		n, err := reloadAllowList(path, list)
		if err != nil {
			log.Error().Err(err).Str("file", path).Msg("allow-list not reloaded; keeping the previous one")
			continue
		}
		log.Info().Str("file", path).Str("trigger", why).Int("identities", n).Msg("allow-list reloaded")
	}
}

// reloadAllowList replaces list's content with the file at path and returns
// the number of identities, or changes nothing and returns an error.
func reloadAllowList(path string, list *directory.AllowList) (int, error) {
	ids, err := loadAllowList(path)
	if err == nil {
		err = list.Replace(ids)
	}
	return len(ids), err
}

// runDirectory is `mixnet directory`.
func runDirectory(args []string, stdout, stderr io.Writer) int {
	cmd := command("directory", stdout, stderr)
	cfg := defaultDirectoryFile()
	if err := parseConfig(cmd, args, &cfg, bindDirectoryFlags); err != nil {
		return cmd.Status(err)
	}
	log, err := cli.NewLogger(cmd.Name, stderr, cfg.Log.Level)
	if err != nil {
		return cmd.Status(err)
	}
	d := cfg.Directory
	if d.Open == (d.AllowList != "") {
		return cmd.Status(cmd.Errorf("give exactly one of --allow-list FILE (admit the identities listed) and --open (admit every identity)"))
	}
	peers, err := parsePeers(d.Peers)
	if err != nil {
		return cmd.Status(cmd.Errorf("--peers: %v", err))
	}
	var allow *directory.AllowList
	if d.AllowList != "" {
		ids, err := loadAllowList(d.AllowList)
		if err == nil {
			allow, err = directory.NewAllowList(ids)
		}
		if err != nil {
			return cmd.Status(cmd.Errorf("--allow-list: %v", err))
		}
	}
	if d.Data == "" {
		return cmd.Status(cmd.Errorf("--data is required"))
	}
	key, err := node.LoadAuthorityKey(d.Data)
	if err != nil {
		log.Error().Err(err).Msg("cannot start the directory")
		return cli.ExitError
	}
	defer clear(key)
	srv, err := directory.New(directory.Config{
		DataDir:           d.Data,
		TTL:               d.TTL,
		MaxNodes:          d.MaxNodes,
		MaxClockSkew:      d.MaxClockSkew,
		Params:            advertised(d.MixDelay),
		Schedule:          directory.Schedule{EpochLength: d.Epoch, RotationEpochs: d.RotationEpochs},
		AllowList:         allow,
		RegisterRate:      d.RegisterRate,
		RegisterRateTotal: d.RegisterRateTotal,
		Authority:         &directory.AuthorityConfig{Key: key, Peers: peers, Threshold: d.Threshold, VoteInterval: d.VoteInterval},
		Logger:            log,
	})
	if err != nil {
		log.Error().Err(err).Msg("cannot start the directory")
		return cli.ExitError
	}
	admission := "open"
	if allow != nil {
		admission = fmt.Sprintf("allow-list of %d", allow.Len())
	}
	log.Info().Str("authority_key", address.EncodeKey(key.Public().(ed25519.PublicKey))).Int("peers", len(peers)).
		Str("admission", admission).Msg("directory authority")
	ln, err := net.Listen("tcp", cfg.Directory.Listen)
	if err != nil {
		srv.Close()
		log.Error().Err(err).Msg("cannot listen")
		return cli.ExitError
	}
	log.Info().Str("addr", ln.Addr().String()).Msg("directory listening")
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	ctx, stop := cli.SignalContext(log, nil)
	defer stop()
	if allow != nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go watchAllowList(ctx, d.AllowList, allow, hup, log)
	}
	var failure error
	select {
	case <-ctx.Done():
	case failure = <-served:
		log.Error().Err(failure).Msg("shutting down after a failure")
	}
	if err := srv.Close(); err != nil {
		log.Error().Err(err).Msg("closing the directory")
		return cli.ExitError
	}
	if failure != nil {
		return cli.ExitError
	}
	log.Info().Msg("directory stopped")
	return cli.ExitOK
}

// advertised returns the network parameters a directory publishes with
// the topology: the mean per-hop delay, unless it is 0.
func advertised(mixDelay time.Duration) *directory.Params {
	if mixDelay == 0 {
		return nil
	}
	return &directory.Params{MeanMixDelay: int64(mixDelay)}
}

// scheduleFlags binds the flags of a network's schedule.
func scheduleFlags(fs *flag.FlagSet, epoch *time.Duration, rotation *int) {
	fs.DurationVar(epoch, "epoch", *epoch, "length of the network's epochs, the step of Sphinx key rotation (0: 1h; at least 500ms)")
	fs.IntVar(rotation, "rotation-epochs", *rotation, "epochs each Sphinx key is current for (0: 6; at least 2)")
}

// peakRateFlag binds the flags of a node's replay filter sizing.
func peakRateFlag(fs *flag.FlagSet, rate, falsePositives *float64) {
	fs.Float64Var(rate, "peak-rate", *rate, "packets a second each Sphinx key's replay filter is sized for, over the key's life (0: 500)")
	fs.Float64Var(falsePositives, "replay-fp-rate", *falsePositives, "share of fresh packets a full replay filter may wrongly refuse (0: 1e-5)")
}

// runAuthorityKey is `mixnet authority-key`: it prints the public key of
// the authority whose data folder is --data, making the key on first use,
// so that operators can exchange keys before the authorities start.
func runAuthorityKey(args []string, stdout, stderr io.Writer) int {
	cmd := command("authority-key", stdout, stderr)
	var data string
	bind := func(fs *flag.FlagSet, _ *struct{}) {
		fs.StringVar(&data, "data", "", "`folder` of the authority's data, as given to mixnet directory (required)")
	}
	if err := parseConfig(cmd, args, &struct{}{}, bind); err != nil {
		return cmd.Status(err)
	}
	if data == "" {
		return cmd.Status(cmd.Errorf("--data is required"))
	}
	key, err := node.LoadAuthorityKey(data)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd.Name, err)
		return cli.ExitError
	}
	defer clear(key)
	fmt.Fprintln(stdout, address.EncodeKey(key.Public().(ed25519.PublicKey)))
	return cli.ExitOK
}
