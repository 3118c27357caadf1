package ledger

import (
	"context"
	"fmt"

	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Known returns the reconciler's newest observations (mirror entries) of side's records with
// ids, read in one round trip; ids it holds nothing for are absent. A worker that reads a side
// uses them to skip fetching again what Tandem already knows: a record whose version equals
// the mirror's (say, the echo of Tandem's own write, whose result recorded the version the
// write left) holds the mirror's content. Like InFlight it only reads.
func (o *Outbox) Known(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind, side tandemv1.System, ids []string) (map[string]*tandemv1.MirrorRecord, error) {
	out := make(map[string]*tandemv1.MirrorRecord, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	keys, err := KeysFor(uk, kind)
	if err != nil {
		return nil, err
	}
	vals, err := o.st.Client().HMGet(ctx, keys.Mirror(side), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("read the %s mirror of %s: %w", store.SideName(side), uk, err)
	}
	if err := decodeFields(vals, ids, out, newMirror); err != nil {
		return nil, fmt.Errorf("%s mirror of %s: %w", store.SideName(side), uk, err)
	}
	return out, nil
}
