package status

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// A user whose Exchange reads keep failing permanently is suspended: the exchange-worker sets
// suspended and suspended_at in its part. Only the exchange-worker writes that part, so nobody
// else clears the flag there. What lifts a suspension is recorded where its author owns it
// instead — an admin's resume or reset in the admin part's resumed_at, a change to the org's
// connection settings or to a sync configuration in their updated_at — and a suspension holds
// only while it is newer than all of them. Every reader (the scheduler, the exchange-worker, the
// API) decides with Suspended, so they agree without anyone rewriting another's part.
//
// The times come from different processes' clocks: a suspension recorded within a clock skew
// after a lift can be taken for an older one. The user is then tried once more and suspended
// again, which lands after the lift once the skew has passed.

// leftOutField marks, in the status hash, a user the scheduler has left out of the org's
// Salesforce jobs while it was suspended: the Salesforce side of such a user is read in full
// when it comes back, since the org's incremental polls went on without it.
const leftOutField = "scheduler:left-out"

// SettingsChanged returns when the settings that decide how a user syncs last changed: the
// org's connection settings or the user's sync configuration, whichever is later. Either may be
// nil.
func SettingsChanged(org *tandemv1.Org, cfg *tandemv1.SyncConfiguration) time.Time {
	return later(timeOf(org.GetUpdatedAt().AsTime(), org.GetUpdatedAt() != nil), timeOf(cfg.GetUpdatedAt().AsTime(), cfg.GetUpdatedAt() != nil))
}

// LiftedAt returns when a user's suspension was last lifted: settings (SettingsChanged) or an
// admin's resume or reset (admin is the admin part; nil when there is none), whichever is later.
func LiftedAt(settings time.Time, admin *tandemv1.UserStatus) time.Time {
	return later(settings, timeOf(admin.GetResumedAt().AsTime(), admin.GetResumedAt() != nil))
}

// Suspended reports whether the suspension recorded in the exchange-worker's part ex still
// holds: the user was suspended after the suspension was last lifted.
func Suspended(ex *tandemv1.UserStatus, lifted time.Time) bool {
	return ex.GetSuspended() && ex.GetSuspendedAt().AsTime().After(lifted)
}

func timeOf(t time.Time, set bool) time.Time {
	if !set {
		return time.Time{}
	}
	return t
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// SettingsChangedFor is SettingsChanged for a user, read from the store: the org's settings and
// the configuration the user syncs with. An org or user that is gone changes nothing.
func (s *Store) SettingsChangedFor(ctx context.Context, uk store.UserKey) (time.Time, error) {
	org, err := s.st.GetOrgRedacted(ctx, uk.OrgID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return time.Time{}, err
	}
	user, err := s.st.GetUser(ctx, uk.OrgID, uk.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return SettingsChanged(org, nil), nil
	}
	if err != nil {
		return time.Time{}, err
	}
	cfg, _, err := s.st.ResolveConfiguration(ctx, uk.OrgID, user)
	if err != nil {
		return time.Time{}, err
	}
	return SettingsChanged(org, cfg), nil
}

// Lifted returns when the user's suspension was last lifted, read from the store.
func (s *Store) Lifted(ctx context.Context, uk store.UserKey) (time.Time, error) {
	settings, err := s.SettingsChangedFor(ctx, uk)
	if err != nil {
		return time.Time{}, err
	}
	admin, err := s.GetPart(ctx, uk, PartAdmin)
	if err != nil {
		return time.Time{}, err
	}
	return LiftedAt(settings, admin), nil
}

// Resume records an admin's resume (or reset) of the user's sync at: it lifts the user's
// suspension, if any.
func (s *Store) Resume(ctx context.Context, uk store.UserKey, at time.Time) error {
	// The admin part holds nothing else, so it is written whole, without reading it first.
	return s.Put(ctx, uk, PartAdmin, &tandemv1.UserStatus{ResumedAt: timestamppb.New(at)})
}

// lift clears the suspension of a merged status when it no longer holds, and shows the
// scheduler's next sync again instead of the suspended user's next probe: a lifted user is due
// with the org's next cycle (the lift made it due at once).
func lift(us *tandemv1.UserStatus, raw map[string]string, lifted time.Time) error {
	if !us.GetSuspended() || Suspended(us, lifted) {
		return nil
	}
	us.Suspended, us.SuspendedAt, us.NextSyncAt = false, nil, nil
	v, ok := raw[string(PartScheduler)]
	if !ok {
		return nil
	}
	sch := &tandemv1.UserStatus{}
	if err := proto.Unmarshal([]byte(v), sch); err != nil {
		return fmt.Errorf("decode %s status: %w", PartScheduler, err)
	}
	us.NextSyncAt = sch.GetNextSyncAt()
	return nil
}

// Scheduling is what the scheduler reads of a user's status to decide the user's jobs.
type Scheduling struct {
	// Exchange is the exchange-worker's part: failures, back-off and suspension.
	Exchange *tandemv1.UserStatus
	// Admin is the admin part: when the user was last resumed.
	Admin *tandemv1.UserStatus
	// LeftOut is set while the user is left out of the org's Salesforce jobs (MarkLeftOut).
	LeftOut bool
}

// Scheduling reads, in one round trip, what the scheduler needs of a user's status.
func (s *Store) Scheduling(ctx context.Context, uk store.UserKey) (Scheduling, error) {
	k, err := key(uk)
	if err != nil {
		return Scheduling{}, err
	}
	vals, err := s.st.Client().HMGet(ctx, k, string(PartExchange), string(PartAdmin), leftOutField).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Scheduling{}, fmt.Errorf("read the scheduling status of %s: %w", uk, err)
	}
	return decodeScheduling(uk, vals)
}

// decodeScheduling decodes the values of an HMGET of the exchange and admin parts and, if
// asked for, the left-out mark.
func decodeScheduling(uk store.UserKey, vals []any) (Scheduling, error) {
	out := Scheduling{Exchange: &tandemv1.UserStatus{}, Admin: &tandemv1.UserStatus{}}
	for i, part := range []*tandemv1.UserStatus{out.Exchange, out.Admin} {
		if i >= len(vals) {
			break
		}
		if v, ok := vals[i].(string); ok {
			if err := proto.Unmarshal([]byte(v), part); err != nil {
				return Scheduling{}, fmt.Errorf("decode the status of %s: %w", uk, err)
			}
		}
	}
	if len(vals) > 2 {
		out.LeftOut = vals[2] != nil
	}
	return out, nil
}

// SuspendedUsers returns the ids of the users among assigned (the org's users, with the
// configuration each syncs with, see store.Store.ListAssignments) whose suspension holds (see
// Suspended). It reads their statuses in one round trip, for a reader that goes over a whole
// org at a time: the exchange-worker's notifier leaves a suspended user's mailbox unwatched.
func (s *Store) SuspendedUsers(ctx context.Context, org *tandemv1.Org, assigned []store.Assignment) (map[string]bool, error) {
	if len(assigned) == 0 {
		return nil, nil
	}
	pipe := s.st.Client().Pipeline()
	cmds := make([]*redis.SliceCmd, len(assigned))
	for i, a := range assigned {
		k, err := key(store.UserKey{OrgID: org.GetOrgId(), UserID: a.User.GetUserId()})
		if err != nil {
			return nil, err
		}
		cmds[i] = pipe.HMGet(ctx, k, string(PartExchange), string(PartAdmin))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read the suspensions of org %s: %w", org.GetOrgId(), err)
	}
	out := map[string]bool{}
	for i, a := range assigned {
		uk := store.UserKey{OrgID: org.GetOrgId(), UserID: a.User.GetUserId()}
		sch, err := decodeScheduling(uk, cmds[i].Val())
		if err != nil {
			return nil, err
		}
		if Suspended(sch.Exchange, LiftedAt(SettingsChanged(org, a.Config), sch.Admin)) {
			out[uk.UserID] = true
		}
	}
	return out, nil
}

// MarkLeftOut records that the scheduler leaves the user out of the org's Salesforce jobs.
func (s *Store) MarkLeftOut(ctx context.Context, uk store.UserKey) error {
	k, err := key(uk)
	if err != nil {
		return err
	}
	return s.st.Apply(ctx, store.HSet(k, leftOutField, "1"))
}

// ClearLeftOut records that the user is back in the org's Salesforce jobs.
func (s *Store) ClearLeftOut(ctx context.Context, uk store.UserKey) error {
	k, err := key(uk)
	if err != nil {
		return err
	}
	return s.st.Apply(ctx, store.HDel(k, leftOutField))
}
