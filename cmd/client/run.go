package main

import (
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/peapod-mixnet/peapod/nymapi"
)

// runRun is `client run`: it runs the client and serves Nym's native
// WebSocket API on --ws until SIGINT or SIGTERM. Once the client is
// connected it prints its address on stdout. It shuts down in order: the
// WebSocket API first (applications see a "going away" close), then the
// client, which saves its state.
func runRun(args []string, stdout, stderr io.Writer) int {
	cfg := defaultClientFile("info")
	p, log, status, ok := setup("run", args, stderr, &cfg, func(fs *flag.FlagSet, c *clientFile) {
		bindCommon(fs, c)
		bindTuning(fs, c)
		fs.StringVar(&c.Client.Gateway, "gateway", c.Client.Gateway, "base58 `identity` of the gateway to register with on first start")
		fs.StringVar(&c.WebSocket.Listen, "ws", c.WebSocket.Listen, "`ip:port` of the WebSocket API")
	})
	if !ok {
		return status
	}
	if len(p.rest) > 0 {
		return usageStatus(stderr, fmt.Errorf("client run: unexpected argument %q", p.rest[0]))
	}

	ctx, stop := signalContext(log)
	defer stop()

	// Listen first: a port in use is the likeliest mistake, and the
	// cheapest to report.
	ln, err := net.Listen("tcp", cfg.WebSocket.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "client run: the WebSocket API: %v\n", err)
		return exitError
	}
	c, err := openClient(cfg.Client.clientConfig(log))
	if err != nil {
		ln.Close()
		fmt.Fprintln(stderr, err)
		return exitError
	}
	defer func() {
		if err := c.Close(); err != nil {
			log.Error().Err(err).Msg("closing the client")
		}
	}()
	log.Info().Str("directory", cfg.Client.Directory).Str("data", cfg.Client.Data).Msg("connecting to the mixnet")
	if err := c.Start(ctx); err != nil {
		ln.Close()
		fmt.Fprintf(stderr, "client run: %v\n", err)
		return exitError
	}

	srv := nymapi.New(cfg.WebSocket.serverConfig(c, log))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info().Str("address", c.Address().String()).Str("websocket", "ws://"+ln.Addr().String()).Msg("client running")
	fmt.Fprintln(stdout, c.Address())

	status = exitOK
	select {
	case <-ctx.Done():
	case err := <-served:
		log.Error().Err(err).Msg("the WebSocket API stopped")
		status = exitError
	}
	if err := srv.Close(); err != nil {
		log.Error().Err(err).Msg("closing the WebSocket API")
	}
	if status == exitOK {
		if err := <-served; err != nil {
			log.Error().Err(err).Msg("the WebSocket API stopped")
		}
	}
	log.Info().Msg("client stopped")
	return status
}
