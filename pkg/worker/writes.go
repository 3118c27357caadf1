package worker

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	"github.com/tandem-sync/tandem/pkg/telemetry"
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
// answered, adopted, superseded or dropped by a reset — and reports the results. A batch that
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

// Handler returns the bus handler of a worker's apply consumer.
func (w *Writes) Handler(apply ApplyFunc) bus.Handler {
	return func(ctx context.Context, m *bus.Message) error {
		batch := &tandemv1.WriteBatch{}
		if err := m.Decode(batch); err != nil {
			return err
		}
		ctx = telemetry.WithScope(ctx, batch.GetOrgId(), batch.GetUserId())
		uk := store.UserKey{OrgID: batch.GetOrgId(), UserID: batch.GetUserId()}
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
}
