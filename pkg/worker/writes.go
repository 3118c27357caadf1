package worker

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	"github.com/tandem-sync/tandem/pkg/telemetry"
	"github.com/tandem-sync/tandem/pkg/userlock"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// ApplyFunc carries out cmds, the commands of batch still in flight, on the worker's system and
// returns one result per command, in order. redelivered says the batch was delivered before
// (an earlier attempt may have taken effect). An error means the batch as a whole could not be
// attempted.
type ApplyFunc func(ctx context.Context, batch *tandemv1.WriteBatch, cmds []*tandemv1.WriteCommand, redelivered bool) ([]*tandemv1.WriteResult, error)

// InFlight tells which commands of a write batch are still in flight in the user's ledger;
// ledger.Outbox provides it.
type InFlight interface {
	InFlight(ctx context.Context, uk store.UserKey, b *tandemv1.WriteBatch) (map[string]bool, error)
}

// Writes carries out the write batches the reconciler sends to a worker. It runs only the
// commands still in flight in the user's ledger — a redelivered batch never redoes what was
// answered, adopted, superseded or dropped by a reset — and reports the results. A user's
// batches towards one side run one at a time, across the worker's replicas (package
// userlock): a write planned again because its first attempt went unanswered for long (a
// backlog, a slow server) then runs after that attempt, never beside it, and finds what the
// attempt made instead of making it twice. A batch that
// cannot be attempted for a reason Tandem retries goes back to the bus; any other reason
// (credentials, a mailbox that cannot be found) is reported in the error report, and the
// writes are planned again once the cause is fixed.
type Writes struct {
	Outbox InFlight
	Store  *store.Store
	Pub    Publisher
	Now    func() time.Time
	Log    *slog.Logger
	// System names the target in log lines ("Exchange", "Salesforce").
	System string
}

// Leases of a user's writes to one side: renewed while a batch runs; a batch waits for the one
// before it for up to applyWait (a hung holder, not a slow one, makes it give up and retry).
const (
	applyLeaseTTL = time.Minute
	applyWait     = 30 * applyLeaseTTL
)

// Handler returns the bus handler of a worker's apply consumer.
func (w *Writes) Handler(apply ApplyFunc) bus.Handler {
	locks := userlock.New(w.Store, "apply-"+strings.ToLower(w.System), applyLeaseTTL)
	return func(ctx context.Context, m *bus.Message) error {
		batch := &tandemv1.WriteBatch{}
		if err := m.Decode(batch); err != nil {
			return err
		}
		ctx = telemetry.WithScope(ctx, batch.GetOrgId(), batch.GetUserId())
		uk := store.UserKey{OrgID: batch.GetOrgId(), UserID: batch.GetUserId()}
		if err := uk.Validate(); err != nil {
			return syncerr.New(syncerr.SyncMalformedMessage, "write batch: %v", err)
		}
		err := locks.Do(ctx, uk, applyWait, nil, func(ctx context.Context, _ *store.Lease) error {
			return w.run(ctx, m, batch, uk, apply)
		})
		var gaveUp *userlock.GaveUp
		if errors.As(err, &gaveUp) {
			return bus.Contended(&syncerr.Error{Code: syncerr.SyncLeaseLost, Detail: gaveUp.Error(), Delay: userlock.Poll, Err: gaveUp})
		}
		return err
	}
}

// run carries out one batch's commands still in flight, holding the user's lease for the side.
func (w *Writes) run(ctx context.Context, m *bus.Message, batch *tandemv1.WriteBatch, uk store.UserKey, apply ApplyFunc) error {
	live, err := w.Outbox.InFlight(ctx, uk, batch)
	if err != nil {
		return err
	}
	running := proto.Clone(batch).(*tandemv1.WriteBatch)
	running.Commands = nil
	for _, c := range batch.GetCommands() {
		if live[c.GetCommandId()] {
			running.Commands = append(running.Commands, c)
		}
	}
	if len(running.Commands) == 0 {
		return nil
	}
	results, err := apply(ctx, batch, running.GetCommands(), m.NumDelivered > 1)
	if err == nil {
		return PublishResults(ctx, w.Pub, running, results, w.Now())
	}
	se := syncerr.As(err)
	if se.Retryable() {
		return se
	}
	_, rerr := w.Store.RecordError(ctx, uk.OrgID, uk.UserID, batch.GetKind(), se.Proto())
	w.Log.WarnContext(ctx, w.System+" writes not attempted", slog.String("code", string(se.Code)), slog.Any("error", err))
	return rerr
}
