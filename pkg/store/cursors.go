package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// CursorKey names an opaque cursor: a Salesforce watermark, an EWS SyncState, a query
// locator. Org-level cursors (User empty) live under the org's tag; per-user cursors under
// the user's, so a worker can advance one in the same fenced Commit as the state it covers
// (Set(key, value, 0) with the key from Key).
type CursorKey struct {
	Org string
	// User is the user for a per-user cursor; empty for an org-level cursor.
	User string
	Name string
}

// Key returns the cursor's Redis key.
func (k CursorKey) Key() (string, error) {
	if err := checkID("org id", k.Org); err != nil {
		return "", err
	}
	if err := checkID("cursor name", k.Name); err != nil {
		return "", err
	}
	if k.User == "" {
		return orgKey(k.Org, orgCursorName, k.Name), nil
	}
	return UserKey{OrgID: k.Org, UserID: k.User}.Key(userCursorName, k.Name)
}

func (k CursorKey) String() string {
	if k.User == "" {
		return k.Org + "/" + k.Name
	}
	return k.Org + "/" + k.User + "/" + k.Name
}

// GetCursor returns a cursor's value; ok is false if it was never stored.
func (s *Store) GetCursor(ctx context.Context, k CursorKey) (value string, ok bool, err error) {
	key, err := k.Key()
	if err != nil {
		return "", false, fmt.Errorf("get cursor: %w", err)
	}
	value, err = s.rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("get cursor %s: %w", k, err)
	}
	return value, true, nil
}

// PutCursor stores a cursor's value. Per-user cursors that must only advance under a lease
// are better written with Commit.
func (s *Store) PutCursor(ctx context.Context, k CursorKey, value string) error {
	key, err := k.Key()
	if err != nil {
		return fmt.Errorf("put cursor: %w", err)
	}
	if err := s.rdb.Set(ctx, key, value, 0).Err(); err != nil {
		return fmt.Errorf("put cursor %s: %w", k, err)
	}
	return nil
}

// DeleteCursor forgets a cursor (a reset, or a sync state Exchange rejected).
func (s *Store) DeleteCursor(ctx context.Context, k CursorKey) error {
	key, err := k.Key()
	if err != nil {
		return fmt.Errorf("delete cursor: %w", err)
	}
	if err := s.rdb.Del(ctx, key).Err(); err != nil {
		return fmt.Errorf("delete cursor %s: %w", k, err)
	}
	return nil
}
