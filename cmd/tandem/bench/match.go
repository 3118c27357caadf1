package bench

import (
	"fmt"

	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// matchKey is what tells that two contacts are the same person, as the first sync matches
// them: the email; for a contact without one, the name and company. Empty when neither is
// there.
func matchKey(r *tandemv1.Record) string {
	if k := record.EmailKey(r); k != "" {
		return "e:" + k
	}
	if k := record.NameKey(r); k != "" {
		return "n:" + k
	}
	return ""
}

// missing are the records of from whose person to lacks.
func missing(from, to []*tandemv1.Record) []*tandemv1.Record {
	have := map[string]int{}
	for _, r := range to {
		if k := matchKey(r); k != "" {
			have[k]++
		}
	}
	var out []*tandemv1.Record
	for _, r := range from {
		if k := matchKey(r); k != "" && have[k] > 0 {
			have[k]--
			continue
		}
		out = append(out, r)
	}
	return out
}

// linked counts the people both a and b hold.
func linked(a, b []*tandemv1.Record) int { return len(a) - len(missing(a, b)) }

// exchangeRecord is the part of a simulated Exchange contact that matching reads.
func exchangeRecord(it ewssim.Item) *tandemv1.Record {
	c := it.Contact
	if c == nil {
		return &tandemv1.Record{}
	}
	return &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{
		GivenName: c.GivenName, Surname: c.Surname, CompanyName: c.CompanyName, EmailAddress1: c.Email("EmailAddress1"),
	}}}
}

// salesforceRecord is the part of a simulated Salesforce contact that matching reads; its
// company is its Account's name.
func salesforceRecord(c map[string]any, accounts map[string]string) *tandemv1.Record {
	s := func(k string) string {
		if v, ok := c[k]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return ""
	}
	return &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{
		GivenName: s("FirstName"), Surname: s("LastName"), CompanyName: accounts[s("AccountId")], EmailAddress1: s("Email"),
	}}}
}
