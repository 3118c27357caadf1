package retry_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/retry"
	"github.com/tandem-sync/tandem/pkg/syncerr"
)

func TestDelayGrowsAndIsCapped(t *testing.T) {
	p := retry.Policy{Base: time.Second, Max: 5 * time.Minute}
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{-1, time.Second},
		{0, time.Second},
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{9, 256 * time.Second},
		{10, 5 * time.Minute},
		{1000, 5 * time.Minute},
		{int(^uint(0) >> 1), 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.attempt), func(t *testing.T) {
			if got := p.Delay(tt.attempt); got != tt.want {
				t.Fatalf("Delay(%d) without jitter = %s, want %s", tt.attempt, got, tt.want)
			}
		})
	}
}

func TestDelayJitterStaysWithinBounds(t *testing.T) {
	// The library rounds to whole nanoseconds; bounds allow for that and nothing more.
	const slack = 2 * time.Nanosecond
	tests := []struct {
		name    string
		policy  retry.Policy
		attempt int
		nominal time.Duration
	}{
		{"first", retry.Policy{Base: time.Second, Max: 5 * time.Minute, Jitter: 0.5}, 1, time.Second},
		{"grown", retry.Policy{Base: time.Second, Max: 5 * time.Minute, Jitter: 0.5}, 4, 8 * time.Second},
		{"at the cap", retry.Policy{Base: time.Second, Max: 5 * time.Minute, Jitter: 0.5}, 50, 5 * time.Minute},
		{"small jitter", retry.Policy{Base: 100 * time.Millisecond, Max: time.Second, Jitter: 0.1}, 3, 400 * time.Millisecond},
		{"full jitter", retry.Policy{Base: 100 * time.Millisecond, Max: time.Second, Jitter: 1}, 2, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo := time.Duration(float64(tt.nominal)*(1-tt.policy.Jitter)) - slack
			var seen []time.Duration
			for range 500 {
				got := tt.policy.Delay(tt.attempt)
				if got < lo || got > tt.nominal {
					t.Fatalf("Delay(%d) = %s, want within [%s, %s]", tt.attempt, got, lo, tt.nominal)
				}
				seen = append(seen, got)
			}
			// Spread over the range: 500 draws all in one half would be a broken jitter.
			mid := tt.nominal - time.Duration(float64(tt.nominal)*tt.policy.Jitter/2)
			if slices.Min(seen) >= mid || slices.Max(seen) <= mid {
				t.Errorf("delays %s..%s do not spread around %s", slices.Min(seen), slices.Max(seen), mid)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := retry.Policy{Base: time.Second, Max: time.Minute, Jitter: retry.DefaultJitter, Attempts: 3}
	tests := []struct {
		name   string
		change func(*retry.Policy)
		ok     bool
	}{
		{"good", func(*retry.Policy) {}, true},
		{"no cap growth", func(p *retry.Policy) { p.Max = p.Base }, true},
		{"no base", func(p *retry.Policy) { p.Base = 0 }, false},
		{"cap below base", func(p *retry.Policy) { p.Max = time.Millisecond }, false},
		{"negative jitter", func(p *retry.Policy) { p.Jitter = -0.1 }, false},
		{"jitter above one", func(p *retry.Policy) { p.Jitter = 1.5 }, false},
		{"negative attempts", func(p *retry.Policy) { p.Attempts = -1 }, false},
		{"negative server delay", func(p *retry.Policy) { p.MaxServerDelay = -time.Second }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			tt.change(&p)
			if err := p.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate(%+v) = %v, want ok %v", p, err, tt.ok)
			}
		})
	}
}

func TestServerDelayWins(t *testing.T) {
	p := retry.Policy{Base: time.Second, Max: time.Minute, Jitter: retry.DefaultJitter}
	busy := &syncerr.Error{Code: syncerr.ExchangeServerBusy, Delay: 42 * time.Second}
	tests := []struct {
		name     string
		err      error
		attempt  int
		min, max time.Duration
	}{
		{"catalogue error", busy, 5, 42 * time.Second, 42 * time.Second},
		{"wrapped", fmt.Errorf("sync folder: %w", busy), 1, 42 * time.Second, 42 * time.Second},
		{"shorter than the policy's own", retry.After(errors.New("503"), 10*time.Millisecond), 6, 10 * time.Millisecond, 10 * time.Millisecond},
		{"outermost wins", retry.After(busy, 3*time.Second), 1, 3 * time.Second, 3 * time.Second},
		{"no delay asked", syncerr.New(syncerr.ExchangeTimeout, "slow"), 2, time.Second, 2 * time.Second},
		{"negative asks nothing", retry.After(errors.New("x"), -time.Second), 1, 500 * time.Millisecond, time.Second},
		{"plain", errors.New("boom"), 1, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.DelayFor(tt.err, tt.attempt); got < tt.min || got > tt.max {
				t.Fatalf("DelayFor = %s, want within [%s, %s]", got, tt.min, tt.max)
			}
		})
	}
}

func TestPermanentClassification(t *testing.T) {
	base := errors.New("bad request")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"plain", base, false},
		{"marked", retry.Permanent(base), true},
		{"marked and wrapped", fmt.Errorf("create: %w", retry.Permanent(base)), true},
		{"retryable catalogue error", syncerr.New(syncerr.ExchangeServerBusy, "busy"), false},
		{"permanent catalogue error", syncerr.New(syncerr.ExchangeImpersonationDenied, "denied"), true},
		{"reclassified by wrapping", retry.Permanent(syncerr.New(syncerr.ExchangeServerBusy, "busy")), true},
		{"nil", retry.Permanent(nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retry.IsPermanent(tt.err); got != tt.want {
				t.Fatalf("IsPermanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	if !errors.Is(retry.Permanent(base), base) || !errors.Is(retry.Abort(base), base) || !errors.Is(retry.After(base, 1), base) {
		t.Error("a marker hides the error it wraps")
	}
}

// script is an operation failing with errs in turn, then succeeding.
type script struct {
	errs  []error
	calls int
}

func (s *script) op(context.Context) error {
	s.calls++
	if s.calls <= len(s.errs) {
		return s.errs[s.calls-1]
	}
	return nil
}

func TestDo(t *testing.T) {
	transient := errors.New("connection reset")
	fatal := errors.New("schema validation")
	busyLong := &syncerr.Error{Code: syncerr.ExchangeServerBusy, Delay: 5 * time.Minute}
	denied := syncerr.New(syncerr.ExchangeAccessDenied, "no")
	policy := retry.Policy{Base: 100 * time.Millisecond, Max: 400 * time.Millisecond, Attempts: 5, MaxServerDelay: time.Minute}
	tests := []struct {
		name    string
		policy  retry.Policy
		errs    []error
		wantErr error // nil: success
		calls   int
		waits   []time.Duration
	}{
		{name: "first try", policy: policy, calls: 1},
		{name: "recovers", policy: policy, errs: []error{transient, transient, transient}, calls: 4,
			waits: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}},
		{name: "capped and bounded", policy: policy, errs: []error{transient, transient, transient, transient, transient, transient}, wantErr: transient, calls: 5,
			waits: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 400 * time.Millisecond}},
		{name: "unbounded attempts", policy: retry.Policy{Base: time.Millisecond, Max: time.Millisecond}, errs: slices.Repeat([]error{transient}, 20), calls: 21,
			waits: slices.Repeat([]time.Duration{time.Millisecond}, 20)},
		{name: "server delay wins", policy: policy, errs: []error{retry.After(transient, 30*time.Second), transient}, calls: 3,
			waits: []time.Duration{30 * time.Second, 200 * time.Millisecond}},
		{name: "server delay too long for a goroutine", policy: policy, errs: []error{transient, busyLong},
			wantErr: busyLong, calls: 2, waits: []time.Duration{100 * time.Millisecond}},
		{name: "permanent stops", policy: policy, errs: []error{transient, retry.Permanent(fatal)}, wantErr: fatal, calls: 2,
			waits: []time.Duration{100 * time.Millisecond}},
		{name: "permanent catalogue error stops", policy: policy, errs: []error{denied},
			wantErr: denied, calls: 1},
		{name: "abort stops", policy: policy, errs: []error{retry.Abort(transient)}, wantErr: transient, calls: 1},
		{name: "wrapped abort stops too", policy: policy, errs: []error{fmt.Errorf("send: %w", retry.Abort(transient))}, wantErr: transient, calls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &script{errs: tt.errs}
			var waits, notified []time.Duration
			err := retry.Do(t.Context(), tt.policy, s.op,
				retry.WithSleep(func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return ctx.Err() }),
				retry.OnRetry(func(_ error, attempt int, d time.Duration) {
					if attempt != len(notified)+1 {
						t.Errorf("OnRetry attempt %d, want %d", attempt, len(notified)+1)
					}
					notified = append(notified, d)
				}))
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Do = %v, want success", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Do = %v, want %v", err, tt.wantErr)
			}
			if s.calls != tt.calls {
				t.Errorf("%d calls, want %d", s.calls, tt.calls)
			}
			if !slices.Equal(waits, tt.waits) || !slices.Equal(notified, tt.waits) {
				t.Errorf("waited %v (notified %v), want %v", waits, notified, tt.waits)
			}
			var abort interface{ Unwrap() error }
			if errors.As(err, &abort) && fmt.Sprintf("%T", abort) == "*retry.abortError" {
				t.Errorf("Do returned the Abort wrapper: %#v", err)
			}
		})
	}
}

func TestDoStopsPromptlyWhenTheContextEnds(t *testing.T) {
	transient := errors.New("connection refused")
	t.Run("during a wait", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		calls := 0
		waiting := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			// An hour's wait that only cancellation can end: the real Sleep.
			done <- retry.Do(ctx, retry.Policy{Base: time.Hour, Max: time.Hour}, func(context.Context) error {
				calls++
				return transient
			}, retry.OnRetry(func(error, int, time.Duration) { close(waiting) }))
		}()
		<-waiting
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) || calls != 1 {
				t.Fatalf("Do = %v after %d calls, want cancellation after 1", err, calls)
			}
			if want := "last attempt: connection refused"; !containsText(err, want) {
				t.Errorf("error %q does not name the last failure", err)
			}
		case <-time.After(time.Minute): // a bound for a hang, not a timing assertion
			t.Fatal("Do kept waiting after its context ended")
		}
	})
	t.Run("seen by the operation", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		calls := 0
		err := retry.Do(ctx, retry.Policy{Base: time.Millisecond, Max: time.Millisecond}, func(ctx context.Context) error {
			calls++
			cancel()
			return fmt.Errorf("read: %w", ctx.Err())
		})
		if !errors.Is(err, context.Canceled) || calls != 1 || containsText(err, "last attempt") {
			t.Fatalf("Do = %v after %d calls, want the operation's own error after 1", err, calls)
		}
	})
}

func TestSleep(t *testing.T) {
	if err := retry.Sleep(t.Context(), time.Microsecond); err != nil {
		t.Fatalf("Sleep = %v", err)
	}
	if err := retry.Sleep(t.Context(), 0); err != nil {
		t.Fatalf("Sleep(0) = %v", err)
	}
	ctx, cancel := context.WithCancelCause(t.Context())
	stop := errors.New("shutting down")
	cancel(stop)
	if err := retry.Sleep(ctx, time.Hour); !errors.Is(err, stop) {
		t.Fatalf("Sleep after cancel = %v, want the cause", err)
	}
}

func containsText(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}
