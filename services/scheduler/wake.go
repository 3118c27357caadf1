package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/tandem-sync/tandem/pkg/retry"
	"github.com/tandem-sync/tandem/pkg/telemetry"
)

// wakeBackoff spaces the attempts to listen to wakes again after Redis failed.
var wakeBackoff = retry.Policy{Base: time.Second, Max: time.Minute, Jitter: retry.DefaultJitter}

// wakes starts an org's cycle as soon as a wake (store.WakeAfter: a mailbox reported a change)
// makes it due, instead of at the next tick. It only saves time: the tick still finds every
// org that is due, so a wake this misses (Redis unreachable for a moment) costs at most a tick.
func (s *Scheduler) wakes(ctx context.Context) error {
	for failures := 0; ; failures++ {
		err := s.listenWakes(ctx)
		if ctx.Err() != nil {
			return nil
		}
		delay := wakeBackoff.Delay(failures + 1)
		s.log.WarnContext(ctx, "listening to wakes", slog.Any("error", err), slog.Duration("retry_in", delay))
		if retry.Sleep(ctx, delay) != nil {
			return nil
		}
	}
}

// listenWakes starts each woken org's cycle when it falls due, until ctx ends or the signals do.
func (s *Scheduler) listenWakes(ctx context.Context) error {
	signals, err := s.st.WakeSignals(ctx)
	if err != nil {
		return err
	}
	pending := map[string]time.Time{}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case sig, ok := <-signals:
			if !ok {
				return errors.New("the wake signals ended")
			}
			if due, ok := pending[sig.OrgID]; !ok || sig.Due.Before(due) {
				pending[sig.OrgID] = sig.Due
			}
		case <-timer.C:
		}
		now := s.now()
		var next time.Time
		for orgID, due := range pending {
			if !due.After(now) {
				delete(pending, orgID)
				s.wakeOrg(ctx, orgID)
				continue
			}
			if next.IsZero() || due.Before(next) {
				next = due
			}
		}
		timer.Reset(time.Hour)
		if !next.IsZero() {
			timer.Reset(next.Sub(now))
		}
	}
}

// wakeOrg starts the org's cycle if it is due, as a tick would.
func (s *Scheduler) wakeOrg(ctx context.Context, orgID string) {
	org, err := s.st.GetOrg(ctx, orgID)
	if err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "woken org", slog.String(telemetry.KeyOrg, orgID), slog.Any("error", err))
		}
		return
	}
	if !org.GetEnabled() {
		return
	}
	if err := s.scheduleOrg(ctx, org); err != nil && ctx.Err() == nil {
		s.log.ErrorContext(ctx, "schedule woken org", slog.String(telemetry.KeyOrg, orgID), slog.Any("error", err))
	}
}
