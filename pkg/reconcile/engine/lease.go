package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/retry"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
)

// leasePoll is the base interval at which a handler looks again for a lease another process
// holds; each wait adds up to as much again at random, so that waiting replicas do not poll in step.
const leasePoll = 100 * time.Millisecond

// resetLeaseWait bounds how long a reset waits for a reconciler that holds the user's lease.
const resetLeaseWait = 2 * time.Second

// userLocks serialises one process's work per user. The handlers of one process for the same
// user (pages from both sides, results of writes) queue here instead of racing for the user's
// lease in Redis, which all but one of them would lose.
type userLocks struct {
	mu    sync.Mutex
	locks map[store.UserKey]*userLock
}

// userLock is one user's lock: a one-slot semaphore (so that waiting honours a context) and
// the number of goroutines holding or waiting for it, to forget it when none is left.
type userLock struct {
	slot chan struct{}
	refs int
}

// lock takes uk's lock, waiting for as long as ctx allows; unlock gives it back.
func (l *userLocks) lock(ctx context.Context, uk store.UserKey) (unlock func(), err error) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[store.UserKey]*userLock{}
	}
	e := l.locks[uk]
	if e == nil {
		e = &userLock{slot: make(chan struct{}, 1)}
		l.locks[uk] = e
	}
	e.refs++
	l.mu.Unlock()
	select {
	case e.slot <- struct{}{}:
		return func() {
			<-e.slot
			l.forget(uk, e)
		}, nil
	case <-ctx.Done():
		l.forget(uk, e)
		return nil, fmt.Errorf("wait for this process's work on %s: %w", uk, context.Cause(ctx))
	}
}

func (l *userLocks) forget(uk store.UserKey, e *userLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.refs--
	if e.refs == 0 {
		delete(l.locks, uk)
	}
}

// withLease runs fn holding the user's reconcile lease, waiting for it as long as its holder
// keeps it alive (see withLeaseWait).
func (s *Syncer) withLease(ctx context.Context, uk store.UserKey, fn func(context.Context, *store.Lease) error) error {
	return s.withLeaseWait(ctx, uk, s.opts.LeaseTTL*liveHolderTTLs, fn)
}

// liveHolderTTLs bounds, in lease TTLs, how long a message waits for a holder that keeps
// renewing the user's lease. A holder renews only while it works on the user, which takes far
// less; the bound only keeps a hung holder from occupying this consumer's slots for good.
const liveHolderTTLs = 30

// leaseWaitPolicy is how often a handler looks again for a lease another process holds: every
// one to two leasePolls, at random, so that waiting replicas do not poll in step.
var leaseWaitPolicy = retry.Policy{Base: 2 * leasePoll, Max: 2 * leasePoll, Jitter: 0.5}

// withLeaseWait runs fn holding the user's reconcile lease. Work on one user is serialised
// first within the process (a keyed lock) and then across processes (the fenced lease).
//
// A lease another process holds is waited for, for up to wait, looking again as
// leaseWaitPolicy says or just after the holder's lease would expire, if that comes first. A
// holder that crashed stops renewing, so its lease is taken over within one TTL; a live holder
// is waited out. The bus keeps the message ours meanwhile (InProgress every AckWait/3), so
// waiting costs no delivery. Only a holder that keeps the lease for longer than wait makes the
// handler give up; the message then goes back to the bus marked as contention, which logs it
// quietly and retries it after a short delay.
func (s *Syncer) withLeaseWait(ctx context.Context, uk store.UserKey, wait time.Duration, fn func(context.Context, *store.Lease) error) error {
	unlock, err := s.locks.lock(ctx, uk)
	if err != nil {
		return err
	}
	defer unlock()
	deadline := time.Now().Add(wait)
	err = retry.Do(ctx, leaseWaitPolicy, func(ctx context.Context) error {
		err := s.st.WithLease(ctx, uk, LeaseRole, s.opts.LeaseTTL, fn)
		var held *store.LeaseHeldError
		if !errors.As(err, &held) {
			return retry.Abort(err) // done, or failed for another reason: the caller decides
		}
		left := time.Until(deadline)
		if left <= 0 {
			return retry.Abort(bus.Contended(&syncerr.Error{
				Code:   syncerr.SyncLeaseLost,
				Detail: fmt.Sprintf("user %s is being reconciled by another process (waited %s)", uk, wait),
				Delay:  leasePoll + rand.N(10*leasePoll),
				Err:    err,
			}))
		}
		s.log.DebugContext(ctx, "waiting for the user's reconcile lease", "user", uk.String(), "holder_remaining", held.Remaining)
		if expiry := held.Remaining + time.Millisecond; expiry < leasePoll {
			return retry.After(err, min(expiry, left))
		}
		if left < leaseWaitPolicy.Max {
			return retry.After(err, left)
		}
		return err
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("wait for the reconcile lease of %s: %w", uk, err)
	}
	return err
}
