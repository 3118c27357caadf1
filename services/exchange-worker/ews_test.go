package exchangeworker

import (
	"errors"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	serviceAccount = "svc-tandem@acme.example"
	rep1Mailbox    = "rep1@acme.example"
	rep2Mailbox    = "rep2@acme.example"
	rep3Mailbox    = "rep3@acme.example"
	rep3           = "005rep3"
)

// newEWSEnv is a worker with the real EWS connector against a simulated Exchange: rep1's
// mailbox holds contacts and events, the service account may not impersonate rep2, and rep3 has
// no mailbox.
func newEWSEnv(t *testing.T) (*env, *ewssim.Server) {
	t.Helper()
	const password = "s3cret-password"
	sim := ewssim.New(ewssim.Config{ServiceAccounts: []ewssim.ServiceAccount{{
		Username: serviceAccount, Password: password, Impersonate: []string{rep1Mailbox, rep3Mailbox},
	}}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sim.SetBaseURL(srv.URL)
	if err := sim.Seed(rep1Mailbox, 20, 5, 1); err != nil {
		t.Fatal(err)
	}
	if err := sim.AddMailbox(rep2Mailbox); err != nil {
		t.Fatal(err)
	}

	e := newEnv(t, testConfig(), func(p *platform.Platform) ConnectorFactory { return EWSConnectors(p, true) })
	e.putOrg(&tandemv1.Org{OrgId: testOrg, Name: "Acme", Enabled: true, Exchange: &tandemv1.ExchangeConnection{
		Auth: tandemv1.ExchangeAuth_EXCHANGE_AUTH_BASIC, EwsUrl: sim.EWSURL(), ServiceAccount: serviceAccount, Password: password,
	}})
	e.putUsers(
		&tandemv1.SyncUser{UserId: rep1, Email: rep1Mailbox, Active: true},
		&tandemv1.SyncUser{UserId: rep2, Email: rep2Mailbox, Active: true},
		&tandemv1.SyncUser{UserId: rep3, Email: rep3Mailbox, Active: true},
	)
	return e, sim
}

// pagesByKind groups published pages by record kind.
func pagesByKind(pages []*tandemv1.ChangeBatch) map[tandemv1.RecordKind][]*tandemv1.ChangeBatch {
	out := map[tandemv1.RecordKind][]*tandemv1.ChangeBatch{}
	for _, p := range pages {
		out[p.GetKind()] = append(out[p.GetKind()], p)
	}
	return out
}

func changeCount(pages []*tandemv1.ChangeBatch) int {
	n := 0
	for _, p := range pages {
		n += len(p.GetChanges())
	}
	return n
}

// checkRead checks that pages are one complete read of a kind in cycle.
func checkRead(t *testing.T, pages []*tandemv1.ChangeBatch, cycle uint64, full bool, previous uint64, changes int) {
	t.Helper()
	if len(pages) == 0 {
		t.Fatal("no pages")
	}
	for i, p := range pages {
		if p.GetCycle() != cycle || p.GetPage() != uint32(i) || p.GetFullSnapshot() != full || p.GetPreviousCycle() != previous ||
			p.GetSource() != tandemv1.System_SYSTEM_EXCHANGE || p.GetReadAt() == nil {
			t.Errorf("page %d: cycle %d page %d full %v previous %d source %s read_at %v; want cycle %d full %v previous %d",
				i, p.GetCycle(), p.GetPage(), p.GetFullSnapshot(), p.GetPreviousCycle(), p.GetSource(), p.GetReadAt(), cycle, full, previous)
		}
		if last := i == len(pages)-1; p.GetLast() != last || (last && p.GetPageCount() != uint32(len(pages))) {
			t.Errorf("page %d: last %v page_count %d of %d pages", i, p.GetLast(), p.GetPageCount(), len(pages))
		}
	}
	if got := changeCount(pages); got != changes {
		t.Errorf("%d changes, want %d", got, changes)
	}
}

func TestEWSReadsAndWrites(t *testing.T) {
	e, sim := newEWSEnv(t)
	ctx := t.Context()
	kinds := []tandemv1.RecordKind{contact, event}
	job := func(userID string, cycle uint64, full bool) *tandemv1.SyncJob {
		return &tandemv1.SyncJob{OrgId: testOrg, UserId: userID, System: tandemv1.System_SYSTEM_EXCHANGE, Cycle: cycle, Kinds: kinds, FullResync: full}
	}

	t.Run("first read", func(t *testing.T) {
		if err := e.w.handleJob(ctx, jobMessage(t, job(rep1, 1, false))); err != nil {
			t.Fatal(err)
		}
		pages, _ := e.changes()
		byKind := pagesByKind(pages)
		checkRead(t, byKind[contact], 1, true, 0, 20)
		checkRead(t, byKind[event], 1, true, 0, 5)
		for _, c := range byKind[contact][0].GetChanges() {
			if c.GetType() != tandemv1.ChangeType_CHANGE_TYPE_UPSERT || c.GetRecord().GetContact() == nil || c.GetRecord().GetId() == "" || c.GetRecord().GetVersion() == "" {
				t.Errorf("change %v, want an upsert of a contact with id and version", c)
				break
			}
		}
		for _, k := range kinds {
			c, ok := e.storedCursor(rep1, k)
			if !ok || c.Value == "" || c.Cycle != 1 {
				t.Errorf("%s cursor %+v (%v), want the sync state of cycle 1", k, c, ok)
			}
		}
		us := e.exchangeStatus(rep1)
		if us.GetRecognizedByServiceAccount() != passed || us.GetMailboxVersionSupported() != passed || us.GetExchangeVersion() == "" || len(us.GetKinds()) != 2 {
			t.Errorf("status %v", us)
		}
	})

	t.Run("incremental read", func(t *testing.T) {
		if _, err := sim.PutContact(rep1Mailbox, exchange.SyncFolderName, ewssim.Contact{
			GivenName: "Grace", Surname: "Hopper", EmailAddresses: []ewssim.ContactEmail{{Key: "EmailAddress1", Address: "grace@navy.example"}},
		}); err != nil {
			t.Fatal(err)
		}
		if err := e.w.handleJob(ctx, jobMessage(t, job(rep1, 2, false))); err != nil {
			t.Fatal(err)
		}
		byKind := pagesByKind(first(e.changes()))
		checkRead(t, byKind[contact], 2, false, 1, 1)
		checkRead(t, byKind[event], 2, false, 1, 0)
		if got := byKind[contact][0].GetChanges()[0].GetRecord().GetContact(); got.GetGivenName() != "Grace" || got.GetEmailAddress1() != "grace@navy.example" {
			t.Errorf("changed contact %v", got)
		}
		if c, _ := e.storedCursor(rep1, contact); c.Cycle != 2 {
			t.Errorf("cursor %+v, want cycle 2", c)
		}
	})

	t.Run("full resync", func(t *testing.T) {
		if err := e.w.handleJob(ctx, jobMessage(t, job(rep1, 3, true))); err != nil {
			t.Fatal(err)
		}
		byKind := pagesByKind(first(e.changes()))
		checkRead(t, byKind[contact], 3, true, 0, 21)
		checkRead(t, byKind[event], 3, true, 0, 5)
	})

	t.Run("throttled read goes back to the bus", func(t *testing.T) {
		before, _ := e.storedCursor(rep1, contact)
		sim.InjectFault(ewssim.Fault{Operation: "SyncFolderItems", Mailbox: rep1Mailbox, Kind: ewssim.FaultServerBusy, BackOff: 10 * time.Minute, Times: -1})
		defer sim.ClearFaults()
		err := e.w.handleJob(ctx, jobMessage(t, job(rep1, 4, false)))
		var se *syncerr.Error
		if !errors.As(err, &se) || se.Code != syncerr.ExchangeServerBusy || bus.IsPermanent(err) {
			t.Fatalf("handleJob = %v, want EXCHANGE_SERVER_BUSY for the bus to retry", err)
		}
		if se.RetryAfter() != 10*time.Minute {
			t.Errorf("retry after %s, want the 10m Exchange asked for", se.RetryAfter())
		}
		if after, _ := e.storedCursor(rep1, contact); after != before {
			t.Errorf("cursor moved from %+v to %+v on a failed read", before, after)
		}
		if us := e.exchangeStatus(rep1); us.GetConsecutiveFailures() != 1 || us.GetLastError().GetCode() != string(syncerr.ExchangeServerBusy) {
			t.Errorf("status %v", us)
		}
	})

	t.Run("impersonation denied", func(t *testing.T) {
		if err := e.w.handleJob(ctx, jobMessage(t, job(rep2, 1, false))); err != nil {
			t.Fatalf("handleJob = %v, want nil: the failure is reported and the user backed off", err)
		}
		us := e.exchangeStatus(rep2)
		if us.GetRecognizedByServiceAccount() != failed || us.GetConsecutiveFailures() != 1 ||
			!us.GetNextSyncAt().AsTime().Equal(e.clock.Now().Add(time.Minute)) ||
			us.GetLastError().GetCode() != string(syncerr.ExchangeImpersonationDenied) {
			t.Errorf("status %v", us)
		}
		entries := e.errorReport(rep2)
		if len(entries) != 2 || entries[0].GetError().GetCode() != string(syncerr.ExchangeImpersonationDenied) {
			t.Errorf("error report %v, want an impersonation entry per kind", entries)
		}
		if pages, _ := e.changes(); len(pages) != 0 {
			t.Errorf("published %v", pages)
		}
	})

	t.Run("writes in flight are carried out", func(t *testing.T) {
		create := &tandemv1.WriteCommand{
			CommandId: "cmd-ada", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk-ada",
			Record: &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{
				GivenName: "Ada", Surname: "Lovelace", EmailAddress1: "ada@engine.example",
			}}},
		}
		stale := &tandemv1.WriteCommand{
			CommandId: "cmd-stale", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk-stale",
			Record: &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{GivenName: "Stale", Surname: "Write"}}},
		}
		e.putInFlight(rep1, contact, tandemv1.System_SYSTEM_EXCHANGE, create)
		batch := &tandemv1.WriteBatch{
			BatchId: "batch-ada", OrgId: testOrg, UserId: rep1, Target: tandemv1.System_SYSTEM_EXCHANGE, Kind: contact, Cycle: 3,
			Commands: []*tandemv1.WriteCommand{stale, create},
		}
		if err := e.w.handleApply(ctx, platformtest.ApplyMessage(t, batch, 1)); err != nil {
			t.Fatal(err)
		}
		results, _ := e.results()
		if len(results) != 1 || len(results[0].GetResults()) != 1 {
			t.Fatalf("results %v, want one batch with one result", results)
		}
		r := results[0].GetResults()[0]
		if r.GetCommandId() != "cmd-ada" || !r.GetOk() || r.GetRecord().GetId() == "" || results[0].GetCompletedAt() == nil {
			t.Errorf("result %v (completed at %v)", r, results[0].GetCompletedAt())
		}
		var names []string
		for _, it := range sim.Items(rep1Mailbox, exchange.SyncFolderName) {
			names = append(names, it.Contact.GivenName)
		}
		if !slices.Contains(names, "Ada") {
			t.Error("the write in flight was not made")
		}
		if slices.Contains(names, "Stale") {
			t.Error("a write no longer in flight was made")
		}
	})

	t.Run("writes to a mailbox that does not exist", func(t *testing.T) {
		cmd := &tandemv1.WriteCommand{
			CommandId: "cmd-x", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk-x",
			Record: &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{GivenName: "X"}}},
		}
		e.putInFlight(rep3, contact, tandemv1.System_SYSTEM_EXCHANGE, cmd)
		batch := &tandemv1.WriteBatch{BatchId: "batch-x", OrgId: testOrg, UserId: rep3, Target: tandemv1.System_SYSTEM_EXCHANGE, Kind: contact, Commands: []*tandemv1.WriteCommand{cmd}}
		if err := e.w.handleApply(ctx, platformtest.ApplyMessage(t, batch, 1)); err != nil {
			t.Fatalf("handleApply = %v, want nil: the batch is reported, not retried", err)
		}
		entries := e.errorReport(rep3)
		if len(entries) != 1 || entries[0].GetError().GetCode() != string(syncerr.ExchangeMailboxNotFound) {
			t.Errorf("error report %v, want EXCHANGE_MAILBOX_NOT_FOUND", entries)
		}
		if results, _ := e.results(); len(results) != 0 {
			t.Errorf("published results %v", results)
		}
	})
}

// first returns the first of two results.
func first[A, B any](a A, _ B) A { return a }

// TestEWSJobsLocateFoldersOnce checks that a mailbox's folders are located by its first job
// only: later jobs read with the cached folders.
func TestEWSJobsLocateFoldersOnce(t *testing.T) {
	e, sim := newEWSEnv(t)
	for cycle := uint64(1); cycle <= 3; cycle++ {
		job := &tandemv1.SyncJob{OrgId: testOrg, UserId: rep1, System: tandemv1.System_SYSTEM_EXCHANGE, Cycle: cycle, Kinds: []tandemv1.RecordKind{contact, event}}
		if err := e.w.handleJob(t.Context(), jobMessage(t, job)); err != nil {
			t.Fatal(err)
		}
	}
	counts := sim.Counts()
	if counts["GetFolder"] != 1 || counts["FindFolder"] != 1 {
		t.Errorf("three jobs sent %d GetFolder and %d FindFolder, want 1 each (all: %v)", counts["GetFolder"], counts["FindFolder"], counts)
	}
	if us := e.exchangeStatus(rep1); us.GetExchangeVersion() == "" || us.GetConsecutiveFailures() != 0 {
		t.Errorf("status %v", us)
	}
}

// TestEWSCreatesLookUpOnlyWhatMayExist checks, against the simulated Exchange, that a create
// delivered for the first time is made without a sync-key lookup, and that one that may repeat
// an earlier attempt (sent again in another batch, or redelivered) still finds it instead of
// making a second item.
func TestEWSCreatesLookUpOnlyWhatMayExist(t *testing.T) {
	e, sim := newEWSEnv(t)
	ctx := t.Context()
	create := func(key string) *tandemv1.WriteCommand {
		return &tandemv1.WriteCommand{CommandId: "cmd-" + key, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk-" + key,
			Record: &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{GivenName: "Rep", Surname: key}}}}
	}
	a, b, c := create("a"), create("b"), create("c")
	e.putInFlight(rep1, contact, tandemv1.System_SYSTEM_EXCHANGE, a, b, c)
	apply := func(id string, delivered uint64, cmds ...*tandemv1.WriteCommand) map[string]*tandemv1.WriteResult {
		t.Helper()
		sim.ResetCounts()
		batch := &tandemv1.WriteBatch{BatchId: id, OrgId: testOrg, UserId: rep1, Target: tandemv1.System_SYSTEM_EXCHANGE, Kind: contact, Cycle: 2, Commands: cmds}
		if err := e.w.handleApply(ctx, platformtest.ApplyMessage(t, batch, delivered)); err != nil {
			t.Fatal(err)
		}
		out := map[string]*tandemv1.WriteResult{}
		results, _ := e.results()
		for _, rb := range results {
			for _, r := range rb.GetResults() {
				if !r.GetOk() {
					t.Errorf("%s: %v", r.GetCommandId(), r.GetError())
				}
				out[r.GetCommandId()] = r
			}
		}
		return out
	}
	surnames := func() map[string]int {
		out := map[string]int{}
		for _, it := range sim.Items(rep1Mailbox, exchange.SyncFolderName) {
			out[it.Contact.Surname]++
		}
		return out
	}

	first := apply("first", 1, a)
	if n := sim.Counts()["FindItem"]; n != 0 {
		t.Errorf("a first attempt looked its key up (%d FindItem)", n)
	}
	again := apply("sent-again", 1, a, b)
	if n := sim.Counts()["FindItem"]; n != 1 {
		t.Errorf("a batch with a create sent again: %d FindItem, want 1", n)
	}
	if r := again["cmd-a"]; !r.GetAlreadyApplied() || r.GetRecord().GetId() != first["cmd-a"].GetRecord().GetId() {
		t.Errorf("create sent again: %v, want the first attempt's item %s", r, first["cmd-a"].GetRecord().GetId())
	}
	apply("redelivered", 2, c)
	if n := sim.Counts()["FindItem"]; n != 1 {
		t.Errorf("a redelivered batch: %d FindItem, want 1", n)
	}
	if got := surnames(); got["a"] != 1 || got["b"] != 1 || got["c"] != 1 {
		t.Errorf("contacts by surname %v, want one each of a, b and c", got)
	}
}

// TestEWSEchoNotFetched checks that a read does not fetch the echo of Tandem's own writes once
// the reconciler recorded their results (it finds the versions in the ledger), and that it still
// fetches an item the user changed after Tandem wrote it.
func TestEWSEchoNotFetched(t *testing.T) {
	e, sim := newEWSEnv(t)
	ctx := t.Context()
	job := func(cycle uint64) map[string]*tandemv1.Change {
		t.Helper()
		sim.ResetCounts()
		j := &tandemv1.SyncJob{OrgId: testOrg, UserId: rep1, System: tandemv1.System_SYSTEM_EXCHANGE, Cycle: cycle, Kinds: []tandemv1.RecordKind{contact}}
		if err := e.w.handleJob(ctx, jobMessage(t, j)); err != nil {
			t.Fatal(err)
		}
		out := map[string]*tandemv1.Change{}
		pages, _ := e.changes()
		for _, p := range pages {
			for _, ch := range p.GetChanges() {
				out[ch.GetRecord().GetId()] = ch
			}
		}
		return out
	}
	job(1)

	var cmds []*tandemv1.WriteCommand
	for _, name := range []string{"Ann", "Ben"} {
		cmds = append(cmds, &tandemv1.WriteCommand{CommandId: "cmd-" + name, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk-" + name,
			Record: &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{GivenName: name, Surname: "Tandem"}}}})
	}
	e.putInFlight(rep1, contact, tandemv1.System_SYSTEM_EXCHANGE, cmds...)
	batch := &tandemv1.WriteBatch{BatchId: "b", OrgId: testOrg, UserId: rep1, Target: tandemv1.System_SYSTEM_EXCHANGE, Kind: contact, Cycle: 1, Commands: cmds}
	if err := e.w.handleApply(ctx, platformtest.ApplyMessage(t, batch, 1)); err != nil {
		t.Fatal(err)
	}
	results, _ := e.results()
	if len(results) != 1 || len(results[0].GetResults()) != 2 {
		t.Fatalf("results %v", results)
	}
	// The reconciler commits the results: the written records become its view of the items.
	uk := store.UserKey{OrgID: testOrg, UserID: rep1}
	lease, err := e.st.AcquireLease(ctx, uk, "reconcile", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	led := ledger.New(e.st)
	snap, err := led.Load(ctx, uk, contact)
	if err != nil {
		t.Fatal(err)
	}
	w := snap.NewWrites()
	written := map[string]*tandemv1.Record{}
	for _, r := range results[0].GetResults() {
		written[r.GetRecord().GetId()] = r.GetRecord()
		w.PutMirror(tandemv1.System_SYSTEM_EXCHANGE, &tandemv1.MirrorRecord{Record: r.GetRecord(), WriteCycle: 1, ObservedAt: timestamppb.Now()})
	}
	if err := led.Commit(ctx, lease, w); err != nil {
		t.Fatal(err)
	}

	echo := job(2)
	if n := sim.Counts()["GetItem"]; n != 0 {
		t.Errorf("reading the echo of Tandem's writes sent %d GetItem, want 0", n)
	}
	if len(echo) != 2 {
		t.Fatalf("the echo listed %d items, want the 2 written", len(echo))
	}
	for id, rec := range written {
		if got := echo[id]; got.GetType() != tandemv1.ChangeType_CHANGE_TYPE_UPSERT || !proto.Equal(got.GetRecord(), rec) {
			t.Errorf("echo of %s: %v, want the written record %v", id, got, rec)
		}
	}

	edited := results[0].GetResults()[0].GetRecord().GetId()
	if err := sim.UpdateItem(rep1Mailbox, edited, func(it *ewssim.Item) { it.Contact.Surname = "Edited" }); err != nil {
		t.Fatal(err)
	}
	after := job(3)
	if n := sim.Counts()["GetItem"]; n != 1 {
		t.Errorf("reading the user's edit sent %d GetItem, want 1", n)
	}
	if got := after[edited].GetRecord(); got.GetContact().GetSurname() != "Edited" {
		t.Errorf("after the user's edit the read reported %v", after[edited])
	}
}

// TestEWSRecreatingAPairLooksUp re-creates the Exchange item of a linked pair whose item the
// user deleted a moment ago, as the reconciler does when the Salesforce record counts as changed
// meanwhile: the create is not a retry, but the pair's link names an Exchange item, so its key
// is looked up, and the deleted item, created after the command was issued (within the clock
// skew allowed), is taken for an earlier attempt: the deletion is carried over, the item does
// not come back.
func TestEWSRecreatingAPairLooksUp(t *testing.T) {
	e, sim := newEWSEnv(t)
	ctx := t.Context()
	exSide := tandemv1.System_SYSTEM_EXCHANGE
	apply := func(id string, cmd *tandemv1.WriteCommand) *tandemv1.WriteResult {
		t.Helper()
		e.putInFlight(rep1, contact, exSide, cmd)
		batch := &tandemv1.WriteBatch{BatchId: id, OrgId: testOrg, UserId: rep1, Target: exSide, Kind: contact, Cycle: 2, Commands: []*tandemv1.WriteCommand{cmd}}
		if err := e.w.handleApply(ctx, platformtest.ApplyMessage(t, batch, 1)); err != nil {
			t.Fatal(err)
		}
		results, _ := e.results()
		if len(results) != 1 || len(results[0].GetResults()) != 1 {
			t.Fatalf("results %v", results)
		}
		return results[0].GetResults()[0]
	}
	create := func(id string) *tandemv1.WriteCommand {
		return &tandemv1.WriteCommand{CommandId: id, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk-pair", IssuedAt: timestamppb.New(e.clock.Now()),
			Record: &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{GivenName: "Pat", Surname: "Paired"}}}}
	}
	first := apply("b1", create("cmd-1"))
	if !first.GetOk() {
		t.Fatalf("first create: %v", first)
	}
	item := first.GetRecord().GetId()
	e.putLedger(rep1, contact, []*tandemv1.MirrorRecord{{Record: first.GetRecord()}},
		&tandemv1.Mapping{SyncKey: "sk-pair", Kind: contact, ExchangeId: item, SalesforceId: "003pat"})
	if err := sim.DeleteItem(rep1Mailbox, item); err != nil {
		t.Fatal(err)
	}
	sim.ResetCounts()
	again := apply("b2", create("cmd-2"))
	if n := sim.Counts()["FindItem"]; n != 1 {
		t.Errorf("re-creating a pair's item: %d FindItem, want 1", n)
	}
	if again.GetOk() || again.GetError().GetCode() != string(syncerr.ExchangeItemNotFound) {
		t.Errorf("re-creating the item the user just deleted: %v, want %s", again, syncerr.ExchangeItemNotFound)
	}
	for _, it := range sim.Items(rep1Mailbox, exchange.SyncFolderName) {
		if it.Contact.Surname == "Paired" {
			t.Error("the deleted item came back")
		}
	}
}
