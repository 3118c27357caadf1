package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Reset marks live in one org-level hash, so the scheduler finds every marked user of an org
// with one read. A reset runs MARKED_FOR_RESET → RESET_IN_PROGRESS (BeginReset) → cleared
// (ClearReset); an admin who marks a user again while a reset runs gets another reset after
// it, because ClearReset only clears a reset in progress.

// MarkReset marks a user for reset: the next cycle forgets the user's links and sync state
// and relinks records.
func (s *Store) MarkReset(ctx context.Context, uk UserKey) error {
	return s.SetResetStatus(ctx, uk, tandemv1.ResetStatus_RESET_STATUS_MARKED_FOR_RESET)
}

// ResetStatus returns the user's reset status; RESET_STATUS_UNSPECIFIED when none is pending.
func (s *Store) ResetStatus(ctx context.Context, uk UserKey) (tandemv1.ResetStatus, error) {
	if err := uk.Validate(); err != nil {
		return 0, fmt.Errorf("reset status: %w", err)
	}
	raw, err := s.rdb.HGet(ctx, orgKey(uk.OrgID, orgResetsName), uk.UserID).Result()
	if errors.Is(err, redis.Nil) {
		return tandemv1.ResetStatus_RESET_STATUS_UNSPECIFIED, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reset status of %s: %w", uk, err)
	}
	return parseResetStatus(uk, raw)
}

func parseResetStatus(uk UserKey, raw string) (tandemv1.ResetStatus, error) {
	n, err := strconv.ParseInt(raw, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("reset status of %s: stored value %q: %w", uk, raw, err)
	}
	return tandemv1.ResetStatus(n), nil
}

// SetResetStatus sets the user's reset status; RESET_STATUS_UNSPECIFIED clears it.
func (s *Store) SetResetStatus(ctx context.Context, uk UserKey, status tandemv1.ResetStatus) error {
	if err := uk.Validate(); err != nil {
		return fmt.Errorf("set reset status: %w", err)
	}
	if _, ok := tandemv1.ResetStatus_name[int32(status)]; !ok {
		return fmt.Errorf("set reset status of %s: unknown status %d", uk, status)
	}
	key := orgKey(uk.OrgID, orgResetsName)
	var err error
	if status == tandemv1.ResetStatus_RESET_STATUS_UNSPECIFIED {
		err = s.rdb.HDel(ctx, key, uk.UserID).Err()
	} else {
		err = s.rdb.HSet(ctx, key, uk.UserID, strconv.Itoa(int(status))).Err()
	}
	if err != nil {
		return fmt.Errorf("set reset status of %s to %s: %w", uk, status, err)
	}
	_ = s.PublishChange(ctx, uk.OrgID, uk.UserID)
	return nil
}

// swapResetScript: KEYS = resets hash; ARGV = user, expected status, new status ("" clears).
// Replies 1 when the status was the expected one and was swapped.
var swapResetScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
`)

func (s *Store) swapReset(ctx context.Context, uk UserKey, from tandemv1.ResetStatus, to string) (bool, error) {
	if err := uk.Validate(); err != nil {
		return false, err
	}
	n, err := swapResetScript.Run(ctx, s.rdb, []string{orgKey(uk.OrgID, orgResetsName)},
		uk.UserID, strconv.Itoa(int(from)), to).Int64()
	if err != nil {
		return false, err
	}
	if n == 1 {
		_ = s.PublishChange(ctx, uk.OrgID, uk.UserID)
	}
	return n == 1, nil
}

// BeginReset moves a user marked for reset to RESET_IN_PROGRESS. It reports false, changing
// nothing, when the user was not marked, so that only one caller starts a given reset.
func (s *Store) BeginReset(ctx context.Context, uk UserKey) (bool, error) {
	ok, err := s.swapReset(ctx, uk, tandemv1.ResetStatus_RESET_STATUS_MARKED_FOR_RESET,
		strconv.Itoa(int(tandemv1.ResetStatus_RESET_STATUS_RESET_IN_PROGRESS)))
	if err != nil {
		return false, fmt.Errorf("begin reset of %s: %w", uk, err)
	}
	return ok, nil
}

// ClearReset clears a reset in progress once it is done. It reports false, changing
// nothing, when no reset was in progress: in particular a user marked again while the reset
// ran stays marked, and gets another reset.
func (s *Store) ClearReset(ctx context.Context, uk UserKey) (bool, error) {
	ok, err := s.swapReset(ctx, uk, tandemv1.ResetStatus_RESET_STATUS_RESET_IN_PROGRESS, "")
	if err != nil {
		return false, fmt.Errorf("clear reset of %s: %w", uk, err)
	}
	return ok, nil
}

// ListResets returns the reset status of every user of the org with one pending.
func (s *Store) ListResets(ctx context.Context, orgID string) (map[string]tandemv1.ResetStatus, error) {
	if err := checkID("org id", orgID); err != nil {
		return nil, fmt.Errorf("list resets: %w", err)
	}
	all, err := s.rdb.HGetAll(ctx, orgKey(orgID, orgResetsName)).Result()
	if err != nil {
		return nil, fmt.Errorf("list resets of org %s: %w", orgID, err)
	}
	out := make(map[string]tandemv1.ResetStatus, len(all))
	for user, raw := range all {
		st, err := parseResetStatus(UserKey{OrgID: orgID, UserID: user}, raw)
		if err != nil {
			return nil, err
		}
		out[user] = st
	}
	return out, nil
}
