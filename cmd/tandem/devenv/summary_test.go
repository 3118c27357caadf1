package devenv

import (
	"fmt"
	"slices"
	"testing"
)

// TestDisagreementsCountEachRepsOwnContacts checks the independent judge of `--until-synced`
// and `tandem bench`: each rep's Salesforce contacts are the ones the rep owns, counted
// against the rep's own mailbox, and a contact added for one rep changes only that rep's line.
func TestDisagreementsCountEachRepsOwnContacts(t *testing.T) {
	seeding := Seeding{Users: 3, ContactsPerUser: 10, Seed: 7}
	sims, err := NewSimulators(seeding)
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{EWS: sims.EWS, Salesforce: sims.Salesforce, Mailboxes: sims.Users}
	want := func(extra map[string]int) []string {
		var out []string
		for id, email := range sims.Users {
			out = append(out, fmt.Sprintf("%s: %d contacts in Exchange, %d in Salesforce", email,
				seeding.ExchangeContacts(), seeding.SalesforceContacts()+extra[id]))
		}
		slices.Sort(out)
		return out
	}
	if got := env.disagreements(); !slices.Equal(got, want(nil)) {
		t.Fatalf("seeded simulators:\n got %q\nwant %q", got, want(nil))
	}

	var first string
	for id := range sims.Users {
		first = id
		break
	}
	if _, err := sims.Salesforce.Insert("Contact", map[string]any{"FirstName": "Ada", "LastName": "Lovelace"}, first); err != nil {
		t.Fatal(err)
	}
	if got, w := env.disagreements(), want(map[string]int{first: 1}); !slices.Equal(got, w) {
		t.Fatalf("after one more contact for %s:\n got %q\nwant %q", first, got, w)
	}
}
