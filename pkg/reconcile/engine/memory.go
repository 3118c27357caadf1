package engine

import (
	"context"
	"fmt"
	"runtime"

	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// DefaultLedgerLoads returns the default of Options.LedgerLoads: twice the cores the process
// may use, at least 4. Planning is CPU-bound, so more ledgers in memory at once than that would
// hold memory without planning faster; twice leaves room for the Redis round trips of loading.
func DefaultLedgerLoads() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// ledgerSlot is a handler's claim on one of the Syncer's whole-ledger slots (Options.LedgerLoads):
// the handler loads whole ledgers through it and releases it when its work ends, since the
// snapshot lives until then. A handler takes one slot at most, however many times it loads.
type ledgerSlot struct {
	s    *Syncer
	held bool
}

func (s *Syncer) ledgerSlot() *ledgerSlot { return &ledgerSlot{s: s} }

// load loads the user's whole ledger for kind, first waiting for a slot if it holds none.
func (l *ledgerSlot) load(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind) (*ledger.Snapshot, error) {
	if err := l.acquire(ctx, uk, kind); err != nil {
		return nil, err
	}
	return l.s.led.Load(ctx, uk, kind)
}

// acquire waits for a slot if the handler holds none: for a whole ledger, or for a part of
// it as large as many users' whole ledgers (see scopedCycle).
func (l *ledgerSlot) acquire(ctx context.Context, uk store.UserKey, kind tandemv1.RecordKind) error {
	if l.held {
		return nil
	}
	if err := l.s.loads.Acquire(ctx, 1); err != nil {
		return fmt.Errorf("wait to load the ledger of %s %s: %w", uk, store.KindName(kind), err)
	}
	l.held = true
	return nil
}

// release gives the slot back, if taken.
func (l *ledgerSlot) release() {
	if l.held {
		l.s.loads.Release(1)
		l.held = false
	}
}
