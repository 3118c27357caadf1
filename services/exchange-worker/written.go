package exchangeworker

import (
	"context"
	"fmt"
	"time"

	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// The versions the worker's writes left. A notification of Tandem's own write usually comes
// before the reconciler has recorded the write's result, and a job that compares what changed
// in the mailbox with the reconciler's mirror alone (Worker.echoes) would then read the
// mailbox only to find the echo. So the worker notes, as soon as Exchange answers a write
// batch, the version each item was left at; the note only saves reads, and a note that cannot
// be written costs one.

// writtenTTL is how long a mailbox's notes of written versions outlive its last write: longer
// than a write's result takes to reach the reconciler, whose mirror then says the same.
const writtenTTL = 2 * time.Minute

// maxWritten bounds a mailbox's notes of written versions, per kind: past it they start again
// from the batch that went over (Redis holds at most a few batches per busy mailbox).
const maxWritten = 2000

func writtenKey(uk store.UserKey, kind tandemv1.RecordKind) (string, error) {
	return uk.Key(attemptKeyName, "exchange-written", store.KindName(kind))
}

// noteWritten notes the versions the successful results left.
func (w *Worker) noteWritten(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind, results []*tandemv1.WriteResult) error {
	var fields []any
	for _, r := range results {
		if rec := r.GetRecord(); r.GetOk() && rec.GetId() != "" && rec.GetVersion() != "" {
			fields = append(fields, rec.GetId(), rec.GetVersion())
		}
	}
	if len(fields) == 0 {
		return nil
	}
	key, err := writtenKey(uk, kind)
	if err != nil {
		return err
	}
	// One round trip in the common case; a mailbox gone over the bound starts again from this
	// batch in a second.
	rdb := w.st.Client()
	pipe := rdb.TxPipeline()
	pipe.HSet(ctx, key, fields...)
	size := pipe.HLen(ctx, key)
	pipe.PExpire(ctx, key, writtenTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("note the versions written for %s: %w", uk, err)
	}
	if size.Val() > maxWritten {
		pipe.Del(ctx, key)
		pipe.HSet(ctx, key, fields...)
		pipe.PExpire(ctx, key, writtenTTL)
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("note the versions written for %s: %w", uk, err)
		}
	}
	return nil
}

// written returns the versions the worker's writes left of items ids, where noted.
func (w *Worker) written(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind, ids []string) (map[string]string, error) {
	key, err := writtenKey(uk, kind)
	if err != nil {
		return nil, err
	}
	vals, err := w.st.Client().HMGet(ctx, key, ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("read the versions written for %s: %w", uk, err)
	}
	out := make(map[string]string, len(ids))
	for i, id := range ids[:min(len(ids), len(vals))] { // one value per id asked, nil for none
		if s, ok := vals[i].(string); ok {
			out[id] = s
		}
	}
	return out, nil
}
