package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"pgregory.net/rapid"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/reconcile/planner"
	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	testOrg  = "00Dorg000000001"
	testUser = "005user00000001"
	pageSize = 3
)

var uk = store.UserKey{OrgID: testOrg, UserID: testUser}

// queued is a message waiting in one of the harness's streams.
type queued[T proto.Message] struct {
	id  string
	msg T
}

// harness runs the real Syncer against real Redis, with fake Exchange and Salesforce sides
// standing in for the workers, and message queues standing in for JetStream: the test decides
// which message is delivered when, whether it is delivered again, and whether a worker crashes
// between its write and publishing the result.
type harness struct {
	t      testing.TB
	ctx    context.Context
	st     *store.Store
	syncer *Syncer
	ex, sf *fakeSide
	now    time.Time

	cycle              uint64
	exCursor, sfCursor int
	// exFrom, sfFrom are the cycles whose reads stored the current cursors (0: none).
	exFrom, sfFrom uint64
	changes        []queued[*tandemv1.ChangeBatch]
	applies        []queued[*tandemv1.WriteBatch]
	results        []queued[*tandemv1.WriteResultBatch]
	writesSent     int
	// subjects are the subjects of every write batch published, in order.
	subjects []string
	// publishFault makes the next publish store the message and then fail, as a crash of the
	// reconciler right after publishing and before committing would.
	publishFault bool
	// onWrite, when set, is told about every record Tandem writes (target side and email).
	onWrite func(target tandemv1.System, email string)
	// log is a readable trace of what happened, printed when a property fails.
	log []string
	// approveHolds makes settle act as an admin who approves every mass-delete hold.
	approveHolds bool
}

func (h *harness) tracef(format string, args ...any) {
	h.log = append(h.log, fmt.Sprintf(format, args...))
}

func describe(c *tandemv1.WriteCommand) string {
	return fmt.Sprintf("%s %s key=%s target=%s %v", strings.TrimPrefix(c.GetOp().String(), "WRITE_OP_"), record.EmailKey(c.GetRecord()), c.GetSyncKey()[:8], c.GetTargetId(), c.GetFields())
}

// Publish implements Publisher: a message id already waiting in the queue is de-duplicated,
// as JetStream does within its duplicate window.
func (h *harness) Publish(_ context.Context, subject string, msg proto.Message, id string) error {
	b := msg.(*tandemv1.WriteBatch)
	h.subjects = append(h.subjects, subject)
	for _, c := range b.GetCommands() {
		h.tracef("  plan → %s: %s", store.SideName(b.GetTarget()), describe(c))
	}
	if !slices.ContainsFunc(h.applies, func(q queued[*tandemv1.WriteBatch]) bool { return q.id == id }) {
		h.applies = append(h.applies, queued[*tandemv1.WriteBatch]{id, proto.Clone(b).(*tandemv1.WriteBatch)})
		h.writesSent += len(b.GetCommands())
	}
	if h.publishFault {
		h.publishFault = false
		return context.DeadlineExceeded
	}
	return nil
}

func newHarness(t testing.TB, rdb *redis.Client, cfg *tandemv1.SyncConfiguration) *harness {
	t.Helper()
	h := &harness{
		t: t, ctx: context.Background(), st: store.New(rdb, nil),
		ex: newFakeSide(tandemv1.System_SYSTEM_EXCHANGE), sf: newFakeSide(tandemv1.System_SYSTEM_SALESFORCE),
		now: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC), exCursor: -1, sfCursor: -1,
	}
	clock := func() time.Time { return h.now }
	h.ex.now, h.sf.now = clock, clock
	// Every cycle planned from what changed is checked against the whole ledger's plan.
	h.syncer = New(h.st, h, Options{Clock: clock, VerifyScope: true})
	if err := rdb.FlushDB(h.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := h.st.PutUsers(h.ctx, testOrg, []*tandemv1.SyncUser{{UserId: testUser, Email: "rep@example.com", Active: true, ProfileId: "00eprofile000001"}}); err != nil {
		t.Fatal(err)
	}
	cfg.UserIds = []string{testUser}
	if _, err := h.st.PutConfiguration(h.ctx, testOrg, cfg); err != nil {
		t.Fatal(err)
	}
	return h
}

// claimCycles starts the org's cycles up to cycle, as the scheduler does before it publishes a
// cycle's jobs: the reconciler drops batches of cycles the schedule has not reached.
func claimCycles(t testing.TB, st *store.Store, orgID string, cycle uint64) {
	t.Helper()
	ctx := context.Background()
	for {
		current, _, err := st.ScheduledCycle(ctx, orgID)
		if err != nil {
			t.Fatal(err)
		}
		if current >= cycle {
			return
		}
		now := time.Now()
		if _, _, err := st.ClaimCycle(ctx, orgID, now, now); err != nil {
			t.Fatal(err)
		}
	}
}

// drawPolicy draws one of the conflict policies.
func drawPolicy(rt *rapid.T) tandemv1.ConflictPolicy {
	return rapid.SampledFrom([]tandemv1.ConflictPolicy{
		tandemv1.ConflictPolicy_CONFLICT_POLICY_SALESFORCE_WINS,
		tandemv1.ConflictPolicy_CONFLICT_POLICY_EXCHANGE_WINS,
		tandemv1.ConflictPolicy_CONFLICT_POLICY_FIELD_MERGE,
	}).Draw(rt, "policy")
}

// drawEdit returns a user's edit of a contact that draws which field changes and how.
func drawEdit(rt *rapid.T) func(*tandemv1.Contact) {
	return func(c *tandemv1.Contact) {
		switch rapid.IntRange(0, 2).Draw(rt, "field") {
		case 0:
			c.JobTitle = rapid.SampledFrom([]string{"VP", "CTO", "Engineer", ""}).Draw(rt, "title")
		case 1:
			c.Department = rapid.SampledFrom([]string{"Sales", "R&D", ""}).Draw(rt, "dept")
		default:
			c.Notes = rapid.StringMatching(`[a-z ]{0,12}`).Draw(rt, "notes")
		}
	}
}

// seedSettled creates n contacts in each system (emails p0… in Exchange, p10000… in
// Salesforce) and settles twice — the first sync, then the cycle that reads the echo of its
// writes — after which the user is quiet. It returns the Exchange contacts' ids.
func (h *harness) seedSettled(n int) []string {
	h.t.Helper()
	var ids []string
	for i := range n {
		ids = append(ids, h.ex.create(contactRecord(i, "N", "Ex", "")).GetId())
		h.sf.create(contactRecord(10000+i, "N", "Sf", ""))
	}
	h.settle()
	h.settle()
	return ids
}

func bothWays(policy tandemv1.ConflictPolicy) *tandemv1.SyncConfiguration {
	return &tandemv1.SyncConfiguration{Name: "reps", Active: true, Contacts: &tandemv1.ContactSyncSettings{
		Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH, ConflictPolicy: policy,
	}}
}

func (h *harness) tick() { h.now = h.now.Add(time.Second) }

// startCycle has both workers read their side and queue the batches of a new cycle.
func (h *harness) startCycle() {
	h.cycle++
	h.tick()
	claimCycles(h.t, h.st, testOrg, h.cycle)
	h.tracef("cycle %d starts", h.cycle)
	for _, s := range []struct {
		side   *fakeSide
		cursor *int
		from   *uint64
	}{{h.ex, &h.exCursor, &h.exFrom}, {h.sf, &h.sfCursor, &h.sfFrom}} {
		changes, next, full := s.side.read(*s.cursor)
		previous := *s.from
		if full {
			previous = 0
		}
		*s.cursor, *s.from = next, h.cycle
		pages := max(1, (len(changes)+pageSize-1)/pageSize)
		for p := range pages {
			b := &tandemv1.ChangeBatch{
				OrgId: testOrg, UserId: testUser, Source: s.side.system, Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT,
				Cycle: h.cycle, PreviousCycle: previous, Page: uint32(p), Last: p == pages-1, FullSnapshot: full, ReadAt: timestamppb.New(h.now),
				Changes: changes[min(p*pageSize, len(changes)):min((p+1)*pageSize, len(changes))],
			}
			if b.Last {
				b.PageCount = uint32(pages)
			}
			h.changes = append(h.changes, queued[*tandemv1.ChangeBatch]{bus.MsgID(b.String()), b})
		}
	}
}

// deliverChange hands the i-th change batch to the reconciler; keep leaves it queued (a
// redelivery will follow).
func (h *harness) deliverChange(i int, keep bool) {
	h.tick()
	q := h.changes[i]
	var ids []string
	for _, c := range q.msg.GetChanges() {
		ids = append(ids, c.GetRecord().GetId()+map[bool]string{true: "(del)", false: ""}[c.GetType() == tandemv1.ChangeType_CHANGE_TYPE_DELETE])
	}
	h.tracef("deliver %s cycle %d page %d/%d %v keep=%v fault=%v", store.SideName(q.msg.GetSource()), q.msg.GetCycle(), q.msg.GetPage(), q.msg.GetPageCount(), ids, keep, h.publishFault)
	if err := h.syncer.HandleChanges(h.ctx, proto.Clone(q.msg).(*tandemv1.ChangeBatch)); err != nil {
		if errors.Is(err, ErrScopeMismatch) {
			h.t.Fatal(err)
		}
		h.tracef("  failed: %v", err)
		return // not acked: stays queued
	}
	if !keep {
		h.changes = slices.Delete(h.changes, i, i+1)
	}
}

// deliverApply has the owning worker carry out the i-th write batch. crash loses the result
// after the writes were made, and leaves the batch queued for redelivery.
func (h *harness) deliverApply(i int, crash bool) {
	h.tick()
	q := h.applies[i]
	side := h.ex
	if q.msg.GetTarget() == tandemv1.System_SYSTEM_SALESFORCE {
		side = h.sf
	}
	// Like the workers, carry out only commands still in flight: a redelivered batch must not
	// redo what was answered, adopted, superseded or dropped by a reset meanwhile.
	live, err := ledger.NewOutbox(h.st).InFlight(h.ctx, uk, q.msg)
	if err != nil {
		h.t.Fatal(err)
	}
	batch := proto.Clone(q.msg).(*tandemv1.WriteBatch)
	batch.Commands = slices.DeleteFunc(batch.Commands, func(c *tandemv1.WriteCommand) bool { return !live[c.GetCommandId()] })
	results := side.apply(batch)
	for i, c := range batch.GetCommands() {
		h.tracef("apply to %s: %s → ok=%v id=%s %s crash=%v", store.SideName(batch.GetTarget()), describe(c), results[i].GetOk(), results[i].GetRecord().GetId(), results[i].GetError().GetCode(), crash)
	}
	if len(batch.GetCommands()) < len(q.msg.GetCommands()) {
		h.tracef("apply skipped %d commands no longer in flight", len(q.msg.GetCommands())-len(batch.GetCommands()))
	}
	if h.onWrite != nil {
		for _, c := range batch.GetCommands() {
			if record.KeyOnly(c.GetFields()) {
				continue // a stamp of the pair's key carries no content across
			}
			if e := record.EmailKey(c.GetRecord()); e != "" {
				h.onWrite(batch.GetTarget(), e)
			}
		}
	}
	if crash {
		return
	}
	rb := &tandemv1.WriteResultBatch{
		BatchId: q.msg.GetBatchId(), OrgId: testOrg, UserId: testUser, Target: q.msg.GetTarget(),
		Kind: q.msg.GetKind(), Cycle: q.msg.GetCycle(), Results: results, CompletedAt: timestamppb.New(h.now),
	}
	h.results = append(h.results, queued[*tandemv1.WriteResultBatch]{q.id + "-result", rb})
	h.applies = slices.Delete(h.applies, i, i+1)
}

func (h *harness) deliverResult(i int, keep bool) {
	h.tick()
	q := h.results[i]
	h.tracef("deliver results of %s (%d) keep=%v", store.SideName(q.msg.GetTarget()), len(q.msg.GetResults()), keep)
	if err := h.syncer.HandleResults(h.ctx, proto.Clone(q.msg).(*tandemv1.WriteResultBatch)); err != nil {
		h.t.Fatalf("HandleResults: %v", err)
	}
	if !keep {
		h.results = slices.Delete(h.results, i, i+1)
	}
}

// drain delivers everything queued, in order, without faults.
func (h *harness) drain() {
	for len(h.changes)+len(h.applies)+len(h.results) > 0 {
		switch {
		case len(h.changes) > 0:
			h.deliverChange(0, false)
		case len(h.applies) > 0:
			h.deliverApply(0, false)
		default:
			h.deliverResult(0, false)
		}
	}
}

// settle runs fault-free cycles until a cycle sends no writes and nothing is in flight. Time
// passes first, as it does between the faults ending and a real system settling: long enough
// for a record whose partner is gone to count as an orphan (planner.OrphanSettle).
func (h *harness) settle() {
	h.t.Helper()
	h.now = h.now.Add(planner.OrphanSettle)
	for range 12 {
		before := h.writesSent
		h.startCycle()
		h.drain()
		if h.approveHolds && h.approveAll() {
			continue
		}
		if h.writesSent == before {
			return
		}
	}
	h.t.Fatalf("did not settle after 12 cycles")
}

// approveAll approves every hold, as an admin would, and reports whether there was any.
func (h *harness) approveAll() bool {
	snap, err := ledger.New(h.st).Load(h.ctx, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	if err != nil {
		h.t.Fatal(err)
	}
	for id := range snap.Holds {
		h.tracef("admin approves hold %s", id)
		if err := h.syncer.Decide(h.ctx, uk, id, true); err != nil {
			h.t.Fatal(err)
		}
	}
	return len(snap.Holds) > 0
}

func (h *harness) reset() {
	h.tracef("RESET")
	if err := h.syncer.Reset(h.ctx, uk, h.cycle+1); err != nil {
		h.t.Fatalf("Reset: %v", err)
	}
	h.exCursor, h.sfCursor = -1, -1
	h.exFrom, h.sfFrom = 0, 0
}

// assertContacts checks that each side holds n contacts.
func (h *harness) assertContacts(n int) {
	h.t.Helper()
	if len(h.ex.items) != n || len(h.sf.items) != n {
		h.t.Fatalf("exchange %d, salesforce %d contacts, want %d each", len(h.ex.items), len(h.sf.items), n)
	}
}

// assertAgree checks that both sides hold the same contacts with the same synced content, once each.
func (h *harness) assertAgree() {
	h.t.Helper()
	exBy, sfBy := h.ex.byEmail(), h.sf.byEmail()
	for email, recs := range exBy {
		if len(recs) != 1 || len(sfBy[email]) != 1 {
			h.t.Fatalf("%s: %d in Exchange, %d in Salesforce", email, len(recs), len(sfBy[email]))
		}
		if d := record.DifferingFields(recs[0], sfBy[email][0]); len(d) > 0 {
			h.t.Fatalf("%s differs in %v:\n exchange   %v\n salesforce %v", email, d, recs[0], sfBy[email][0])
		}
	}
	for email := range sfBy {
		if len(exBy[email]) == 0 {
			h.t.Fatalf("%s is only in Salesforce", email)
		}
	}
}
