package devenv

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// TestCompanySyncsBothWays runs company sync through the whole pipeline (real NATS and Redis,
// both simulators): an Account set on a Salesforce contact becomes the company in Exchange; a
// company typed in Exchange becomes the contact's Account where an Account of that name exists;
// and one that names no Account leaves the Account alone, saves the contact's other fields,
// records one note in the error report, and is not written again cycle after cycle.
func TestCompanySyncsBothWays(t *testing.T) {
	env := startEnv(t, 1, 10)
	waitInSync(t, env)
	// Three linked contacts with an email, one per case.
	user, email, picked := contactsWithEmail(t, env, 3)
	sf, ews := env.Salesforce, env.EWS
	sfToEx, exToSF, unknown := picked[0], picked[1], picked[2]
	exItem := func(address any) (ewssim.Item, bool) { return exchangeContact(ews, email, address) }
	insertAccount := func(name string) string {
		t.Helper()
		id, err := sf.Insert("Account", map[string]any{"Name": name}, user)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	zephyr, northwind := insertAccount("Zephyr Analytics"), insertAccount("Northwind Traders")
	unknownAccountBefore := field(t, sf, "Contact", fmt.Sprint(unknown["Id"]), "AccountId")

	// Salesforce → Exchange: the contact's Account changes.
	if err := sf.Update("Contact", fmt.Sprint(sfToEx["Id"]), map[string]any{"AccountId": zephyr}, user); err != nil {
		t.Fatal(err)
	}
	// Exchange → Salesforce: a company that names an Account, and one that names none (with a
	// title, which must still be saved).
	for _, edit := range []struct {
		email          any
		company, title string
	}{{exToSF["Email"], "Northwind Traders", ""}, {unknown["Email"], "Nonexistent Holdings", "Buyer"}} {
		it, ok := exItem(edit.email)
		if !ok {
			t.Fatalf("no Exchange contact for %v", edit.email)
		}
		if err := ews.UpdateItem(email, it.ItemID, func(it *ewssim.Item) {
			it.Contact.CompanyName = edit.company
			if edit.title != "" {
				it.Contact.JobTitle = edit.title
			}
		}); err != nil {
			t.Fatal(err)
		}
	}

	poll.Within(t, 90*time.Second, "the Account set in Salesforce to reach Exchange as the company", func() bool {
		it, ok := exItem(sfToEx["Email"])
		return ok && it.Contact.CompanyName == "Zephyr Analytics"
	})
	poll.Within(t, 90*time.Second, "the company set in Exchange to become the contact's Account", func() bool {
		c, _ := sf.Get("Contact", fmt.Sprint(exToSF["Id"]))
		return c["AccountId"] == northwind
	})
	poll.Within(t, 90*time.Second, "the other fields of a contact with an unknown company to reach Salesforce", func() bool {
		c, _ := sf.Get("Contact", fmt.Sprint(unknown["Id"]))
		return c["Title"] == "Buyer"
	})
	note := func() *tandemv1.SyncErrorEntry {
		entries, _, err := env.Platform.Store.ListErrors(t.Context(), env.OrgID, "", store.MaxErrorPageSize, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.GetError().GetCode() == string(syncerr.SalesforceAccountNotSet) {
				return e
			}
		}
		return nil
	}
	poll.Within(t, 90*time.Second, "a SALESFORCE_ACCOUNT_NOT_SET note in the error report", func() bool { return note() != nil })
	if n := note(); n.GetError().GetField() != "company_name" || !strings.Contains(n.GetError().GetMessage(), "Nonexistent Holdings") ||
		n.GetError().GetSuggestion() == "" {
		t.Errorf("note = %v", n)
	}
	if got := field(t, sf, "Contact", fmt.Sprint(unknown["Id"]), "AccountId"); got != unknownAccountBefore {
		t.Errorf("the contact's Account changed from %q to %q for a company with no Account", unknownAccountBefore, got)
	}

	// Settled: nothing is written again, however many cycles run.
	waitInSync(t, env)
	exBefore, _ := exItem(unknown["Email"])
	sfBefore := field(t, sf, "Contact", fmt.Sprint(unknown["Id"]), "SystemModstamp")
	sum, err := env.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	poll.Within(t, 60*time.Second, "three more sync cycles", func() bool {
		s, err := env.Summary(t.Context())
		return err == nil && s.Cycle >= sum.Cycle+3
	})
	waitInSync(t, env)
	exAfter, _ := exItem(unknown["Email"])
	if exAfter.ChangeKey != exBefore.ChangeKey || exAfter.Contact.CompanyName != "Nonexistent Holdings" {
		t.Errorf("the Exchange contact was written again (change key %s → %s, company %q)", exBefore.ChangeKey, exAfter.ChangeKey, exAfter.Contact.CompanyName)
	}
	if got := field(t, sf, "Contact", fmt.Sprint(unknown["Id"]), "SystemModstamp"); got != sfBefore {
		t.Errorf("the Salesforce contact was written again: SystemModstamp %s → %s", sfBefore, got)
	}
	if n := note(); n.GetOccurrences() != 1 {
		t.Errorf("the note was recorded %d times: the company is written every cycle", n.GetOccurrences())
	}
}

// waitInSync waits until the environment reports everything in sync.
func waitInSync(t *testing.T, env *Env) {
	t.Helper()
	poll.Within(t, 90*time.Second, "the environment to be in sync", func() bool {
		sum, err := env.Summary(t.Context())
		return err == nil && sum.Synced && sum.PendingWrites == 0
	})
}

// contactsWithEmail returns the environment's only rep (Salesforce user id and mailbox) and n
// of the rep's Salesforce contacts that have an email.
func contactsWithEmail(t *testing.T, env *Env, n int) (user, email string, picked []map[string]any) {
	t.Helper()
	if len(env.Mailboxes) != 1 {
		t.Fatalf("%d reps, want 1", len(env.Mailboxes))
	}
	for id, e := range env.Mailboxes {
		user, email = id, e
	}
	for _, c := range env.Salesforce.List("Contact") {
		if c["OwnerId"] == user && c["Email"] != nil && fmt.Sprint(c["Email"]) != "" && len(picked) < n {
			picked = append(picked, c)
		}
	}
	if len(picked) < n {
		t.Fatalf("want %d Salesforce contacts with an email, have %d", n, len(picked))
	}
	return user, email, picked
}

// exchangeContact finds the contact of mailbox's sync folder whose first email is address.
func exchangeContact(ews *ewssim.Server, mailbox string, address any) (ewssim.Item, bool) {
	for _, it := range ews.Items(mailbox, exchange.SyncFolderName) {
		if it.Contact != nil && strings.EqualFold(it.Contact.Email("EmailAddress1"), fmt.Sprint(address)) {
			return it, true
		}
	}
	return ewssim.Item{}, false
}

// field returns a field of a Salesforce record as text ("" when null).
func field(t *testing.T, sf *sfsim.Server, object, id, name string) string {
	t.Helper()
	r, ok := sf.Get(object, id)
	if !ok {
		t.Fatalf("%s %s not found", object, id)
	}
	if v := r[name]; v != nil {
		return fmt.Sprint(v)
	}
	return ""
}
