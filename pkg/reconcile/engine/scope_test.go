package engine

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"pgregory.net/rapid"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/reconcile/planner"
	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// messages counts the log records a Syncer writes, by message, and the writes of the cycles
// planned from what changed.
type messages struct {
	mu           sync.Mutex
	n            map[string]int
	scopedWrites int64
}

func (m *messages) Enabled(context.Context, slog.Level) bool { return true }
func (m *messages) Handle(_ context.Context, r slog.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n[r.Message]++
	if r.Message == scopedMessage {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "writes" {
				m.scopedWrites += a.Value.Int64()
			}
			return true
		})
	}
	return nil
}
func (m *messages) WithAttrs([]slog.Attr) slog.Handler { return m }
func (m *messages) WithGroup(string) slog.Handler      { return m }

func (m *messages) count(msg string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n[msg]
}

const scopedMessage = "planned from what changed"

// countMessages has h's Syncer log to a counter; verify keeps checking every scoped plan
// against the whole ledger's (which loads the whole ledger).
func countMessages(h *harness, verify bool) *messages {
	m := &messages{n: map[string]int{}}
	h.syncer = New(h.st, h, Options{Clock: func() time.Time { return h.now }, VerifyScope: verify, Logger: slog.New(m)})
	return m
}

// TestScopedPlansMatchTheWholeLedger is the differential test of planning from what changed:
// a settled user's pairs are edited on both sides, cycles run, writes are carried out, lost
// (a worker crash), answered late or again, and left unanswered past their timeout; now and
// then a contact is created or deleted, which the scope must hand to the whole ledger. Every
// cycle planned from what changed is planned again from the whole ledger (Options.VerifyScope),
// and the two plans must do the same; in the end both sides agree.
func TestScopedPlansMatchTheWholeLedger(t *testing.T) {
	rdb := servertest.Redis(t)
	scoped, writes := 0, int64(0)
	rapid.Check(t, func(rt *rapid.T) {
		cfg := bothWays(drawPolicy(rt))
		cfg.Contacts.MassDeleteThresholdPercent = 100
		h := newHarness(t, rdb, cfg)
		h.approveHolds = true
		msgs := countMessages(h, true)
		removedFromExchange := map[string]bool{}
		n := 0
		for range 4 {
			n++
			h.ex.create(contactRecord(n, "Ex", fmt.Sprintf("P%d", n), ""))
			n++
			h.sf.create(contactRecord(n, "Sf", fmt.Sprintf("P%d", n), ""))
		}
		h.settle()
		h.settle()
		edit := drawEdit(rt)
		steps := rapid.IntRange(10, 60).Draw(rt, "steps")
		for range steps {
			side := h.ex
			if rapid.Bool().Draw(rt, "salesforce") {
				side = h.sf
			}
			switch rapid.IntRange(0, 13).Draw(rt, "action") {
			case 0, 1, 2:
				if ids := side.ids(); len(ids) > 0 {
					side.update(rapid.SampledFrom(ids).Draw(rt, "edit"), edit)
				}
			case 3, 4:
				h.startCycle()
			case 5, 6, 7:
				if len(h.changes) > 0 {
					h.deliverChange(rapid.IntRange(0, len(h.changes)-1).Draw(rt, "change"), rapid.IntRange(0, 3).Draw(rt, "again") == 0)
				}
			case 8, 9:
				if len(h.applies) > 0 {
					h.deliverApply(rapid.IntRange(0, len(h.applies)-1).Draw(rt, "apply"), rapid.IntRange(0, 4).Draw(rt, "crash") == 0)
				}
			case 10, 11:
				if len(h.results) > 0 {
					h.deliverResult(rapid.IntRange(0, len(h.results)-1).Draw(rt, "result"), rapid.IntRange(0, 3).Draw(rt, "again") == 0)
				}
			case 12:
				// Writes left unanswered this long are planned again.
				h.now = h.now.Add(planner.DefaultPendingTimeout)
			case 13:
				if rapid.Bool().Draw(rt, "create") {
					n++
					side.create(contactRecord(n, "New", fmt.Sprintf("P%d", n), ""))
				} else if ids := side.ids(); len(ids) > 0 {
					id := rapid.SampledFrom(ids).Draw(rt, "remove")
					if side == h.ex {
						removedFromExchange[record.EmailKey(side.items[id])] = true
					}
					side.remove(id)
				}
			}
		}
		defer func() {
			if t.Failed() || rt.Failed() {
				rt.Logf("trace:\n%s", strings.Join(h.log, "\n"))
			}
		}()
		h.settle()
		h.settle()
		agree(rt, h, removedFromExchange)
		scoped += msgs.count(scopedMessage)
		writes += msgs.scopedWrites
	})
	// The property means something only if scoped plans, with writes, happened.
	t.Logf("%d cycles planned from what changed, with %d writes", scoped, writes)
	if scoped < 50 || writes < 20 {
		t.Errorf("%d cycles planned from what changed, with %d writes: the test no longer exercises the scope", scoped, writes)
	}
}

// agree checks that both sides hold each contact once with the same content, but for
// Salesforce contacts whose Exchange partner was removed: an Exchange delete unlinks them.
func agree(rt *rapid.T, h *harness, removedFromExchange map[string]bool) {
	exBy, sfBy := h.ex.byEmail(), h.sf.byEmail()
	for email, recs := range exBy {
		if len(recs) != 1 || len(sfBy[email]) != 1 {
			rt.Fatalf("%s: %d in Exchange, %d in Salesforce", email, len(recs), len(sfBy[email]))
		}
		if d := record.DifferingFields(recs[0], sfBy[email][0]); len(d) > 0 {
			rt.Fatalf("%s differs in %v:\n exchange   %v\n salesforce %v", email, d, recs[0], sfBy[email][0])
		}
	}
	for email, recs := range sfBy {
		if len(recs) != 1 || (len(exBy[email]) == 0 && !removedFromExchange[email]) {
			rt.Fatalf("%s: %d in Salesforce, %d in Exchange", email, len(recs), len(exBy[email]))
		}
	}
}

// cycleCounts reads tandem.reconcile.cycles by its "from" attribute.
func cycleCounts(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	return counter(t, reader, "tandem.reconcile.cycles", "from")
}

// counter reads a counter by one of its attributes.
func counter(t *testing.T, reader *sdkmetric.ManualReader, name, attr attribute.Key) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != string(name) {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				v, _ := dp.Attributes.Value(attr)
				out[v.AsString()] += dp.Value
			}
		}
	}
	return out
}

// TestChangesArePlannedFromWhatChanged: once the user is settled, a cycle in which linked
// contacts changed plans without reading any other record, and so does the cycle that reads
// the echo of its writes; a new contact is planned from the whole ledger. The cycles metric
// says which was which.
func TestChangesArePlannedFromWhatChanged(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(0))
	ids := h.seedSettled(12)
	reader := sdkmetric.NewManualReader()
	h.syncer = New(h.st, h, Options{Clock: func() time.Time { return h.now }, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})

	restore := poison(h, ids[5])
	h.ex.update(ids[0], func(c *tandemv1.Contact) { c.Department = "Mathematics" })
	h.sf.update(h.sf.byEmail()["p10000@example.com"][0].GetId(), func(c *tandemv1.Contact) { c.JobTitle = "Chair" })
	for range 2 { // the change's cycle, then its writes' echo
		h.startCycle()
		h.drain() // fails on the poisoned entry if anything reads the whole ledger
		if len(h.changes)+len(h.applies)+len(h.results) > 0 {
			t.Fatal("a handler failed: it read a record the changes do not touch")
		}
	}
	if got := cycleCounts(t, reader); got[fromChanges] != 2 || got[fromWholeLedger] != 0 {
		t.Errorf("cycles by what they were planned from = %v, want 2 from the changes", got)
	}
	if got := h.sf.byEmail()["p0@example.com"][0].GetContact().GetDepartment(); got != "Mathematics" {
		t.Errorf("department in Salesforce = %q after the edit", got)
	}
	if got := h.ex.byEmail()["p10000@example.com"][0].GetContact().GetJobTitle(); got != "Chair" {
		t.Errorf("job title in Exchange = %q after the edit", got)
	}
	restore()

	// The echo's plan refreshed the pairs' mappings; the next plan, of nothing, finds nothing to
	// do, and from then on the user is quiet.
	for range 2 {
		h.startCycle()
		h.drain()
	}
	if got := cycleCounts(t, reader); got[fromChanges] != 3 || got[fromNothing] != 1 {
		t.Errorf("cycles by what they were planned from = %v after two idle cycles, want 3 from the changes and 1 from nothing changed", got)
	}
	h.sf.create(contactRecord(200, "Alan", "Turing", ""))
	h.startCycle()
	h.drain()
	if got := cycleCounts(t, reader); got[fromWholeLedger] != 1 || got[fromChanges] != 3 {
		t.Errorf("cycles by what they were planned from = %v, want the new contact's from the whole ledger", got)
	}
	h.settle()
	h.assertAgree()
	if len(h.ex.items) != 25 {
		t.Errorf("exchange has %d contacts, want 25", len(h.ex.items))
	}
}

// TestEditsGoBeforeTheirCycleIsComplete: a settled user's edit of a linked contact in
// Salesforce is written to Exchange as soon as the page of the Salesforce read brings it,
// before Exchange has reported the cycle; the cycle, once complete, is planned from what
// changed since. An edit in Exchange, whose write to Salesforce would overwrite whatever
// changed there since Salesforce was read, and a new contact wait for their cycle.
func TestEditsGoBeforeTheirCycleIsComplete(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(0))
	h.seedSettled(12)
	reader := sdkmetric.NewManualReader()
	h.syncer = New(h.st, h, Options{Clock: func() time.Time { return h.now }, VerifyScope: true,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	deliverOnly := func(side tandemv1.System) {
		t.Helper()
		for i := 0; i < len(h.changes); {
			if h.changes[i].msg.GetSource() != side {
				i++
				continue
			}
			h.deliverChange(i, false)
		}
	}

	sfID := h.sf.byEmail()["p3@example.com"][0].GetId()
	h.sf.update(sfID, func(c *tandemv1.Contact) { c.Department = "Mathematics" })
	h.startCycle()
	deliverOnly(tandemv1.System_SYSTEM_SALESFORCE)
	if len(h.applies) != 1 || h.applies[0].msg.GetTarget() != tandemv1.System_SYSTEM_EXCHANGE {
		t.Fatalf("%d write batches sent before Exchange reported the cycle, want the edit's", len(h.applies))
	}
	h.deliverApply(0, false)
	h.deliverResult(0, false)
	if got := h.ex.byEmail()["p3@example.com"][0].GetContact().GetDepartment(); got != "Mathematics" {
		t.Errorf("department in Exchange = %q while the cycle is still open", got)
	}
	if got := counter(t, reader, "tandem.reconcile.page_plans", "kind"); got["contact"] != 1 {
		t.Errorf("page plans = %v, want 1", got)
	}
	if got := cycleCounts(t, reader); len(got) != 0 {
		t.Errorf("cycles reconciled = %v before Exchange reported the cycle, want none", got)
	}
	h.drain()
	if got := cycleCounts(t, reader); got[fromWholeLedger] != 0 || got[fromChanges]+got[fromNothing] != 1 {
		t.Errorf("cycles = %v once complete, want one, not from the whole ledger", got)
	}

	// An edit in Exchange goes to Salesforce before Salesforce reports the cycle, asking it to
	// check that the contact is still as Tandem last read it.
	exID := h.ex.byEmail()["p4@example.com"][0].GetId()
	h.ex.update(exID, func(c *tandemv1.Contact) { c.Department = "Physics" })
	h.startCycle()
	deliverOnly(tandemv1.System_SYSTEM_EXCHANGE)
	if len(h.applies) != 1 || h.applies[0].msg.GetTarget() != tandemv1.System_SYSTEM_SALESFORCE {
		t.Fatalf("%d write batches sent before Salesforce reported the cycle, want the edit's", len(h.applies))
	}
	for _, c := range h.applies[0].msg.GetCommands() {
		if !c.GetCheckVersion() || c.GetExpectedVersion() == "" {
			t.Errorf("%s sent before Salesforce's read without asking for the version check", describe(c))
		}
	}
	h.deliverApply(0, false)
	h.deliverResult(0, false)
	if got := h.sf.byEmail()["p4@example.com"][0].GetContact().GetDepartment(); got != "Physics" {
		t.Errorf("department in Salesforce = %q while the cycle is still open", got)
	}
	h.drain()

	// A new contact waits for the cycle.
	h.ex.create(contactRecord(300, "Grace", "Hopper", ""))
	h.startCycle()
	deliverOnly(tandemv1.System_SYSTEM_EXCHANGE)
	if len(h.applies) != 0 {
		t.Errorf("%d write batches sent to Salesforce before it reported the cycle of a new contact", len(h.applies))
	}
	h.drain()
	if len(h.sf.byEmail()["p300@example.com"]) != 1 {
		t.Error("the new contact is not in Salesforce once its cycle is complete")
	}
	h.settle()
	h.assertAgree()
}

// TestAnEarlyWriteToSalesforceKeepsAnEditMadeThere: a contact edited in Exchange and, since
// Tandem last read it, in Salesforce. The Exchange edit is planned as soon as Exchange's page
// brings it, but Salesforce refuses the update (the version check), and the cycle decides the
// conflict by its policy — here Salesforce wins — instead of the early write overwriting the
// Salesforce edit.
func TestAnEarlyWriteToSalesforceKeepsAnEditMadeThere(t *testing.T) {
	h := newHarness(t, servertest.Redis(t), bothWays(tandemv1.ConflictPolicy_CONFLICT_POLICY_SALESFORCE_WINS))
	h.seedSettled(6)
	h.syncer = New(h.st, h, Options{Clock: func() time.Time { return h.now }, VerifyScope: true})
	h.ex.update(h.ex.byEmail()["p2@example.com"][0].GetId(), func(c *tandemv1.Contact) { c.Department = "From Exchange" })
	h.startCycle()
	// Edited in Salesforce after its read of the cycle: only the next cycle's read shows it.
	h.sf.update(h.sf.byEmail()["p2@example.com"][0].GetId(), func(c *tandemv1.Contact) { c.Department = "From Salesforce" })
	for i := 0; i < len(h.changes); {
		if h.changes[i].msg.GetSource() != tandemv1.System_SYSTEM_EXCHANGE {
			i++
			continue
		}
		h.deliverChange(i, false)
	}
	if len(h.applies) != 1 {
		t.Fatalf("%d write batches sent before Salesforce reported the cycle, want the edit's", len(h.applies))
	}
	h.deliverApply(0, false)
	if res := h.results[0].msg.GetResults(); len(res) != 1 || res[0].GetError().GetCode() != string(syncerr.SalesforceConflict) {
		t.Fatalf("results %v, want the update refused as a conflict", res)
	}
	if got := h.sf.byEmail()["p2@example.com"][0].GetContact().GetDepartment(); got != "From Salesforce" {
		t.Fatalf("department in Salesforce = %q after the early write, want the Salesforce edit kept", got)
	}
	h.drain()
	h.settle()
	for side, f := range map[string]*fakeSide{"Exchange": h.ex, "Salesforce": h.sf} {
		if got := f.byEmail()["p2@example.com"][0].GetContact().GetDepartment(); got != "From Salesforce" {
			t.Errorf("department in %s = %q once settled, want the Salesforce edit (Salesforce wins)", side, got)
		}
	}
	h.assertAgree()
}
