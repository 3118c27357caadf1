package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// The cycle outbox. Claiming an org's cycle (ClaimCycle) and publishing its jobs are two
// steps, and a scheduler can die, or fail to publish, between them. So the claim also records
// the cycle as unpublished in the org's schedule, held for CyclePublishHold by the claimant;
// CyclePublished clears it once every job is out. A cycle still unpublished when its hold ends
// (the claimant died) or is given up (ReleaseCycle, after a failed publish) is taken again by
// ResumeCycle and its jobs published again. Jobs carry deterministic message ids — the cycle's
// number and the time it was claimed, which a resumed cycle keeps — so whatever the first
// attempt did publish is de-duplicated by the bus, while a cycle numbered again after the
// schedule was lost (FLUSHALL) never reuses the id of a job published before it.

// CyclePublishHold is how long the claimant of a cycle has to publish its jobs before another
// scheduler replica may publish them instead.
const CyclePublishHold = time.Minute

// resumeCycleScript: KEYS = schedule; ARGV = now ms, hold-until ms. Replies {cycle, next_at,
// started_at, due_by} after taking the org's unpublished cycle for the caller, or {0, 0, 0, ""}
// if there is none or its publisher still holds it.
var resumeCycleScript = redis.NewScript(`
local cycle = tonumber(redis.call('HGET', KEYS[1], 'unpublished') or '0')
if cycle == 0 then
  return {0, 0, 0, ''}
end
local hold = tonumber(redis.call('HGET', KEYS[1], 'publishing_until') or '0')
if tonumber(ARGV[1]) < hold then
  return {0, 0, 0, ''}
end
redis.call('HSET', KEYS[1], 'publishing_until', ARGV[2])
return {cycle, tonumber(redis.call('HGET', KEYS[1], 'next_at') or '0'),
  tonumber(redis.call('HGET', KEYS[1], 'started_at') or '0'),
  redis.call('HGET', KEYS[1], 'unpublished_due_by') or ''}
`)

// settleCycleScript: KEYS = schedule; ARGV = cycle, "published" | "release". Acts only if the
// cycle is still the org's unpublished one: published clears the outbox, release ends the hold.
var settleCycleScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'unpublished') ~= ARGV[1] then
  return 0
end
if ARGV[2] == 'published' then
  redis.call('HDEL', KEYS[1], 'unpublished', 'publishing_until', 'unpublished_due_by')
else
  redis.call('HSET', KEYS[1], 'publishing_until', '0')
end
return 1
`)

// ResumeCycle takes the org's claimed but unpublished cycle, if there is one that no publisher
// holds at now, and holds it for the caller for CyclePublishHold. It returns the cycle as it was
// claimed: its number, when it started, when the cycle after it is due and the calls that made
// it due; ok is false when there is nothing to resume.
func (s *Store) ResumeCycle(ctx context.Context, orgID string, now time.Time) (sch Schedule, ok bool, err error) {
	key, err := scheduleKey(orgID)
	if err != nil {
		return Schedule{}, false, err
	}
	res, err := resumeCycleScript.Run(ctx, s.rdb, []string{key}, now.UnixMilli(), now.Add(CyclePublishHold).UnixMilli()).Slice()
	if err != nil {
		return Schedule{}, false, fmt.Errorf("resume unpublished cycle of org %s: %w", orgID, err)
	}
	malformed := fmt.Errorf("resume unpublished cycle of org %s: malformed reply %v", orgID, res)
	if len(res) != 4 {
		return Schedule{}, false, malformed
	}
	var nums [3]int64
	for i := range nums {
		n, isNum := res[i].(int64)
		if !isNum {
			return Schedule{}, false, malformed
		}
		nums[i] = n
	}
	if nums[0] <= 0 {
		return Schedule{}, false, nil
	}
	dueBy, _ := res[3].(string)
	return Schedule{Cycle: uint64(nums[0]), NextAt: time.UnixMilli(nums[1]), StartedAt: time.UnixMilli(nums[2]), DueBy: parseDueBy(dueBy)}, true, nil
}

// CyclePublished takes the org's cycle out of the outbox: all of its jobs are published.
func (s *Store) CyclePublished(ctx context.Context, orgID string, cycle uint64) error {
	return s.settleCycle(ctx, orgID, cycle, "published")
}

// ReleaseCycle ends the caller's hold on the org's unpublished cycle after a failed publish, so
// that the next tick of any replica publishes it again.
func (s *Store) ReleaseCycle(ctx context.Context, orgID string, cycle uint64) error {
	return s.settleCycle(ctx, orgID, cycle, "release")
}

func (s *Store) settleCycle(ctx context.Context, orgID string, cycle uint64, how string) error {
	key, err := scheduleKey(orgID)
	if err != nil {
		return err
	}
	if err := settleCycleScript.Run(ctx, s.rdb, []string{key}, cycle, how).Err(); err != nil {
		return fmt.Errorf("mark cycle %d of org %s %s: %w", cycle, orgID, how, err)
	}
	return nil
}
