package main

import (
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/peapod-mixnet/peapod/client"
	"github.com/peapod-mixnet/peapod/nymapi"

	"github.com/peapod-mixnet/peapod/internal/cli"
)

// bindRun binds the flags of `client run` to c.
func bindRun(fs *flag.FlagSet, c *clientFile) {
	bindCommon(fs, c)
	bindTuning(fs, c)
	fs.StringVar(&c.Client.Gateway, "gateway", c.Client.Gateway, "base58 `identity` of the gateway to register with on first start")
	fs.StringVar(&c.WebSocket.Listen, "ws", c.WebSocket.Listen, "`ip:port` of the WebSocket API")
	fs.StringVar(&c.Client.Metrics, "metrics", c.Client.Metrics, "`ip:port` of the /metrics and /healthz server (default: none)")
	cli.StringsVar(fs, &c.WebSocket.AllowOrigin, "allow-origin", "let web pages of this `origin` (e.g. http://localhost:5173) connect to the API; "+
		"repeatable. Pages of other origins are refused, so that a web site cannot drive your client")
}

// runRun is `client run`: it runs the client and serves Nym's native
// WebSocket API on --ws until SIGINT or SIGTERM. Once the client is
// connected it prints its address on stdout. It shuts down in order: the
// WebSocket API first (applications see a "going away" close), then the
// client, which saves its state.
func runRun(args []string, stdout, stderr io.Writer) int {
	cfg := defaultClientFile("info")
	cmd := command("run", stdout, stderr)
	p, log, status, ok := setup(cmd, args, &cfg, bindRun)
	if !ok {
		return status
	}
	if err := cmd.NoArgs(p); err != nil {
		return cmd.Status(err)
	}

	ctx, stop := cli.SignalContext(log, nil)
	defer stop()

	// Listen first: a port in use is the likeliest mistake, and the
	// cheapest to report.
	ln, err := net.Listen("tcp", cfg.WebSocket.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "client run: the WebSocket API: %v\n", err)
		return cli.ExitError
	}
	var metrics *metricsServer
	if cfg.Client.Metrics != "" {
		if metrics, err = listenMetrics(cfg.Client.Metrics); err != nil {
			ln.Close()
			fmt.Fprintf(stderr, "client run: the metrics server (--metrics): %v\n", err)
			return cli.ExitError
		}
		// Closed after the client, so that a scrape during shutdown sees
		// /healthz answer 503.
		defer metrics.Close()
	}
	c, err := openClient(cfg.Client.clientConfig(log))
	if err != nil {
		ln.Close()
		fmt.Fprintln(stderr, err)
		return cli.ExitError
	}
	defer func() {
		if err := c.Close(); err != nil {
			log.Error().Err(err).Msg("closing the client")
		}
	}()
	// The client's metrics are served while it connects: a client that
	// cannot reach its gateway shows peapod_client_gateway_connected 0.
	if metrics != nil {
		metrics.Register(client.NewCollector(c))
		metrics.Serve(log)
		log.Info().Str("metrics", metrics.URL()).Msg("serving metrics")
	}
	log.Info().Str("directory", cfg.Client.Directory).Str("data", cfg.Client.Data).Msg("connecting to the mixnet")
	if err := c.Start(ctx); err != nil {
		ln.Close()
		fmt.Fprintf(stderr, "client run: %v\n", err)
		return cli.ExitError
	}

	srv := nymapi.New(cfg.WebSocket.serverConfig(c, log))
	if metrics != nil {
		metrics.Register(nymapi.NewCollector(srv))
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info().Str("address", c.Address().String()).Str("websocket", "ws://"+ln.Addr().String()).
		Strs("allowed_origins", cfg.WebSocket.AllowOrigin).Msg("client running")
	fmt.Fprintln(stdout, c.Address())

	status = cli.ExitOK
	select {
	case <-ctx.Done():
	case err := <-served:
		log.Error().Err(err).Msg("the WebSocket API stopped")
		status = cli.ExitError
	}
	if metrics != nil {
		metrics.Closing()
	}
	if err := srv.Close(); err != nil {
		log.Error().Err(err).Msg("closing the WebSocket API")
	}
	if status == cli.ExitOK {
		if err := <-served; err != nil {
			log.Error().Err(err).Msg("the WebSocket API stopped")
		}
	}
	log.Info().Msg("client stopped")
	return status
}
