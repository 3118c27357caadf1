package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// An org's Salesforce read is one poll for all its users, and a cycle cannot complete before
// it. The salesforce-worker marks each poll it finishes in the org's schedule, and the scheduler
// starts no cycle while an earlier one's poll is still to finish (beyond one queued behind it):
// cycles then never pile up behind a slow poll, and two polls of one org never run at once
// from the same cursor.

// fieldSalesforceRead is the schedule hash field of the org's last finished Salesforce poll.
const fieldSalesforceRead = "salesforce_read"

// markReadScript raises the org's last finished Salesforce read to ARGV[1], never lowering it.
var markReadScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'salesforce_read') or '0')
if tonumber(ARGV[1]) > cur then
  redis.call('HSET', KEYS[1], 'salesforce_read', ARGV[1])
end
return 1
`)

// SalesforceReadDone records that the org's Salesforce poll of cycle finished.
func (s *Store) SalesforceReadDone(ctx context.Context, orgID string, cycle uint64) error {
	key, err := scheduleKey(orgID)
	if err != nil {
		return err
	}
	if err := markReadScript.Run(ctx, s.rdb, []string{key}, cycle).Err(); err != nil {
		return fmt.Errorf("mark Salesforce read of org %s cycle %d: %w", orgID, cycle, err)
	}
	return nil
}

// SalesforceRead returns the org's last finished Salesforce poll: its cycle (0: none yet).
func (s *Store) SalesforceRead(ctx context.Context, orgID string) (uint64, error) {
	key, err := scheduleKey(orgID)
	if err != nil {
		return 0, err
	}
	raw, err := s.rdb.HGet(ctx, key, fieldSalesforceRead).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read Salesforce reads of org %s: %w", orgID, err)
	}
	n, _ := strconv.ParseUint(raw, 10, 64)
	return n, nil
}
