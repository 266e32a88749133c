package testnet

import (
	"context"
	"fmt"
	"time"
)

// pollUntil polls cond every interval until it returns true or ctx ends,
// for state that signals nothing (metrics, the process table).
func pollUntil(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
