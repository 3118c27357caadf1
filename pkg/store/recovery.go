package store

import (
	"context"
	"fmt"
	"strconv"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Full reads asked for to fill a gap. The broker is a buffer, not the record: when a side's
// read of a user was lost (a broker restarted without its store, a purged stream, a dead
// letter), the scheduler asks that side for a full read of the user. It records the cycle it
// asked in, per kind and side, so that it waits for that read instead of asking again every
// cycle, and asks again only if that read is lost too.

// FullReadRequests returns, per kind and side, the last cycle in which a full read of the
// user's side was asked for to fill a gap.
func (s *Store) FullReadRequests(ctx context.Context, uk UserKey) (map[FullReadKey]uint64, error) {
	key, err := uk.Key(userRecovery)
	if err != nil {
		return nil, err
	}
	raw, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("read full-read requests of %s: %w", uk, err)
	}
	out := map[FullReadKey]uint64{}
	for _, kind := range []tandemv1.RecordKind{tandemv1.RecordKind_RECORD_KIND_CONTACT, tandemv1.RecordKind_RECORD_KIND_EVENT} {
		for _, side := range []tandemv1.System{tandemv1.System_SYSTEM_EXCHANGE, tandemv1.System_SYSTEM_SALESFORCE} {
			k := FullReadKey{Kind: kind, Side: side}
			if v, ok := raw[k.field()]; ok {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("full-read request %s of %s: stored value %q: %w", k.field(), uk, v, err)
				}
				out[k] = n
			}
		}
	}
	return out, nil
}

// RequestFullRead records that a full read of the user's side for kind was asked for in cycle.
func (s *Store) RequestFullRead(ctx context.Context, uk UserKey, k FullReadKey, cycle uint64) error {
	key, err := uk.Key(userRecovery)
	if err != nil {
		return err
	}
	if err := s.rdb.HSet(ctx, key, k.field(), cycle).Err(); err != nil {
		return fmt.Errorf("record full-read request %s of %s: %w", k.field(), uk, err)
	}
	return nil
}

// FullReadKey names one side of one kind of a user's records.
type FullReadKey struct {
	Kind tandemv1.RecordKind
	Side tandemv1.System
}

func (k FullReadKey) field() string { return KindName(k.Kind) + ":" + SideName(k.Side) }
