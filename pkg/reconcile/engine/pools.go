package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tandem-sync/tandem/pkg/store"
)

// poolTTL is how long the engine keeps sending an org's write batches to the worker pool it last
// read from the org's settings, so that a flush of writes costs no Redis read for the org. An
// admin's move of the org to another pool reaches the engine within it; batches sent to the old
// pool meanwhile are carried out by the old pool's workers, which still serve every org.
const poolTTL = 30 * time.Second

// pools remembers each org's worker pool for poolTTL.
type pools struct {
	st  *store.Store
	now func() time.Time

	mu    sync.Mutex
	byOrg map[string]poolEntry
}

type poolEntry struct {
	pool   string
	readAt time.Time
}

func newPools(st *store.Store, now func() time.Time) *pools {
	return &pools{st: st, now: now, byOrg: map[string]poolEntry{}}
}

// of returns the worker pool of the org's write batches. An org without settings (deleted
// while its users' writes were in flight) has its batches sent to the default pool, whose
// workers report that the org is gone.
func (p *pools) of(ctx context.Context, orgID string) (string, error) {
	now := p.now()
	p.mu.Lock()
	e, ok := p.byOrg[orgID]
	p.mu.Unlock()
	if ok && now.Sub(e.readAt) < poolTTL && !now.Before(e.readAt) {
		return e.pool, nil
	}
	pool := store.DefaultWorkerPool
	org, err := p.st.GetOrgRedacted(ctx, orgID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return "", fmt.Errorf("worker pool of org %s: %w", orgID, err)
	default:
		pool = store.WorkerPool(org)
	}
	p.mu.Lock()
	p.byOrg[orgID] = poolEntry{pool: pool, readAt: now}
	p.mu.Unlock()
	return pool, nil
}
