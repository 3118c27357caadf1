package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/tandem-sync/tandem/pkg/bus"
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

// withLease runs fn holding the user's reconcile lease, waiting up to the lease's TTL for it
// (see withLeaseWait).
func (s *Syncer) withLease(ctx context.Context, uk store.UserKey, fn func(context.Context, *store.Lease) error) error {
	return s.withLeaseWait(ctx, uk, s.opts.LeaseTTL+2*leasePoll, fn)
}

// withLeaseWait runs fn holding the user's reconcile lease. Work on one user is serialised
// first within the process (a keyed lock) and then across processes (the fenced lease).
//
// A lease another process holds is waited for, polling with jitter, for up to wait. A holder
// that crashed stops renewing, so its lease expires within one TTL: waiting a little longer
// than that means a crashed holder only ever delays a message, never fails it. The bus keeps
// the message ours meanwhile (InProgress every AckWait/3). Only a live holder that keeps the
// lease for longer than wait makes the handler give up; the message then goes back to the bus
// marked as contention, which logs it quietly and retries it after a short delay.
func (s *Syncer) withLeaseWait(ctx context.Context, uk store.UserKey, wait time.Duration, fn func(context.Context, *store.Lease) error) error {
	unlock, err := s.locks.lock(ctx, uk)
	if err != nil {
		return err
	}
	defer unlock()
	deadline := time.Now().Add(wait)
	for {
		err := s.st.WithLease(ctx, uk, LeaseRole, s.opts.LeaseTTL, fn)
		var held *store.LeaseHeldError
		if !errors.As(err, &held) {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return bus.Contended(&syncerr.Error{
				Code:   syncerr.SyncLeaseLost,
				Detail: fmt.Sprintf("user %s is being reconciled by another process (waited %s)", uk, wait),
				Delay:  leasePoll + rand.N(10*leasePoll),
				Err:    err,
			})
		}
		// Look again after a jittered poll, or just after the holder's lease would expire if
		// that comes first: a crashed holder's lease is taken over as soon as it can be.
		pause := min(leasePoll+rand.N(leasePoll), held.Remaining+time.Millisecond, left)
		s.log.DebugContext(ctx, "waiting for the user's reconcile lease", "user", uk.String(), "holder_remaining", held.Remaining)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for the reconcile lease of %s: %w", uk, errors.Join(context.Cause(ctx), err))
		case <-t.C:
		}
	}
}
