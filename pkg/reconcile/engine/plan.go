package engine

import (
	"context"

	"github.com/tandem-sync/tandem/pkg/reconcile/planner"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Kinds are the record kinds the reconciler handles.
var Kinds = []tandemv1.RecordKind{tandemv1.RecordKind_RECORD_KIND_CONTACT, tandemv1.RecordKind_RECORD_KIND_EVENT}

// Plan returns what the user's next cycle would create, update and delete on each side, from
// what the ledger knows now, without writing anything.
func (s *Syncer) Plan(ctx context.Context, uk store.UserKey) (*tandemv1.PlanUserSyncResponse, error) {
	if err := uk.Validate(); err != nil {
		return nil, err
	}
	resp := &tandemv1.PlanUserSyncResponse{}
	slot := s.ledgerSlot()
	defer slot.release()
	for _, kind := range Kinds {
		set, err := s.settings(ctx, uk, kind)
		if err != nil {
			return nil, err
		}
		snap, err := slot.load(ctx, uk, kind)
		if err != nil {
			return nil, err
		}
		plan := planner.Compute(stateOf(uk, kind, snap.Cycle.Reconciled+1, s.opts.Clock(), set, snap))
		for _, w := range plan.Writes {
			c := w.GetCommand()
			resp.Writes = append(resp.Writes, &tandemv1.PlannedWrite{
				Target: w.GetTarget(), Kind: kind, Op: c.GetOp(), SyncKey: c.GetSyncKey(), TargetId: c.GetTargetId(),
				SourceId: w.GetSourceId(), Reason: w.Reason, DisplayName: w.Display, Fields: fieldsOf(c),
			})
		}
		if plan.NewHold != nil {
			resp.Held = append(resp.Held, plan.NewHold.GetSummary())
		}
		for _, h := range snap.Holds {
			if h.GetSummary().GetHoldId() != plan.ResolvedHold {
				resp.Held = append(resp.Held, h.GetSummary())
			}
		}
		resp.Conflicts += int64(len(plan.Conflicts))
		resp.Unchanged += int64(plan.Unchanged)
		resp.Relinked += int64(plan.Relinked)
	}
	return resp, nil
}

func fieldsOf(c *tandemv1.WriteCommand) []string {
	if c.GetOp() != tandemv1.WriteOp_WRITE_OP_UPDATE {
		return nil
	}
	return c.GetFields()
}

// Reset forgets the user's ledger for every kind — links, observations, writes in flight,
// tombstones, holds — under the reconcile lease, and ignores batches of cycles before from.
// Records are not touched: the next full reads relink them by sync key and matching, so a reset
// never duplicates anything.
func (s *Syncer) Reset(ctx context.Context, uk store.UserKey, from uint64) error {
	// The scheduler calls this in its tick: it waits briefly for a reconciler working on the
	// user, not for a whole lease TTL; if it must give up, the user stays marked for the next cycle.
	// from is a cycle of the schedule's current epoch, which the reset's bookkeeping names.
	_, epoch, err := s.st.ScheduledCycle(ctx, uk.OrgID)
	if err != nil {
		return err
	}
	return s.withLeaseWait(ctx, uk, resetLeaseWait, func(ctx context.Context, lease *store.Lease) error {
		slot := s.ledgerSlot()
		defer slot.release()
		for _, kind := range Kinds {
			snap, err := slot.load(ctx, uk, kind)
			if err != nil {
				return err
			}
			w := snap.NewWrites()
			w.Reset(from, epoch)
			if err := s.led.Commit(ctx, lease, w); err != nil {
				return err
			}
		}
		return nil
	})
}

// Decide records an admin's decision on a mass-delete hold; the user's next cycle carries it out.
func (s *Syncer) Decide(ctx context.Context, uk store.UserKey, holdID string, approve bool) error {
	var lastErr error
	for _, kind := range Kinds {
		err := s.led.Decide(ctx, uk, kind, holdID, approve)
		if err == nil {
			return nil
		}
		lastErr = err
	}
	return lastErr
}
