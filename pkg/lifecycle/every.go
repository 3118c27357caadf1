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
