package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/reconcile/planner"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// ErrScopeMismatch means a cycle planned from what changed differs from the plan of the whole
// ledger (Options.VerifyScope).
var ErrScopeMismatch = errors.New("the plan from what changed differs from the whole ledger's plan")

// smallScope is the most changes (records and pairs changed, writes in flight) a scope may
// start from without a ledger slot (Options.LedgerLoads): their memory is that of a page of
// changes.
const smallScope = 500

// pageInput is a change batch as a handler applies it.
type pageInput struct {
	b           *tandemv1.ChangeBatch
	epoch       string
	now, readAt time.Time
}

// scopedCycle plans a due cycle from what changed since the last plan, without loading the
// whole ledger, when the user is settled (ledger.Writes.SetSettled) under the same settings:
// it loads the changed records, their pairs and the writes in flight (ledger.LoadScope) and
// plans them. When the changes reach beyond their pairs — a new record, a deletion, a create —
// or the plan turns out not to be local (planner.Local), it plans nothing and reports false:
// the caller plans the whole ledger, or, for a page plan (early, see pagePlan), waits for the
// cycle. snap and w are the page's partial snapshot and commit.
func (s *Syncer) scopedCycle(ctx context.Context, lease *store.Lease, uk store.UserKey, in pageInput, snap *ledger.Snapshot, w *ledger.Writes, set planner.Settings, slot *ledgerSlot, out *outcome, early bool) (bool, error) {
	fp := fingerprint(set)
	kind := in.b.GetKind()
	if snap.Cycle.Settled != fp {
		return false, nil
	}
	scope, err := s.led.LoadScope(ctx, snap, w, func(ctx context.Context, size int) error {
		if size <= smallScope {
			return nil
		}
		// After a bulk change a scope can be as large as the whole ledger: it takes a slot, so
		// that the memory of such scopes is bounded as whole ledgers' is.
		return slot.acquire(ctx, uk, kind)
	})
	if err != nil || scope == nil {
		return false, err
	}
	// A page plan is recorded as the cycle last reconciled: the cycle it belongs to is not complete.
	ready := readyCycle(snap.Cycle)
	if early {
		ready = snap.Cycle.Reconciled
	}
	state := stateOf(uk, kind, ready, in.now, set, scope)
	plan := planner.Compute(state)
	if !planner.Local(state, plan) {
		s.log.DebugContext(ctx, "the changes reach beyond their pairs: planning the whole ledger",
			slog.String("kind", store.KindName(kind)), slog.Uint64("cycle", ready))
		return false, nil
	}
	if early && !checkedEarly(plan, scope) {
		return false, nil
	}
	if s.opts.VerifyScope {
		if err := s.verifyScope(ctx, uk, in, slot, set, ready, plan); err != nil {
			return false, err
		}
	}
	recordPlan(scope, w, plan, ready, in.now)
	s.traceDecisions(ctx, kind, ready, plan)
	out.report = append(out.report, planReport(plan)...)
	out.planned = true
	out.lastCycle = scope.Cycle.Reconciled
	if emptyPlan(plan) && len(scope.Pending) == 0 {
		w.SetQuiet(fp)
	}
	w.ClearDirty()
	if err := s.led.Commit(ctx, lease, w); err != nil {
		return false, err
	}
	// The status counts what is committed, which only Redis knows in full.
	counts, err := s.led.Counts(ctx, scope.Keys)
	if err != nil {
		return false, err
	}
	w = scope.NewWrites()
	out.kindStatus = kindStatus(&scope.Cycle, counts, 0, w, kind, set)
	if err := s.led.Commit(ctx, lease, w); err != nil {
		return false, err
	}
	if early {
		s.met.pagePlan(ctx, kind)
	} else {
		s.met.cycle(ctx, kind, fromChanges)
	}
	s.log.DebugContext(ctx, "planned from what changed", slog.String("kind", store.KindName(kind)), slog.Uint64("cycle", ready),
		slog.Bool("before_the_cycle", early), slog.Int("records", len(scope.Exchange)+len(scope.Salesforce)), slog.Int("writes", len(plan.Writes)))
	return true, s.flush(ctx, lease, uk, kind, scope)
}

// pagePlan plans a settled user's changes as soon as a page brings them, before the cycle the
// page belongs to is complete: an edit of a linked record in Salesforce then reaches Exchange
// without waiting for Exchange's read of the cycle, and one in Exchange reaches Salesforce
// without waiting for the org's Salesforce poll. Only what scopedCycle plans from the changes
// alone qualifies — updates of linked pairs, each on its own — and only writes that their target
// refuses if the record changed since Tandem read it (see checkedEarly): an edit made on the
// other side since its last read makes the write fail instead of being overwritten, and the
// cycle decides the conflict. The plan is recorded as the cycle last reconciled:
// the cycle itself is planned, from what changed since, once both sides have reported it.
// Anything else (a new or removed record, a pair without its link, a hold) waits for the cycle,
// as does a full read, which lists every record.
func (s *Syncer) pagePlan(ctx context.Context, lease *store.Lease, uk store.UserKey, in pageInput, snap *ledger.Snapshot, w *ledger.Writes, slot *ledgerSlot, out *outcome) (bool, error) {
	if snap.Cycle.Settled == "" || snap.Cycle.Reconciled == 0 || in.b.GetFullSnapshot() || len(w.Dirty()) == 0 {
		return false, nil
	}
	set, err := s.settings(ctx, uk, in.b.GetKind())
	if err != nil {
		return false, err
	}
	return s.scopedCycle(ctx, lease, uk, in, snap, w, set, slot, out, true)
}

// checkedEarly reports whether a page plan's writes can go before the cycle is complete, each
// refused by its target if the record changed since Tandem read it, and asks Salesforce for that
// check. Exchange refuses an update whose change key is stale by itself (ConflictResolution
// NeverOverwrite). Salesforce takes any update, so the worker first checks that the record is
// still at the version the plan read (WriteCommand.check_version, against expected_version, which
// the planner takes from the record's mirror entry). That needs the version a read showed: a
// write to Salesforce that is not an update, or that updates a record whose mirror entry is what
// Tandem's own write left (Salesforce's writes do not return the new SystemModstamp, so the entry
// holds the version the write replaced), waits for the cycle, whose Salesforce read shows an edit
// made meanwhile. The plan is used only when it reports true.
func checkedEarly(plan *planner.Plan, scope *ledger.Snapshot) bool {
	mirror := scope.Mirror(tandemv1.System_SYSTEM_SALESFORCE)
	for _, w := range plan.Writes {
		if w.GetTarget() != tandemv1.System_SYSTEM_SALESFORCE {
			continue
		}
		cmd := w.GetCommand()
		if cmd.GetOp() != tandemv1.WriteOp_WRITE_OP_UPDATE || cmd.GetExpectedVersion() == "" || mirror[cmd.GetTargetId()].GetWriteCycle() != 0 {
			return false
		}
		cmd.CheckVersion = true
	}
	return true
}

// settles reports whether the whole ledger snap, with a local plan recorded, leaves the user
// settled: no hold, and no write in flight whose pair has no link (a create, or a removal of a
// record whose partner is gone), which would change which records are linked when it is
// answered.
func settles(snap *ledger.Snapshot) bool {
	if len(snap.Holds) > 0 {
		return false
	}
	for _, pw := range snap.Pending {
		if _, ok := snap.Mappings[pw.GetCommand().GetSyncKey()]; !ok {
			return false
		}
	}
	return true
}

// verifyScope plans the cycle again from the whole ledger with the page applied, and returns
// ErrScopeMismatch if that plan differs from scoped.
func (s *Syncer) verifyScope(ctx context.Context, uk store.UserKey, in pageInput, slot *ledgerSlot, set planner.Settings, ready uint64, scoped *planner.Plan) error {
	whole, err := slot.load(ctx, uk, in.b.GetKind())
	if err != nil {
		return err
	}
	applyPage(whole, in.b, in.epoch, in.now, in.readAt, &outcome{})
	state := stateOf(uk, in.b.GetKind(), ready, in.now, set, whole)
	plan := planner.Compute(state)
	var diff []string
	if !planner.Local(state, plan) {
		diff = append(diff, "the whole ledger's plan is not local")
	}
	diff = append(diff, diffPlans(scoped, plan)...)
	if len(diff) == 0 {
		return nil
	}
	s.log.ErrorContext(ctx, ErrScopeMismatch.Error(), slog.Uint64("cycle", ready), slog.Any("differences", diff))
	return fmt.Errorf("%w: cycle %d of %s: %s", ErrScopeMismatch, ready, uk, strings.Join(diff, "; "))
}

// diffPlans lists how two plans differ in what they do (not in what they count).
func diffPlans(a, b *planner.Plan) []string {
	var out []string
	ids := func(p *planner.Plan) []string {
		var ids []string
		for _, w := range p.Writes {
			ids = append(ids, w.GetCommand().GetCommandId())
		}
		slices.Sort(ids)
		return ids
	}
	if x, y := ids(a), ids(b); !slices.Equal(x, y) {
		out = append(out, fmt.Sprintf("writes %v, whole ledger %v", x, y))
	}
	links := func(p *planner.Plan) map[string]*tandemv1.Mapping {
		m := map[string]*tandemv1.Mapping{}
		for _, l := range p.Links {
			m[l.GetSyncKey()] = l
		}
		return m
	}
	la, lb := links(a), links(b)
	for k, m := range la {
		if !proto.Equal(m, lb[k]) {
			out = append(out, "link "+k)
		}
	}
	for k := range lb {
		if _, ok := la[k]; !ok {
			out = append(out, "link "+k+" only in the whole ledger's plan")
		}
	}
	conflicts := func(p *planner.Plan) []string {
		var keys []string
		for _, c := range p.Conflicts {
			keys = append(keys, c.SyncKey)
		}
		slices.Sort(keys)
		return keys
	}
	if x, y := conflicts(a), conflicts(b); !slices.Equal(x, y) {
		out = append(out, fmt.Sprintf("conflicts %v, whole ledger %v", x, y))
	}
	return out
}
