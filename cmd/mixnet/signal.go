package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"
)

// shutdownSignals are the signals that stop a process.
var shutdownSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// awaitShutdown blocks until SIGINT or SIGTERM arrives or failed yields an
// error (a component that stopped on its own), and returns that error. From
// then on, a second signal exits the process at once with status 1, so a
// shutdown that hangs can always be cut short.
func awaitShutdown(log zerolog.Logger, failed <-chan error) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, shutdownSignals...)
	var err error
	select {
	case sig := <-sigs:
		log.Info().Str("signal", sig.String()).Msg("shutting down; send it again to exit at once")
	case err = <-failed:
		log.Error().Err(err).Msg("shutting down after a failure")
	}
	go func() {
		sig := <-sigs
		log.Warn().Str("signal", sig.String()).Msg("second signal: exiting now")
		os.Exit(exitError)
	}()
	return err
}
