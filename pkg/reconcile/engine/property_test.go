package engine

import (
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// history is what the users did, by contact (identified by its email, which edits never change).
type history struct {
	deletedInExchange, deletedInSalesforce map[string]bool
	// A modification beats a concurrent deletion: a contact deleted on one side may come back
	// when the other side holds a user's edit Tandem had not yet carried over (made before the
	// deletion and not yet synced, or made after it).
	mayReturnToExchange, mayReturnToSalesforce map[string]bool
	// unsyncedExchangeEdit / unsyncedSalesforceEdit: a user's edit on that side not yet followed
	// by a Tandem write of the contact to the other side.
	unsyncedExchangeEdit, unsyncedSalesforceEdit map[string]bool
	// resetAfterDelete: a reset relinks everything, so a removed contact may legitimately return.
	// A deletion made after a reset was requested but before the full reads that follow it is
	// equally forgotten.
	resetAfterDelete map[string]bool
	resetPending     bool
}

func newHistory() *history {
	return &history{
		deletedInExchange: map[string]bool{}, deletedInSalesforce: map[string]bool{},
		mayReturnToExchange: map[string]bool{}, mayReturnToSalesforce: map[string]bool{},
		unsyncedExchangeEdit: map[string]bool{}, unsyncedSalesforceEdit: map[string]bool{},
		resetAfterDelete: map[string]bool{},
	}
}

// TestConvergenceProperty runs random interleavings of users' creates, updates and deletes on
// both sides, sync cycles, duplicated and reordered deliveries, worker crashes between a write
// and its result, reconciler crashes between publishing and committing, and resets — then lets
// the system settle and checks that both sides converged, nothing was lost or duplicated, and
// nothing was deleted (or brought back) that should not have been.
func TestConvergenceProperty(t *testing.T) {
	rdb := servertest.Redis(t)
	rapid.Check(t, func(rt *rapid.T) {
		cfg := bothWays(drawPolicy(rt))
		// Deletes flow unless a side looks empty; then the harness approves the hold as an admin.
		cfg.Contacts.MassDeleteThresholdPercent = 100
		h := newHarness(t, rdb, cfg)
		h.approveHolds = true
		hist := newHistory()
		h.onWrite = func(target tandemv1.System, email string) {
			if target == tandemv1.System_SYSTEM_SALESFORCE {
				delete(hist.unsyncedExchangeEdit, email)
			} else {
				delete(hist.unsyncedSalesforceEdit, email)
			}
		}
		n := 0
		newContact := func(side *fakeSide) {
			n++
			first := rapid.SampledFrom([]string{"Ada", "Grace", "Alan", "Edsger"}).Draw(rt, "first")
			r := side.create(contactRecord(n, first, fmt.Sprintf("Person%d", n), ""))
			h.tracef("user creates %s in %s as %s", record.EmailKey(r), store.SideName(side.system), r.GetId())
		}
		pick := func(side *fakeSide, label string) (string, bool) {
			ids := side.ids()
			if len(ids) == 0 {
				return "", false
			}
			return rapid.SampledFrom(ids).Draw(rt, label), true
		}
		edit := drawEdit(rt)
		emailOf := func(side *fakeSide, id string) string { return record.EmailKey(side.items[id]) }

		steps := rapid.IntRange(10, 60).Draw(rt, "steps")
		for range steps {
			switch rapid.IntRange(0, 15).Draw(rt, "action") {
			case 0:
				newContact(h.ex)
			case 1:
				newContact(h.sf)
			case 2:
				if id, ok := pick(h.ex, "exEdit"); ok {
					e := emailOf(h.ex, id)
					h.ex.update(id, edit)
					h.tracef("user edits %s in exchange (%s)", e, id)
					hist.unsyncedExchangeEdit[e] = true
					if hist.deletedInSalesforce[e] {
						hist.mayReturnToSalesforce[e] = true
					}
				}
			case 3:
				if id, ok := pick(h.sf, "sfEdit"); ok {
					e := emailOf(h.sf, id)
					h.sf.update(id, edit)
					h.tracef("user edits %s in salesforce (%s)", e, id)
					hist.unsyncedSalesforceEdit[e] = true
					if hist.deletedInExchange[e] {
						hist.mayReturnToExchange[e] = true
					}
				}
			case 4:
				if id, ok := pick(h.ex, "exDelete"); ok {
					e := emailOf(h.ex, id)
					h.tracef("user deletes %s in exchange (%s)", e, id)
					hist.deletedInExchange[e] = true
					hist.resetAfterDelete[e] = hist.resetAfterDelete[e] || hist.resetPending
					if hist.unsyncedSalesforceEdit[e] {
						hist.mayReturnToExchange[e] = true
					}
					h.ex.remove(id)
				}
			case 5:
				if id, ok := pick(h.sf, "sfDelete"); ok {
					e := emailOf(h.sf, id)
					h.tracef("user deletes %s in salesforce (%s)", e, id)
					hist.deletedInSalesforce[e] = true
					hist.resetAfterDelete[e] = hist.resetAfterDelete[e] || hist.resetPending
					if hist.unsyncedExchangeEdit[e] {
						hist.mayReturnToSalesforce[e] = true
					}
					h.sf.remove(id)
				}
			case 6, 7:
				h.startCycle()
				hist.resetPending = false
			case 8:
				if len(h.changes) > 0 {
					i := rapid.IntRange(0, len(h.changes)-1).Draw(rt, "change")
					h.publishFault = rapid.IntRange(0, 4).Draw(rt, "publishFault") == 0
					h.deliverChange(i, rapid.Bool().Draw(rt, "redeliverChange"))
					h.publishFault = false
				}
			case 9, 10:
				if len(h.applies) > 0 {
					i := rapid.IntRange(0, len(h.applies)-1).Draw(rt, "apply")
					h.deliverApply(i, rapid.IntRange(0, 3).Draw(rt, "crash") == 0)
				}
			case 11, 12:
				if len(h.results) > 0 {
					i := rapid.IntRange(0, len(h.results)-1).Draw(rt, "result")
					h.deliverResult(i, rapid.Bool().Draw(rt, "redeliverResult"))
				}
			case 13:
				if rapid.IntRange(0, 3).Draw(rt, "reset") == 0 {
					for e := range hist.deletedInExchange {
						hist.resetAfterDelete[e] = true
					}
					for e := range hist.deletedInSalesforce {
						hist.resetAfterDelete[e] = true
					}
					h.reset()
					hist.resetPending = true
				}
			case 14:
				// A namesake: another person with the same name and another email address, on the
				// other side. Never linked to the first by name.
				side, other := h.ex, h.sf
				if rapid.Bool().Draw(rt, "namesakeInSalesforce") {
					side, other = h.sf, h.ex
				}
				if id, ok := pick(other, "namesakeOf"); ok {
					n++
					c := other.items[id].GetContact()
					r := side.create(contactRecord(n, c.GetGivenName(), c.GetSurname(), ""))
					h.tracef("user creates namesake %s of %s in %s as %s", record.EmailKey(r), emailOf(other, id), store.SideName(side.system), r.GetId())
				}
			case 15:
				if rapid.IntRange(0, 3).Draw(rt, "loseLedger") == 0 {
					// Redis lost with the broker's messages (a fresh start on both): like a reset,
					// deletions made before are forgotten; the records' sync keys relink the pairs.
					for e := range hist.deletedInExchange {
						hist.resetAfterDelete[e] = true
					}
					for e := range hist.deletedInSalesforce {
						hist.resetAfterDelete[e] = true
					}
					h.loseLedger(cfg)
					hist.resetPending = true
				}
			}
		}
		h.tracef("--- drain and settle ---")
		h.drain()
		h.settle()
		defer func() {
			if rt.Failed() {
				rt.Logf("trace:\n%s", strings.Join(h.log, "\n"))
			}
		}()
		checkInvariants(rt, h, hist)
	})
}

func checkInvariants(rt *rapid.T, h *harness, hist *history) {
	exBy, sfBy := h.ex.byEmail(), h.sf.byEmail()
	// Nothing duplicated.
	for email, recs := range exBy {
		if len(recs) > 1 {
			rt.Fatalf("%s is %d times in Exchange", email, len(recs))
		}
	}
	for email, recs := range sfBy {
		if len(recs) > 1 {
			rt.Fatalf("%s is %d times in Salesforce", email, len(recs))
		}
	}
	// Nothing lost. Tandem never deletes in Salesforce (an Exchange delete unlinks by default).
	for email := range h.sf.everHeld {
		if !hist.deletedInSalesforce[email] && len(sfBy[email]) == 0 {
			rt.Fatalf("%s was lost from Salesforce", email)
		}
	}
	// Tandem deletes in Exchange only what was deleted in Salesforce.
	for email := range h.ex.everHeld {
		if !hist.deletedInExchange[email] && !hist.deletedInSalesforce[email] && len(exBy[email]) == 0 {
			rt.Fatalf("%s was lost from Exchange", email)
		}
	}
	// Nothing resurrected: a deleted contact stays deleted unless the other side modified it
	// (a modification beats a deletion) or a reset relinked everything.
	for email := range hist.deletedInExchange {
		if len(exBy[email]) > 0 && !hist.mayReturnToExchange[email] && !hist.resetAfterDelete[email] && !hist.deletedInSalesforce[email] {
			rt.Fatalf("%s came back into Exchange after it was deleted there", email)
		}
	}
	for email := range hist.deletedInSalesforce {
		if len(sfBy[email]) > 0 && !hist.mayReturnToSalesforce[email] && !hist.resetAfterDelete[email] {
			rt.Fatalf("%s came back into Salesforce after it was deleted there", email)
		}
	}
	// Converged: every Exchange contact is in Salesforce with the same content; a Salesforce
	// contact is missing from Exchange only when it was removed from Exchange.
	for email, recs := range exBy {
		sf := sfBy[email]
		if len(sf) == 0 {
			rt.Fatalf("%s is in Exchange but not in Salesforce", email)
		}
		if d := record.DifferingFields(recs[0], sf[0]); len(d) > 0 {
			rt.Fatalf("%s did not converge, fields %v differ:\n exchange   %v\n salesforce %v", email, d, recs[0], sf[0])
		}
	}
	for email := range sfBy {
		if len(exBy[email]) == 0 && !hist.deletedInExchange[email] {
			rt.Fatalf("%s is in Salesforce but not in Exchange, and was never removed from Exchange", email)
		}
	}
}
