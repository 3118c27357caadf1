package platformtest

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/reconcile/engine"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/reconcile/planner"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// PutInFlight records cmds as writes to target in flight in the user's ledger of kind, issued
// at issuedAt in cycle 1, as the reconciler records them (under its lease) before it sends
// them. Workers carry out only the writes still in flight, so a test of a worker's write path
// puts its commands in flight first.
func PutInFlight(t testing.TB, st *store.Store, uk store.UserKey, kind tandemv1.RecordKind, target tandemv1.System, issuedAt time.Time, cmds ...*tandemv1.WriteCommand) {
	t.Helper()
	ctx := t.Context()
	led := ledger.New(st)
	snap, err := led.Load(ctx, uk, kind)
	if err != nil {
		t.Fatalf("load the ledger of %s: %v", uk.UserID, err)
	}
	w := snap.NewWrites()
	for _, c := range cmds {
		w.PutPending(planner.PendingKey(target, c.GetSyncKey()), &tandemv1.PendingWrite{
			Command: c, Target: target, IssuedAt: timestamppb.New(issuedAt), Cycle: 1,
		})
	}
	err = st.WithLease(ctx, uk, engine.LeaseRole, time.Minute, func(ctx context.Context, lease *store.Lease) error {
		return led.Commit(ctx, lease, w)
	})
	if err != nil {
		t.Fatalf("commit writes in flight for %s: %v", uk.UserID, err)
	}
}
