package chaos

import (
	"fmt"
	"sort"

	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// firstSyncLinks predicts which of a user's seeded contacts Tandem's first sync links, as
// Exchange id → Salesforce id, by the planner's rules for records that were never linked
// (pkg/reconcile/planner: unmapped and matchByName). The model must make exactly the same
// pairs: a pair it does not expect shows up as a person missing from one side and another
// one's copies differing (Salesforce wins a new link), and a pair it expects that Tandem does
// not make as a person duplicated.
//
// First by email: each Exchange record, in id order, takes the first Salesforce record (in id
// order) with its address, unless an earlier one took it. Then, among the records left, by
// first name, last name and company (record.NameKey): records are candidates when their
// emails do not differ (record.CanMatchByName), and only one Exchange and one Salesforce record
// that are each other's sole candidates are linked. Records joined to more by candidacy are
// ambiguous: the planner links and creates none of them; ambiguous names them.
func firstSyncLinks(ex, sf []*tandemv1.Record) (links map[string]string, ambiguous []string) {
	ex, sf = byID(ex), byID(sf)
	links = map[string]string{}
	taken := map[string]bool{} // Salesforce ids linked

	candidates := map[string]string{} // email → Salesforce id
	for _, s := range sf {
		if k := record.EmailKey(s); k != "" {
			if _, dup := candidates[k]; !dup {
				candidates[k] = s.GetId()
			}
		}
	}
	for _, e := range ex {
		mk := record.EmailKey(e)
		if s, ok := candidates[mk]; mk != "" && ok && !taken[s] {
			links[e.GetId()], taken[s] = s, true
		}
	}

	type group struct{ ex, sf []*tandemv1.Record }
	groups := map[string]*group{}
	at := func(nk string) *group {
		if groups[nk] == nil {
			groups[nk] = &group{}
		}
		return groups[nk]
	}
	for _, e := range ex {
		if _, linked := links[e.GetId()]; !linked && record.NameKey(e) != "" {
			at(record.NameKey(e)).ex = append(at(record.NameKey(e)).ex, e)
		}
	}
	for _, s := range sf {
		if !taken[s.GetId()] && record.NameKey(s) != "" {
			at(record.NameKey(s)).sf = append(at(record.NameKey(s)).sf, s)
		}
	}
	for _, g := range groups {
		// The group's records are nodes, Exchange first; candidates are joined into components,
		// and only a component of exactly one pair is unambiguous.
		parent := make([]int, len(g.ex)+len(g.sf))
		for i := range parent {
			parent[i] = i
		}
		var find func(int) int
		find = func(i int) int {
			if parent[i] != i {
				parent[i] = find(parent[i])
			}
			return parent[i]
		}
		for i, e := range g.ex {
			for j, s := range g.sf {
				if record.CanMatchByName(e, s) {
					parent[find(i)] = find(len(g.ex) + j)
				}
			}
		}
		members := map[int][]int{}
		for i := range parent {
			members[find(i)] = append(members[find(i)], i)
		}
		for _, nodes := range members {
			switch {
			case len(nodes) == 2:
				links[g.ex[nodes[0]].GetId()] = g.sf[nodes[1]-len(g.ex)].GetId()
			case len(nodes) > 2:
				ambiguous = append(ambiguous, record.DisplayName(g.ex[nodes[0]]))
			}
		}
	}
	sort.Strings(ambiguous)
	return links, ambiguous
}

// byID returns recs in id order, the order the planner takes free records in.
func byID(recs []*tandemv1.Record) []*tandemv1.Record {
	out := append([]*tandemv1.Record(nil), recs...)
	sort.Slice(out, func(i, j int) bool { return out[i].GetId() < out[j].GetId() })
	return out
}

// exchangeRecord is the part of a simulated Exchange contact that matching reads.
func exchangeRecord(it ewssim.Item) *tandemv1.Record {
	c := it.Contact
	return &tandemv1.Record{Id: it.ItemID, Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{
		GivenName: c.GivenName, Surname: c.Surname, CompanyName: c.CompanyName, EmailAddress1: c.Email("EmailAddress1"),
	}}}
}

// salesforceRecord is the part of a simulated Salesforce contact that matching reads; its
// company is its Account's name (accounts: Account id → name).
func salesforceRecord(c map[string]any, accounts map[string]string) *tandemv1.Record {
	s := func(k string) string {
		if v, ok := c[k]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return ""
	}
	return &tandemv1.Record{Id: s("Id"), Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{
		GivenName: s("FirstName"), Surname: s("LastName"), CompanyName: accounts[s("AccountId")], EmailAddress1: s("Email"),
	}}}
}
