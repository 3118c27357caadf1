package salesforceworker

import (
	"slices"
	"testing"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// TestWorkerServesOnlyItsPool: a worker of pool "big" takes the Salesforce jobs of its pool and
// leaves those of the shared pool on the bus for the shared workers.
func TestWorkerServesOnlyItsPool(t *testing.T) {
	cfg := testConfig()
	cfg.Pool = "big"
	fc := &fakeConnector{users: []*tandemv1.SyncUser{user(u1)}}
	e := newEnv(t, cfg, func(*platform.Platform) ConnectorFactory { return fc.factory })
	e.putOrg(&tandemv1.Org{OrgId: testOrg, Name: "Acme", Enabled: true, WorkerPool: "big"})
	ctx := t.Context()
	e.p.Run(t, "salesforce-worker-big", e.w.Components()...)

	shared, err := bus.SalesforceJobSubject(testOrg, store.DefaultWorkerPool)
	if err != nil {
		t.Fatal(err)
	}
	big, err := bus.SalesforceJobSubject(testOrg, "big")
	if err != nil {
		t.Fatal(err)
	}
	// The job on the shared pool's subject was queued before the org moved to pool big.
	if err := e.p.Bus.Publish(ctx, shared, job(1, []tandemv1.RecordKind{contact}, nil, nil), "job-shared"); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Bus.Publish(ctx, big, job(2, []tandemv1.RecordKind{contact}, nil, nil), "job-big"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the big pool's job to be acked", func() bool { return e.streamMsgs(bus.StreamJobs) == 1 })
	jobs, subjects, _ := platformtest.Published(t, e.p.JetStream, bus.StreamJobs, 0, func() *tandemv1.SyncJob { return &tandemv1.SyncJob{} })
	if len(jobs) != 1 || jobs[0].GetCycle() != 1 || !slices.Equal(subjects, []string{shared}) {
		t.Fatalf("left on the bus: %v on %v, want the shared pool's job of cycle 1", jobs, subjects)
	}
}

// TestPoolFlag: a worker's pool must be a pool name; empty is the default pool.
func TestPoolFlag(t *testing.T) {
	for _, pool := range []string{"Big", "big.tenant", "big*", "-big"} {
		cfg := testConfig()
		cfg.Pool = pool
		if err := cfg.Validate(); err == nil {
			t.Errorf("--pool %q accepted", pool)
		}
	}
	cfg := testConfig()
	if err := cfg.Validate(); err != nil || store.PoolOrDefault(cfg.Pool) != store.DefaultWorkerPool {
		t.Errorf("no --pool: %v, pool %q; want the default pool", err, store.PoolOrDefault(cfg.Pool))
	}
}
