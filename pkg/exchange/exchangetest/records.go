package exchangetest

import (
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func ts(s string) *timestamppb.Timestamp {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return timestamppb.New(t)
}

func shift(t *timestamppb.Timestamp, d time.Duration) *timestamppb.Timestamp {
	return timestamppb.New(t.AsTime().Add(d))
}

func contactRecord(c *tandemv1.Contact) *tandemv1.Record {
	return &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: c}}
}

func eventRecord(e *tandemv1.Event) *tandemv1.Record {
	return &tandemv1.Record{Body: &tandemv1.Record_Event{Event: e}}
}

func cloneContact(c *tandemv1.Contact) *tandemv1.Contact { return proto.Clone(c).(*tandemv1.Contact) }

func cloneEvent(e *tandemv1.Event) *tandemv1.Event { return proto.Clone(e).(*tandemv1.Event) }

// FullContact sets every contact field Exchange holds, with text that needs escaping.
func FullContact() *tandemv1.Contact {
	return &tandemv1.Contact{
		GivenName: "Zoë", MiddleName: "Q.", Surname: "O'Brien & Søn", CompanyName: "Acme <Intl>",
		JobTitle: "VP Sales", Department: "EMEA",
		EmailAddress1: "zoe@acme.example", EmailAddress2: "zoe.obrien@mail.example", EmailAddress3: "z@acme.example",
		BusinessPhone: "+44 20 7946 0000", MobilePhone: "+44 7700 900000", HomePhone: "+44 20 7946 0001",
		OtherPhone: "+44 20 7946 0002", BusinessFax: "+44 20 7946 0003", AssistantPhone: "+44 20 7946 0004",
		BusinessAddress: &tandemv1.PostalAddress{Street: "1 Main St\nFloor 2", City: "London", State: "Greater London", PostalCode: "EC1A 1BB", Country: "United Kingdom"},
		HomeAddress:     &tandemv1.PostalAddress{Street: "2 Side St", City: "Bath", PostalCode: "BA1 1AA", Country: "United Kingdom"},
		OtherAddress:    &tandemv1.PostalAddress{City: "Paris", Country: "France"},
		Birthday:        &tandemv1.Date{Year: 1980, Month: 5, Day: 17},
		Notes:           "Met at the conference.\nLikes tea.",
		AssistantName:   "Zoë's Assistant",
		Suffix:          "Jr.",
	}
}

// FullEvent is a timed meeting with every writable event field.
func FullEvent() *tandemv1.Event {
	return &tandemv1.Event{
		Subject: "Quarterly review <Q3> & plans", Location: "Room 4.01", Body: "Agenda:\n1. Numbers\n2. Plans",
		Start: ts("2026-03-10T14:00:00Z"), End: ts("2026-03-10T15:30:00Z"),
		StartTimeZone: "W. Europe Standard Time", EndTimeZone: "W. Europe Standard Time",
		Sensitivity: tandemv1.Sensitivity_SENSITIVITY_PRIVATE, ShowAs: tandemv1.ShowAs_SHOW_AS_TENTATIVE,
		Attendees: []*tandemv1.Attendee{
			{Email: "bob@contoso.com", Name: "Bob", Type: tandemv1.AttendeeType_ATTENDEE_TYPE_REQUIRED},
			{Email: "carol@fabrikam.example", Name: "Carol", Type: tandemv1.AttendeeType_ATTENDEE_TYPE_OPTIONAL},
			{Email: "room401@contoso.com", Name: "Room 4.01", Type: tandemv1.AttendeeType_ATTENDEE_TYPE_RESOURCE},
		},
		Categories: []string{"Salesforce", "Customer"},
	}
}

// AllDayEvent is a two-day all-day event in New York time.
func AllDayEvent() *tandemv1.Event {
	return &tandemv1.Event{
		Subject: "Offsite", IsAllDay: true, StartTimeZone: "Eastern Standard Time",
		StartDate: &tandemv1.Date{Year: 2026, Month: 7, Day: 1}, EndDate: &tandemv1.Date{Year: 2026, Month: 7, Day: 2},
		ShowAs: tandemv1.ShowAs_SHOW_AS_OUT_OF_OFFICE,
	}
}

// RecurringEvent is a weekly series ending on a date.
func RecurringEvent() *tandemv1.Event {
	return &tandemv1.Event{
		Subject: "Weekly sync", Start: ts("2026-01-05T09:00:00Z"), End: ts("2026-01-05T09:30:00Z"), StartTimeZone: "UTC",
		Recurrence: &tandemv1.Recurrence{
			Pattern: tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_WEEKLY, Interval: 1,
			DaysOfWeek: []tandemv1.DayOfWeek{tandemv1.DayOfWeek_DAY_OF_WEEK_MONDAY, tandemv1.DayOfWeek_DAY_OF_WEEK_THURSDAY},
			StartDate:  &tandemv1.Date{Year: 2026, Month: 1, Day: 5}, EndDate: &tandemv1.Date{Year: 2026, Month: 6, Day: 29},
		},
	}
}

func sampleContacts() []*tandemv1.Contact {
	return []*tandemv1.Contact{
		FullContact(),
		{GivenName: "Björn", Surname: "Ångström", CompanyName: "Nordic AB", EmailAddress1: "bjorn@nordic.example", MobilePhone: "+46 70 123 45 67"},
		{GivenName: "Chen", Surname: "Wei", JobTitle: "Buyer", BusinessAddress: &tandemv1.PostalAddress{City: "上海", Country: "China"}},
	}
}

func sampleEvents() []*tandemv1.Event {
	return []*tandemv1.Event{FullEvent(), AllDayEvent(), RecurringEvent()}
}

// mergeContact returns base with fields taken from partial.
func mergeContact(base, partial *tandemv1.Contact, fields []string) *tandemv1.Contact {
	out := cloneContact(base)
	copyFields(out, partial, fields)
	return out
}

// mergeEventFields returns base with fields taken from partial.
func mergeEventFields(base, partial *tandemv1.Event, fields []string) *tandemv1.Event {
	out := cloneEvent(base)
	copyFields(out, partial, fields)
	return out
}

// copyFields sets the named (canonical, protobuf) fields of dst to src's values.
func copyFields(dst, src proto.Message, fields []string) {
	d, s := dst.ProtoReflect(), src.ProtoReflect()
	for _, name := range fields {
		fd := d.Descriptor().Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			panic("exchangetest: no field " + name)
		}
		if s.Has(fd) {
			d.Set(fd, s.Get(fd))
		} else {
			d.Clear(fd)
		}
	}
}

// Comparable returns the part of a record an Exchange connector must round-trip, in a normal
// form: no identity or version, text with LF line ends and no trailing white space, defaults
// made explicit, attendees sorted and without responses, and what Exchange derives or sets
// itself (organizer, event type, UID, occurrence lists) left out.
func Comparable(r *tandemv1.Record) *tandemv1.Record {
	switch {
	case r.GetContact() != nil:
		c := cloneContact(r.GetContact())
		c.SalesforceAccountId = ""
		c.Notes = normalText(c.Notes)
		for _, a := range []**tandemv1.PostalAddress{&c.BusinessAddress, &c.HomeAddress, &c.OtherAddress} {
			if *a != nil && proto.Equal(*a, &tandemv1.PostalAddress{}) {
				*a = nil
			}
		}
		return contactRecord(c)
	case r.GetEvent() != nil:
		return eventRecord(comparableEvent(r.GetEvent()))
	}
	return &tandemv1.Record{}
}

func comparableEvent(src *tandemv1.Event) *tandemv1.Event {
	e := cloneEvent(src)
	e.Body = normalText(e.Body)
	e.Organizer, e.Type, e.Uid, e.OriginalStart = nil, tandemv1.EventType_EVENT_TYPE_UNSPECIFIED, "", nil
	e.SalesforceWhoId, e.SalesforceWhatId = "", ""
	if e.Sensitivity == tandemv1.Sensitivity_SENSITIVITY_UNSPECIFIED {
		e.Sensitivity = tandemv1.Sensitivity_SENSITIVITY_NORMAL
	}
	if e.ShowAs == tandemv1.ShowAs_SHOW_AS_UNSPECIFIED {
		e.ShowAs = tandemv1.ShowAs_SHOW_AS_BUSY
	}
	if e.EndTimeZone == e.StartTimeZone {
		e.EndTimeZone = ""
	}
	if len(e.Categories) == 0 {
		e.Categories = nil
	}
	if e.IsAllDay {
		// An all-day event is its dates; its instants follow from them and the time zone.
		e.Start, e.End = nil, nil
		if e.EndDate == nil {
			e.EndDate = e.StartDate
		}
	} else {
		e.StartDate, e.EndDate = nil, nil
	}
	var atts []*tandemv1.Attendee
	for _, a := range e.Attendees {
		if a.GetEmail() == "" {
			continue
		}
		typ := a.GetType()
		if typ == tandemv1.AttendeeType_ATTENDEE_TYPE_UNSPECIFIED {
			typ = tandemv1.AttendeeType_ATTENDEE_TYPE_REQUIRED
		}
		atts = append(atts, &tandemv1.Attendee{Email: strings.ToLower(a.GetEmail()), Name: a.GetName(), Type: typ})
	}
	slices.SortFunc(atts, func(a, b *tandemv1.Attendee) int { return strings.Compare(a.Email, b.Email) })
	e.Attendees = atts
	if r := e.Recurrence; r != nil {
		r.TimeZone, r.DeletedOccurrences, r.ModifiedOccurrences = "", nil, nil
		if r.Interval == 0 {
			r.Interval = 1
		}
	}
	return e
}

func normalText(s string) string {
	return strings.TrimRight(strings.ReplaceAll(s, "\r\n", "\n"), " \t\r\n")
}

// alignDefaults clears in got what want leaves for the server to choose: time zones of events
// written without one, a recurrence's start date and first day of the week.
func alignDefaults(want, got *tandemv1.Record) {
	we, ge := want.GetEvent(), got.GetEvent()
	if we == nil || ge == nil {
		return
	}
	if we.StartTimeZone == "" {
		ge.StartTimeZone, ge.EndTimeZone = "", ""
	}
	if wr, gr := we.Recurrence, ge.Recurrence; wr != nil && gr != nil {
		if wr.StartDate == nil {
			gr.StartDate = nil
		}
		if wr.FirstDayOfWeek == tandemv1.DayOfWeek_DAY_OF_WEEK_UNSPECIFIED {
			gr.FirstDayOfWeek = tandemv1.DayOfWeek_DAY_OF_WEEK_UNSPECIFIED
		}
	}
}
