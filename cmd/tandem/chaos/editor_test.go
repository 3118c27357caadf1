package chaos

import (
	"testing"
	"time"

	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
	"github.com/tandem-sync/tandem/pkg/exchange"
)

// TestEditorEditsAreVisibleAndModelled runs the editor against both simulators and checks that
// the model's live people are exactly the marked contacts it can find on their sides.
func TestEditorEditsAreVisibleAndModelled(t *testing.T) {
	sims, err := devenv.NewSimulators(devenv.Seeding{Users: 2, ContactsPerUser: 4, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var users []User
	for id, email := range sims.Users {
		users = append(users, User{Mailbox: email, SalesforceID: id})
	}
	m := NewModel()
	e := NewEditor(sims.EWS, sims.Salesforce, users, m, 7, time.Now)
	kinds := map[string]int{}
	for range 300 {
		what, err := e.Step()
		if err != nil {
			t.Fatal(err)
		}
		kinds[what[:len(what)-len(" for ")-len(users[0].Mailbox)]]++
	}
	for _, a := range actions {
		// Without Tandem running, nobody is on both sides to be edited there.
		if a.name == "update on both sides" {
			continue
		}
		if kinds[a.name] == 0 {
			t.Errorf("300 steps never made a %q edit (made %v)", a.name, kinds)
		}
	}
	// Every live person the editor created is on the side it was created on, once.
	for _, u := range users {
		for _, id := range m.Live(u.Mailbox) {
			p := m.people[id]
			_, inEx := e.findExchange(u, id)
			_, inSF := e.findSalesforce(u, id)
			if (p.created == Exchange && !inEx) || (p.created == Salesforce && !inSF) {
				t.Errorf("live person %s created in %s is not there [%v]", id, p.created, p.history)
			}
		}
	}
}

// TestEditsNeverAgreeByChance: the editor's title edits never give the two copies of a person
// the same title, so that Copies.Agree always means Tandem carried an edit across (see newTitle).
func TestEditsNeverAgreeByChance(t *testing.T) {
	sims, err := devenv.NewSimulators(devenv.Seeding{Users: 1, ContactsPerUser: 0, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var u User
	for id, email := range sims.Users {
		u = User{Mailbox: email, SalesforceID: id}
	}
	m := NewModel()
	e := NewEditor(sims.EWS, sims.Salesforce, []User{u}, m, 11, time.Now)
	// One person on both sides, in sync, as Tandem would have left it.
	id := "both.1"
	m.Existing(u.Mailbox, id, time.Now())
	if _, err := sims.EWS.PutContact(u.Mailbox, exchange.SyncFolderName, exchangeContact(id, "Ada", "Both", "ada@customer.example")); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.insertSalesforce(u, id, "Ada", "Both", "ada@customer.example"); !ok || err != nil {
		t.Fatalf("insert in Salesforce: %v %v", ok, err)
	}
	for i := range 200 {
		update := e.updateOnBothSides
		if i%2 == 1 {
			update = e.updateInExchange
		}
		if ok, err := update(u); !ok || err != nil {
			t.Fatalf("edit %d: %v %v", i, ok, err)
		}
		it, _ := e.findExchange(u, id)
		sfID, _ := e.findSalesforce(u, id)
		sf, _ := sims.Salesforce.Get("Contact", sfID)
		if it.Contact.JobTitle == sf["Title"] {
			t.Fatalf("edit %d gave both copies the title %q by chance", i, it.Contact.JobTitle)
		}
	}
}
