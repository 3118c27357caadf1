package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	"github.com/tandem-sync/tandem/pkg/userlock"
)

// resetLeaseWait bounds how long a reset waits for a reconciler that holds the user's lease.
const resetLeaseWait = 2 * time.Second

// withLease runs fn holding the user's reconcile lease, waiting for it as long as its holder
// keeps it alive (see withLeaseWait).
func (s *Syncer) withLease(ctx context.Context, uk store.UserKey, fn func(context.Context, *store.Lease) error) error {
	return s.withLeaseWait(ctx, uk, s.opts.LeaseTTL*liveHolderTTLs, fn)
}

// liveHolderTTLs bounds, in lease TTLs, how long a message waits for a holder that keeps
// renewing the user's lease. A holder renews only while it works on the user, which takes far
// less; the bound only keeps a hung holder from occupying this consumer's slots for good.
const liveHolderTTLs = 30

// withLeaseWait runs fn holding the user's reconcile lease. Work on one user is serialised
// first within the process and then across processes (package userlock). The bus keeps the
// message ours while it waits (InProgress every AckWait/3), so waiting costs no delivery. Only
// a holder that keeps the lease for longer than wait makes the handler give up; the message
// then goes back to the bus marked as contention, which logs it quietly and retries it after a
// short delay.
func (s *Syncer) withLeaseWait(ctx context.Context, uk store.UserKey, wait time.Duration, fn func(context.Context, *store.Lease) error) error {
	err := s.locks.Do(ctx, uk, wait, func(held *store.LeaseHeldError) {
		s.log.DebugContext(ctx, "waiting for the user's reconcile lease", "user", uk.String(), "holder_remaining", held.Remaining)
	}, fn)
	var gaveUp *userlock.GaveUp
	if errors.As(err, &gaveUp) {
		return bus.Contended(&syncerr.Error{
			Code:   syncerr.SyncLeaseLost,
			Detail: "user " + uk.String() + " is being reconciled by another process (waited " + wait.String() + ")",
			Delay:  userlock.Poll + rand.N(10*userlock.Poll),
			Err:    gaveUp,
		})
	}
	return err
}
