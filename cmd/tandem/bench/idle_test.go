package bench

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// TestIdleCycleAfterASkippedPoll measures the idle cycle while every Salesforce poll takes
// longer than the sync interval, starting right after a cycle that did not poll because the
// org's poll of an earlier cycle was still running (the scheduler's pollRunning). The next
// poll reads for that cycle; a measurement that waited for it to be reconciled while holding
// the schedule would wait until its timeout (12 s here, a few times what the run needs).
func TestIdleCycleAfterASkippedPoll(t *testing.T) {
	opts := Options{Users: 2, ContactsPerUser: 10, Interval: 300 * time.Millisecond, Timeout: 12 * time.Second,
		SkipFloor: true, Log: io.Discard, LogLevel: "warn"}
	opts.beforeIdle = func(ctx context.Context, env *devenv.Env) error {
		for _, endpoint := range []string{sfsim.EndpointQuery, sfsim.EndpointQueryAll} {
			env.Salesforce.InjectFault(sfsim.Fault{Endpoint: endpoint, Kind: sfsim.FaultSlow, Delay: time.Second, Times: sfsim.Always})
		}
		return skippedPoll(ctx, env)
	}
	res, err := Run(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Converged {
		t.Fatalf("not converged: %s", res.Reason)
	}
	if res.IdleCycleSalesforceCalls < res.MinIdleCycleSalesforceCalls || res.IdleCycleEWSCalls < res.MinIdleCycleEWSCalls {
		t.Errorf("idle cycle: EWS %d (minimum %d), Salesforce %d (minimum %d): a side was not read",
			res.IdleCycleEWSCalls, res.MinIdleCycleEWSCalls, res.IdleCycleSalesforceCalls, res.MinIdleCycleSalesforceCalls)
	}
}

// skippedPoll returns once a cycle has started while the org's Salesforce poll of an earlier
// cycle was on the bus: that cycle read Exchange only.
func skippedPoll(ctx context.Context, env *devenv.Env) error {
	subject, err := salesforceJobSubject(ctx, env)
	if err != nil {
		return err
	}
	var polling uint64 // the schedule's cycle when a poll was first seen on the bus; 0: none
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		n, err := env.Platform.Bus.Stored(ctx, subject)
		if err != nil {
			return err
		}
		sch, err := env.Platform.Store.GetSchedule(ctx, env.OrgID)
		if err != nil {
			return err
		}
		switch {
		case n == 0:
			polling = 0
		case polling == 0:
			polling = sch.Cycle
		case sch.Cycle > polling:
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return errors.New("no cycle started while a poll ran")
}

// TestIdleCycleWhenAPollGoesOutLate: the org's Salesforce job of the cycle before the hold goes
// out only after the measurement saw the bus empty — as when the scheduler, which publishes it
// only after its work for a hundred reps, is still starting that cycle — so the cycle handed over
// next reads Exchange only and no poll is coming for it. The measurement gives that cycle up
// and hands over the next, which reads for it, instead of waiting until its timeout.
func TestIdleCycleWhenAPollGoesOutLate(t *testing.T) {
	opts := Options{Users: 2, ContactsPerUser: 10, Interval: 300 * time.Millisecond, Timeout: 20 * time.Second,
		SkipFloor: true, Log: io.Discard, LogLevel: "warn"}
	late := false
	opts.beforeHandOver = func(ctx context.Context, env *devenv.Env, last uint64) error {
		if late {
			return nil
		}
		late = true
		// Slow enough to be on the bus when the cycle handed over goes out.
		env.Salesforce.InjectFault(sfsim.Fault{Endpoint: sfsim.EndpointQueryAll, Kind: sfsim.FaultSlow, Delay: 2 * time.Second, Times: 1})
		subject, err := salesforceJobSubject(ctx, env)
		if err != nil {
			return err
		}
		job := &tandemv1.SyncJob{OrgId: env.OrgID, System: tandemv1.System_SYSTEM_SALESFORCE, Cycle: last,
			Kinds: []tandemv1.RecordKind{tandemv1.RecordKind_RECORD_KIND_CONTACT}}
		for id := range env.Mailboxes {
			job.UserIds = append(job.UserIds, id)
		}
		return env.Platform.Bus.Publish(ctx, subject, job, "late-salesforce-job")
	}
	res, err := Run(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !late {
		t.Fatal("no cycle was handed over")
	}
	if !res.Converged {
		t.Fatalf("not converged: %s", res.Reason)
	}
	if res.IdleCycleSalesforceCalls < res.MinIdleCycleSalesforceCalls || res.IdleCycleEWSCalls < res.MinIdleCycleEWSCalls {
		t.Errorf("idle cycle: EWS %d (minimum %d), Salesforce %d (minimum %d): a side was not read",
			res.IdleCycleEWSCalls, res.MinIdleCycleEWSCalls, res.IdleCycleSalesforceCalls, res.MinIdleCycleSalesforceCalls)
	}
}
