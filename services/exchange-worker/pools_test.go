package exchangeworker

import (
	"slices"
	"testing"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// TestWorkersServeOnlyTheirPool runs two workers side by side on one NATS and Redis, one of the
// shared pool and one of pool "big": the jobs and write batches of the org in pool big are
// carried out only by the big worker, those of the org in the shared pool only by the shared one.
func TestWorkersServeOnlyTheirPool(t *testing.T) {
	e, shared := newFakeEnv(t) // testOrg, in the default pool
	ctx := t.Context()
	const bigOrg, bigRep = "00Dbig0000000001", "005big0000000001"
	e.putOrg(&tandemv1.Org{OrgId: bigOrg, Name: "Big", Enabled: true, WorkerPool: "big"})
	if err := e.st.PutUsers(ctx, bigOrg, []*tandemv1.SyncUser{{UserId: bigRep, Email: "rep@big.example", Active: true}}); err != nil {
		t.Fatal(err)
	}
	big := newFakeConnector()
	bigCfg := testConfig()
	bigCfg.Pool = "big"
	bigW, err := NewWithConnectors(bigCfg, e.p.Platform, big.factory)
	if err != nil {
		t.Fatal(err)
	}
	bigW.now = e.clock.Now
	onePage := func(f *fakeConnector) {
		f.pages = func(tandemv1.RecordKind, string) ([]exchange.Page, error) {
			return []exchange.Page{{Changes: upserts("x", 1), Cursor: "s1", Full: true, Last: true}}, nil
		}
	}
	shared.script(onePage)
	big.script(onePage)
	e.p.Run(t, "exchange-worker-shared", e.w.Components()...)
	e.p.Run(t, "exchange-worker-big", bigW.Components()...)

	// One job each, published on the org's pool as the scheduler does.
	for _, j := range []struct{ org, pool, user string }{
		{bigOrg, "big", bigRep}, {testOrg, store.DefaultWorkerPool, rep1},
	} {
		job := &tandemv1.SyncJob{OrgId: j.org, UserId: j.user, System: tandemv1.System_SYSTEM_EXCHANGE, Cycle: 1, Kinds: []tandemv1.RecordKind{contact}}
		subject, err := bus.ExchangeJobSubject(j.org, j.pool, j.user)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.p.Bus.Publish(ctx, subject, job, bus.MsgID(subject)); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, "both jobs to be carried out and acked", func() bool {
		return e.streamMsgs(bus.StreamJobs) == 0 && len(orgsRead(shared)) > 0 && len(orgsRead(big)) > 0
	})
	if got := orgsRead(shared); !slices.Equal(got, []string{testOrg}) {
		t.Errorf("the shared worker read mailboxes of %v, want only %s", got, testOrg)
	}
	if got := orgsRead(big); !slices.Equal(got, []string{bigOrg}) {
		t.Errorf("the big worker read mailboxes of %v, want only %s", got, bigOrg)
	}

	// One write batch each.
	for _, b := range []struct{ org, pool, user, cmd string }{
		{bigOrg, "big", bigRep, "cmd-big"}, {testOrg, store.DefaultWorkerPool, rep1, "cmd-shared"},
	} {
		cmd := &tandemv1.WriteCommand{CommandId: b.cmd, Op: tandemv1.WriteOp_WRITE_OP_DELETE, SyncKey: "sk-" + b.cmd, TargetId: "AAMk-" + b.cmd}
		platformtest.PutInFlight(t, e.st, store.UserKey{OrgID: b.org, UserID: b.user}, contact, tandemv1.System_SYSTEM_EXCHANGE, e.clock.Now(), cmd)
		batch := &tandemv1.WriteBatch{BatchId: b.cmd, OrgId: b.org, UserId: b.user, Target: tandemv1.System_SYSTEM_EXCHANGE, Kind: contact, Commands: []*tandemv1.WriteCommand{cmd}}
		subject, err := bus.ApplySubject(b.org, tandemv1.System_SYSTEM_EXCHANGE, b.pool, b.user)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.p.Bus.Publish(ctx, subject, batch, b.cmd); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, "both batches to be carried out and acked", func() bool {
		return e.streamMsgs(bus.StreamApply) == 0 && len(shared.appliedIDs()) > 0 && len(big.appliedIDs()) > 0
	})
	if got := shared.appliedIDs(); !slices.Equal(got, []string{"cmd-shared"}) {
		t.Errorf("the shared worker applied %v, want [cmd-shared]", got)
	}
	if got := big.appliedIDs(); !slices.Equal(got, []string{"cmd-big"}) {
		t.Errorf("the big worker applied %v, want [cmd-big]", got)
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

// orgsRead returns the orgs whose mailboxes f was asked to read, each once.
func orgsRead(f *fakeConnector) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var orgs []string
	for _, mb := range f.mailboxes {
		if !slices.Contains(orgs, mb.OrgID) {
			orgs = append(orgs, mb.OrgID)
		}
	}
	return orgs
}
