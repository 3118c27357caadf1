package engine

import (
	"testing"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// TestWriteBatchesGoToTheOrgsWorkerPool: write batches are published for the workers of the
// org's pool, to both systems; once the org is moved (and the engine's memory of its pool has
// expired), new batches go to the new pool.
func TestWriteBatchesGoToTheOrgsWorkerPool(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(0))
	org := &tandemv1.Org{OrgId: testOrg, Name: "Big", Enabled: true, WorkerPool: "big"}
	if _, err := h.st.PutOrg(h.ctx, org); err != nil {
		t.Fatal(err)
	}
	h.ex.create(contactRecord(1, "Ada", "Lovelace", "Countess"))
	h.sf.create(contactRecord(2, "Grace", "Hopper", "Admiral"))
	h.settle()
	h.assertAgree()
	wantPool(t, h.subjects, "big")

	org.WorkerPool = "" // back to the default pool
	if _, err := h.st.PutOrg(h.ctx, org); err != nil {
		t.Fatal(err)
	}
	h.now = h.now.Add(poolTTL)
	sent := len(h.subjects)
	h.ex.create(contactRecord(3, "Charles", "Babbage", ""))
	h.sf.create(contactRecord(4, "Alan", "Turing", ""))
	h.settle()
	h.assertAgree()
	wantPool(t, h.subjects[sent:], store.DefaultWorkerPool)
}

// wantPool checks that subjects are apply subjects of pool, to both systems.
func wantPool(t *testing.T, subjects []string, pool string) {
	t.Helper()
	targets := map[tandemv1.System]bool{}
	for _, s := range subjects {
		route, err := bus.ParseSubject(s)
		if err != nil || route.Kind != bus.KindApply || route.Pool != pool || route.OrgID != testOrg || route.UserID != testUser {
			t.Errorf("write batch published on %q (%+v, %v), want an apply subject of pool %s", s, route, err, pool)
		}
		targets[route.System] = true
	}
	if !targets[tandemv1.System_SYSTEM_EXCHANGE] || !targets[tandemv1.System_SYSTEM_SALESFORCE] {
		t.Errorf("write batches %v, want some to each system", subjects)
	}
}
