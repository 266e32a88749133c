package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"
)

// shutdownSignals are the signals that stop a command.
var shutdownSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// SignalContext returns a context that ends at the first SIGINT or SIGTERM,
// when the command should shut down gracefully. From then on, a second one
// calls force (when not nil: it must not block) and exits the process at
// once with ExitError, so a shutdown that hangs can always be cut short.
// stop releases the signals; call it once the shutdown is over.
func SignalContext(log zerolog.Logger, force func()) (ctx context.Context, stop func()) {
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
			if force != nil {
				force()
			}
			os.Exit(ExitError)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}
