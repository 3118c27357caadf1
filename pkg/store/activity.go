package store

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// activityWindow is how much per-minute history is kept: the status tables ask for the last
// 60 minutes and the last 24 hours.
const activityWindow = 24 * time.Hour

// Activity is an org's sync activity for one record kind.
type Activity struct {
	// Last is when records of the kind last synced; zero if never.
	Last time.Time
	// LastHour and LastDay count the records synced in the last 60 minutes and 24 hours.
	LastHour, LastDay int64
}

func activityKey(orgID, kind string) (string, error) {
	if err := checkID("org id", orgID); err != nil {
		return "", err
	}
	if err := checkID("record kind", kind); err != nil {
		return "", err
	}
	return orgKey(orgID, orgActivityName, kind), nil
}

// AddActivity counts n records of kind synced at at, and announces the change of the org's
// status on its changes channel (PublishChange; best effort, its failure is not returned).
func (s *Store) AddActivity(ctx context.Context, orgID, kind string, n int64, at time.Time) error {
	if n <= 0 {
		return nil
	}
	key, err := activityKey(orgID, kind)
	if err != nil {
		return err
	}
	minute := strconv.FormatInt(at.Unix()/60, 10)
	if err := s.Apply(ctx, HIncrBy(key, minute, n), HSet(key, "last", strconv.FormatInt(at.UnixMilli(), 10))); err != nil {
		return err
	}
	_ = s.PublishChange(ctx, orgID, "")
	return nil
}

// Activity sums an org's activity for kind as of now, and forgets minutes older than a day.
func (s *Store) Activity(ctx context.Context, orgID, kind string) (Activity, error) {
	key, err := activityKey(orgID, kind)
	if err != nil {
		return Activity{}, err
	}
	raw, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return Activity{}, fmt.Errorf("read activity of org %s: %w", orgID, err)
	}
	now := s.now()
	var a Activity
	var stale []string
	for field, v := range raw {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		if field == "last" {
			a.Last = time.UnixMilli(n)
			continue
		}
		minute, err := strconv.ParseInt(field, 10, 64)
		if err != nil {
			continue
		}
		age := now.Sub(time.Unix(minute*60, 0))
		switch {
		case age > activityWindow+time.Minute:
			stale = append(stale, field)
		case age < time.Hour:
			a.LastHour += n
			a.LastDay += n
		default:
			a.LastDay += n
		}
	}
	for len(stale) > 0 {
		batch := stale[:min(len(stale), 500)]
		stale = stale[len(batch):]
		if err := s.Apply(ctx, HDel(key, batch...)); err != nil {
			return a, err
		}
	}
	return a, nil
}
