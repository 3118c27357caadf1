package engine

import (
	"testing"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/status"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// loseLedger loses every piece of Tandem's state, as a Redis flushed (or restored from before
// the user's first sync) together with a fresh broker would: the ledger, the user directory,
// the configuration and every message in flight. The org's configuration is stored again, as an
// admin would; the next reads are full reads.
func (h *harness) loseLedger(cfg *tandemv1.SyncConfiguration) {
	h.t.Helper()
	h.tracef("LEDGER LOST")
	if err := h.st.Client().FlushDB(h.ctx).Err(); err != nil {
		h.t.Fatal(err)
	}
	if err := h.st.PutUsers(h.ctx, testOrg, []*tandemv1.SyncUser{{UserId: testUser, Email: "rep@example.com", Active: true, ProfileId: "00eprofile000001"}}); err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.st.PutConfiguration(h.ctx, testOrg, cfg); err != nil {
		h.t.Fatal(err)
	}
	h.changes, h.applies, h.results = nil, nil, nil
	h.exCursor, h.sfCursor = -1, -1
	h.exFrom, h.sfFrom = 0, 0
}

func noEmail(n int, first, last, title string) *tandemv1.Record {
	r := contactRecord(n, first, last, title)
	r.GetContact().EmailAddress1 = ""
	return r
}

// TestLostLedgerRelinksEveryPair: pairs linked by matching on the first sync — by email, by
// name without email — and pairs made by creates all relink by their sync keys once the ledger
// is lost; nothing is duplicated or lost, and the user's status counts the relinks.
func TestLostLedgerRelinksEveryPair(t *testing.T) {
	cfg := bothWays(0)
	h := newHarness(t, servertest.Redis(t), cfg)
	h.ex.create(contactRecord(1, "Ada", "Lovelace", "Countess"))
	h.sf.create(contactRecord(1, "Ada", "Lovelace", "")) // linked by email
	h.ex.create(noEmail(2, "Sam", "Same", "Buyer"))
	h.sf.create(noEmail(2, "Sam", "Same", "")) // linked by name: neither has an email
	h.ex.create(noEmail(3, "Tom", "Twin", "Buyer"))
	h.ex.create(noEmail(4, "Tom", "Twin", "Seller")) // namesakes without email: created
	h.sf.create(contactRecord(5, "Grace", "Hopper", "Admiral"))
	h.settle()
	pairs := len(h.ex.items)
	if pairs != 5 || len(h.sf.items) != 5 {
		t.Fatalf("after the first sync: %d in Exchange, %d in Salesforce, want 5 each", len(h.ex.items), len(h.sf.items))
	}
	for _, side := range []*fakeSide{h.ex, h.sf} {
		for _, r := range side.items {
			if r.GetSyncKey() == "" {
				t.Errorf("%s holds %s without its pair's sync key", side.prefix, record.DisplayName(r))
			}
		}
	}

	h.loseLedger(cfg)
	h.settle()
	h.assertContacts(pairs)
	us, err := status.New(h.st).Get(h.ctx, uk)
	if err != nil {
		t.Fatal(err)
	}
	ks := status.Kind(us, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	if ks.GetRecordsRelinked() != int64(pairs) || ks.GetRecordsInSync() != int64(pairs) {
		t.Errorf("relinked %d, in sync %d, want %d each", ks.GetRecordsRelinked(), ks.GetRecordsInSync(), pairs)
	}
}

// TestBatchesReadBeforeLostStateAreDropped: Tandem's state is lost while pages of a late cycle
// are still on the bus, and the scheduler numbers cycles from 1 again. The old pages are
// dropped rather than taken in: taken in, they would mark cycle 40 as read, and every new cycle
// would look older and never be planned. The new cycles relink and sync as after any loss.
func TestBatchesReadBeforeLostStateAreDropped(t *testing.T) {
	cfg := bothWays(0)
	h := newHarness(t, servertest.Redis(t), cfg)
	h.ex.create(contactRecord(1, "Ada", "Lovelace", "Countess"))
	h.sf.create(contactRecord(2, "Grace", "Hopper", "Admiral"))
	h.settle()
	h.cycle = 39
	h.exCursor, h.sfCursor = -1, -1 // full reads, as the scheduler starts for a stalled user
	h.startCycle()                  // cycle 40's pages are on the bus when the state is lost
	old := h.changes
	h.loseLedger(cfg)
	h.changes = old
	h.cycle = 0 // the scheduler's numbering starts again
	h.drain()
	if _, reconciled, err := h.syncer.led.ResetProgress(h.ctx, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT); err != nil || reconciled != 0 {
		t.Fatalf("after the old pages: reconciled cycle %d (%v), want 0: they were taken in", reconciled, err)
	}
	h.ex.create(contactRecord(3, "Alan", "Turing", "Mathematician"))
	h.settle()
	h.assertAgree()
	if len(h.sf.items) != 3 {
		t.Fatalf("%d contacts in Salesforce, want 3", len(h.sf.items))
	}
}

// TestCyclesOfALostScheduleAreSetAside: a batch of cycle 40, handled just before Tandem's state
// was lost, commits just after: the user's ledger counts cycle 40 as reconciled while the
// scheduler numbers its cycles from 1 again, in a new epoch. The new cycles are planned all the
// same: the old epoch's bookkeeping is set aside, not compared with them.
func TestCyclesOfALostScheduleAreSetAside(t *testing.T) {
	cfg := bothWays(0)
	h := newHarness(t, servertest.Redis(t), cfg)
	h.ex.create(contactRecord(1, "Ada", "Lovelace", "Countess"))
	h.settle()
	h.cycle = 39
	h.settle() // the ledger has reconciled cycle 40 or later
	if _, reconciled, err := h.syncer.led.ResetProgress(h.ctx, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT); err != nil || reconciled < 40 {
		t.Fatalf("reconciled cycle %d (%v), want 40 or later", reconciled, err)
	}
	// Only the schedule is lost, as when the late commit lands after FLUSHALL.
	keys, err := h.st.Client().Keys(h.ctx, "*"+testOrg+"*schedule*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("the org's schedule: %v, %v", keys, err)
	}
	if err := h.st.Client().Del(h.ctx, keys[0]).Err(); err != nil {
		t.Fatal(err)
	}
	h.cycle = 0
	h.exCursor, h.sfCursor = -1, -1 // the read cursors were lost too
	h.sf.create(contactRecord(2, "Grace", "Hopper", "Admiral"))
	h.settle()
	h.assertAgree()
	if len(h.ex.items) != 2 {
		t.Fatalf("%d contacts in Exchange, want 2: the new cycles were never planned", len(h.ex.items))
	}
}
