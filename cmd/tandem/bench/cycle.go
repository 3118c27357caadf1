package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// idleCycle measures the calls of one whole cycle with nothing to sync. The scheduler would
// start a cycle every interval, and a cycle may take longer than that, so counters read between
// two cycles would mix them. Instead the org's schedule is held: a cycle is claimed with the
// next one a day away, the way the scheduler claims them, and settled without jobs, so that no
// cycle starts. Then cycles are handed to the scheduler one at a time through the cycle outbox
// (as if their claimant had failed to publish them), which publishes each at its next tick; a
// cycle's calls are counted from then until every user has reconciled it and nothing moves.
//
// A cycle handed over while the org's Salesforce poll of an earlier cycle still runs would read
// Exchange only (see the scheduler's pollRunning), and one handed over while a mailbox's read of
// an earlier cycle is still on the bus would not read that mailbox: both are waited out first.
// The cycles before the hold need not be reconciled: the first cycle measured reads for any of
// them that did not poll, and is never the idle one.
//
// The first cycles after convergence still work: they read the echo of Tandem's last writes and
// may write (tag linked pairs, for instance). Cycles are measured one at a time until two in a
// row write nothing; the second of them, which had not even an echo to read, is the idle cycle.
// Everything before it counts as the initial sync's. Then the schedule resumes.
func (r *run) idleCycle(ctx context.Context) error {
	st, org := r.env.Platform.Store, r.env.OrgID
	deadline := time.Now().Add(r.opts.Timeout)
	defer func() {
		// The schedule resumes at the org's interval.
		if err := st.DueNow(context.WithoutCancel(ctx), org); err != nil {
			r.progress("resuming the schedule: %v", err)
		}
	}()
	last, err := claimCycle(ctx, st, org)
	if err != nil {
		return err
	}
	if err := st.CyclePublished(ctx, org, last); err != nil {
		return err
	}
	wrote := true // the cycles before the first one measured may have written
	for measured, raced := 0, 0; ; {
		if measured == maxSettleCycles {
			return fmt.Errorf("%d cycles after convergence, Tandem still writes every cycle", measured)
		}
		if err := r.waitJobsDone(ctx, deadline); err != nil {
			return fmt.Errorf("waiting for the org's jobs before cycle %d: %w", last+1, err)
		}
		if r.opts.beforeHandOver != nil {
			if err := r.opts.beforeHandOver(ctx, r.env, last); err != nil {
				return err
			}
		}
		before := r.calls()
		cycle, err := claimCycle(ctx, st, org)
		if err != nil {
			return err
		}
		if err := st.ReleaseCycle(ctx, org, cycle); err != nil {
			return err
		}
		if cycle != last+1 {
			// The scheduler, woken by claimCycle, started a cycle of its own first. Its poll
			// may run while ours is published, which then reads Exchange only: the next cycle
			// handed over, once that poll has ended, reads for it.
			if raced++; raced == maxRaces {
				return errors.New("the scheduler kept starting cycles while the schedule was held")
			}
			last, wrote = cycle, true
			continue
		}
		if err := r.waitQuiet(ctx, cycle, deadline); errors.Is(err, errPollSkipped) {
			// The org's Salesforce job of an earlier cycle went out after waitJobsDone looked
			// (the scheduler publishes it only after its work for every rep), so this cycle
			// read Exchange only: the next cycle handed over reads for it.
			if raced++; raced == maxRaces {
				return errors.New("the cycles handed over kept finding a Salesforce poll on the bus")
			}
			last, wrote = cycle, true
			continue
		} else if err != nil {
			return fmt.Errorf("waiting for cycle %d: %w", cycle, err)
		}
		sch, err := st.GetSchedule(ctx, org)
		if err != nil {
			return err
		}
		if sch.Cycle != cycle {
			// The scheduler started a cycle while this one was measured: measure again.
			if raced++; raced == maxRaces {
				return errors.New("the scheduler kept starting cycles while the schedule was held")
			}
			last, wrote = sch.Cycle, true
			continue
		}
		last = cycle
		measured++
		used := r.calls().minus(before)
		writes := used.writes()
		if !wrote && writes == 0 {
			r.res.IdleCalls = used.byOperation()
			r.res.IdleCycleEWSCalls, r.res.IdleCycleSalesforceCalls = used.ewsTotal, used.salesforceTotal
			r.settled(before)
			return nil
		}
		r.progress("cycle %d after convergence: %s calls, %d of them writes", cycle, used, writes)
		r.res.SettleCycles++
		wrote = writes > 0
	}
}

// salesforceJobSubject is where the scheduler publishes the environment's org's Salesforce jobs.
func salesforceJobSubject(ctx context.Context, env *devenv.Env) (string, error) {
	org, err := env.Platform.Store.GetOrg(ctx, env.OrgID)
	if err != nil {
		return "", err
	}
	return bus.SalesforceJobSubject(env.OrgID, store.WorkerPool(org))
}

// waitJobsDone waits until the org's jobs are off the bus: no poll, and no mailbox read, queued or
// running. A cycle handed over while a mailbox's job of an earlier cycle is still on the bus would
// not read that mailbox (the scheduler does not queue a read behind another), and the mailbox
// would never reconcile the cycle while the schedule is held.
func (r *run) waitJobsDone(ctx context.Context, deadline time.Time) error {
	for {
		n, err := r.salesforceJobs(ctx)
		if err != nil {
			return err
		}
		reads, err := r.exchangeJobs(ctx)
		if err != nil {
			return err
		}
		if n == 0 && reads == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d Salesforce jobs and %d Exchange jobs still on the bus", n, reads)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// maxSettleCycles bounds the cycles measured after convergence while looking for an idle one.
const maxSettleCycles = 10

// maxRaces bounds the cycles the scheduler may start next to the ones the bench hands over.
const maxRaces = 5

// claimCycle claims the org's next cycle with the one after it a day away. The org's next
// cycle is made due first; if the scheduler claims it before us (it then runs), it tries again.
func claimCycle(ctx context.Context, st *store.Store, org string) (uint64, error) {
	for range 10 {
		if err := st.DueNow(ctx, org); err != nil {
			return 0, err
		}
		now := time.Now()
		cycle, ok, err := st.ClaimCycle(ctx, org, now, now.Add(24*time.Hour))
		if err != nil || ok {
			return cycle, err
		}
	}
	return 0, errors.New("could not claim a cycle: the scheduler always claimed it first")
}

// errPollSkipped: the cycle waited for read Exchange only, and no Salesforce poll is coming
// for it (see pollSkipped).
var errPollSkipped = errors.New("the cycle did not poll Salesforce")

// skippedFor is how long pollSkipped must hold before waitQuiet gives a cycle up: the pages of
// a poll that has just ended may still be on their way to the reconciler.
const skippedFor = 3 * time.Second

// waitQuiet waits until every user has reconciled cycle (both sides read up to it and planned),
// no write is pending, and the simulators' counters stay unchanged between two checks. It
// returns errPollSkipped when the cycle read Exchange only and no Salesforce poll is coming.
func (r *run) waitQuiet(ctx context.Context, cycle uint64, deadline time.Time) error {
	led := ledger.New(r.env.Platform.Store)
	var prev callCounts
	var skippedSince time.Time
	stable := 0
	for {
		behind, err := r.behind(ctx, led, cycle)
		if err != nil {
			return err
		}
		skipped := false
		if len(behind) > 0 {
			if skipped, err = r.pollSkipped(ctx, behind, cycle); err != nil {
				return err
			}
		}
		switch {
		case !skipped:
			skippedSince = time.Time{}
		case skippedSince.IsZero():
			skippedSince = time.Now()
		case time.Since(skippedSince) >= skippedFor:
			return errPollSkipped
		}
		reason := ""
		if len(behind) > 0 {
			var at []string
			for email, c := range behind {
				at = append(at, fmt.Sprintf("%s at %d", email, c.Reconciled))
			}
			reason = fmt.Sprintf("%d users have not reconciled cycle %d yet: %s", len(behind), cycle, firstLines(at, 3))
		} else if pending, err := r.pendingWrites(ctx); err != nil {
			return err
		} else if pending > 0 {
			reason = fmt.Sprintf("%d writes pending", pending)
		}
		now := r.calls()
		if reason == "" && now.ewsTotal == prev.ewsTotal && now.salesforceTotal == prev.salesforceTotal {
			stable++
		} else {
			stable = 0
		}
		if stable >= 2 {
			return nil
		}
		if reason == "" {
			reason = "calls still being made"
		}
		prev = now
		if time.Now().After(deadline) {
			return errors.New(reason)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// pendingWrites counts the writes the users' statuses show in flight (as the progress of
// `tandem dev` does, without its comparison of both simulators).
func (r *run) pendingWrites(ctx context.Context) (int64, error) {
	stat := status.New(r.env.Platform.Store)
	var n int64
	for id := range r.env.Mailboxes {
		us, err := stat.Get(ctx, store.UserKey{OrgID: r.env.OrgID, UserID: id})
		if err != nil {
			return 0, err
		}
		for _, k := range us.GetKinds() {
			n += k.GetPendingWrites()
		}
	}
	return n, nil
}

// pollSkipped reports whether every user behind (see behind) has Exchange read up to cycle but
// not Salesforce, while no Salesforce job is on the bus: the cycle's poll was skipped (the
// scheduler's pollRunning), and only a later cycle's poll will read for it.
func (r *run) pollSkipped(ctx context.Context, behind map[string]ledger.Cycle, cycle uint64) (bool, error) {
	exchange, salesforce := store.SideName(tandemv1.System_SYSTEM_EXCHANGE), store.SideName(tandemv1.System_SYSTEM_SALESFORCE)
	for _, c := range behind {
		if c.Ready[exchange] < cycle || c.Ready[salesforce] >= cycle {
			return false, nil
		}
	}
	n, err := r.salesforceJobs(ctx)
	return n == 0, err
}

// salesforceJobs counts the org's Salesforce jobs on the bus: queued or being polled.
func (r *run) salesforceJobs(ctx context.Context) (uint64, error) {
	subject, err := salesforceJobSubject(ctx, r.env)
	if err != nil {
		return 0, err
	}
	return r.env.Platform.Bus.Stored(ctx, subject)
}

// exchangeJobs counts the org's Exchange jobs on the bus, queued or running.
func (r *run) exchangeJobs(ctx context.Context) (uint64, error) {
	org, err := r.env.Platform.Store.GetOrg(ctx, r.env.OrgID)
	if err != nil {
		return 0, err
	}
	stored, err := r.env.Platform.Bus.ExchangeJobsStored(ctx, r.env.OrgID, store.WorkerPool(org))
	var n uint64
	for _, c := range stored {
		n += c
	}
	return n, err
}

// behind returns, by email, the cycle bookkeeping of the users whose contacts have not been
// reconciled up to cycle.
func (r *run) behind(ctx context.Context, led *ledger.Ledger, cycle uint64) (map[string]ledger.Cycle, error) {
	out := map[string]ledger.Cycle{}
	for id, email := range r.env.Mailboxes {
		c, err := led.LoadCycle(ctx, store.UserKey{OrgID: r.env.OrgID, UserID: id}, tandemv1.RecordKind_RECORD_KIND_CONTACT)
		if err != nil {
			return nil, err
		}
		if c.Reconciled < cycle {
			out[email] = c
		}
	}
	return out, nil
}
