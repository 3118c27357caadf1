package retry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// DefaultJitter is the share of each delay that is random in the policies Tandem uses: half,
// so that clients failing together (an upstream outage) spread their retries without any
// delay collapsing towards zero.
const DefaultJitter = 0.5

// maxSteps bounds the doublings Delay computes: 2^63 nanoseconds exceed any cap, so later
// attempts all sit at the cap.
const maxSteps = 64

// Policy is an exponential back-off with jitter and a cap. The zero Policy never waits and
// retries until the context ends; real ones set Base and Max.
type Policy struct {
	// Base is the nominal delay after the first failure; it doubles with every further one.
	Base time.Duration
	// Max caps the delay: no delay the policy computes exceeds it. Below Base it counts as Base.
	Max time.Duration
	// Jitter is the share of each delay that is random, in [0, 1]: the delay after a failure
	// with nominal delay d lies in [(1-Jitter)·d, d]. Zero makes delays exact (for a time an
	// admin is shown, say); DefaultJitter suits anything many clients do at once.
	Jitter float64
	// Attempts is the most times Do calls the operation; zero means until the context ends.
	Attempts int
	// MaxServerDelay is the longest delay an error may ask for (RetryAfter) that Do still
	// waits out; a longer one ends Do with that error, so that the caller can schedule the
	// pause instead of a goroutine sleeping through it. Zero means no limit.
	MaxServerDelay time.Duration
}

// Validate reports settings that cannot describe a back-off.
func (p Policy) Validate() error {
	switch {
	case p.Base <= 0:
		return fmt.Errorf("retry: base delay %s must be positive", p.Base)
	case p.Max < p.Base:
		return fmt.Errorf("retry: maximum delay %s is below the base delay %s", p.Max, p.Base)
	case p.Jitter < 0 || p.Jitter > 1:
		return fmt.Errorf("retry: jitter %g outside [0, 1]", p.Jitter)
	case p.Attempts < 0:
		return fmt.Errorf("retry: %d attempts", p.Attempts)
	case p.MaxServerDelay < 0:
		return fmt.Errorf("retry: maximum server delay %s is negative", p.MaxServerDelay)
	}
	return nil
}

// Delay is how long to wait after the attempt-th consecutive failure (1 for the first): Base
// doubled attempt-1 times, capped at Max, with its random share taken off. It depends only on
// attempt, so a redelivery counted by the broker (NumDelivered) gets the same delay as a loop's
// attempt. Attempts below 1 count as 1.
func (p Policy) Delay(attempt int) time.Duration {
	if p.Base <= 0 {
		return 0
	}
	limit := max(p.Max, p.Base)
	jitter := min(max(p.Jitter, 0), 1)
	// The library randomises symmetrically, ±f around its interval, and caps the interval, not
	// the delay. Centring its interval at (1-J/2) of the nominal delay with f = (J/2)/(1-J/2)
	// makes the delay span exactly [(1-J)·d, d], so the cap holds and stays jittered.
	centre := 1 - jitter/2
	b := &backoff.ExponentialBackOff{
		InitialInterval:     time.Duration(float64(p.Base) * centre),
		RandomizationFactor: (jitter / 2) / centre,
		Multiplier:          2,
		MaxInterval:         time.Duration(float64(limit) * centre),
	}
	b.Reset()
	var d time.Duration
	for range min(max(attempt, 1), maxSteps) {
		d = b.NextBackOff()
	}
	// The library's rounding may overshoot by a nanosecond.
	return min(d, limit)
}

// DelayFor is how long to wait after the attempt-th failure with err: the delay err asks for
// (ServerDelay) when it asks for one — the server knows when it will take the request again —
// and Delay(attempt) otherwise.
func (p Policy) DelayFor(err error, attempt int) time.Duration {
	if d := ServerDelay(err); d > 0 {
		return d
	}
	return p.Delay(attempt)
}

// Option adjusts one call of Do.
type Option func(*doOptions)

type doOptions struct {
	onRetry func(err error, attempt int, delay time.Duration)
	sleep   func(context.Context, time.Duration) error
}

// OnRetry has Do call f before each wait, with the failure, the attempt that failed (1 for
// the first) and the delay it is about to wait: where callers log retries.
func OnRetry(f func(err error, attempt int, delay time.Duration)) Option {
	return func(o *doOptions) { o.onRetry = f }
}

// WithSleep replaces how Do waits (Sleep by default); tests use it to record the delays
// without spending them. sleep must return an error when ctx ends.
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(o *doOptions) { o.sleep = sleep }
}

// Do calls op until it succeeds, waiting between attempts as p says. It stops and returns op's
// error when:
//   - the error is permanent (IsPermanent) or wrapped with Abort (the wrapper removed when it is
//     the outermost one, which it should be);
//   - p.Attempts attempts have been made;
//   - the error asks for a delay longer than p.MaxServerDelay;
//   - ctx has ended by the time op returns (op's error is returned as it is: op saw the end).
//
// If ctx ends during a wait, Do returns at once with ctx's error, which names the last failure.
func Do(ctx context.Context, p Policy, op func(ctx context.Context) error, opts ...Option) error {
	o := doOptions{sleep: Sleep}
	for _, opt := range opts {
		opt(&o)
	}
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if abort, ok := err.(*abortError); ok { //nolint:errorlint // only an outermost wrapper is removed
			return abort.err
		}
		var abort *abortError
		if errors.As(err, &abort) || ctx.Err() != nil || IsPermanent(err) || (p.Attempts > 0 && attempt >= p.Attempts) {
			return err
		}
		server := ServerDelay(err)
		if p.MaxServerDelay > 0 && server > p.MaxServerDelay {
			return err
		}
		delay := p.DelayFor(err, attempt)
		if o.onRetry != nil {
			o.onRetry(err, attempt, delay)
		}
		if serr := o.sleep(ctx, delay); serr != nil {
			// The wait's end is the cause; the last failure is told, not wrapped, so that
			// callers do not take its classification for the outcome.
			return fmt.Errorf("%w (last attempt: %v)", serr, err) //nolint:errorlint // see above
		}
	}
}

// Sleep waits d, or until ctx ends, when it returns ctx's error (its cause, if it has one).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return context.Cause(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
