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

// Links returns the reconciler's links (mappings) with the sync keys keys, read in one round
// trip; keys without one are absent. A worker uses them to tell a create of a new pair from
// one that re-creates a pair's record on a side where the pair had one (the mapping names it),
// and where a record carrying the pair's key may therefore still be found, live or deleted.
// Like InFlight it only reads.
func (o *Outbox) Links(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind, keys []string) (map[string]*tandemv1.Mapping, error) {
	out := make(map[string]*tandemv1.Mapping, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	lk, err := KeysFor(uk, kind)
	if err != nil {
		return nil, err
	}
	vals, err := o.st.Client().HMGet(ctx, lk.Mappings, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("read the links of %s: %w", uk, err)
	}
	if err := decodeFields(vals, keys, out, func() *tandemv1.Mapping { return &tandemv1.Mapping{} }); err != nil {
		return nil, fmt.Errorf("links of %s: %w", uk, err)
	}
	return out, nil
}
