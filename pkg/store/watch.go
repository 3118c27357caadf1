package store

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"
)

// Watch leases. Some components keep a standing subscription per org: the exchange-worker's
// EWS streaming notifications, the salesforce-worker's Change Data Capture. They run in every
// replica, yet each org must be watched by one replica only: N replicas watching would make N
// subscriptions per mailbox and N deliveries of every change. So a replica watches an org only
// while it holds the org's watch lease for its role, and gives the watch up the moment the lease
// is lost. The others try again now and then, and one of them takes over once the lease is
// released (a graceful stop) or has expired (a holder killed). Orgs spread over the replicas by
// whoever acquires first; nothing assigns them.
//
// A watch lease is an org-keyed Lease, with the same scripts, tokens and renewals as a user's,
// and one difference: its key holds a random holder id after the token. Redis may lose its
// state (a flush, a restore from an old snapshot) and then issue a token again; two replicas
// with the same token would both renew, and both watch, for ever. With the holder id, the one
// that held the lease before the loss finds it is not its own any more and stops.

// DefaultWatchLeaseTTL is how long a watch lease lasts unless renewed: how long an org may go
// unwatched after its watcher dies without releasing it.
const DefaultWatchLeaseTTL = 30 * time.Second

// AcquireWatchLease takes the org's watch lease for role (e.g. "watch-exchange") for ttl. While
// another replica holds it, it fails with a *LeaseHeldError (ErrLeaseHeld) whose Remaining says
// when that lease expires unless renewed. Hold keeps the lease renewed while the org is watched;
// Release hands it on. Its token fences no writes: Commit is for a user's lease.
func (s *Store) AcquireWatchLease(ctx context.Context, orgID, role string, ttl time.Duration) (*Lease, error) {
	if err := checkID("org id", orgID); err != nil {
		return nil, fmt.Errorf("acquire watch lease: %w", err)
	}
	return s.acquire(ctx, &Lease{store: s, uk: UserKey{OrgID: orgID}, role: role,
		key: orgLeaseKey(orgID, role), fenceKey: orgFenceKey(orgID, role), holder: ":" + rand.Text(), ttl: ttl})
}
