package engine

import (
	"context"
	"log/slog"

	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/reconcile/planner"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// HandleResults commits what a batch of writes did: links are born and rebased here, refused
// writes are remembered, and writes in flight are cleared.
func (s *Syncer) HandleResults(ctx context.Context, b *tandemv1.WriteResultBatch) error {
	uk := store.UserKey{OrgID: b.GetOrgId(), UserID: b.GetUserId()}
	if err := uk.Validate(); err != nil {
		return malformed("write results: %v", err)
	}
	if !validSide(b.GetTarget()) || !validKind(b.GetKind()) {
		return malformed("write results for %s: target %s, kind %s", uk, b.GetTarget(), b.GetKind())
	}
	ctx = telemetry.WithScope(ctx, uk.OrgID, uk.UserID)
	var out outcome
	err := s.withLease(ctx, uk, func(ctx context.Context, lease *store.Lease) error {
		out = outcome{}
		snap, err := s.loadForResults(ctx, uk, b)
		if err != nil {
			return err
		}
		now := s.opts.Clock()
		completed := now
		if b.GetCompletedAt() != nil {
			completed = b.GetCompletedAt().AsTime()
		}
		w := snap.NewWrites()
		target := b.GetTarget()
		mirror := snap.Mirror(target)
		unsettled := false
		for _, r := range b.GetResults() {
			pk := planner.PendingKey(target, r.GetSyncKey())
			pw := snap.Pending[pk]
			if pw == nil || pw.GetCommand().GetCommandId() != r.GetCommandId() {
				// Already committed (a redelivered result), or overtaken by a newer command for the
				// pair: the next read observes what the target really holds.
				s.log.DebugContext(ctx, "result of a write no longer in flight", slog.String("command", r.GetCommandId()))
				continue
			}
			var targetMirror *tandemv1.MirrorRecord
			if id := pw.GetCommand().GetTargetId(); id != "" {
				targetMirror = mirror[id]
			}
			if s.log.Enabled(ctx, slog.LevelDebug) { // the arguments cost allocations even when nothing is logged
				s.log.DebugContext(ctx, "write result", slog.String("target", store.SideName(target)), slog.String("op", r.GetOp().String()),
					slog.String("sync_key", r.GetSyncKey()), slog.Bool("ok", r.GetOk()), slog.String("record_id", r.GetRecord().GetId()),
					slog.String("error", r.GetError().GetCode()), slog.String("command", r.GetCommandId()))
			}
			old := snap.Mappings[r.GetSyncKey()]
			eff := planner.ApplyResult(b.GetKind(), pw, old, targetMirror, r, completed)
			if !unsettled && relinks(pw, old, eff) {
				// Which records are linked changed outside a plan: the next one reads them all.
				w.ClearSettled()
				unsettled = true
			}
			apply(snap, w, eff)
			out.report = append(out.report, eff.Report...)
			if eff.Synced {
				out.synced++
			}
		}
		set, err := s.settings(ctx, uk, b.GetKind())
		if err != nil {
			return err
		}
		if err := s.led.Commit(ctx, lease, w); err != nil {
			return err
		}
		// The status counts what is committed, which only Redis knows in full.
		counts, err := s.led.Counts(ctx, snap.Keys)
		if err != nil {
			return err
		}
		w = snap.NewWrites()
		out.kindStatus = kindStatus(&snap.Cycle, counts, heldDeletes(snap), w, b.GetKind(), set)
		out.lastCycle = snap.Cycle.Reconciled
		if err := s.led.Commit(ctx, lease, w); err != nil {
			return err
		}
		if snap.Cycle.Unsent == 0 {
			return nil
		}
		if err := s.led.LoadPending(ctx, snap); err != nil {
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

// loadForResults loads what a batch of results touches: the writes in flight they answer,
// their pairs' mappings and refusals, and the target's entries of the records written.
func (s *Syncer) loadForResults(ctx context.Context, uk store.UserKey, b *tandemv1.WriteResultBatch) (*ledger.Snapshot, error) {
	var keys []string
	seen := map[string]bool{}
	for _, r := range b.GetResults() {
		if k := r.GetSyncKey(); k != "" && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	snap, err := s.led.LoadResults(ctx, uk, b.GetKind(), b.GetTarget(), keys)
	if err != nil {
		return nil, err
	}
	var ids []string
	add := func(id string) {
		if id != "" && !seen["id:"+id] {
			seen["id:"+id] = true
			ids = append(ids, id)
		}
	}
	for _, r := range b.GetResults() {
		add(r.GetRecord().GetId())
		add(snap.Pending[planner.PendingKey(b.GetTarget(), r.GetSyncKey())].GetCommand().GetTargetId())
	}
	if err := s.led.LoadMirror(ctx, snap, b.GetTarget(), ids); err != nil {
		return nil, err
	}
	return snap, nil
}

// relinks reports whether a result's effects change which records are linked: a create's
// result, a link dropped, or a link born or pointed at another record.
func relinks(pw *tandemv1.PendingWrite, old *tandemv1.Mapping, eff planner.Effects) bool {
	if pw.GetCommand().GetOp() == tandemv1.WriteOp_WRITE_OP_CREATE || eff.Unlink != "" {
		return true
	}
	m := eff.Mapping
	return m != nil && (old == nil || old.GetExchangeId() != m.GetExchangeId() || old.GetSalesforceId() != m.GetSalesforceId())
}

// apply adds a result's effects to the commit and the snapshot.
func apply(snap *ledger.Snapshot, w *ledger.Writes, eff planner.Effects) {
	delete(snap.Pending, eff.PendingKey)
	w.DeletePending(eff.PendingKey)
	if eff.Mapping != nil {
		snap.Mappings[eff.Mapping.GetSyncKey()] = eff.Mapping
		w.PutMapping(eff.Mapping)
	}
	if eff.Unlink != "" {
		delete(snap.Mappings, eff.Unlink)
		w.DeleteMappings(eff.Unlink)
	}
	if m := eff.Mirror; m != nil {
		mirror := snap.Mirror(eff.MirrorSide)
		id := m.GetRecord().GetId()
		switch cur := mirror[id]; {
		case cur != nil && cur.GetWriteCycle() == 0 && readAfterWrite(eff.MirrorSide, m, cur.GetRecord(), cur.GetDeleted(), cur.GetSeenCycle()):
			// A read that started before the write completed, and came in first, saw the record
			// after the write: what it saw stays.
		case cur == nil || !cur.GetObservedAt().AsTime().After(m.GetObservedAt().AsTime()):
			if cur != nil && !cur.GetDeleted() && !m.GetDeleted() && cur.GetSeenCycle() > m.GetSeenCycle() {
				// A read listed the record before: what the write left is newer, not unseen.
				m.SeenCycle = cur.GetSeenCycle()
			}
			mirror[id] = m
			w.PutMirror(eff.MirrorSide, m)
		}
	}
	if eff.Reject != nil {
		snap.Rejected[eff.PendingKey] = eff.Reject
		w.PutRejected(eff.PendingKey, eff.Reject)
	} else if eff.ClearReject {
		if _, ok := snap.Rejected[eff.PendingKey]; ok {
			delete(snap.Rejected, eff.PendingKey)
			w.DeleteRejected(eff.PendingKey)
		}
	}
}
