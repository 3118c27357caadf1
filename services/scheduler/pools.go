package scheduler

import (
	"context"
	"errors"
	"log/slog"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/lifecycle"
	"github.com/tandem-sync/tandem/pkg/store"
)

// Retiring worker pools' consumers. A pool's workers create its durable consumers (one per
// role, bus.PoolConsumer) when they first consume; when the last org naming the pool moves
// elsewhere and the pool's workers are scaled away, the consumers stay on the server for good,
// each with its state and its place in every listing. The scheduler, which reads every org
// anyway, deletes them.
//
// A pool's consumers go together, and only when all of this holds on two passes in a row, a
// PoolCleanup apart: no org names the pool (enabled or not: a disabled org keeps its pool for
// when it is enabled again), it is not the default pool, and every one of its consumers is idle
// (bus.PoolConsumerState.Idle): no message waits for it or for an acknowledgement, and no
// worker is fetching from it. The second look keeps a worker that happened to be between two
// pull requests at the first from losing its consumers; even then nothing is lost — a running
// worker recreates its consumer at its next pull, and messages published for the pool
// meanwhile wait in their stream for it. Every replica may run this; deleting what another
// replica deleted is a no-op.

// Pools lists and deletes the workers' per-pool consumers; bus.Bus does.
type Pools interface {
	PoolConsumers(ctx context.Context) ([]bus.PoolConsumerState, error)
	DeletePoolConsumer(ctx context.Context, c bus.PoolConsumerState) (bool, error)
}

// poolsLoop retires unused pools' consumers every PoolCleanup until ctx ends.
func (s *Scheduler) poolsLoop(ctx context.Context) error {
	return lifecycle.Every(ctx, s.cfg.PoolCleanup, s.RetirePools, func(err error) {
		s.log.WarnContext(ctx, "retiring unused worker pools' consumers", slog.Any("error", err))
	})
}

// RetirePools makes one pass: it deletes the consumers of the pools found retirable on this
// pass and on the one before, and remembers the others found retirable for the next.
func (s *Scheduler) RetirePools(ctx context.Context) error {
	orgs, err := s.st.ListOrgs(ctx)
	if err != nil {
		return err
	}
	used := map[string]bool{store.DefaultWorkerPool: true}
	for _, org := range orgs {
		used[store.WorkerPool(org)] = true
	}
	consumers, err := s.pools.PoolConsumers(ctx)
	if err != nil {
		return err
	}
	byPool := map[string][]bus.PoolConsumerState{}
	busy := map[string]bool{}
	for _, c := range consumers {
		if used[c.Pool] {
			continue
		}
		byPool[c.Pool] = append(byPool[c.Pool], c)
		if !c.Idle() {
			busy[c.Pool] = true
		}
	}
	s.retireMu.Lock()
	defer s.retireMu.Unlock()
	retirable := map[string]bool{}
	var errs []error
	for pool, cs := range byPool {
		if busy[pool] {
			continue
		}
		if !s.retirable[pool] {
			retirable[pool] = true // deleted at the next pass if it is still unused and idle then
			continue
		}
		for _, c := range cs {
			deleted, err := s.pools.DeletePoolConsumer(ctx, c)
			if err != nil {
				errs = append(errs, err)
				retirable[pool] = true // tried again at the next pass
				continue
			}
			if deleted {
				s.log.InfoContext(ctx, "deleted the consumer of a worker pool no org uses", slog.String("pool", pool),
					slog.String("consumer", c.Name), slog.String("stream", c.Stream))
			}
		}
	}
	s.retirable = retirable
	return errors.Join(errs...)
}
