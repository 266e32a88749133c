package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"
)

// shutdownSignals are the signals that stop the provider.
var shutdownSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// signalContext returns a context that ends at the first SIGINT or SIGTERM;
// from then on, a second one calls force and exits the process at once with
// status 1, so a shutdown that hangs can always be cut short. stop releases
// the signals.
func signalContext(log zerolog.Logger, force func()) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, shutdownSignals...)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			log.Info().Str("signal", sig.String()).Msg("shutting down; send it again to exit at once")
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			log.Warn().Str("signal", sig.String()).Msg("second signal: exiting now")
			force()
			os.Exit(exitError)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}
