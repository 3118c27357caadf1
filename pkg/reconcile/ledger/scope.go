package ledger

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tandem-sync/tandem/pkg/reconcile/planner"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// A cycle of a settled user (Cycle.Settled) is planned from what changed since the last plan,
// not from the whole ledger: Keys.Dirty names the records and pairs that changed, and every
// other pair and free record would be decided as the last plan decided it — nothing — since
// none of what that decision reads has changed (see Writes.SetSettled for what settled
// excludes). LoadScope reads that part of the ledger; its cost follows the changes, not the
// user's records.

// dirtyKeyPrefix starts the Keys.Dirty members that name a pair by its sync key.
const dirtyKeyPrefix = "key:"

// LoadScope reads what planning a settled user's cycle needs, given base, the snapshot of a
// page of changes applied but not yet committed, and w, its commit: the records Keys.Dirty
// names (with the page's), the pairs that link them, every write in flight and its pair, the
// records of those pairs, and the pairs' refusals. The snapshot it returns holds no tombstone
// and no hold: a scope's records are all linked, so planning them reads neither.
//
// Before it reads any record, it tells admit how many changes (Keys.Dirty's members and w's)
// and writes in flight the scope starts from, which a scope's memory follows: admit may wait
// for room, or fail the load.
//
// It returns nil, with a nil error, when the changes reach beyond linked pairs, and the cycle
// must be planned from the whole ledger: a changed record that no link names (a new record,
// one removed from the mirror, one that lost the sync key that finds its pair), a changed pair
// without a link, a write in flight without its pair's link (a create), or a hold.
func (l *Ledger) LoadScope(ctx context.Context, base *Snapshot, w *Writes, admit func(ctx context.Context, size int) error) (*Snapshot, error) {
	keys := base.Keys
	rdb := l.st.Client()

	pipe := rdb.Pipeline()
	dirtyCmd := pipe.SMembers(ctx, keys.Dirty)
	holdsCmd := pipe.HLen(ctx, keys.Holds)
	pendCmd := pipe.HGetAll(ctx, keys.Pending)
	if err := execScope(ctx, pipe); err != nil {
		return nil, err
	}
	if holdsCmd.Val() > 0 {
		return nil, nil
	}
	changed := slices.Concat(dirtyCmd.Val(), w.Dirty())
	if err := admit(ctx, len(changed)+len(pendCmd.Val())); err != nil {
		return nil, err
	}
	s := partial(keys, base.Cycle)
	var err error
	if s.Pending, err = decodeAll(pendCmd.Val(), func() *tandemv1.PendingWrite { return &tandemv1.PendingWrite{} }); err != nil {
		return nil, fmt.Errorf("writes in flight: %w", err)
	}
	dirty := map[tandemv1.System][]string{}
	pairKeys := map[string]bool{}
	for _, m := range changed {
		if k, ok := strings.CutPrefix(m, dirtyKeyPrefix); ok {
			pairKeys[k] = true
			continue
		}
		side, id, ok := parseSideID(m)
		if !ok {
			return nil, fmt.Errorf("dirty set member %q", m)
		}
		dirty[side] = append(dirty[side], id)
	}
	for _, pw := range s.Pending {
		pairKeys[pw.GetCommand().GetSyncKey()] = true
	}

	// The changed records, and the pairs named by key.
	pipe = rdb.Pipeline()
	need := map[tandemv1.System]*redis.SliceCmd{}
	needIDs := map[tandemv1.System][]string{}
	for _, side := range sides {
		needIDs[side] = overlay(s.Mirror(side), base.Mirror(side), dirty[side])
		need[side] = hmget(ctx, pipe, keys.Mirror(side), needIDs[side])
	}
	mapKeys := slices.Sorted(maps.Keys(pairKeys))
	mapCmd := hmget(ctx, pipe, keys.Mappings, mapKeys)
	if err := execScope(ctx, pipe); err != nil {
		return nil, err
	}
	if err := decodeMirrors(s, need, needIDs); err != nil {
		return nil, err
	}
	if err := decodeFields(vals(mapCmd), mapKeys, s.Mappings, newMapping); err != nil {
		return nil, fmt.Errorf("mappings: %w", err)
	}

	// The pairs of the changed records, found by the sync key each linked record carries.
	hintSet := map[string]bool{}
	for _, side := range sides {
		for _, id := range dirty[side] {
			k := s.Mirror(side)[id].GetRecord().GetSyncKey()
			if k == "" {
				return nil, nil
			}
			if _, ok := s.Mappings[k]; !ok {
				hintSet[k] = true
			}
		}
	}
	if hints := slices.Sorted(maps.Keys(hintSet)); len(hints) > 0 {
		got, err := rdb.HMGet(ctx, keys.Mappings, hints...).Result()
		if err != nil {
			return nil, fmt.Errorf("load the mappings of changed records: %w", err)
		}
		if err := decodeFields(got, hints, s.Mappings, newMapping); err != nil {
			return nil, fmt.Errorf("mappings: %w", err)
		}
	}
	linked := map[tandemv1.System]map[string]bool{tandemv1.System_SYSTEM_EXCHANGE: {}, tandemv1.System_SYSTEM_SALESFORCE: {}}
	for _, m := range s.Mappings {
		linked[tandemv1.System_SYSTEM_EXCHANGE][m.GetExchangeId()] = true
		linked[tandemv1.System_SYSTEM_SALESFORCE][m.GetSalesforceId()] = true
	}
	for _, side := range sides {
		for _, id := range dirty[side] {
			if !linked[side][id] {
				return nil, nil
			}
		}
	}
	for k := range pairKeys {
		if _, ok := s.Mappings[k]; !ok {
			return nil, nil
		}
	}

	// The other records of those pairs, and the pairs' refusals.
	pipe = rdb.Pipeline()
	for _, side := range sides {
		var ids []string
		for _, m := range s.Mappings {
			if id := mappedID(m, side); id != "" {
				ids = append(ids, id)
			}
		}
		needIDs[side] = overlay(s.Mirror(side), base.Mirror(side), ids)
		need[side] = hmget(ctx, pipe, keys.Mirror(side), needIDs[side])
	}
	var pks []string
	for k := range s.Mappings {
		for _, side := range sides {
			pks = append(pks, planner.PendingKey(side, k))
		}
	}
	rejCmd := hmget(ctx, pipe, keys.Rejected, pks)
	if err := execScope(ctx, pipe); err != nil {
		return nil, err
	}
	if err := decodeMirrors(s, need, needIDs); err != nil {
		return nil, err
	}
	if err := decodeFields(vals(rejCmd), pks, s.Rejected, func() *tandemv1.RejectedWrite { return &tandemv1.RejectedWrite{} }); err != nil {
		return nil, fmt.Errorf("rejected writes: %w", err)
	}
	return s, nil
}

// decodeMirrors adds to s the mirror entries read per side: need[side] answered needIDs[side].
func decodeMirrors(s *Snapshot, need map[tandemv1.System]*redis.SliceCmd, needIDs map[tandemv1.System][]string) error {
	for _, side := range sides {
		if err := decodeFields(vals(need[side]), needIDs[side], s.Mirror(side), newMirror); err != nil {
			return fmt.Errorf("%s mirror: %w", store.SideName(side), err)
		}
	}
	return nil
}

var sides = []tandemv1.System{tandemv1.System_SYSTEM_EXCHANGE, tandemv1.System_SYSTEM_SALESFORCE}

func newMapping() *tandemv1.Mapping { return &tandemv1.Mapping{} }

// overlay copies into dst the entries of ids that base holds (a page's observations, newer
// than what Redis has until they are committed) and returns the ids still to be read, once each.
func overlay(dst, base map[string]*tandemv1.MirrorRecord, ids []string) []string {
	var out []string
	queued := map[string]bool{}
	for _, id := range ids {
		if _, done := dst[id]; done || queued[id] {
			continue
		}
		if e, ok := base[id]; ok {
			dst[id] = e
			continue
		}
		queued[id] = true
		out = append(out, id)
	}
	return out
}

// mappedID is a mapping's record id on side.
func mappedID(m *tandemv1.Mapping, side tandemv1.System) string {
	if side == tandemv1.System_SYSTEM_EXCHANGE {
		return m.GetExchangeId()
	}
	return m.GetSalesforceId()
}

// parseSideID splits a "<side>:<record id>" member of Keys.Dirty.
func parseSideID(m string) (tandemv1.System, string, bool) {
	name, id, ok := strings.Cut(m, ":")
	if !ok || id == "" {
		return 0, "", false
	}
	side, ok := sideNamed(name)
	return side, id, ok
}

func execScope(ctx context.Context, pipe redis.Pipeliner) error {
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("load the changed part of a ledger: %w", err)
	}
	return nil
}
