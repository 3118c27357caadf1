package bench

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
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
