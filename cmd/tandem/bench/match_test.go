package bench

import (
	"testing"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func contact(first, last, company, email string) *tandemv1.Record {
	return &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{
		GivenName: first, Surname: last, CompanyName: company, EmailAddress1: email,
	}}}
}

// TestLinkedMatchesAsTheFirstSync: the bench's count of linked people follows the planner's
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
			if got := linked(tc.a, tc.b); got != tc.want {
				t.Errorf("linked = %d, want %d", got, tc.want)
			}
		})
	}
}
