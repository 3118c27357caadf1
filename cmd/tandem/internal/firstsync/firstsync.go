// Package firstsync predicts which seeded contacts Tandem's first sync links, by the planner's
// rules for records that were never linked (pkg/reconcile/planner: unmapped and matchByName),
// written again here on purpose: it is the independent expectation that tandem bench and tandem
// chaos hold the running system to, and a change to the planner's rules that these checks do
// not follow shows up as records missing, duplicated or differing.
package firstsync

import (
	"fmt"
	"sort"

	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Links predicts the pairs the first sync links, as Exchange id → Salesforce id.
//
// First by email: each Exchange record, in id order, takes the first Salesforce record (in id
// order) with its address, unless an earlier one took it. Then, among the records left, by
// first name, last name and company (record.NameKey): records are candidates when their
// emails do not differ (record.CanMatchByName), and only one Exchange and one Salesforce record
// that are each other's sole candidates are linked. Records joined to more by candidacy are
// ambiguous: the planner links and creates none of them; ambiguous names them.
func Links(ex, sf []*tandemv1.Record) (links map[string]string, ambiguous []string) {
	pairs, ambiguous := match(ex, sf)
	links = make(map[string]string, len(pairs))
	for i, j := range pairs {
		links[ex[i].GetId()] = sf[j].GetId()
	}
	return links, ambiguous
}

// Missing returns the records of from that the first sync links to none of to (from taken as
// either side: the rules are the same both ways), ambiguous ones included.
func Missing(from, to []*tandemv1.Record) []*tandemv1.Record {
	pairs, _ := match(from, to)
	var out []*tandemv1.Record
	for i, r := range from {
		if _, ok := pairs[i]; !ok {
			out = append(out, r)
		}
	}
	return out
}

// Linked counts the people both a and b hold.
func Linked(a, b []*tandemv1.Record) int {
	pairs, _ := match(a, b)
	return len(pairs)
}

// match links the records of ex to those of sf, by their index in each (see Links).
func match(exRecs, sfRecs []*tandemv1.Record) (pairs map[int]int, ambiguous []string) {
	ex, sf := byID(exRecs), byID(sfRecs)
	pairs = map[int]int{}
	taken := map[int]bool{} // Salesforce records linked

	candidates := map[string]int{} // email → Salesforce record
	for _, j := range sf {
		if k := record.EmailKey(sfRecs[j]); k != "" {
			if _, dup := candidates[k]; !dup {
				candidates[k] = j
			}
		}
	}
	for _, i := range ex {
		mk := record.EmailKey(exRecs[i])
		if j, ok := candidates[mk]; mk != "" && ok && !taken[j] {
			pairs[i], taken[j] = j, true
		}
	}

	type group struct{ ex, sf []int }
	groups := map[string]*group{}
	at := func(nk string) *group {
		if groups[nk] == nil {
			groups[nk] = &group{}
		}
		return groups[nk]
	}
	for _, i := range ex {
		if _, linked := pairs[i]; !linked && record.NameKey(exRecs[i]) != "" {
			g := at(record.NameKey(exRecs[i]))
			g.ex = append(g.ex, i)
		}
	}
	for _, j := range sf {
		if !taken[j] && record.NameKey(sfRecs[j]) != "" {
			g := at(record.NameKey(sfRecs[j]))
			g.sf = append(g.sf, j)
		}
	}
	for _, g := range groups {
		// The group's records are nodes, Exchange first; candidates are joined into components,
		// and only a component of exactly one pair is unambiguous.
		parent := make([]int, len(g.ex)+len(g.sf))
		for n := range parent {
			parent[n] = n
		}
		var find func(int) int
		find = func(n int) int {
			if parent[n] != n {
				parent[n] = find(parent[n])
			}
			return parent[n]
		}
		for a, i := range g.ex {
			for b, j := range g.sf {
				if record.CanMatchByName(exRecs[i], sfRecs[j]) {
					parent[find(a)] = find(len(g.ex) + b)
				}
			}
		}
		members := map[int][]int{}
		for n := range parent {
			members[find(n)] = append(members[find(n)], n)
		}
		for _, nodes := range members {
			switch {
			case len(nodes) == 2:
				pairs[g.ex[nodes[0]]] = g.sf[nodes[1]-len(g.ex)]
			case len(nodes) > 2:
				ambiguous = append(ambiguous, record.DisplayName(exRecs[g.ex[nodes[0]]]))
			}
		}
	}
	sort.Strings(ambiguous)
	return pairs, ambiguous
}

// byID returns the indexes of recs in id order, the order the planner takes free records in
// (records without ids keep theirs).
func byID(recs []*tandemv1.Record) []int {
	out := make([]int, len(recs))
	for i := range out {
		out[i] = i
	}
	sort.SliceStable(out, func(a, b int) bool { return recs[out[a]].GetId() < recs[out[b]].GetId() })
	return out
}

// ExchangeRecord is the part of a simulated Exchange contact that matching reads.
func ExchangeRecord(it ewssim.Item) *tandemv1.Record {
	c := it.Contact
	if c == nil {
		return &tandemv1.Record{Id: it.ItemID}
	}
	return &tandemv1.Record{Id: it.ItemID, Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{
		GivenName: c.GivenName, Surname: c.Surname, CompanyName: c.CompanyName, EmailAddress1: c.Email("EmailAddress1"),
	}}}
}

// SalesforceRecord is the part of a simulated Salesforce contact that matching reads; its
// company is its Account's name (accounts: Account id → name).
func SalesforceRecord(c map[string]any, accounts map[string]string) *tandemv1.Record {
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
