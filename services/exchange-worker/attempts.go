package exchangeworker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// A create that is not marked retry and comes in a batch delivered for the first time is made
// without looking its sync key up first (see exchange.Connector.Apply) when no item can carry
// its key yet. The worker tells the connector about the two kinds of such creates that the
// command and the delivery count do not show.
//
// A command the worker carried out before may come back in another message delivered once:
// the reconciler sends the writes in flight again when a send did not complete (the next
// handler for the user flushes them), and when the writes in flight changed meanwhile the
// batches differ, so the bus does not drop the second copy as a duplicate. A command whose
// result the reconciler has not committed yet then runs again. So the worker notes each create
// before it starts it, and a create it finds noted may have taken effect (startedBefore).
//
// A create may also re-create the Exchange item of a pair that had one: the reconciler keeps a
// pair whose Exchange item was deleted when its Salesforce record changed meanwhile ("the
// modification wins"), or when an admin rejects held deletions. The deleted item, with the
// pair's key, is in Deleted Items; the lookup decides whether it is an earlier attempt of this
// create (see exchange.Connector.Apply). The pair's link names its Exchange item (relinking).

// attemptKeyName is the per-user key name of the notes: one of the names the store reserves for
// the workers.
const attemptKeyName = "syncstate"

// attemptTTL is how long a note is kept: longer than a command stays in flight (a create left
// unanswered is planned again, as a retry under a new command id, after the reconciler's
// pending timeout, 15 minutes by default) and than a send is retried.
const attemptTTL = 24 * time.Hour

func attemptKey(uk store.UserKey, commandID string) (string, error) {
	// The command id is hashed: it holds a sync key and need not be a valid key part.
	return uk.Key(attemptKeyName, "exchange-create", bus.MsgID(commandID))
}

// startedBefore notes the creates among cmds as started and returns the ids of those that
// were noted already: an earlier delivery started them, and they may have taken effect. The
// notes are written in one round trip; if they cannot be, nothing is attempted.
func (w *Worker) startedBefore(ctx context.Context, uk store.UserKey, cmds []*tandemv1.WriteCommand) ([]string, error) {
	type note struct {
		id  string
		set *redis.BoolCmd
	}
	var notes []note
	pipe := w.st.Client().Pipeline()
	at := w.now().UnixMilli()
	for _, c := range cmds {
		if c.GetOp() != tandemv1.WriteOp_WRITE_OP_CREATE {
			continue
		}
		key, err := attemptKey(uk, c.GetCommandId())
		if err != nil {
			return nil, err
		}
		notes = append(notes, note{id: c.GetCommandId(), set: pipe.SetNX(ctx, key, at, attemptTTL)})
	}
	if len(notes) == 0 {
		return nil, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("note the creates started for %s: %w", uk, err)
	}
	var again []string
	for _, n := range notes {
		if !n.set.Val() {
			again = append(again, n.id)
		}
	}
	return again, nil
}

// relinking returns the ids of the creates among cmds that re-create the Exchange item of a pair
// that had one: the pair's link names an Exchange item. It reads the links in one round trip.
func (w *Worker) relinking(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind, cmds []*tandemv1.WriteCommand) ([]string, error) {
	var keys []string
	for _, c := range cmds {
		if c.GetOp() == tandemv1.WriteOp_WRITE_OP_CREATE {
			keys = append(keys, c.GetSyncKey())
		}
	}
	links, err := w.outbox.Links(ctx, uk, kind, keys)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range cmds {
		if c.GetOp() == tandemv1.WriteOp_WRITE_OP_CREATE && links[c.GetSyncKey()].GetExchangeId() != "" {
			out = append(out, c.GetCommandId())
		}
	}
	return out, nil
}
