package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Wakes. A change notification from Exchange (or any other push source) wakes the org: its
// next cycle becomes due soon instead of at the end of the poll interval. Bursts coalesce: a
// wake never makes a cycle due sooner than MinGap after the last cycle started, so a flurry of
// notifications costs one extra cycle, not one per notification; and it never makes a cycle
// due later than it already was.
//
// Every wake is also announced on the Redis channel WakeChannel, so that the scheduler can
// start the cycle when it falls due instead of at its next tick (WakeSignals).

// DefaultWakeGap is the least time between the start of an org's last cycle and a cycle a
// wake makes due.
const DefaultWakeGap = 500 * time.Millisecond

// WakeChannel is the Redis pub/sub channel wakes are announced on, one message per wake:
// "<org id> <unix ms the org's cycle is due>". A channel is not a key: it holds nothing, and
// a scheduler that was not listening loses nothing but the head start (its tick still finds
// the org due).
const WakeChannel = keyPrefix + "{" + globalTag + "}:wake"

// wakeScript: KEYS = schedule; ARGV = now ms, gap ms, traceparent, max due_by. Sets next_at to
// max(now, started_at + gap) unless it is already due by then (an org without next_at is due),
// keeps the caller's traceparent in due_by (an org that never had a cycle keeps none), and
// replies when the org's next cycle is due.
var wakeScript = redis.NewScript(appendDueByLua + `
local now = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then
  append_due_by(KEYS[1], ARGV[3], ARGV[4])
end
local due = math.max(now, tonumber(redis.call('HGET', KEYS[1], 'started_at') or '0') + tonumber(ARGV[2]))
local next_at = tonumber(redis.call('HGET', KEYS[1], 'next_at') or '0')
if next_at <= due then
  return math.max(next_at, now)
end
redis.call('HSET', KEYS[1], 'next_at', due)
return due
`)

// Wake makes the org's next cycle due soon, DefaultWakeGap apart from the last one; see
// WakeAfter.
func (s *Store) Wake(ctx context.Context, orgID string) (time.Time, error) {
	return s.WakeAfter(ctx, orgID, DefaultWakeGap)
}

// WakeAfter makes the org's next cycle due at max(now, the last cycle's start + gap), unless it
// is due sooner already, and announces it on WakeChannel. Called under a span, the cycle it makes
// due links to it, as DueNow's does. It returns when the next cycle is
// due. An org that never had a cycle is due anyway; its schedule is left alone. A failed
// announcement is returned as an error although the org is woken: the scheduler's tick still
// finds it.
func (s *Store) WakeAfter(ctx context.Context, orgID string, gap time.Duration) (time.Time, error) {
	key, err := scheduleKey(orgID)
	if err != nil {
		return time.Time{}, err
	}
	if gap < 0 {
		return time.Time{}, fmt.Errorf("wake org %s: negative gap %s", orgID, gap)
	}
	dueMS, err := wakeScript.Run(ctx, s.rdb, []string{key}, s.now().UnixMilli(), gap.Milliseconds(), traceparent(ctx), maxDueBy).Int64()
	if err != nil {
		return time.Time{}, fmt.Errorf("wake org %s: %w", orgID, err)
	}
	due := time.UnixMilli(dueMS)
	if err := s.rdb.Publish(ctx, WakeChannel, orgID+" "+strconv.FormatInt(dueMS, 10)).Err(); err != nil {
		return due, fmt.Errorf("wake org %s: announce: %w", orgID, err)
	}
	return due, nil
}

// WakeSignal is one announced wake.
type WakeSignal struct {
	OrgID string
	// Due is when the org's next cycle is due.
	Due time.Time
}

// WakeSignals listens to WakeChannel until ctx ends, when the returned channel is closed. The
// subscription is made before WakeSignals returns, so no wake announced after it is missed
// while the listener is connected; after a lost connection the client subscribes again, and
// wakes announced in between are missed (the scheduler's tick covers them). Malformed
// messages are skipped.
func (s *Store) WakeSignals(ctx context.Context) (<-chan WakeSignal, error) {
	ps := s.rdb.Subscribe(ctx, WakeChannel)
	// Receive waits for the subscription's confirmation, so that the caller may rely on it.
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("listen to wakes: %w", err)
	}
	out := make(chan WakeSignal, 64)
	msgs := ps.Channel()
	go func() {
		defer close(out)
		defer ps.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				sig, err := parseWakeSignal(m.Payload)
				if err != nil {
					continue
				}
				select {
				case out <- sig:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

func parseWakeSignal(payload string) (WakeSignal, error) {
	org, ms, ok := strings.Cut(payload, " ")
	if !ok || !ValidID(org) {
		return WakeSignal{}, errors.New("malformed wake")
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return WakeSignal{}, errors.New("malformed wake")
	}
	return WakeSignal{OrgID: org, Due: time.UnixMilli(n)}, nil
}
