package chaos

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
)

// User names one simulated user on both sides.
type User struct {
	// Mailbox is the user's SMTP address in Exchange.
	Mailbox string
	// SalesforceID is the user's Salesforce User Id, the OwnerId of the user's contacts.
	SalesforceID string
}

// Report is the verdict on both simulators' final state. The counts are of people (or of
// extra copies, for Duplicated and Unknown); Violations says what is wrong in words, first
// problems first, at most maxViolations of them.
type Report struct {
	// Lost counts live people missing from a side.
	Lost int `json:"lost"`
	// Duplicated counts extra copies of a person on a side.
	Duplicated int `json:"duplicated"`
	// Resurrected counts removed people present on a side, beyond the contested ones.
	Resurrected int `json:"resurrected"`
	// Differing counts people whose two copies disagree on a synced field.
	Differing int `json:"differing"`
	// Unknown counts contacts that carry no person's marker: nobody created them.
	Unknown int `json:"unknown"`
	// StalledUsers counts users with any of the above.
	StalledUsers int `json:"stalled_users"`
	// People counts the people the model expects in sync at the end.
	People     int      `json:"people"`
	Violations []string `json:"violations,omitempty"`
}

// OK reports whether nothing was lost, duplicated, resurrected or left unsynced.
func (r Report) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Resurrected == 0 && r.Differing == 0 && r.Unknown == 0
}

const maxViolations = 20

// contact is one side's copy of a contact, reduced to the fields both sides sync.
type contact struct {
	fields map[string]string
	marker string
}

// comparedFields are the fields whose two copies must agree, by a neutral name.
var comparedFields = []string{"first", "last", "email", "title", "department", "phone", "mobile"}

func fromExchange(c ewssim.ContactDump) contact {
	return contact{marker: markerOf(c.Body), fields: map[string]string{
		"first": c.GivenName, "last": c.Surname, "email": strings.ToLower(c.EmailAddress1),
		"title": c.JobTitle, "department": c.Department, "phone": c.BusinessPhone, "mobile": c.MobilePhone,
	}}
}

func fromSalesforce(c map[string]any) contact {
	s := func(k string) string {
		if v, ok := c[k]; ok && v != nil {
			return fmt.Sprint(v)
		}
		return ""
	}
	return contact{marker: markerOf(s("Description")), fields: map[string]string{
		"first": s("FirstName"), "last": s("LastName"), "email": strings.ToLower(s("Email")),
		"title": s("Title"), "department": s("Department"), "phone": s("Phone"), "mobile": s("MobilePhone"),
	}}
}

// Check compares both simulators' final state with what the users did. Only contacts of the
// given users are judged: in Exchange those of each mailbox's Salesforce_Sync folder, in
// Salesforce those each user owns.
func (m *Model) Check(users []User, ex *ewssim.Dump, sf *sfsim.Dump) Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	var r Report
	violate := func(format string, args ...any) {
		if len(r.Violations) < maxViolations {
			r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
		}
	}
	// explain adds what the users did to a person to the violation just recorded.
	explain := func(p *person) {
		if n := len(r.Violations); n > 0 && n <= maxViolations && !strings.Contains(r.Violations[n-1], " [") {
			r.Violations[n-1] += " [" + strings.Join(p.history, "; ") + "]"
		}
	}
	byOwner := map[string][]contact{}
	for _, c := range sf.Contacts {
		owner := fmt.Sprint(c["OwnerId"])
		byOwner[owner] = append(byOwner[owner], fromSalesforce(c))
	}
	sorted := append([]User(nil), users...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Mailbox < sorted[j].Mailbox })
	for _, u := range sorted {
		before := r
		sides := map[Side]map[string][]contact{Exchange: {}, Salesforce: {}}
		var exContacts []contact
		for _, c := range ex.Mailboxes[u.Mailbox].Contacts {
			exContacts = append(exContacts, fromExchange(c))
		}
		for side, list := range map[Side][]contact{Exchange: exContacts, Salesforce: byOwner[u.SalesforceID]} {
			for _, c := range list {
				if c.marker == "" {
					r.Unknown++
					violate("%s: a contact nobody created in %s: %s %s <%s>", u.Mailbox, side, c.fields["first"], c.fields["last"], c.fields["email"])
					continue
				}
				sides[side][c.marker] = append(sides[side][c.marker], c)
			}
		}
		for _, p := range m.sortedPeople(u.Mailbox) {
			got := [2]int{len(sides[Exchange][p.id]), len(sides[Salesforce][p.id])}
			allowed := m.allowed(p)
			if p.state == live {
				r.People++
			}
			if !slices.Contains(allowed, got) {
				want := allowed[0]
				for i, side := range []Side{Exchange, Salesforce} {
					switch {
					case got[i] > want[i] && want[i] == 0:
						r.Resurrected++
						violate("%s: person %s, removed in %s, is back in %s", u.Mailbox, p.id, p.removedOn, side)
						explain(p)
					case got[i] > want[i]:
						r.Duplicated += got[i] - want[i]
						violate("%s: person %s has %d copies in %s", u.Mailbox, p.id, got[i], side)
						explain(p)
					case got[i] < want[i]:
						r.Lost++
						violate("%s: person %s (created in %s) is missing from %s", u.Mailbox, p.id, p.created, side)
						explain(p)
					}
				}
				continue
			}
			if got == [2]int{1, 1} {
				if f := differingField(sides[Exchange][p.id][0], sides[Salesforce][p.id][0]); f != "" {
					r.Differing++
					violate("%s: person %s differs in %s: %q in Exchange, %q in Salesforce", u.Mailbox, p.id, f,
						sides[Exchange][p.id][0].fields[f], sides[Salesforce][p.id][0].fields[f])
					explain(p)
				}
			}
		}
		// Markers of people the model does not know for this user: created by nobody here.
		for _, side := range []Side{Exchange, Salesforce} {
			for id, list := range sides[side] {
				if p := m.people[id]; p == nil || p.user != u.Mailbox {
					r.Unknown += len(list)
					violate("%s: %d contacts in %s carry the marker of %s, not this user's person", u.Mailbox, len(list), side, id)
				}
			}
		}
		if !sameCounts(before, r) {
			r.StalledUsers++
		}
	}
	return r
}

// allowed returns the copies of p (in Exchange, in Salesforce) that the final state may hold,
// the expected one first. A live person is in sync on both sides. A person removed in
// Salesforce is gone from both. One removed from Exchange (deleted or moved out of the synced
// folder) is gone from Exchange and, unless the configuration deletes in Salesforce too, stays
// in Salesforce, unlinked. A person removed before its copy reached the other side may never
// have been seen by Tandem: then it may be gone from both. A contested removal (an edit on the
// other side had not arrived yet) may also have been undone by that edit: then the person is
// back in sync on both sides.
func (m *Model) allowed(p *person) [][2]int {
	var out [][2]int
	switch {
	case p.state == live:
		return [][2]int{{1, 1}}
	case p.removedOn == Exchange && !m.ExchangeDeleteDeletes:
		out = [][2]int{{0, 1}}
	default:
		out = [][2]int{{0, 0}}
	}
	if !p.atRemoval.OnOtherSide && !slices.Contains(out, [2]int{0, 0}) {
		out = append(out, [2]int{0, 0})
	}
	if p.contested() {
		out = append(out, [2]int{1, 1})
	}
	return out
}

// sortedPeople returns user's people in id order, so violations read the same every run.
func (m *Model) sortedPeople(user string) []*person {
	var out []*person
	for _, p := range m.people {
		if p.user == user {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func differingField(a, b contact) string {
	for _, f := range comparedFields {
		if strings.TrimSpace(a.fields[f]) != strings.TrimSpace(b.fields[f]) {
			return f
		}
	}
	return ""
}

func sameCounts(a, b Report) bool {
	return a.Lost == b.Lost && a.Duplicated == b.Duplicated && a.Resurrected == b.Resurrected &&
		a.Differing == b.Differing && a.Unknown == b.Unknown
}
