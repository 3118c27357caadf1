package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/sim/ewssim"
	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
)

const (
	mailbox = "rep1@acme.example"
	ownerID = "005000000000001AAA"
)

var users = []User{{Mailbox: mailbox, SalesforceID: ownerID}}

// world is both simulators' final state, built up by a test.
type world struct {
	ex *ewssim.Dump
	sf *sfsim.Dump
}

func newWorld() *world {
	return &world{
		ex: &ewssim.Dump{Mailboxes: map[string]ewssim.MailboxDump{mailbox: {}}},
		sf: &sfsim.Dump{},
	}
}

func (w *world) exchange(id, last, email string) {
	mb := w.ex.Mailboxes[mailbox]
	mb.Contacts = append(mb.Contacts, ewssim.ContactDump{Surname: last, EmailAddress1: email, Body: "notes " + Marker(id)})
	w.ex.Mailboxes[mailbox] = mb
}

func (w *world) salesforce(id, last, email string) {
	w.sf.Contacts = append(w.sf.Contacts, map[string]any{"OwnerId": ownerID, "LastName": last, "Email": email, "Description": Marker(id) + " notes"})
}

func (w *world) both(id, last, email string) {
	w.exchange(id, last, email)
	w.salesforce(id, last, email)
}

func TestCheck(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		build func(m *Model, w *world)
		want  Report // counts only
		words string // a violation must contain this
	}{
		{"in sync", func(m *Model, w *world) {
			a := m.NewPerson(mailbox, Exchange, t0)
			b := m.NewPerson(mailbox, Salesforce, t0)
			w.both(a, "Ames", "a@x.example")
			w.both(b, "Baker", "")
		}, Report{People: 2}, ""},
		{"lost on one side", func(m *Model, w *world) {
			a := m.NewPerson(mailbox, Exchange, t0)
			w.exchange(a, "Ames", "a@x.example")
		}, Report{People: 1, Lost: 1, StalledUsers: 1}, "missing from Salesforce"},
		{"duplicated", func(m *Model, w *world) {
			a := m.NewPerson(mailbox, Salesforce, t0)
			w.both(a, "Ames", "a@x.example")
			w.exchange(a, "Ames", "a@x.example")
		}, Report{People: 1, Duplicated: 1, StalledUsers: 1}, "2 copies in Exchange"},
		{"resurrected", func(m *Model, w *world) {
			a := m.NewPerson(mailbox, Exchange, t0)
			m.Removed(a, Salesforce, "deleted", t0.Add(time.Hour), Copies{OnOtherSide: true, Agree: true})
			w.salesforce(a, "Ames", "a@x.example")
		}, Report{Resurrected: 1, StalledUsers: 1}, "is back in Salesforce"},
		{"removed from Exchange stays in Salesforce, unlinked", func(m *Model, w *world) {
			a := m.NewPerson(mailbox, Exchange, t0)
			m.Removed(a, Exchange, "deleted", t0.Add(time.Hour), Copies{OnOtherSide: true, Agree: true})
			w.salesforce(a, "Ames", "a@x.example")
		}, Report{}, ""},
		{"removed from Exchange and lost from Salesforce", func(m *Model, _ *world) {
			a := m.NewPerson(mailbox, Exchange, t0)
			m.Removed(a, Exchange, "deleted", t0.Add(time.Hour), Copies{OnOtherSide: true, Agree: true})
		}, Report{Lost: 1, StalledUsers: 1}, "missing from Salesforce"},
		{"removed from Exchange before its copy reached Salesforce", func(m *Model, _ *world) {
			a := m.NewPerson(mailbox, Exchange, t0)
			m.Removed(a, Exchange, "moved out of Salesforce_Sync", t0.Add(time.Hour), Copies{})
		}, Report{}, ""},
		{"removed from Exchange and back in Exchange", func(m *Model, w *world) {
			a := m.NewPerson(mailbox, Exchange, t0)
			m.Removed(a, Exchange, "deleted", t0.Add(time.Hour), Copies{OnOtherSide: true, Agree: true})
			w.both(a, "Ames", "a@x.example")
		}, Report{Resurrected: 1, StalledUsers: 1}, "is back in Exchange"},
		{"removed from Exchange, deleted in Salesforce too by the configuration", func(m *Model, w *world) {
			m.ExchangeDeleteDeletes = true
			a := m.NewPerson(mailbox, Exchange, t0)
			m.Removed(a, Exchange, "deleted", t0.Add(time.Hour), Copies{OnOtherSide: true, Agree: true})
			w.salesforce(a, "Ames", "a@x.example")
		}, Report{Resurrected: 1, StalledUsers: 1}, "is back in Salesforce"},
		{"removed everywhere", func(m *Model, _ *world) {
			a := m.NewPerson(mailbox, Exchange, t0)
			m.Removed(a, Salesforce, "deleted", t0.Add(time.Hour), Copies{OnOtherSide: true, Agree: true})
		}, Report{}, ""},
		{"contested removal came back on both sides", func(m *Model, w *world) {
			a := m.NewPerson(mailbox, Exchange, t0)
			m.Updated(a, Salesforce, t0.Add(time.Hour))
			m.Removed(a, Exchange, "deleted", t0.Add(time.Hour+time.Second), Copies{OnOtherSide: true})
			w.both(a, "Ames", "a@x.example")
		}, Report{}, ""},
		{"contested removal kept on one side only", func(m *Model, w *world) {
			a := m.NewPerson(mailbox, Exchange, t0)
			m.Updated(a, Exchange, t0.Add(time.Hour))
			m.Removed(a, Salesforce, "deleted", t0.Add(time.Hour+time.Second), Copies{OnOtherSide: true})
			w.exchange(a, "Ames", "a@x.example")
		}, Report{Resurrected: 1, StalledUsers: 1}, "is back in Exchange"},
		{"an edit that had arrived does not contest a removal, however recent", func(m *Model, w *world) {
			a := m.NewPerson(mailbox, Exchange, t0)
			m.Updated(a, Salesforce, t0.Add(time.Hour))
			m.Removed(a, Exchange, "deleted", t0.Add(time.Hour+time.Millisecond), Copies{OnOtherSide: true, Agree: true})
			w.both(a, "Ames", "a@x.example")
		}, Report{Resurrected: 1, StalledUsers: 1}, "is back in Exchange"},
		{"an edit on the removed side only does not contest the removal", func(m *Model, w *world) {
			a := m.NewPerson(mailbox, Salesforce, t0)
			m.Updated(a, Exchange, t0.Add(time.Hour))
			m.Removed(a, Exchange, "deleted", t0.Add(time.Hour+time.Second), Copies{OnOtherSide: true})
			w.both(a, "Ames", "a@x.example")
		}, Report{Resurrected: 1, StalledUsers: 1}, "is back in Exchange"},
		{"removed from Exchange after its copy reached Salesforce", func(m *Model, _ *world) {
			a := m.NewPerson(mailbox, Exchange, t0)
			m.Removed(a, Exchange, "deleted", t0.Add(time.Second), Copies{OnOtherSide: true})
		}, Report{Lost: 1, StalledUsers: 1}, "missing from Salesforce"},
		{"fields differ", func(m *Model, w *world) {
			a := m.NewPerson(mailbox, Exchange, t0)
			w.exchange(a, "Ames", "a@x.example")
			w.salesforce(a, "Ames", "other@x.example")
		}, Report{People: 1, Differing: 1, StalledUsers: 1}, "differs in email"},
		{"merged people: one marker lost", func(m *Model, w *world) {
			a := m.NewPerson(mailbox, Exchange, t0)
			b := m.NewPerson(mailbox, Salesforce, t0)
			w.both(a, "Smith", "a@x.example")
			w.salesforce(b, "Smith", "b@x.example")
		}, Report{People: 2, Lost: 1, StalledUsers: 1}, "missing from Exchange"},
		{"a contact nobody created", func(m *Model, w *world) {
			w.ex.Mailboxes[mailbox] = ewssim.MailboxDump{Contacts: []ewssim.ContactDump{{Surname: "Ghost"}}}
		}, Report{Unknown: 1, StalledUsers: 1}, "nobody created"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewModel()
			w := newWorld()
			tc.build(m, w)
			got := m.Check(users, w.ex, w.sf)
			violations := got.Violations
			got.Violations = nil
			if !sameCounts(got, tc.want) || got.People != tc.want.People || got.StalledUsers != tc.want.StalledUsers {
				t.Errorf("report = %+v, want %+v (violations: %v)", got, tc.want, violations)
			}
			if tc.want.OK() != (len(violations) == 0) {
				t.Errorf("violations %v for a report that is OK=%v", violations, tc.want.OK())
			}
			if tc.words != "" && (len(violations) == 0 || !strings.Contains(violations[0], tc.words)) {
				t.Errorf("violations %v, want the first to say %q", violations, tc.words)
			}
		})
	}
}

func TestMarkerRoundTrip(t *testing.T) {
	m := NewModel()
	id := m.NewPerson("rep1@acme.example", Exchange, time.Now())
	if got := markerOf("Met at the fair.\n" + Marker(id) + "\nCall back."); got != id {
		t.Errorf("markerOf = %q, want %q", got, id)
	}
	if got := markerOf("no marker here"); got != "" {
		t.Errorf("markerOf without a marker = %q", got)
	}
}
