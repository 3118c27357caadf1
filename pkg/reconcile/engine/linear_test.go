package engine

import (
	"testing"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/status"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// poison makes one Exchange mirror entry unreadable (restore puts it back): a handler that
// loads the user's whole ledger fails on it, one that loads only what its message touches
// does not notice it.
func poison(h *harness, id string) (restore func()) {
	h.t.Helper()
	keys, err := ledger.KeysFor(uk, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	if err != nil {
		h.t.Fatal(err)
	}
	rdb := h.st.Client()
	orig, err := rdb.HGet(h.ctx, keys.ExchangeMirror, id).Result()
	if err != nil {
		h.t.Fatalf("mirror entry %s: %v", id, err)
	}
	if err := rdb.HSet(h.ctx, keys.ExchangeMirror, id, "\xff\xff not a MirrorRecord").Err(); err != nil {
		h.t.Fatal(err)
	}
	return func() {
		if err := rdb.HSet(h.ctx, keys.ExchangeMirror, id, orig).Err(); err != nil {
			h.t.Fatal(err)
		}
	}
}

func TestWorkFollowsTheMessage(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(0))
	ids := h.seedSettled(12)

	// Idle cycles reconcile without reading any record.
	restore := poison(h, ids[5])
	before := h.reconciled()
	for range 2 {
		h.startCycle()
		for len(h.changes) > 0 {
			n := len(h.changes)
			h.deliverChange(0, false)
			if len(h.changes) == n {
				t.Fatal("an idle cycle's page failed: it read a record the page does not touch")
			}
		}
	}
	if got := h.reconciled(); got != before+2 {
		t.Fatalf("reconciled cycle %d after two idle cycles from %d", got, before)
	}
	us, err := status.New(h.st).Get(h.ctx, uk)
	if err != nil {
		t.Fatal(err)
	}
	if ks := status.Kind(us, tandemv1.RecordKind_RECORD_KIND_CONTACT); ks.GetRecordsInSync() != 24 || ks.GetPendingWrites() != 0 {
		t.Errorf("status after quiet cycles = %v, want 24 in sync", ks)
	}
	restore()

	// The results of a change's write read only their pair (how the change itself is planned
	// without the whole ledger is TestChangesArePlannedFromWhatChanged's: this harness checks
	// every such plan against the whole ledger's).
	h.ex.update(ids[0], func(c *tandemv1.Contact) { c.Department = "Mathematics" })
	h.startCycle()
	for len(h.changes) > 0 {
		h.deliverChange(0, false)
	}
	if len(h.applies) == 0 {
		t.Fatal("the change planned no write")
	}
	restore = poison(h, ids[5])
	for len(h.applies) > 0 {
		h.deliverApply(0, false)
	}
	for len(h.results) > 0 {
		h.deliverResult(0, false) // fails the test if the handler read the poisoned entry
	}
	restore()
	h.settle()
	h.assertAgree()
	if got := h.sf.byEmail()["p0@example.com"][0].GetContact().GetDepartment(); got != "Mathematics" {
		t.Errorf("department in Salesforce = %q after the edit", got)
	}
}

func TestQuietEndsWithAnyChange(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(0))
	id := h.ex.create(contactRecord(1, "Ada", "Lovelace", "")).GetId()
	h.sf.create(contactRecord(2, "Grace", "Hopper", ""))
	h.settle()
	h.settle()
	// Each of these changes must be planned although the user was quiet before it.
	h.ex.update(id, func(c *tandemv1.Contact) { c.JobTitle = "Countess" })
	h.settle()
	h.assertAgree()
	h.sf.create(contactRecord(3, "Alan", "Turing", ""))
	h.settle()
	h.assertAgree()
	h.ex.remove(id)
	h.settle()
	if len(h.ex.items) != 2 {
		t.Fatalf("exchange has %d contacts, want 2", len(h.ex.items))
	}
	// A changed configuration is planned again: Exchange to Salesforce only, then both ways.
	cfgs, err := h.st.ListConfigurations(h.ctx, testOrg)
	if err != nil || len(cfgs) != 1 {
		t.Fatalf("configurations: %v, %v", cfgs, err)
	}
	cfg := cfgs[0]
	cfg.Contacts.Direction = tandemv1.SyncDirection_SYNC_DIRECTION_EXCHANGE_TO_SALESFORCE
	if _, err := h.st.PutConfiguration(h.ctx, testOrg, cfg); err != nil {
		t.Fatal(err)
	}
	h.settle()
	h.sf.create(contactRecord(4, "Edsger", "Dijkstra", ""))
	h.settle()
	if len(h.ex.items) != 2 {
		t.Fatalf("exchange has %d contacts, want 2: Salesforce's new contact must not flow", len(h.ex.items))
	}
	cfg.Contacts.Direction = tandemv1.SyncDirection_SYNC_DIRECTION_BOTH
	if _, err := h.st.PutConfiguration(h.ctx, testOrg, cfg); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if len(h.ex.items) != 3 {
		t.Fatalf("exchange has %d contacts after syncing both ways again, want 3", len(h.ex.items))
	}
}

// reconciled is the user's last reconciled cycle.
func (h *harness) reconciled() uint64 {
	h.t.Helper()
	c, err := ledger.New(h.st).LoadCycle(h.ctx, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	if err != nil {
		h.t.Fatal(err)
	}
	return c.Reconciled
}
