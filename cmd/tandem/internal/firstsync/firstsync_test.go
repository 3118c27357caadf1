package firstsync

import (
	"testing"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func contact(first, last, company, email string) *tandemv1.Record {
	return &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{
		GivenName: first, Surname: last, CompanyName: company, EmailAddress1: email,
	}}}
}

// TestLinkedMatchesAsTheFirstSync: the count of linked people follows the planner's
// matching (email, then name and company where the emails do not differ and nobody shares the
// name), so that its expectation of records in sync is the one Tandem must reach.
func TestLinkedMatchesAsTheFirstSync(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b []*tandemv1.Record
		want int
	}{
		{"same email", []*tandemv1.Record{contact("Ada", "Lovelace", "", "ada@x.example")},
			[]*tandemv1.Record{contact("Augusta", "King", "", "ADA@x.example")}, 1},
		{"name and company, neither has an email", []*tandemv1.Record{contact("Ada", "Lovelace", "Analytical", "")},
			[]*tandemv1.Record{contact("Ada", "Lovelace", "Analytical", "")}, 1},
		{"name and company, one side has an email", []*tandemv1.Record{contact("Ada", "Lovelace", "Analytical", "ada@x.example")},
			[]*tandemv1.Record{contact("Ada", "Lovelace", "Analytical", "")}, 1},
		{"name and company, different emails", []*tandemv1.Record{contact("Ada", "Lovelace", "Analytical", "ada@x.example")},
			[]*tandemv1.Record{contact("Ada", "Lovelace", "Analytical", "ada@y.example")}, 0},
		{"another company", []*tandemv1.Record{contact("Ada", "Lovelace", "Analytical", "")},
			[]*tandemv1.Record{contact("Ada", "Lovelace", "Difference", "")}, 0},
		{"namesakes are ambiguous", []*tandemv1.Record{contact("Ada", "Lovelace", "Analytical", "")},
			[]*tandemv1.Record{contact("Ada", "Lovelace", "Analytical", ""), contact("Ada", "Lovelace", "Analytical", "")}, 0},
		{"a record matched by email is no name candidate",
			[]*tandemv1.Record{contact("Ada", "Lovelace", "Analytical", "ada@x.example"), contact("Ada", "Lovelace", "Analytical", "")},
			[]*tandemv1.Record{contact("Ada", "Lovelace", "Analytical", "ada@x.example")}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Linked(tc.a, tc.b); got != tc.want {
				t.Errorf("linked = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestLinksByID: Links names the pairs by their records' ids, whatever order they come in, and
// names the people of an ambiguous group; Missing lists what Links leaves unlinked.
func TestLinksByID(t *testing.T) {
	withID := func(id string, r *tandemv1.Record) *tandemv1.Record { r.Id = id; return r }
	ex := []*tandemv1.Record{
		withID("e2", contact("Ada", "Lovelace", "Analytical", "")),
		withID("e1", contact("Grace", "Hopper", "", "grace@x.example")),
		withID("e3", contact("Alan", "Turing", "Bletchley", "")),
	}
	sf := []*tandemv1.Record{
		withID("s1", contact("Ada", "Lovelace", "Analytical", "")),
		withID("s2", contact("G.", "Hopper", "", "GRACE@x.example")),
		withID("s3", contact("Alan", "Turing", "Bletchley", "")),
		withID("s4", contact("Alan", "Turing", "Bletchley", "")),
	}
	links, ambiguous := Links(ex, sf)
	if len(links) != 2 || links["e1"] != "s2" || links["e2"] != "s1" {
		t.Errorf("links %v, want e1→s2 and e2→s1", links)
	}
	if len(ambiguous) != 1 || ambiguous[0] != "Alan Turing" {
		t.Errorf("ambiguous %v, want Alan Turing", ambiguous)
	}
	if got := Missing(ex, sf); len(got) != 1 || got[0].GetId() != "e3" {
		t.Errorf("missing %v, want e3", got)
	}
}
