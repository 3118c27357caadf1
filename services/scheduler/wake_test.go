package scheduler_test

import (
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
)

// TestWakeStartsACycleWithoutATick: with ticks an hour apart, a wake starts the org's next
// cycle as soon as it is due, the minimum gap after the last one.
func TestWakeStartsACycleWithoutATick(t *testing.T) {
	cfg := testConfig()
	cfg.Tick = time.Hour
	e := newEnv(t, cfg)
	e.putOrg(t, org(orgA))
	e.putUsers(t, orgA, user(user1, true))
	e.putConfig(t, orgA, contactsOnly(user1))
	e.p.Run(t, "scheduler", e.sched.Components()...)
	// The first tick starts the first cycle at once: a Salesforce and an Exchange job.
	jobsOf := func(cycle uint64) {
		t.Helper()
		var got []job
		poll.Until(t, "the jobs of a cycle", func() bool { got = append(got, e.newJobs(t)...); return len(got) >= 2 })
		if len(got) != 2 || got[0].job.GetCycle() != cycle || got[1].job.GetCycle() != cycle {
			t.Fatalf("%d jobs, want the 2 of cycle %d", len(got), cycle)
		}
	}
	jobsOf(1)

	for cycle := uint64(2); cycle <= 3; cycle++ {
		woken := time.Now()
		due, err := e.st.WakeAfter(t.Context(), orgA, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		poll.Within(t, 5*time.Second, "the woken cycle", func() bool { return e.cycle(t, orgA) == cycle })
		started := time.Now()
		if started.Before(due) {
			t.Errorf("cycle %d started %s before it was due", cycle, due.Sub(started))
		}
		t.Logf("cycle %d started %s after the wake", cycle, started.Sub(woken))
		jobsOf(cycle)
	}
}
