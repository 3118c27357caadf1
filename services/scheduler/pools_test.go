package scheduler_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
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
		e.putUsers(t, o, userIn(o, user1, true), userIn(o, user2, true))
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

// declarePool creates the consumers of every pooled role for pool, as the pool's workers do.
func (e *env) declarePool(t *testing.T, pool string) {
	t.Helper()
	for _, role := range []string{bus.ConsumerExchangeJobs, bus.ConsumerSalesforceJobs, bus.ConsumerExchangeApply, bus.ConsumerSalesforceApply} {
		spec, ok := e.p.Bus.Topology().Consumer(bus.PoolConsumer(role, pool))
		if !ok {
			t.Fatalf("no consumer %s", bus.PoolConsumer(role, pool))
		}
		if _, err := e.p.JetStream.CreateOrUpdateConsumer(t.Context(), spec.Stream, spec.Config); err != nil {
			t.Fatal(err)
		}
	}
}

// poolsWithConsumers returns, per pool, how many consumers the server has for it.
func (e *env) poolsWithConsumers(t *testing.T) map[string]int {
	t.Helper()
	cs, err := e.p.Bus.PoolConsumers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, c := range cs {
		out[c.Pool]++
	}
	return out
}

// TestUnusedPoolsConsumersAreDeleted: the consumers of a worker pool no org names any more
// are deleted once they are found idle on two passes in a row — not those of a pool an org
// names (or names again before the second pass), of the default pool, or of a pool whose
// consumers still hold a message, wait for an acknowledgement or have a worker fetching.
func TestUnusedPoolsConsumersAreDeleted(t *testing.T) {
	e := newEnv(t, testConfig())
	ctx := t.Context()
	big := org(orgA)
	big.WorkerPool = "big"
	e.putOrg(t, big) // no org uses the default pool
	pools := []string{store.DefaultWorkerPool, "big", "gone", "revived", "queued", "unacked", "fetching"}
	for _, pool := range pools {
		e.declarePool(t, pool)
	}
	// A job waits for pool "queued"; one of pool "unacked" is fetched and never acknowledged.
	for _, pool := range []string{"queued", "unacked"} {
		subject, err := bus.ExchangeJobSubject(orgA, pool, user1)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.p.Bus.Publish(ctx, subject, &tandemv1.SyncJob{OrgId: orgA, UserId: user1}, pool); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := e.p.JetStream.Consumer(ctx, bus.StreamJobs, bus.PoolConsumer(bus.ConsumerExchangeJobs, "unacked"))
	if err != nil {
		t.Fatal(err)
	}
	if batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second)); err != nil {
		t.Fatal(err)
	} else if n := len(collect(batch.Messages())); n != 1 {
		t.Fatalf("fetched %d messages of pool unacked, want 1", n)
	}
	// A worker of pool "fetching" consumes its Exchange jobs.
	wctx, stopWorker := context.WithCancel(ctx)
	worker := make(chan error, 1)
	go func() {
		worker <- e.p.Bus.Consume(wctx, bus.PoolConsumer(bus.ConsumerExchangeJobs, "fetching"), func(context.Context, *bus.Message) error { return nil })
	}()
	defer func() {
		stopWorker()
		if err := <-worker; err != nil {
			t.Errorf("Consume: %v", err)
		}
	}()
	poll.Until(t, "the worker's pull request", func() bool {
		cs, err := e.p.Bus.PoolConsumers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Pool == "fetching" && c.Waiting > 0 {
				return true
			}
		}
		return false
	})

	if err := e.sched.RetirePools(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, pool := range pools {
		want[pool] = 4
	}
	if got := e.poolsWithConsumers(t); !maps.Equal(got, want) {
		t.Fatalf("after the first look, consumers per pool %v, want %v", got, want)
	}

	revived := org("00Dorg0000000RV")
	revived.WorkerPool = "revived"
	e.putOrg(t, revived)
	if err := e.sched.RetirePools(ctx); err != nil {
		t.Fatal(err)
	}
	delete(want, "gone")
	if got := e.poolsWithConsumers(t); !maps.Equal(got, want) {
		t.Fatalf("after the second look, consumers per pool %v, want %v", got, want)
	}
}

func collect(msgs <-chan jetstream.Msg) []jetstream.Msg {
	var out []jetstream.Msg
	for m := range msgs {
		out = append(out, m)
	}
	return out
}
