package chaos

import (
	"testing"
	"time"

	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
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
