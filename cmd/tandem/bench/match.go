package bench

import (
	"fmt"

	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// missing are the records of from whose person to lacks, as the first sync matches people
// (planner: unmapped.go and matchByName): by email first; then, among the records left, by first
// name, last name and company, where the emails do not differ (one of them may have none) and
// the name and company are those of exactly one record on each side — namesakes are ambiguous
// and matched with no one.
func missing(from, to []*tandemv1.Record) []*tandemv1.Record {
	byEmail := map[string]int{}
	for _, r := range to {
		if k := record.EmailKey(r); k != "" {
			byEmail[k]++
		}
	}
	var rest []*tandemv1.Record
	matched := map[string]int{} // emails of to matched by from
	for _, r := range from {
		if k := record.EmailKey(r); k != "" && byEmail[k] > matched[k] {
			matched[k]++
			continue
		}
		rest = append(rest, r)
	}
	byName := map[string][]*tandemv1.Record{}
	for _, r := range to {
		if k := record.EmailKey(r); k != "" && matched[k] > 0 {
			matched[k]--
			continue
		}
		if k := record.NameKey(r); k != "" {
			byName[k] = append(byName[k], r)
		}
	}
	fromByName := map[string]int{}
	for _, r := range rest {
		if k := record.NameKey(r); k != "" {
			fromByName[k]++
		}
	}
	var out []*tandemv1.Record
	for _, r := range rest {
		k := record.NameKey(r)
		if cands := byName[k]; k != "" && fromByName[k] == 1 && len(cands) == 1 && record.CanMatchByName(r, cands[0]) {
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
