package engine

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestFirstSyncMatchesThenCreates(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(0))
	h.ex.create(contactRecord(1, "Ada", "Lovelace", "Countess"))
	h.ex.create(contactRecord(2, "Charles", "Babbage", ""))
	h.sf.create(contactRecord(2, "Charles", "Babbage", "Inventor")) // same email: linked, not duplicated
	h.sf.create(contactRecord(3, "Grace", "Hopper", "Admiral"))
	h.settle()
	h.assertAgree()
	h.assertContacts(3)
	if got := h.sf.byEmail()["p2@example.com"][0].GetContact().GetJobTitle(); got != "Inventor" {
		t.Errorf("linked pair's title = %q, want Salesforce's (Salesforce wins by default)", got)
	}
	us, err := status.New(h.st).Get(h.ctx, uk)
	if err != nil {
		t.Fatal(err)
	}
	ks := status.Kind(us, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	if ks.GetRecordsInSync() != 3 || !status.Settled(ks.GetExchangeToSalesforce()) || !status.Settled(ks.GetSalesforceToExchange()) {
		t.Errorf("status = %v", ks)
	}
}

func TestEchoIsNotSyncedBack(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(0))
	id := h.ex.create(contactRecord(1, "Ada", "Lovelace", "")).GetId()
	h.settle()
	h.ex.update(id, func(c *tandemv1.Contact) { c.Department = "Mathematics" })
	h.startCycle()
	h.drain()
	sent := h.writesSent
	// The next cycles see Tandem's own write to Salesforce come back: no write follows.
	h.startCycle()
	h.drain()
	h.startCycle()
	h.drain()
	if h.writesSent != sent {
		t.Fatalf("the echo caused %d more writes", h.writesSent-sent)
	}
	h.assertAgree()
}

func TestCrashBetweenWriteAndCommitDoesNotDuplicate(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(0))
	h.ex.create(contactRecord(1, "Ada", "Lovelace", ""))
	h.sf.create(contactRecord(2, "Grace", "Hopper", ""))
	h.startCycle()
	for len(h.changes) > 0 {
		h.deliverChange(0, false)
	}
	// Each worker writes, then dies before publishing its result; the batches come back.
	for i := len(h.applies) - 1; i >= 0; i-- {
		h.deliverApply(i, true)
	}
	h.drain()
	h.settle()
	h.assertAgree()
	h.assertContacts(2)
}

func TestCrashAfterPublishBeforeCommit(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(0))
	h.ex.create(contactRecord(1, "Ada", "Lovelace", ""))
	h.startCycle()
	h.publishFault = true
	h.drain() // the failed delivery is retried, re-plans the same write, which is de-duplicated
	h.settle()
	h.assertAgree()
	if len(h.sf.items) != 1 {
		t.Fatalf("salesforce has %d contacts, want 1", len(h.sf.items))
	}
}

func TestResetRelinksWithoutDuplicates(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(0))
	for i := range 5 {
		h.ex.create(contactRecord(i, "N", "Ex", ""))
		h.sf.create(contactRecord(100+i, "N", "Sf", ""))
	}
	h.settle()
	h.reset()
	h.settle()
	h.assertAgree()
	h.assertContacts(10)
}

func TestExchangeDeleteUnlinksAndNeverComesBack(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(0))
	ids := []string{}
	for i := range 4 {
		ids = append(ids, h.ex.create(contactRecord(i, "N", "X", "")).GetId())
	}
	h.settle()
	h.ex.remove(ids[0])
	h.settle()
	if len(h.sf.items) != 4 {
		t.Fatalf("salesforce has %d, want 4: an Exchange delete must not delete in Salesforce by default", len(h.sf.items))
	}
	if len(h.ex.items) != 3 {
		t.Fatalf("exchange has %d, want 3: the removed contact came back", len(h.ex.items))
	}
}

func TestMassDeleteIsHeldUntilApproved(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(0))
	var sfIDs []string
	for i := range 10 {
		sfIDs = append(sfIDs, h.sf.create(contactRecord(i, "N", "X", "")).GetId())
	}
	h.settle()
	for _, id := range sfIDs[:8] {
		h.sf.remove(id)
	}
	h.settle()
	if len(h.ex.items) != 10 {
		t.Fatalf("exchange has %d contacts: the mass delete was not held", len(h.ex.items))
	}
	snap, err := ledger.New(h.st).Load(h.ctx, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	if err != nil || len(snap.Holds) != 1 {
		t.Fatalf("holds = %v, %v", snap.Holds, err)
	}
	var holdID string
	for id := range snap.Holds {
		holdID = id
	}
	lastError := func() string {
		t.Helper()
		us, err := status.New(h.st).Get(h.ctx, uk)
		if err != nil {
			t.Fatal(err)
		}
		return us.GetLastError().GetCode()
	}
	if got := lastError(); got != string(syncerr.SyncMassDeleteHeld) {
		t.Errorf("while held, the user's last error is %q, want %s", got, syncerr.SyncMassDeleteHeld)
	}
	if err := h.syncer.Decide(h.ctx, uk, holdID, true); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if len(h.ex.items) != 2 {
		t.Fatalf("exchange has %d contacts after approval, want 2", len(h.ex.items))
	}
	if got := lastError(); got != "" {
		t.Errorf("after approval, the user's last error is still %q", got)
	}
	h.assertAgree()
}

func TestPlanIsADryRun(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(0))
	h.ex.create(contactRecord(1, "Ada", "Lovelace", ""))
	h.settle()
	h.sf.create(contactRecord(2, "Grace", "Hopper", ""))
	// The reconciler has observed the new Salesforce contact but not reconciled it yet.
	h.startCycle()
	for len(h.changes) > 1 {
		h.deliverChange(len(h.changes)-1, false)
	}
	plan, err := h.syncer.Plan(h.ctx, uk)
	if err != nil {
		t.Fatal(err)
	}
	// The create, and the stamp of its key on the Salesforce source.
	var creates int
	for _, w := range plan.GetWrites() {
		switch {
		case w.GetOp() == tandemv1.WriteOp_WRITE_OP_CREATE && w.GetTarget() == tandemv1.System_SYSTEM_EXCHANGE:
			creates++
		case w.GetOp() == tandemv1.WriteOp_WRITE_OP_UPDATE && record.KeyOnly(w.GetFields()):
		default:
			t.Errorf("unexpected planned write %v", w)
		}
	}
	if creates != 1 {
		t.Fatalf("plan = %v", plan)
	}
	if len(h.applies) != 0 {
		t.Fatal("planning sent writes")
	}
}

// A read starts before it fetches what it reports. A user's change made just after Tandem
// wrote the record is then reported by a read that started before the write completed; it
// must not be dropped as older than the write, since the side's cursor has moved past it —
// whether Tandem created or updated the record, whether the read comes in after the write's
// result or before it, and on Salesforce too, whose writes do not return the version they leave.
func TestChangeJustAfterTandemsWriteIsNotDropped(t *testing.T) {
	rdb := servertest.Redis(t)
	for _, edited := range []tandemv1.System{tandemv1.System_SYSTEM_EXCHANGE, tandemv1.System_SYSTEM_SALESFORCE} {
		for _, create := range []bool{false, true} {
			for _, readFirst := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/%s", store.SideName(edited), map[bool]string{false: "update", true: "create"}[create],
					map[bool]string{false: "result first", true: "read first"}[readFirst])
				t.Run(name, func(t *testing.T) {
					h := newHarness(t, rdb, bothWays(0))
					h.sf.create(contactRecord(1, "Ada", "Lovelace", "Countess"))
					h.settle()
					h.assertAgree()
					target, source := h.ex, h.sf
					if edited == tandemv1.System_SYSTEM_SALESFORCE {
						target, source = h.sf, h.ex
					}

					// The other side changes; Tandem writes the change to the edited side.
					email := "p1@example.com"
					if create {
						email = "p2@example.com"
						source.create(contactRecord(2, "Charles", "Babbage", "Engineer"))
					} else {
						source.update(source.ids()[0], func(c *tandemv1.Contact) { c.Department = "Mathematics" })
					}
					h.startCycle()
					for len(h.changes)+len(h.applies) > 0 {
						if len(h.changes) > 0 {
							h.deliverChange(0, false)
						} else {
							h.deliverApply(0, false)
						}
					}
					// The next read starts, the user edits the record Tandem just wrote, and the
					// read fetches it; its pages come in after the write's result or before it.
					readStart := h.now.Add(-time.Millisecond)
					if !readFirst {
						h.deliverResult(0, false)
					}
					written := target.byEmail()[email]
					if len(written) != 1 {
						t.Fatalf("%d copies of %s written, want 1", len(written), email)
					}
					// The edit overwrites what Tandem wrote, so the read shows the write was made
					// (and a later edit too) without showing what it wrote.
					target.update(written[0].GetId(), func(c *tandemv1.Contact) { c.JobTitle, c.Department = "Analyst", "Physics" })
					h.startCycle()
					for _, q := range h.changes {
						q.msg.ReadAt = timestamppb.New(readStart)
					}
					for len(h.changes) > 0 {
						h.deliverChange(0, false)
					}
					h.drain()
					h.settle()
					h.assertAgree()
					if got := source.byEmail()[email][0].GetContact(); got.GetJobTitle() != "Analyst" || got.GetDepartment() != "Physics" {
						t.Errorf("title and department on the other side = %q, %q, want the user's %q, %q",
							got.GetJobTitle(), got.GetDepartment(), "Analyst", "Physics")
					}
				})
			}
		}
	}
}

// An item Tandem creates in Exchange and the user deletes (or moves out of the folder) before
// any read lists it is never reported by SyncFolderItems, which says nothing of an item created
// and removed within one window. It must still count as removed once later reads have come in.
func TestItemRemovedBeforeAnyReadListedItCountsAsRemoved(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(0))
	sfID := h.sf.create(contactRecord(1, "Ada", "Lovelace", "Countess")).GetId()
	h.startCycle()
	h.drain() // Tandem creates the Exchange item; no read has listed it yet
	if len(h.ex.items) != 1 {
		t.Fatalf("exchange holds %d items, want the one Tandem created", len(h.ex.items))
	}
	h.ex.remove(h.ex.ids()[0])
	h.settle()
	if len(h.ex.items) != 0 {
		t.Errorf("the removed item came back: %v", h.ex.items)
	}
	// The default configuration keeps the Salesforce contact, unlinked.
	if _, ok := h.sf.items[sfID]; !ok {
		t.Error("the Salesforce contact was deleted")
	}
	cyc, err := h.syncer.led.Load(h.ctx, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	if err != nil {
		t.Fatal(err)
	}
	if len(cyc.Mappings) != 0 {
		t.Errorf("%d pairs still linked, want none", len(cyc.Mappings))
	}
}

// TestReadAfterWrite: which reads saw a record after Tandem's write, on each side.
func TestReadAfterWrite(t *testing.T) {
	sent := time.Date(2026, 12, 7, 9, 0, 10, 500_000_000, time.UTC)
	stamp := func(d time.Duration) string { return sent.Add(d).Format(time.RFC3339Nano) }
	sfWrite := &tandemv1.MirrorRecord{Record: &tandemv1.Record{Version: stamp(-time.Minute)}, WriteCycle: 5,
		WrittenOver: stamp(-time.Minute), WriteSentAt: timestamppb.New(sent)}
	sfCreate := &tandemv1.MirrorRecord{Record: &tandemv1.Record{}, WriteCycle: 5, WriteSentAt: timestamppb.New(sent)}
	exWrite := &tandemv1.MirrorRecord{Record: &tandemv1.Record{Version: "ck-written"}, WriteCycle: 5, WrittenOver: "ck-before"}
	sf, ex := tandemv1.System_SYSTEM_SALESFORCE, tandemv1.System_SYSTEM_EXCHANGE
	for _, tc := range []struct {
		name    string
		side    tandemv1.System
		write   *tandemv1.MirrorRecord
		version string
		deleted bool
		cycle   uint64
		want    bool
	}{
		{"an edit after a Salesforce update", sf, sfWrite, stamp(time.Second), false, 6, true},
		{"an edit after a Salesforce create", sf, sfCreate, stamp(time.Second), false, 6, true},
		{"the version the update was made over", sf, sfWrite, stamp(-time.Minute), false, 6, false},
		{"an older Salesforce version", sf, sfWrite, stamp(-30 * time.Second), false, 6, false},
		{"a whole-second stamp of the write's own second", sf, sfCreate, sent.Truncate(time.Second).Format(time.RFC3339Nano), false, 6, true},
		{"a read of the write's own cycle", sf, sfCreate, stamp(time.Second), false, 5, false},
		{"gone since the write", sf, sfWrite, "", true, 6, true},
		{"an Exchange version neither written nor written over", ex, exWrite, "ck-after", false, 6, true},
		{"the Exchange version written", ex, exWrite, "ck-written", false, 6, false},
		{"the Exchange version written over", ex, exWrite, "ck-before", false, 6, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := readAfterWrite(tc.side, tc.write, &tandemv1.Record{Version: tc.version}, tc.deleted, tc.cycle); got != tc.want {
				t.Errorf("readAfterWrite = %v, want %v", got, tc.want)
			}
		})
	}
}
