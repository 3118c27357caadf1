package scheduler_test

import (
	"testing"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/store"
)

// TestJobsGoToTheOrgsWorkerPool: each org's jobs, Salesforce and Exchange, are published for
// the workers of the org's pool; an org moved to another pool has its next cycle's jobs there.
func TestJobsGoToTheOrgsWorkerPool(t *testing.T) {
	e := newEnv(t, testConfig())
	const orgBig = "00Dorg0000000BG"
	big := org(orgBig)
	big.WorkerPool = "big"
	e.putOrg(t, big)
	e.putOrg(t, org(orgA)) // the default pool
	for _, o := range []string{orgA, orgBig} {
		e.putUsers(t, o, user(user1, true), user(user2, true))
		e.putConfig(t, o, contactsOnly(user1, user2))
	}

	e.tick(t)
	pools := jobPools(t, e.newJobs(t))
	if want := map[string]string{orgA: store.DefaultWorkerPool, orgBig: "big"}; !samePools(pools, want, 3) {
		t.Fatalf("jobs' pools %v, want %v (3 jobs each)", pools, want)
	}

	big.WorkerPool = "" // back to the shared workers
	e.putOrg(t, big)
	e.dueNow(t, orgBig)
	e.tick(t)
	pools = jobPools(t, e.newJobs(t))
	if want := map[string]string{orgBig: store.DefaultWorkerPool}; !samePools(pools, want, 3) {
		t.Fatalf("after the move, jobs' pools %v, want %v (3 jobs)", pools, want)
	}
}

// jobPools returns, per org, the pools of its jobs' subjects.
func jobPools(t *testing.T, jobs []job) map[string][]string {
	t.Helper()
	pools := map[string][]string{}
	for _, j := range jobs {
		route, err := bus.ParseSubject(j.subject)
		if err != nil || route.Kind != bus.KindJob {
			t.Fatalf("job on %s: %+v, %v", j.subject, route, err)
		}
		pools[route.OrgID] = append(pools[route.OrgID], route.Pool)
	}
	return pools
}

// samePools reports whether every org of want has n jobs, all in its pool, and no other org has any.
func samePools(got map[string][]string, want map[string]string, n int) bool {
	if len(got) != len(want) {
		return false
	}
	for o, pool := range want {
		if len(got[o]) != n {
			return false
		}
		for _, p := range got[o] {
			if p != pool {
				return false
			}
		}
	}
	return true
}
