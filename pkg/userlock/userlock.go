// Package userlock serialises work on one user, within a process and across processes: a keyed
// in-process lock first (so that a process's own handlers for a user queue instead of racing
// for the user's lease in Redis, which all but one of them would lose), then the user's fenced
// lease (package store) for a role, waited for while another process holds it.
//
// The reconciler serialises its work per user with it (role "reconcile").
package userlock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tandem-sync/tandem/pkg/keylock"
	"github.com/tandem-sync/tandem/pkg/retry"
	"github.com/tandem-sync/tandem/pkg/store"
)

// Poll is the base interval at which a waiter looks again for a lease another process holds;
// each wait adds up to as much again at random, so that waiting replicas do not poll in step.
const Poll = 100 * time.Millisecond

// waitPolicy is how often a waiter looks again: every one to two Polls, at random.
var waitPolicy = retry.Policy{Base: 2 * Poll, Max: 2 * Poll, Jitter: 0.5}

// Locks serialises work per user for one lease role.
type Locks struct {
	st   *store.Store
	role string
	ttl  time.Duration

	// local queues this process's own work on a user.
	local keylock.Locks[store.UserKey]
}

// New returns the locks of role, whose leases live for ttl and are renewed while work runs.
func New(st *store.Store, role string, ttl time.Duration) *Locks {
	return &Locks{st: st, role: role, ttl: ttl}
}

// TTL is the leases' time to live.
func (l *Locks) TTL() time.Duration { return l.ttl }

// lock takes uk's in-process lock, waiting for as long as ctx allows; unlock gives it back.
func (l *Locks) lock(ctx context.Context, uk store.UserKey) (unlock func(), err error) {
	unlock, err = l.local.Lock(ctx, uk)
	if err != nil {
		return nil, fmt.Errorf("wait for this process's work on %s: %w", uk, err)
	}
	return unlock, nil
}

// GaveUp is returned by Do when another process held the lease for longer than the wait.
type GaveUp struct {
	User   store.UserKey
	Role   string
	Waited time.Duration
	// Held is the last refusal.
	Held *store.LeaseHeldError
}

func (e *GaveUp) Error() string {
	return fmt.Sprintf("user %s is held by another process for %s (waited %s)", e.User, e.Role, e.Waited)
}

func (e *GaveUp) Unwrap() error { return e.Held }

// Do runs fn holding uk's lease, after this process's other work on uk. A lease another process
// holds is waited for, for up to wait, looking again as waitPolicy says or just after the
// holder's lease would expire, if that comes first: a holder that crashed stops renewing, so
// its lease is taken over within one TTL; a live holder is waited out. Only a holder that
// keeps the lease for longer than wait makes Do give up, with a *GaveUp. waiting, when not
// nil, is told about each wait.
func (l *Locks) Do(ctx context.Context, uk store.UserKey, wait time.Duration, waiting func(held *store.LeaseHeldError), fn func(context.Context, *store.Lease) error) error {
	unlock, err := l.lock(ctx, uk)
	if err != nil {
		return err
	}
	defer unlock()
	deadline := time.Now().Add(wait)
	err = retry.Do(ctx, waitPolicy, func(ctx context.Context) error {
		err := l.st.WithLease(ctx, uk, l.role, l.ttl, fn)
		var held *store.LeaseHeldError
		if !errors.As(err, &held) {
			return retry.Abort(err) // done, or failed for another reason: the caller decides
		}
		left := time.Until(deadline)
		if left <= 0 {
			return retry.Abort(&GaveUp{User: uk, Role: l.role, Waited: wait, Held: held})
		}
		if waiting != nil {
			waiting(held)
		}
		if expiry := held.Remaining + time.Millisecond; expiry < Poll {
			return retry.After(err, min(expiry, left))
		}
		if left < waitPolicy.Max {
			return retry.After(err, left)
		}
		return err
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("wait for the %s lease of %s: %w", l.role, uk, err)
	}
	return err
}
