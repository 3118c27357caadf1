package chaos

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tandem-sync/tandem/cmd/tandem/devenv"
	"github.com/tandem-sync/tandem/pkg/exchange"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
)

// seeded is a contact seeded on one side.
type seeded struct{ first, last, company, email string }

// TestModelSeedPairsAsThePlanner: the seeded contacts that share a marker are exactly the pairs
// Tandem's first sync links (by email, then by name and company where no two emails differ
// and the name is nobody else's), and a seed with namesakes Tandem cannot tell apart is refused.
func TestModelSeedPairsAsThePlanner(t *testing.T) {
	tests := []struct {
		name   string
		ex, sf []seeded
		linked [][2]int // Exchange index, Salesforce index of one person
		err    string   // modelSeed's error must contain this
	}{
		{"by email", []seeded{{"Ada", "Ames", "Acme", "ada@acme.example"}}, []seeded{{"Ada", "Ames", "", "ADA@acme.example"}},
			[][2]int{{0, 0}}, ""},
		// Seed 94's Ingrid Smith: seeded on both sides without an email or a company.
		{"by name, neither with an email", []seeded{{"Ingrid", "Smith", "", ""}}, []seeded{{"Ingrid", "Smith", "", ""}},
			[][2]int{{0, 0}}, ""},
		{"by name, one with an email", []seeded{{"James", "Lefèvre", "", "james@mail.example"}}, []seeded{{"james ", "LEFÈVRE", "", ""}},
			[][2]int{{0, 0}}, ""},
		{"by name and company", []seeded{{"Bo", "Berg", "Initech", ""}}, []seeded{{"Bo", "Berg", "Initech", ""}},
			[][2]int{{0, 0}}, ""},
		{"not when the emails differ", []seeded{{"Bo", "Berg", "", "bo@a.example"}}, []seeded{{"Bo", "Berg", "", "bo@b.example"}},
			nil, ""},
		{"not when the companies differ", []seeded{{"Cy", "Cole", "Acme", ""}}, []seeded{{"Cy", "Cole", "", ""}},
			nil, ""},
		{"an email decides before a namesake", []seeded{{"Di", "Dahl", "", "di@a.example"}}, []seeded{{"Di", "Dahl", "", ""}, {"Di", "Dahl", "", "di@a.example"}},
			[][2]int{{0, 1}}, ""},
		{"ambiguous namesakes are linked to nobody", []seeded{{"Ed", "Eck", "", ""}}, []seeded{{"Ed", "Eck", "", ""}, {"Ed", "Eck", "", "ed@b.example"}},
			nil, "ambiguous name matches"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := seededRun(t)
			u := r.users[0]
			accounts := map[string]string{}
			var exIDs, sfIDs []string
			for _, s := range tt.ex {
				c := ewssim.Contact{GivenName: s.first, Surname: s.last, CompanyName: s.company}
				if s.email != "" {
					c.SetEmail("EmailAddress1", s.email)
				}
				id, err := r.sims.EWS.PutContact(u.Mailbox, exchange.SyncFolderName, c)
				if err != nil {
					t.Fatal(err)
				}
				exIDs = append(exIDs, id)
			}
			for _, s := range tt.sf {
				values := map[string]any{"FirstName": s.first, "LastName": s.last, "Email": s.email}
				if s.company != "" {
					if accounts[s.company] == "" {
						id, err := r.sims.Salesforce.Insert("Account", map[string]any{"Name": s.company}, u.SalesforceID)
						if err != nil {
							t.Fatal(err)
						}
						accounts[s.company] = id
					}
					values["AccountId"] = accounts[s.company]
				}
				id, err := r.sims.Salesforce.Insert("Contact", values, u.SalesforceID)
				if err != nil {
					t.Fatal(err)
				}
				sfIDs = append(sfIDs, id)
			}

			err := r.modelSeed()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("modelSeed: %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			exMarker, sfMarker := markers(t, r, u)
			want := map[[2]int]bool{}
			for _, l := range tt.linked {
				want[l] = true
			}
			for i, e := range exIDs {
				for j, s := range sfIDs {
					if same := exMarker[e] == sfMarker[s]; same != want[[2]int{i, j}] {
						t.Errorf("Exchange %v and Salesforce %v one person: %v, want %v", tt.ex[i], tt.sf[j], same, !same)
					}
				}
			}
		})
	}
}

// TestModelSeed94: seed 94 seeds its first rep's Ingrid Smith on both sides without an email,
// and the model takes the two for one person, as Tandem does.
func TestModelSeed94(t *testing.T) {
	sims, err := devenv.NewSimulators(devenv.Seeding{Users: 1, ContactsPerUser: 30, Seed: 94})
	if err != nil {
		t.Fatal(err)
	}
	r := &run{sims: sims, model: NewModel()}
	for id, email := range sims.Users {
		r.users = append(r.users, User{Mailbox: email, SalesforceID: id})
	}
	if err := r.modelSeed(); err != nil {
		t.Fatal(err)
	}
	exMarker, sfMarker := markers(t, r, r.users[0])
	var ex, sf []string
	for _, it := range sims.EWS.Items(r.users[0].Mailbox, exchange.SyncFolderName) {
		if it.Contact.GivenName == "Ingrid" && it.Contact.Surname == "Smith" {
			ex = append(ex, exMarker[it.ItemID])
		}
	}
	for _, c := range sims.Salesforce.List("Contact") {
		if c["FirstName"] == "Ingrid" && c["LastName"] == "Smith" {
			sf = append(sf, sfMarker[fmt.Sprint(c["Id"])])
		}
	}
	if len(ex) != 1 || len(sf) != 1 || ex[0] != sf[0] {
		t.Errorf("Ingrid Smith's markers: %q in Exchange, %q in Salesforce; want one person, once on each side", ex, sf)
	}
}

// seededRun is a run with one user and no seeded contacts.
func seededRun(t *testing.T) *run {
	t.Helper()
	sims, err := devenv.NewSimulators(devenv.Seeding{Users: 1, ContactsPerUser: 0, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	r := &run{sims: sims, model: NewModel()}
	for id, email := range sims.Users {
		r.users = append(r.users, User{Mailbox: email, SalesforceID: id})
	}
	return r
}

// markers returns the person marker of u's contacts, by Exchange item id and Salesforce id.
func markers(t *testing.T, r *run, u User) (ex, sf map[string]string) {
	t.Helper()
	ex, sf = map[string]string{}, map[string]string{}
	for _, it := range r.sims.EWS.Items(u.Mailbox, exchange.SyncFolderName) {
		if ex[it.ItemID] = markerOf(it.Contact.Body); ex[it.ItemID] == "" {
			t.Fatalf("Exchange contact %s %s has no marker", it.Contact.GivenName, it.Contact.Surname)
		}
	}
	for _, c := range r.sims.Salesforce.List("Contact") {
		id := fmt.Sprint(c["Id"])
		if sf[id] = markerOf(fmt.Sprint(c["Description"])); sf[id] == "" {
			t.Fatalf("Salesforce contact %v %v has no marker", c["FirstName"], c["LastName"])
		}
	}
	return ex, sf
}
