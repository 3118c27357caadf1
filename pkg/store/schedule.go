package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// claimCycleScript starts an org's next cycle if it is due: it numbers the cycle and sets when
// the following one is due, atomically, so that several scheduler replicas never start the same
// cycle twice. The first claim of a schedule also names its epoch (the claim's time): cycles are
// numbered within an epoch, and a schedule lost with the rest of Tandem's state (FLUSHALL)
// numbers its cycles from 1 again in a new one. In the same step it puts the cycle in the org's outbox (see outbox.go), held by
// the claimant until ARGV[3], so that a claimant that dies before publishing the cycle's jobs
// leaves the cycle to be published by the next tick. It returns 0 when the org is not due.
var claimCycleScript = redis.NewScript(`
local due = tonumber(redis.call('HGET', KEYS[1], 'next_at') or '0')
if tonumber(ARGV[1]) < due then
  return 0
end
local cycle = redis.call('HINCRBY', KEYS[1], 'cycle', 1)
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1])
end
redis.call('HSET', KEYS[1], 'next_at', ARGV[2], 'started_at', ARGV[1],
  'unpublished', cycle, 'publishing_until', ARGV[3])
return cycle
`)

// Schedule is an org's cycle schedule.
type Schedule struct {
	// Cycle is the last cycle started; 0 before the first.
	Cycle uint64
	// StartedAt is when it started; NextAt is when the next one is due.
	StartedAt, NextAt time.Time
}

func scheduleKey(orgID string) (string, error) {
	if err := checkID("org id", orgID); err != nil {
		return "", err
	}
	return orgKey(orgID, orgScheduleName), nil
}

// ClaimCycle starts the org's next cycle if it is due at now, and schedules the one after at
// next. ok is false when the org is not due yet (or another replica claimed it first). The
// claimed cycle stays in the org's outbox until CyclePublished; see ResumeCycle.
func (s *Store) ClaimCycle(ctx context.Context, orgID string, now, next time.Time) (cycle uint64, ok bool, err error) {
	key, err := scheduleKey(orgID)
	if err != nil {
		return 0, false, err
	}
	n, err := claimCycleScript.Run(ctx, s.rdb, []string{key}, now.UnixMilli(), next.UnixMilli(), now.Add(CyclePublishHold).UnixMilli()).Int64()
	if err != nil {
		return 0, false, fmt.Errorf("claim cycle of org %s: %w", orgID, err)
	}
	if n > 0 {
		_ = s.PublishChange(ctx, orgID, "")
	}
	return uint64(n), n > 0, nil
}

// DueNow makes the org's next cycle due at once (after a configuration change or a reset).
func (s *Store) DueNow(ctx context.Context, orgID string) error {
	key, err := scheduleKey(orgID)
	if err != nil {
		return err
	}
	return s.Apply(ctx, HSet(key, "next_at", "0"))
}

// ScheduledCycle returns the org's last cycle started and the epoch its numbering belongs to
// (see ClaimCycle); 0 and "" before the first, or when the schedule was lost with the rest of
// Tandem's state.
func (s *Store) ScheduledCycle(ctx context.Context, orgID string) (cycle uint64, epoch string, err error) {
	key, err := scheduleKey(orgID)
	if err != nil {
		return 0, "", err
	}
	return (&ScheduleRead{orgID: orgID, cmd: s.rdb.HMGet(ctx, key, "cycle", "epoch")}).Result()
}

// ScheduleRead is ScheduledCycle's read queued on a caller's pipeline, so that a caller that
// reads other keys anyway reads the schedule in the same round trip (the reconciler reads it
// with a user's ledger for every change batch).
type ScheduleRead struct {
	orgID string
	cmd   *redis.SliceCmd
}

// QueueScheduledCycle queues on pipe the read of ScheduledCycle; its Result is valid once the
// pipeline has run.
func QueueScheduledCycle(ctx context.Context, pipe redis.Pipeliner, orgID string) (*ScheduleRead, error) {
	key, err := scheduleKey(orgID)
	if err != nil {
		return nil, err
	}
	return &ScheduleRead{orgID: orgID, cmd: pipe.HMGet(ctx, key, "cycle", "epoch")}, nil
}

// Result returns what ScheduledCycle returns, or the read's error.
func (r *ScheduleRead) Result() (cycle uint64, epoch string, err error) {
	vals, err := r.cmd.Result()
	if err != nil {
		return 0, "", fmt.Errorf("read schedule of org %s: %w", r.orgID, err)
	}
	if v, ok := vals[0].(string); ok {
		if cycle, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, "", fmt.Errorf("read schedule of org %s: cycle %q: %w", r.orgID, v, err)
		}
	}
	epoch, _ = vals[1].(string)
	return cycle, epoch, nil
}

// GetSchedule returns the org's schedule.
func (s *Store) GetSchedule(ctx context.Context, orgID string) (Schedule, error) {
	key, err := scheduleKey(orgID)
	if err != nil {
		return Schedule{}, err
	}
	raw, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Schedule{}, fmt.Errorf("read schedule of org %s: %w", orgID, err)
	}
	num := func(f string) int64 { n, _ := strconv.ParseInt(raw[f], 10, 64); return n }
	sch := Schedule{Cycle: uint64(num("cycle"))}
	if ms := num("started_at"); ms > 0 {
		sch.StartedAt = time.UnixMilli(ms)
	}
	if ms := num("next_at"); ms > 0 {
		sch.NextAt = time.UnixMilli(ms)
	}
	return sch, nil
}
