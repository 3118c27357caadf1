// Package engine is the reconciler's engine, between its state (package ledger) and its pure
// planner (package planner). For each user it turns change batches from both
// sides into observations in the user's ledger, plans a cycle once both sides have reported it,
// sends the planned writes to the workers that own the target systems, and commits links only
// from the writes' results — all under the user's fenced lease, so a process that lost the lease
// (paused, partitioned, slow) cannot commit anything.
//
// Every step is safe to repeat: a redelivered batch re-applies observations that are not newer
// than what the ledger holds (a no-op), re-plans the same cycle to the same commands with the same
// ids (de-duplicated by the bus), and a redelivered result finds its write no longer in flight.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"go.opentelemetry.io/otel/metric"
	"golang.org/x/sync/semaphore"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/reconcile/planner"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	"github.com/tandem-sync/tandem/pkg/userlock"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// LeaseRole is the lease role the reconciler holds while it works on a user.
const LeaseRole = "reconcile"

// Defaults for Options.
const (
	DefaultLeaseTTL         = time.Minute
	DefaultBatchSize        = 200
	DefaultBatchBytes       = 512 << 10
	deletionMarkerRetention = 7 * 24 * time.Hour
)

// Publisher sends messages on the bus.
type Publisher interface {
	Publish(ctx context.Context, subject string, msg proto.Message, msgID string) error
}

// Options tune a Syncer.
type Options struct {
	// LeaseTTL is the reconcile lease's time to live; the lease is renewed while work runs.
	LeaseTTL time.Duration
	// BatchSize caps the commands of one write batch (Salesforce takes 200 records a call).
	BatchSize int
	// BatchBytes caps the encoded size of one write batch, below the bus's message limit.
	BatchBytes int
	// PendingTimeout overrides how long a write may stay unanswered before it is re-planned.
	PendingTimeout time.Duration
	// LedgerLoads bounds the whole ledgers (every record of one user and kind) this Syncer holds
	// in memory at once; 0 means DefaultLedgerLoads. Handlers that need one more wait.
	LedgerLoads int
	// VerifyScope plans every cycle planned from what changed (see scopedCycle) a second time
	// from the whole ledger, and fails the handler with ErrScopeMismatch when the two plans
	// differ. It costs the whole-ledger load the scope saves: for tests and canaries.
	VerifyScope bool
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Logger logs; nil discards.
	Logger *slog.Logger
	// MeterProvider records the engine's metrics; nil records none.
	MeterProvider metric.MeterProvider
}

// Syncer handles one org's users' change batches and write results.
type Syncer struct {
	st     *store.Store
	led    *ledger.Ledger
	status *status.Store
	pub    Publisher
	opts   Options
	log    *slog.Logger
	locks  *userlock.Locks
	pools  *pools
	loads  *semaphore.Weighted
	met    *metrics
}

// New returns a Syncer.
func New(st *store.Store, pub Publisher, opts Options) *Syncer {
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = DefaultBatchBytes
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.LedgerLoads <= 0 {
		opts.LedgerLoads = DefaultLedgerLoads()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	met, err := newMetrics(opts.MeterProvider)
	if err != nil {
		log.Warn("the reconciler records no metrics", slog.Any("error", err))
		met, _ = newMetrics(nil)
	}
	return &Syncer{st: st, led: ledger.New(st), status: status.New(st), pub: pub, opts: opts, log: log,
		locks: userlock.New(st, LeaseRole, opts.LeaseTTL), pools: newPools(st, opts.Clock),
		loads: semaphore.NewWeighted(int64(opts.LedgerLoads)), met: met}
}

func malformed(format string, args ...any) error {
	return syncerr.New(syncerr.SyncMalformedMessage, format, args...)
}

func validSide(s tandemv1.System) bool {
	return s == tandemv1.System_SYSTEM_EXCHANGE || s == tandemv1.System_SYSTEM_SALESFORCE
}

func validKind(k tandemv1.RecordKind) bool {
	return k == tandemv1.RecordKind_RECORD_KIND_CONTACT || k == tandemv1.RecordKind_RECORD_KIND_EVENT
}

// settings resolves the user's configuration for kind; a user without one syncs nothing.
func (s *Syncer) settings(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind) (planner.Settings, error) {
	user, err := s.st.GetUser(ctx, uk.OrgID, uk.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return planner.SettingsFor(nil, kind), nil
	}
	if err != nil {
		return planner.Settings{}, err
	}
	cfg, ok, err := s.st.ResolveConfiguration(ctx, uk.OrgID, user)
	if err != nil {
		return planner.Settings{}, err
	}
	if !ok {
		cfg = nil
	}
	set := planner.SettingsFor(cfg, kind)
	if s.opts.PendingTimeout > 0 {
		set.PendingTimeout = s.opts.PendingTimeout
	}
	return set, nil
}

// outcome is what a handler reports after its commit: statuses and error-report entries.
type outcome struct {
	kindStatus *tandemv1.KindStatus
	lastCycle  uint64
	report     []*tandemv1.SyncError
	synced     int64
	// planned is true when the handler planned a cycle; planError is then the problem that
	// stops part of the user's sync (record limit, held deletes), or nil.
	planned   bool
	planError *tandemv1.SyncError
}

// HandleChanges applies a page of one side's changes and, when both sides have reported a cycle
// the user has not reconciled, plans it and sends its writes.
func (s *Syncer) HandleChanges(ctx context.Context, b *tandemv1.ChangeBatch) error {
	uk := store.UserKey{OrgID: b.GetOrgId(), UserID: b.GetUserId()}
	if err := uk.Validate(); err != nil {
		return malformed("change batch: %v", err)
	}
	if !validSide(b.GetSource()) || !validKind(b.GetKind()) {
		return malformed("change batch for %s: source %s, kind %s", uk, b.GetSource(), b.GetKind())
	}
	ctx = telemetry.WithScope(ctx, uk.OrgID, uk.UserID)
	var out outcome
	err := s.withLease(ctx, uk, func(ctx context.Context, lease *store.Lease) error {
		out = outcome{}
		slot := s.ledgerSlot()
		defer slot.release()
		epoch, page, err := s.readPage(ctx, uk, b)
		if page == nil || err != nil {
			return err
		}
		cyc := page.Cycle()
		if cyc.Epoch == epoch && b.GetCycle() < cyc.ResetFrom {
			s.log.DebugContext(ctx, "ignoring a batch from before the user's reset", slog.Uint64("cycle", b.GetCycle()))
			return nil
		}
		now := s.opts.Clock()
		readAt := now
		if b.GetReadAt() != nil {
			readAt = b.GetReadAt().AsTime()
		}
		s.tracePage(ctx, b)
		snap, err := s.loadForPage(ctx, slot, uk, b, page)
		if err != nil {
			return err
		}
		w := applyPage(snap, b, epoch, now, readAt, &out)
		in := pageInput{b: b, epoch: epoch, now: now, readAt: readAt}
		if snap.Partial && !due(snap.Cycle) {
			if done, err := s.pagePlan(ctx, lease, uk, in, snap, w, slot, &out); done || err != nil {
				return err
			}
			// Only observations: nothing to plan, send or report on yet.
			return s.led.Commit(ctx, lease, w)
		}
		set, err := s.settings(ctx, uk, b.GetKind())
		if err != nil {
			return err
		}
		if snap.Partial {
			if done, err := s.quietCycle(ctx, lease, uk, b.GetKind(), snap, w, set, now, &out); done || err != nil {
				return err
			}
			if done, err := s.scopedCycle(ctx, lease, uk, in, snap, w, set, slot, &out, false); done || err != nil {
				return err
			}
			// Something may have changed: plan the cycle from the whole ledger.
			if snap, err = slot.load(ctx, uk, b.GetKind()); err != nil {
				return err
			}
			out = outcome{}
			w = applyPage(snap, b, epoch, now, readAt, &out)
		}
		if ready := readyCycle(snap.Cycle); ready > snap.Cycle.Reconciled {
			state := stateOf(uk, b.GetKind(), ready, now, set, snap)
			plan := planner.Compute(state)
			local := planner.Local(state, plan) // before recordPlan adds the plan's links to the state
			recordPlan(snap, w, plan, ready, now)
			if local && settles(snap) {
				w.SetSettled(fingerprint(set))
			} else {
				w.ClearSettled()
			}
			w.ClearDirty()
			s.traceDecisions(ctx, b.GetKind(), ready, plan)
			if plan.Relinked > 0 {
				s.log.InfoContext(ctx, "relinked record pairs by their sync keys", slog.Int("relinked", plan.Relinked),
					slog.String("kind", store.KindName(b.GetKind())), slog.Uint64("cycle", ready))
			}
			if plan.Orphaned > 0 {
				s.log.InfoContext(ctx, "records whose partner was removed while the state was lost: decided as deletions, not created again",
					slog.Int("orphaned", plan.Orphaned), slog.String("kind", store.KindName(b.GetKind())), slog.Uint64("cycle", ready))
			}
			out.report = append(out.report, planReport(plan)...)
			out.planned = true
			s.met.cycle(ctx, b.GetKind(), fromWholeLedger)
			if len(plan.Errors) > 0 {
				out.planError = plan.Errors[0].Proto()
			}
			if emptyPlan(plan) && len(snap.Pending) == 0 && len(snap.Holds) == 0 {
				w.SetQuiet(fingerprint(set))
			}
		}
		out.kindStatus = kindStatus(&snap.Cycle, snap.Counts(), heldDeletes(snap), w, b.GetKind(), set)
		out.lastCycle = snap.Cycle.Reconciled
		if err := s.led.Commit(ctx, lease, w); err != nil {
			return err
		}
		return s.flush(ctx, lease, uk, b.GetKind(), snap)
	})
	if err != nil {
		return err
	}
	s.after(ctx, uk, b.GetKind(), out)
	return nil
}

// readPage reads, in one round trip, the org's schedule and what the batch's page needs of the
// user's ledger if only the page's records are to be loaded (see loadForPage): its cycle
// bookkeeping, its records' mirror entries and, for the last page of an Exchange read, which
// will most often complete the read, the items no read has listed yet. A change batch then
// costs one round trip before planning in the common case; the mirror entries are read in vain
// only for the pages that need the whole ledger or are dropped.
//
// A nil page with a nil error is a batch from a lost schedule, to be dropped (see
// lostSchedule); epoch is then meaningless.
func (s *Syncer) readPage(ctx context.Context, uk store.UserKey, b *tandemv1.ChangeBatch) (epoch string, page *ledger.PageRead, err error) {
	pipe := s.st.Client().Pipeline()
	sched, err := store.QueueScheduledCycle(ctx, pipe, uk.OrgID)
	if err != nil {
		return "", nil, err
	}
	unseen := b.GetLast() && b.GetError() == nil
	page, err = s.led.QueuePage(ctx, pipe, uk, b.GetKind(), b.GetSource(), pageIDs(b), unseen)
	if err != nil {
		return "", nil, err
	}
	pageErr := page.Exec(ctx, pipe)
	current, epoch, err := sched.Result()
	if err != nil {
		return "", nil, err
	}
	if pageErr != nil {
		return "", nil, pageErr
	}
	if s.lostSchedule(ctx, b.GetCycle(), current) {
		return "", nil, nil
	}
	return epoch, page, nil
}

// lostSchedule reports whether a batch's cycle is one the org's schedule, at current, has not
// started. Such a batch was read before Tandem's state was lost (FLUSHALL, a Redis restored
// from an older copy), and the scheduler numbers cycles from where its schedule now stands. It
// is dropped: taken in, it would mark a cycle far ahead of the new numbering as read, and every
// new cycle would look older than it and never be planned. What it carried is read again,
// since the read cursors were lost with the rest. A batch taken in just before the loss may
// still commit just after it; the epoch, which changes with the loss, tells the handlers after
// it to set its cycles aside (ledger.Writes.BeginEpoch).
func (s *Syncer) lostSchedule(ctx context.Context, cycle, current uint64) bool {
	if cycle <= current {
		return false
	}
	s.log.WarnContext(ctx, "dropping a batch read before Tandem's state was lost: its cycle is ahead of the org's schedule",
		slog.Uint64("cycle", cycle), slog.Uint64("scheduled", current))
	return true
}

// loadForPage loads what a change batch needs, from page, the ledger's read made for it (see
// readPage). The whole ledger is read only when the batch completes a full read (whose pruning
// compares the mirror with what the read listed), a cycle was already due to be planned, or
// planned writes are still to be sent; otherwise the page's records are what page read (and,
// for a page completing an incremental read of Exchange, the items Tandem wrote that no read
// has listed yet). A partial snapshot whose page makes a cycle due is planned without loading
// anything more when the user is quiet (quietCycle), or else loaded whole after all.
func (s *Syncer) loadForPage(ctx context.Context, slot *ledgerSlot, uk store.UserKey, b *tandemv1.ChangeBatch, page *ledger.PageRead) (*ledger.Snapshot, error) {
	cyc := page.Cycle()
	completes := b.GetError() == nil && cyc.CompletedBy(b.GetSource(), b.GetCycle(), b.GetPage(), b.GetLast(), b.GetPageCount())
	_, fullRead := cyc.FullStart[ledger.CycleSide(b.GetSource(), b.GetCycle())]
	fullRead = fullRead || (b.GetFullSnapshot() && b.GetError() == nil)
	if (completes && fullRead) || readyCycle(cyc) > cyc.Reconciled || cyc.Unsent > 0 {
		return slot.load(ctx, uk, b.GetKind())
	}
	return page.Snapshot(ctx, completes)
}

// pageIDs are the ids of the records a change batch carries.
func pageIDs(b *tandemv1.ChangeBatch) []string {
	ids := make([]string, 0, len(b.GetChanges()))
	for _, ch := range b.GetChanges() {
		if id := ch.GetRecord().GetId(); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// readyCycle is the highest cycle both sides have reported in full.
func readyCycle(c ledger.Cycle) uint64 {
	return min(c.Ready[store.SideName(tandemv1.System_SYSTEM_EXCHANGE)], c.Ready[store.SideName(tandemv1.System_SYSTEM_SALESFORCE)])
}

// due reports whether a cycle is ready to be planned.
func due(c ledger.Cycle) bool { return readyCycle(c) > c.Reconciled }

// applyPage adds a page's observations and page bookkeeping to snap and returns the commit
// that stores them.
func applyPage(snap *ledger.Snapshot, b *tandemv1.ChangeBatch, epoch string, now, readAt time.Time, out *outcome) *ledger.Writes {
	w := snap.NewWrites()
	if snap.Cycle.Epoch != epoch {
		// The bookkeeping counts cycles of a schedule since lost (or predates epochs).
		w.BeginEpoch(&snap.Cycle, epoch)
	}
	if snap.Cycle.BeganMs == 0 {
		snap.Cycle.BeganMs = now.UnixMilli()
		w.SetBegan(snap.Cycle.BeganMs)
	}
	if b.GetError() == nil {
		observe(snap, w, b, readAt)
	} else {
		out.report = append(out.report, b.GetError())
	}
	countPage(snap, w, b, readAt)
	return w
}

// quietCycle reconciles a due cycle without loading the ledger when the user is quiet: the last
// plan found nothing to do, nothing in the ledger's data has changed since (this page's
// observations included), the settings are the same and no write is in flight. Planning the
// whole ledger again would find nothing either. It reports whether it did.
func (s *Syncer) quietCycle(ctx context.Context, lease *store.Lease, uk store.UserKey, kind tandemv1.RecordKind, snap *ledger.Snapshot, w *ledger.Writes, set planner.Settings, now time.Time, out *outcome) (bool, error) {
	if snap.Cycle.Quiet == "" || snap.Cycle.Quiet != fingerprint(set) || w.Disturbed() {
		return false, nil
	}
	counts, err := s.led.Counts(ctx, snap.Keys)
	if err != nil {
		return false, err
	}
	if counts.Pending() > 0 {
		return false, nil
	}
	ready := readyCycle(snap.Cycle)
	snap.Cycle.Reconciled = ready
	w.SetReconciled(ready)
	snap.Cycle.LastSyncedMs = now.UnixMilli()
	w.SetLastSynced(snap.Cycle.LastSyncedMs)
	out.planned = true
	out.lastCycle = ready
	out.kindStatus = kindStatus(&snap.Cycle, counts, 0, w, kind, set)
	if err := s.led.Commit(ctx, lease, w); err != nil {
		return false, err
	}
	s.met.cycle(ctx, kind, fromNothing)
	s.log.DebugContext(ctx, "quiet cycle: nothing changed since the last plan", slog.String("kind", store.KindName(kind)), slog.Uint64("cycle", ready))
	return true, nil
}

// fingerprint identifies the settings a plan was made under.
func fingerprint(set planner.Settings) string { return fmt.Sprintf("%+v", set) }

// emptyPlan reports whether a plan does nothing at all.
func emptyPlan(p *planner.Plan) bool {
	return len(p.Writes) == 0 && len(p.Links) == 0 && len(p.Unlinks) == 0 && len(p.Tombstones) == 0 &&
		p.NewHold == nil && p.ResolvedHold == "" && len(p.Adopted) == 0 && len(p.Conflicts) == 0 &&
		len(p.Errors) == 0 && p.Relinked == 0 && p.Orphaned == 0
}

// observe stores the batch's observations, keeping for each record only the newest one: a
// redelivered or overtaken batch never replaces what a later read saw.
func observe(snap *ledger.Snapshot, w *ledger.Writes, b *tandemv1.ChangeBatch, readAt time.Time) {
	side := b.GetSource()
	mirror := snap.Mirror(side)
	at := timestamppb.New(readAt)
	for _, ch := range b.GetChanges() {
		id := ch.GetRecord().GetId()
		if id == "" {
			continue
		}
		if cur := mirror[id]; cur != nil && cur.GetObservedAt().AsTime().After(readAt) && !readAfterWrite(side, cur, ch.GetRecord(), ch.GetType() == tandemv1.ChangeType_CHANGE_TYPE_DELETE, b.GetCycle()) {
			if ch.GetType() == tandemv1.ChangeType_CHANGE_TYPE_UPSERT && !cur.GetDeleted() && cur.GetSeenCycle() < b.GetCycle() {
				// What the read saw is older than what Tandem knows, but the read did list the
				// record: it exists on the side (see vanishedCreates).
				n := proto.Clone(cur).(*tandemv1.MirrorRecord)
				n.SeenCycle = b.GetCycle()
				mirror[id] = n
				w.PutMirror(side, n)
			}
			continue
		}
		var m *tandemv1.MirrorRecord
		switch ch.GetType() {
		case tandemv1.ChangeType_CHANGE_TYPE_UPSERT:
			if ch.GetRecord().GetBody() == nil {
				continue
			}
			m = &tandemv1.MirrorRecord{Record: ch.GetRecord(), ObservedAt: at, OutOfScope: ch.GetOutOfScope(), SeenCycle: b.GetCycle()}
		case tandemv1.ChangeType_CHANGE_TYPE_DELETE:
			m = &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: id}, Deleted: true, ObservedAt: at, SeenCycle: b.GetCycle()}
		default:
			continue
		}
		mirror[id] = m
		w.PutMirror(side, m)
	}
}

// stampSkew is how much earlier than the worker's clock, when it sent a write, Salesforce may
// stamp the record: the two clocks differ, and the API reports SystemModstamp to the second.
const stampSkew = 2 * time.Second

// readAfterWrite reports whether a read of cycle cycle, which saw the record seen (or saw it
// deleted), saw it after write, the observation Tandem's own write left, although the read
// started before the write completed. A read starts before it fetches the records it reports,
// so a record changed by a user just after Tandem wrote it reaches Tandem only through such a
// read: dropping it would lose the user's change, since the side's cursor has moved past it.
//
// A later cycle's read continues from where an earlier read stopped, so it cannot report a
// version older than the one the write replaced. Exchange change keys cannot be compared, so
// there a version other than the written one and the one it replaced is newer. Salesforce
// versions are modification times, but its writes do not return the one they leave (the
// written record carries the one its mirror held when the result came): a version other than
// the one the write was planned over (written_over), stamped no earlier than the write's call
// was sent, allowing stampSkew, was made by the write or after it — or by an edit alongside
// it, which the next read, reporting the write's own version, settles.
func readAfterWrite(side tandemv1.System, write *tandemv1.MirrorRecord, seen *tandemv1.Record, deleted bool, cycle uint64) bool {
	if write.GetWriteCycle() == 0 || cycle <= write.GetWriteCycle() || write.GetDeleted() {
		return false
	}
	if deleted {
		return true // gone since the write
	}
	seenV, written := seen.GetVersion(), write.GetRecord().GetVersion()
	if seenV == "" || seenV == write.GetWrittenOver() {
		return false
	}
	if side != tandemv1.System_SYSTEM_SALESFORCE {
		return written != "" && seenV != written
	}
	s, err := time.Parse(time.RFC3339Nano, seenV)
	if err != nil {
		return false
	}
	if sent := write.GetWriteSentAt(); sent != nil {
		return !s.Before(sent.AsTime().Truncate(time.Second).Add(-stampSkew))
	}
	// A result from before workers said when they sent a write.
	w, err := time.Parse(time.RFC3339Nano, written)
	return err == nil && s.After(w)
}

// countPage records the page, and when the side's cycle is complete marks it ready — after
// pruning, for a full read, the records the read did not list.
func countPage(snap *ledger.Snapshot, w *ledger.Writes, b *tandemv1.ChangeBatch, readAt time.Time) {
	side, cycle := b.GetSource(), b.GetCycle()
	cs := ledger.CycleSide(side, cycle)
	c := &snap.Cycle
	pages := c.Pages[cs]
	if pages == nil {
		pages = map[uint32]bool{}
		c.Pages[cs] = pages
	}
	pages[b.GetPage()] = true
	w.SetPages(side, cycle, pages)
	if b.GetLast() {
		c.Counts[cs] = b.GetPageCount()
		w.SetCount(side, cycle, b.GetPageCount())
	}
	if b.GetFullSnapshot() && b.GetError() == nil {
		start := readAt.UnixMilli()
		if cur, ok := c.FullStart[cs]; ok && cur < start {
			start = cur
		}
		c.FullStart[cs] = start
		w.SetFullStart(side, cycle, start)
	}
	if b.GetError() != nil || !c.Complete(side, cycle) {
		return
	}
	start, full := c.FullStart[cs]
	if full {
		prune(snap, w, side, cycle, time.UnixMilli(start))
	}
	w.ForgetCycle(side, cycle)
	delete(c.Pages, cs)
	delete(c.Counts, cs)
	delete(c.FullStart, cs)
	advance(c, w, side, cycle, b.GetPreviousCycle())
	if !full && side == tandemv1.System_SYSTEM_EXCHANGE && c.Ready[store.SideName(side)] >= cycle {
		vanishedCreates(snap, w, side, cycle, readAt)
	}
}

// vanishedCreates marks deleted the items Tandem created in Exchange that no read has listed,
// once a chain of reads that started after the create completed has arrived. SyncFolderItems
// reports every item created since its sync state, except one also deleted (or moved out of
// the folder) within the same window: for such an item no read ever says anything, and without
// this it would stay in the mirror for good — a contact the user moved out of Salesforce_Sync
// right after Tandem created it would never count as removed. A read that started after the
// create completed, with every read before it arrived, has a window that either contains the
// create or follows one that did; had the item been there, one of them would have listed it.
func vanishedCreates(snap *ledger.Snapshot, w *ledger.Writes, side tandemv1.System, cycle uint64, readAt time.Time) {
	mirror := snap.Mirror(side)
	at := timestamppb.New(readAt)
	for id, e := range mirror {
		if e.GetDeleted() || e.GetWriteCycle() == 0 || e.GetSeenCycle() > 0 || !e.GetObservedAt().AsTime().Before(readAt) {
			continue
		}
		m := &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: id}, Deleted: true, ObservedAt: at, SeenCycle: cycle}
		mirror[id] = m
		w.PutMirror(side, m)
	}
}

// advance counts a completed read of side towards the side's readiness. A read continues from
// an earlier one (previous; 0 for a full read, which continues from nothing): the side is read
// up to a cycle only when every read in the chain leading to it has arrived. A read that
// completes before its predecessor waits for it.
func advance(c *ledger.Cycle, w *ledger.Writes, side tandemv1.System, cycle, previous uint64) {
	name := store.SideName(side)
	if previous > c.Ready[name] {
		c.Waiting[ledger.CycleSide(side, cycle)] = previous
		w.SetWaiting(side, cycle, previous)
		return
	}
	ready := max(c.Ready[name], cycle)
	for progressed := true; progressed; {
		progressed = false
		for cs, prev := range c.Waiting {
			waitSide, waitCycle, ok := ledger.ParseCycleSide(cs)
			if !ok || waitSide != side || prev > ready {
				continue
			}
			ready = max(ready, waitCycle)
			delete(c.Waiting, cs)
			w.ClearWaiting(side, waitCycle)
			progressed = true
		}
	}
	if ready > c.Ready[name] {
		c.Ready[name] = ready
		w.SetReady(side, ready)
	}
}

// prune marks deleted what a full read of side did not list, unless it was observed after the
// read started (a write whose result arrived meanwhile).
func prune(snap *ledger.Snapshot, w *ledger.Writes, side tandemv1.System, cycle uint64, start time.Time) {
	mirror := snap.Mirror(side)
	at := timestamppb.New(start)
	for id, e := range mirror {
		if e.GetDeleted() || e.GetSeenCycle() >= cycle || !e.GetObservedAt().AsTime().Before(start) {
			continue
		}
		m := &tandemv1.MirrorRecord{Record: &tandemv1.Record{Id: id}, Deleted: true, ObservedAt: at, SeenCycle: cycle}
		mirror[id] = m
		w.PutMirror(side, m)
	}
}

// stateOf builds the planner's input from a snapshot.
func stateOf(uk store.UserKey, kind tandemv1.RecordKind, cycle uint64, now time.Time, set planner.Settings, snap *ledger.Snapshot) *planner.State {
	st := &planner.State{
		OrgID: uk.OrgID, UserID: uk.UserID, Kind: kind, Cycle: cycle, Now: now, Settings: set,
		Exchange: snap.Exchange, Salesforce: snap.Salesforce, Mappings: snap.Mappings,
		Pending: snap.Pending, Rejected: snap.Rejected, Tombstones: snap.Tombstones,
	}
	if snap.Cycle.BeganMs > 0 {
		st.LedgerBegan = time.UnixMilli(snap.Cycle.BeganMs)
	}
	// One hold at a time per user and kind: the oldest.
	ids := make([]string, 0, len(snap.Holds))
	for id := range snap.Holds {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		return snap.Holds[ids[i]].GetCreatedAt().AsTime().Before(snap.Holds[ids[j]].GetCreatedAt().AsTime())
	})
	if len(ids) > 0 {
		h := &planner.ActiveHold{Hold: snap.Holds[ids[0]]}
		switch snap.Decisions[ids[0]] {
		case "approve":
			h.Decision = planner.HoldApproved
		case "reject":
			h.Decision = planner.HoldRejected
		}
		st.Hold = h
	}
	return st
}

// flush sends the writes committed as in flight and not yet sent (those of the oldest unsent
// cycle and later), then records that they were sent. Writes are committed before they are sent so that a worker only
// ever receives commands the ledger knows (and can tell stale ones from live ones); if sending
// fails, the message is retried and the next handler for the user sends them.
func (s *Syncer) flush(ctx context.Context, lease *store.Lease, uk store.UserKey, kind tandemv1.RecordKind, snap *ledger.Snapshot) error {
	cycle := snap.Cycle.Unsent
	if cycle == 0 {
		return nil
	}
	var cmds []*tandemv1.PendingWrite
	for _, pw := range snap.Pending {
		if pw.GetCycle() >= cycle {
			cmds = append(cmds, pw)
		}
	}
	start := time.Now()
	if err := s.send(ctx, uk, kind, cycle, cmds); err != nil {
		return err
	}
	s.log.DebugContext(ctx, "writes sent", slog.String("kind", store.KindName(kind)), slog.Uint64("cycle", cycle),
		slog.Int("writes", len(cmds)), slog.Duration("took", time.Since(start)))
	w := snap.NewWrites()
	w.ClearUnsent()
	snap.Cycle.Unsent = 0
	return s.led.Commit(ctx, lease, w)
}

// send publishes writes as write batches, per target, within size limits. Batches are formed
// deterministically (by command id) so that sending the same writes again yields the same batch
// ids, which the bus de-duplicates. They go to the workers of the org's pool.
func (s *Syncer) send(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind, cycle uint64, writes []*tandemv1.PendingWrite) error {
	sort.Slice(writes, func(i, j int) bool {
		return writes[i].GetCommand().GetCommandId() < writes[j].GetCommand().GetCommandId()
	})
	byTarget := map[tandemv1.System][]*tandemv1.WriteCommand{}
	for _, w := range writes {
		byTarget[w.GetTarget()] = append(byTarget[w.GetTarget()], w.GetCommand())
	}
	if len(writes) == 0 {
		return nil
	}
	pool, err := s.pools.of(ctx, uk.OrgID)
	if err != nil {
		return err
	}
	for _, target := range []tandemv1.System{tandemv1.System_SYSTEM_EXCHANGE, tandemv1.System_SYSTEM_SALESFORCE} {
		cmds := byTarget[target]
		subject, err := bus.ApplySubject(uk.OrgID, target, pool, uk.UserID)
		if err != nil {
			return err
		}
		for len(cmds) > 0 {
			n, size := 0, 0
			for n < len(cmds) && n < s.opts.BatchSize {
				sz := proto.Size(cmds[n])
				if n > 0 && size+sz > s.opts.BatchBytes {
					break
				}
				size += sz
				n++
			}
			chunk := cmds[:n]
			cmds = cmds[n:]
			ids := make([]string, 0, len(chunk))
			for _, c := range chunk {
				ids = append(ids, c.GetCommandId())
			}
			batch := &tandemv1.WriteBatch{
				BatchId: bus.MsgID(ids...), OrgId: uk.OrgID, UserId: uk.UserID,
				Target: target, Kind: kind, Cycle: cycle, Commands: chunk,
			}
			if err := s.pub.Publish(ctx, subject, batch, batch.GetBatchId()); err != nil {
				return fmt.Errorf("send %d writes to %s for %s: %w", len(chunk), store.SideName(target), uk, err)
			}
		}
	}
	return nil
}

// recordPlan adds a plan's effects to the commit and to the snapshot.
func recordPlan(snap *ledger.Snapshot, w *ledger.Writes, plan *planner.Plan, cycle uint64, now time.Time) {
	for _, eff := range plan.Adopted {
		delete(snap.Pending, eff.PendingKey)
		w.DeletePending(eff.PendingKey)
	}
	for _, wr := range plan.Writes {
		// A newer decision replaces an overdue one under the same key: the old command is no
		// longer in flight, so a redelivery of it will not run.
		pk := planner.PendingKey(wr.GetTarget(), wr.GetCommand().GetSyncKey())
		snap.Pending[pk] = wr.PendingWrite
		w.PutPending(pk, wr.PendingWrite)
	}
	if len(plan.Writes) > 0 && (snap.Cycle.Unsent == 0 || cycle < snap.Cycle.Unsent) {
		// Keep the oldest cycle not yet sent: a flush sends everything in flight from it on.
		snap.Cycle.Unsent = cycle
		w.SetUnsent(cycle)
	}
	for _, m := range plan.Links {
		snap.Mappings[m.GetSyncKey()] = m
		w.PutMapping(m)
	}
	for _, k := range plan.Unlinks {
		delete(snap.Mappings, k)
	}
	w.DeleteMappings(plan.Unlinks...)
	for _, t := range plan.Tombstones {
		snap.Tombstones[t] = true
	}
	w.AddTombstones(plan.Tombstones...)
	if plan.ResolvedHold != "" {
		delete(snap.Holds, plan.ResolvedHold)
		w.DeleteHold(plan.ResolvedHold)
	}
	if plan.NewHold != nil {
		snap.Holds[plan.NewHold.GetSummary().GetHoldId()] = plan.NewHold
		w.PutHold(plan.NewHold)
	}
	// Deletion markers only need to outlive any batch that could still be redelivered.
	for _, side := range []tandemv1.System{tandemv1.System_SYSTEM_EXCHANGE, tandemv1.System_SYSTEM_SALESFORCE} {
		var old []string
		for id, e := range snap.Mirror(side) {
			if e.GetDeleted() && now.Sub(e.GetObservedAt().AsTime()) > deletionMarkerRetention {
				old = append(old, id)
			}
		}
		w.DeleteMirror(side, old...)
	}
	if plan.Relinked > 0 {
		snap.Cycle.Relinked += int64(plan.Relinked)
		w.SetRelinked(snap.Cycle.Relinked)
	}
	snap.Cycle.Reconciled = cycle
	w.SetReconciled(cycle)
	snap.Cycle.LastSyncedMs = now.UnixMilli()
	w.SetLastSynced(snap.Cycle.LastSyncedMs)
}

// planReport lists what a plan has to say in the error report: user-level problems, held deletes
// and conflicts.
func planReport(plan *planner.Plan) []*tandemv1.SyncError {
	var out []*tandemv1.SyncError
	for _, e := range plan.Errors {
		out = append(out, e.Proto())
	}
	for _, c := range plan.Conflicts {
		e := syncerr.New(syncerr.SyncConflict, "changed in Exchange (%v) and in Salesforce (%v) since the last sync; %s", c.ExchangeFields, c.SalesforceFields, c.Resolution)
		e.RecordID = c.SalesforceID
		out = append(out, e.Proto())
	}
	return out
}

// heldDeletes is the number of deletes a whole-ledger snapshot's holds keep back.
func heldDeletes(snap *ledger.Snapshot) int64 {
	var n int64
	for _, h := range snap.Holds {
		n += h.GetSummary().GetCount()
	}
	return n
}

// kindStatus computes the user's status for kind from the cycle bookkeeping and counts as they
// will be committed, adding to w the marks of initial syncs that just completed.
func kindStatus(c *ledger.Cycle, counts ledger.Counts, held int64, w *ledger.Writes, kind tandemv1.RecordKind, set planner.Settings) *tandemv1.KindStatus {
	ks := &tandemv1.KindStatus{
		Kind: kind, PendingWrites: counts.Pending(), RecordsRelinked: c.Relinked,
		RecordsInSync: counts.InSync(), HeldDeletes: held,
	}
	if c.LastSyncedMs > 0 {
		ks.LastSyncedAt = timestamppb.New(time.UnixMilli(c.LastSyncedMs))
	}
	direction := func(target tandemv1.System, flows bool) tandemv1.DirectionStatus {
		switch {
		case !flows:
			return tandemv1.DirectionStatus_DIRECTION_STATUS_NOT_SET_TO_SYNC
		case c.Reconciled == 0:
			return tandemv1.DirectionStatus_DIRECTION_STATUS_NOT_STARTED
		}
		done := c.InitialDone[store.SideName(target)]
		if counts.PendingTo[target] > 0 {
			if done {
				return tandemv1.DirectionStatus_DIRECTION_STATUS_SYNC_IN_PROGRESS
			}
			return tandemv1.DirectionStatus_DIRECTION_STATUS_INITIAL_SYNC_IN_PROGRESS
		}
		if !done {
			c.InitialDone[store.SideName(target)] = true
			w.SetInitialDone(target)
			return tandemv1.DirectionStatus_DIRECTION_STATUS_INITIAL_SYNC_COMPLETED
		}
		return tandemv1.DirectionStatus_DIRECTION_STATUS_IN_SYNC
	}
	ks.SalesforceToExchange = direction(tandemv1.System_SYSTEM_EXCHANGE, set.ToExchange())
	ks.ExchangeToSalesforce = direction(tandemv1.System_SYSTEM_SALESFORCE, set.ToSalesforce())
	return ks
}

// after stores what a handler learned outside the lease: statuses, the error report and
// activity. It is best effort — the sync itself is committed — and logs what fails.
func (s *Syncer) after(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind, out outcome) {
	if out.kindStatus != nil {
		if err := s.status.PutKind(ctx, uk, out.kindStatus); err != nil {
			s.log.WarnContext(ctx, "store kind status", slog.Any("error", err))
		}
	}
	if out.planned {
		// The user's status says what stops part of the sync (the record limit, held deletes)
		// until a cycle plans without it.
		part := &tandemv1.UserStatus{LastCycle: out.lastCycle, LastError: out.planError}
		if err := s.status.Put(ctx, uk, status.PartReconcile, part); err != nil {
			s.log.WarnContext(ctx, "store reconciler status", slog.Any("error", err))
		}
	}
	for _, e := range out.report {
		if _, err := s.st.RecordError(ctx, uk.OrgID, uk.UserID, kind, e); err != nil {
			s.log.WarnContext(ctx, "record sync error", slog.Any("error", err), slog.String("code", e.GetCode()))
		}
	}
	if out.synced > 0 {
		if err := s.st.AddActivity(ctx, uk.OrgID, store.KindName(kind), out.synced, s.opts.Clock()); err != nil {
			s.log.WarnContext(ctx, "record activity", slog.Any("error", err))
		}
	}
}

// traceDecisions logs, at DEBUG, every decision of a plan by record id and sync key (never a
// record's content): what a run of `tandem chaos` is traced with.
func (s *Syncer) traceDecisions(ctx context.Context, kind tandemv1.RecordKind, cycle uint64, plan *planner.Plan) {
	if !s.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	k := slog.String("kind", store.KindName(kind))
	for _, wr := range plan.Writes {
		c := wr.GetCommand()
		s.log.DebugContext(ctx, "planned write", k, slog.Uint64("cycle", cycle), slog.String("target", store.SideName(wr.GetTarget())),
			slog.String("op", c.GetOp().String()), slog.String("sync_key", c.GetSyncKey()), slog.String("target_id", c.GetTargetId()),
			slog.String("source_id", wr.GetSourceId()), slog.Any("fields", c.GetFields()), slog.String("reason", wr.Reason), slog.String("command", c.GetCommandId()))
	}
	for _, m := range plan.Links {
		s.log.DebugContext(ctx, "linked", k, slog.Uint64("cycle", cycle), slog.String("sync_key", m.GetSyncKey()),
			slog.String("exchange_id", m.GetExchangeId()), slog.String("salesforce_id", m.GetSalesforceId()))
	}
	for _, key := range plan.Unlinks {
		s.log.DebugContext(ctx, "unlinked", k, slog.Uint64("cycle", cycle), slog.String("sync_key", key))
	}
	for _, t := range plan.Tombstones {
		s.log.DebugContext(ctx, "tombstoned", k, slog.Uint64("cycle", cycle), slog.String("record", t))
	}
	if plan.NewHold != nil {
		s.log.DebugContext(ctx, "removals held", k, slog.Uint64("cycle", cycle), slog.Int("count", len(plan.NewHold.GetDeletes())))
	}
}

// tracePage logs, at DEBUG, what a page of changes reports by record id and sync key.
func (s *Syncer) tracePage(ctx context.Context, b *tandemv1.ChangeBatch) {
	if !s.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	s.log.DebugContext(ctx, "page", slog.String("source", store.SideName(b.GetSource())), slog.String("kind", store.KindName(b.GetKind())),
		slog.Uint64("cycle", b.GetCycle()), slog.Uint64("previous_cycle", b.GetPreviousCycle()), slog.Uint64("page", uint64(b.GetPage())),
		slog.Bool("last", b.GetLast()), slog.Bool("full", b.GetFullSnapshot()), slog.Int("changes", len(b.GetChanges())),
		slog.String("error", b.GetError().GetCode()))
	for _, ch := range b.GetChanges() {
		r := ch.GetRecord()
		s.log.DebugContext(ctx, "change", slog.String("source", store.SideName(b.GetSource())), slog.Uint64("cycle", b.GetCycle()),
			slog.String("type", ch.GetType().String()), slog.String("id", r.GetId()), slog.String("sync_key", r.GetSyncKey()),
			slog.String("version", r.GetVersion()))
	}
}
