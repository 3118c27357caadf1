package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// TestWholeLedgerLoadsAreBounded gives the Syncer one whole-ledger slot and has another handler
// hold it: `tandem plan` and the pages that complete a first (full) read, which need the user's
// whole ledger, wait for it, and go on once it is released.
func TestWholeLedgerLoadsAreBounded(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(0))
	h.syncer = New(h.st, h, Options{Clock: h.syncer.opts.Clock, LedgerLoads: 1})
	h.ex.create(contactRecord(1, "Ada", "Lovelace", ""))
	h.sf.create(contactRecord(2, "Charles", "Babbage", ""))

	other := h.syncer.ledgerSlot()
	if _, err := other.load(h.ctx, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT); err != nil {
		t.Fatal(err)
	}
	waited := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s while the only slot was taken: %v, want it to wait until its context ended", what, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	_, err := h.syncer.Plan(ctx, uk)
	cancel()
	waited("Plan", err)

	h.startCycle()
	queued := len(h.changes)
	var failed int
	for _, q := range h.changes {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		err := h.syncer.HandleChanges(ctx, q.msg)
		cancel()
		if err != nil {
			waited("a change batch", err)
			failed++
		}
	}
	if failed != queued {
		t.Fatalf("%d of %d pages waited; each completes its side's full read and needs the whole ledger", failed, queued)
	}

	other.release()
	h.settle()
	h.assertAgree()
	if len(h.ex.items) != 2 || len(h.sf.items) != 2 {
		t.Fatalf("exchange %d, salesforce %d contacts, want 2 each", len(h.ex.items), len(h.sf.items))
	}
}
