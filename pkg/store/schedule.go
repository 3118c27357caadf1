package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// claimCycleScript starts an org's next cycle if it is due: it numbers the cycle and sets when
// the following one is due, atomically, so that several scheduler replicas never start the same
// cycle twice. The first claim of a schedule also names its epoch (the claim's time): cycles are
// numbered within an epoch, and a schedule lost with the rest of Tandem's state (FLUSHALL)
// numbers its cycles from 1 again in a new one. In the same step it puts the cycle in the org's outbox (see outbox.go), held by
// the claimant until ARGV[3], so that a claimant that dies before publishing the cycle's jobs
// leaves the cycle to be published by the next tick; the trace contexts of the calls that made
// the cycle due (due_by, see DueNow) go with it. It replies {cycle, due_by}, {0, ""} when the
// org is not due.
var claimCycleScript = redis.NewScript(`
local due = tonumber(redis.call('HGET', KEYS[1], 'next_at') or '0')
if tonumber(ARGV[1]) < due then
  return {0, ''}
end
local cycle = redis.call('HINCRBY', KEYS[1], 'cycle', 1)
if redis.call('HEXISTS', KEYS[1], 'epoch') == 0 then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1])
end
redis.call('HSET', KEYS[1], 'next_at', ARGV[2], 'started_at', ARGV[1],
  'unpublished', cycle, 'publishing_until', ARGV[3])
local due_by = redis.call('HGET', KEYS[1], 'due_by')
if due_by then
  redis.call('HSET', KEYS[1], 'unpublished_due_by', due_by)
  redis.call('HDEL', KEYS[1], 'due_by')
else
  redis.call('HDEL', KEYS[1], 'unpublished_due_by')
  due_by = ''
end
return {cycle, due_by}
`)

// appendDueByLua defines append_due_by(key, traceparent, max): it adds the call's traceparent
// (none when empty) to the schedule's due_by, once, as the latest, keeping the last max.
const appendDueByLua = `
local function append_due_by(key, tp, max)
  if tp == '' then
    return
  end
  local kept = {}
  for t in string.gmatch(redis.call('HGET', key, 'due_by') or '', '%S+') do
    if t ~= tp then
      kept[#kept + 1] = t
    end
  end
  kept[#kept + 1] = tp
  redis.call('HSET', key, 'due_by', table.concat(kept, ' ', math.max(1, #kept - tonumber(max) + 1)))
end
`

// dueNowScript: KEYS = schedule; ARGV = the caller's W3C traceparent ("" for none), the most
// kept. Makes the next cycle due and adds the traceparent to due_by, newest last, dropping the
// oldest beyond the most kept.
var dueNowScript = redis.NewScript(appendDueByLua + `
redis.call('HSET', KEYS[1], 'next_at', '0')
append_due_by(KEYS[1], ARGV[1], ARGV[2])
return 0
`)

// maxDueBy is how many calls' trace contexts one cycle keeps: a burst of admin changes before
// a cycle starts links the cycle to the latest few, not to every one.
const maxDueBy = 8

// Schedule is an org's cycle schedule.
type Schedule struct {
	// Cycle is the last cycle started; 0 before the first.
	Cycle uint64
	// StartedAt is when it started; NextAt is when the next one is due.
	StartedAt, NextAt time.Time
	// DueBy are the span contexts of the calls that made the cycle due at once (DueNow under a
	// span: an API call), oldest first, for the cycle's span to link to. Only ClaimNextCycle and
	// ResumeCycle fill it; empty for a cycle due by its interval.
	DueBy []trace.SpanContext
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
	sch, ok, err := s.ClaimNextCycle(ctx, orgID, now, next)
	return sch.Cycle, ok, err
}

// ClaimNextCycle is ClaimCycle returning the cycle as claimed: its number, its start (now),
// when the next is due (next), and the span contexts of the calls that made it due (DueBy).
func (s *Store) ClaimNextCycle(ctx context.Context, orgID string, now, next time.Time) (sch Schedule, ok bool, err error) {
	key, err := scheduleKey(orgID)
	if err != nil {
		return Schedule{}, false, err
	}
	res, err := claimCycleScript.Run(ctx, s.rdb, []string{key}, now.UnixMilli(), next.UnixMilli(), now.Add(CyclePublishHold).UnixMilli()).Slice()
	if err != nil {
		return Schedule{}, false, fmt.Errorf("claim cycle of org %s: %w", orgID, err)
	}
	var n int64
	if len(res) == 2 {
		n, ok = res[0].(int64)
	}
	if !ok {
		return Schedule{}, false, fmt.Errorf("claim cycle of org %s: malformed reply %v", orgID, res)
	}
	if n <= 0 {
		return Schedule{}, false, nil
	}
	_ = s.PublishChange(ctx, orgID, "")
	dueBy, _ := res[1].(string)
	return Schedule{Cycle: uint64(n), StartedAt: now, NextAt: next, DueBy: parseDueBy(dueBy)}, true, nil
}

// DueNow makes the org's next cycle due at once (after a configuration change or a reset).
// Called under a span (an API call's), it keeps the span's context with the schedule, so that
// the cycle it makes due links to it (Schedule.DueBy): the trace of the call leads to the trace
// of the cycle, and so to the writes the cycle makes.
func (s *Store) DueNow(ctx context.Context, orgID string) error {
	key, err := scheduleKey(orgID)
	if err != nil {
		return err
	}
	if err := dueNowScript.Run(ctx, s.rdb, []string{key}, traceparent(ctx), maxDueBy).Err(); err != nil {
		return fmt.Errorf("make the next cycle of org %s due: %w", orgID, err)
	}
	return nil
}

// traceparent is the W3C traceparent header of ctx's span, "" when ctx has none.
func traceparent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier.Get("traceparent")
}

// parseDueBy reads a due_by field: W3C traceparents separated by spaces. Malformed ones are
// skipped: a link is worth less than the cycle.
func parseDueBy(field string) []trace.SpanContext {
	var out []trace.SpanContext
	for _, tp := range strings.Fields(field) {
		ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			out = append(out, sc)
		}
	}
	return out
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
