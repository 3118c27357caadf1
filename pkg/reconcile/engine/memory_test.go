package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

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
	h.assertContacts(2)
}

// TestLargeScopesTakeASlot: a cycle planned from what changed takes a whole-ledger slot when
// the changes are many (a bulk edit), and plans without one when they are few.
func TestLargeScopesTakeASlot(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(0))
	reader := sdkmetric.NewManualReader()
	h.syncer = New(h.st, h, Options{Clock: h.syncer.opts.Clock, LedgerLoads: 1, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	ids := h.seedSettled(smallScope/2 + 1)
	other := h.syncer.ledgerSlot()
	if err := other.acquire(h.ctx, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT); err != nil {
		t.Fatal(err)
	}
	cycle := func() (waited bool) {
		h.startCycle()
		for len(h.changes) > 0 {
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			err := h.syncer.HandleChanges(ctx, h.changes[0].msg)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				return true
			}
			if err != nil {
				t.Fatal(err)
			}
			h.changes = h.changes[1:]
		}
		h.drain()
		return false
	}
	before := cycleCounts(t, reader)
	h.ex.update(ids[0], func(c *tandemv1.Contact) { c.Department = "R&D" })
	if cycle() {
		t.Fatal("a cycle with one change waited for a whole-ledger slot")
	}
	for _, id := range ids { // more than smallScope changes with the other side's edits
		h.ex.update(id, func(c *tandemv1.Contact) { c.JobTitle = "Engineer" })
	}
	for _, r := range h.sf.byEmail() {
		h.sf.update(r[0].GetId(), func(c *tandemv1.Contact) { c.Notes = "met at the fair" })
	}
	if !cycle() {
		t.Fatal("a cycle with a bulk edit planned without a whole-ledger slot")
	}
	other.release()
	h.drain()
	if got := cycleCounts(t, reader); got[fromChanges] != before[fromChanges]+2 || got[fromWholeLedger] != before[fromWholeLedger] {
		t.Errorf("cycles by what they were planned from = %v (%v before the two), want both from the changes", got, before)
	}
	h.settle()
	h.assertAgree()
}
