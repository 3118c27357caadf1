package lifecycle

import (
	"context"
	"time"
)

// Every runs fn at once and then every interval until ctx ends, and returns nil then: the body
// of a component that keeps something in step (a schedule, a set of subscriptions). An error
// fn returns while ctx is live goes to failed, and the next round tries again.
func Every(ctx context.Context, interval time.Duration, fn func(context.Context) error, failed func(error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			failed(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Paced runs fn at once and then again after the delay fn returns, until ctx ends, and returns
// nil then: Every for a component whose next round depends on what this one found (a lease
// to retry when it expires, a refresh due sooner). An error fn returns while ctx is live goes to
// failed; the delay fn returned with it still applies.
func Paced(ctx context.Context, fn func(context.Context) (time.Duration, error), failed func(error)) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		next, err := fn(ctx)
		if err != nil && ctx.Err() == nil {
			failed(err)
		}
		timer.Reset(next)
	}
}
