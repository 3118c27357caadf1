package ewssim

import (
	"slices"
	"strings"
	"time"
)

// Dump is the state of every mailbox, ready for encoding/json. Its shape is read by tools
// outside this repository: fields may be added, never renamed.
type Dump struct {
	// Mailboxes maps each mailbox's SMTP address to its contents.
	Mailboxes map[string]MailboxDump `json:"mailboxes"`
}

// MailboxDump is one mailbox: the contacts of its Salesforce_Sync folder and the events of its
// main calendar, oldest first.
type MailboxDump struct {
	DisplayName string        `json:"DisplayName,omitempty"`
	Contacts    []ContactDump `json:"contacts"`
	Events      []EventDump   `json:"events"`
}

// ContactDump is a contact under its EWS property names; empty fields are omitted.
type ContactDump struct {
	ItemID         string `json:"ItemId"`
	ChangeKey      string `json:"ChangeKey"`
	DisplayName    string `json:"DisplayName,omitempty"`
	FileAs         string `json:"FileAs,omitempty"`
	GivenName      string `json:"GivenName,omitempty"`
	MiddleName     string `json:"MiddleName,omitempty"`
	Surname        string `json:"Surname,omitempty"`
	CompanyName    string `json:"CompanyName,omitempty"`
	JobTitle       string `json:"JobTitle,omitempty"`
	Department     string `json:"Department,omitempty"`
	EmailAddress1  string `json:"EmailAddress1,omitempty"`
	EmailAddress2  string `json:"EmailAddress2,omitempty"`
	EmailAddress3  string `json:"EmailAddress3,omitempty"`
	BusinessPhone  string `json:"BusinessPhone,omitempty"`
	MobilePhone    string `json:"MobilePhone,omitempty"`
	HomePhone      string `json:"HomePhone,omitempty"`
	OtherTelephone string `json:"OtherTelephone,omitempty"`
	BusinessFax    string `json:"BusinessFax,omitempty"`
	AssistantPhone string `json:"AssistantPhone,omitempty"`
	// AssistantName and Generation (the name suffix) are properties the simulator keeps as set.
	AssistantName string `json:"AssistantName,omitempty"`
	Generation    string `json:"Generation,omitempty"`
	// OtherPhones holds the remaining phone entries by PhoneNumberKeyType.
	OtherPhones     map[string]string `json:"OtherPhones,omitempty"`
	BusinessAddress *AddressDump      `json:"BusinessAddress,omitempty"`
	HomeAddress     *AddressDump      `json:"HomeAddress,omitempty"`
	OtherAddress    *AddressDump      `json:"OtherAddress,omitempty"`
	// Birthday is RFC 3339, as EWS returns it (the date at 11:59 UTC).
	Birthday   string   `json:"Birthday,omitempty"`
	Body       string   `json:"Body,omitempty"`
	Categories []string `json:"Categories,omitempty"`
	// ExtendedProperties maps each extended property's name (PropertyName, or
	// "PropertyId:<n>" / "PropertyTag:<tag>") to its value; array values are joined with "\n".
	ExtendedProperties map[string]string `json:"ExtendedProperties,omitempty"`
	LastModifiedTime   string            `json:"LastModifiedTime,omitempty"`
}

// AddressDump is a postal address.
type AddressDump struct {
	Street          string `json:"Street,omitempty"`
	City            string `json:"City,omitempty"`
	State           string `json:"State,omitempty"`
	PostalCode      string `json:"PostalCode,omitempty"`
	CountryOrRegion string `json:"CountryOrRegion,omitempty"`
}

// EventDump is a calendar item under its EWS property names; times are RFC 3339 in UTC.
type EventDump struct {
	ItemID               string           `json:"ItemId"`
	ChangeKey            string           `json:"ChangeKey"`
	Subject              string           `json:"Subject,omitempty"`
	Start                string           `json:"Start,omitempty"`
	End                  string           `json:"End,omitempty"`
	StartTimeZone        string           `json:"StartTimeZone,omitempty"`
	EndTimeZone          string           `json:"EndTimeZone,omitempty"`
	IsAllDayEvent        bool             `json:"IsAllDayEvent,omitempty"`
	Sensitivity          string           `json:"Sensitivity,omitempty"`
	Categories           []string         `json:"Categories,omitempty"`
	Location             string           `json:"Location,omitempty"`
	Body                 string           `json:"Body,omitempty"`
	LegacyFreeBusyStatus string           `json:"LegacyFreeBusyStatus,omitempty"`
	Organizer            *RecipientDump   `json:"Organizer,omitempty"`
	RequiredAttendees    []AttendeeDump   `json:"RequiredAttendees,omitempty"`
	OptionalAttendees    []AttendeeDump   `json:"OptionalAttendees,omitempty"`
	Resources            []AttendeeDump   `json:"Resources,omitempty"`
	CalendarItemType     string           `json:"CalendarItemType,omitempty"`
	UID                  string           `json:"UID,omitempty"`
	Recurrence           *RecurrenceDump  `json:"Recurrence,omitempty"`
	DeletedOccurrences   []string         `json:"DeletedOccurrences,omitempty"`
	ModifiedOccurrences  []OccurrenceDump `json:"ModifiedOccurrences,omitempty"`
	// ExtendedProperties is keyed like ContactDump's.
	ExtendedProperties map[string]string `json:"ExtendedProperties,omitempty"`
	LastModifiedTime   string            `json:"LastModifiedTime,omitempty"`
}

// RecipientDump is a mailbox.
type RecipientDump struct {
	Name         string `json:"Name,omitempty"`
	EmailAddress string `json:"EmailAddress"`
}

// AttendeeDump is an attendee with the attendee's answer.
type AttendeeDump struct {
	Name             string `json:"Name,omitempty"`
	EmailAddress     string `json:"EmailAddress"`
	ResponseType     string `json:"ResponseType,omitempty"`
	LastResponseTime string `json:"LastResponseTime,omitempty"`
}

// RecurrenceDump is a recurrence's pattern and range.
type RecurrenceDump struct {
	Pattern             string   `json:"Pattern"`
	Interval            int      `json:"Interval,omitempty"`
	DaysOfWeek          []string `json:"DaysOfWeek,omitempty"`
	DayOfWeekIndex      string   `json:"DayOfWeekIndex,omitempty"`
	DayOfMonth          int      `json:"DayOfMonth,omitempty"`
	Month               string   `json:"Month,omitempty"`
	FirstDayOfWeek      string   `json:"FirstDayOfWeek,omitempty"`
	Range               string   `json:"Range"`
	StartDate           string   `json:"StartDate"`
	EndDate             string   `json:"EndDate,omitempty"`
	NumberOfOccurrences int      `json:"NumberOfOccurrences,omitempty"`
}

// OccurrenceDump is a modified occurrence.
type OccurrenceDump struct {
	ItemID        string `json:"ItemId"`
	Start         string `json:"Start"`
	End           string `json:"End"`
	OriginalStart string `json:"OriginalStart"`
}

// Dump renders every mailbox. Each mailbox is read consistently; different mailboxes may be
// read at slightly different moments while clients keep working.
func (s *Server) Dump() *Dump {
	s.mu.RLock()
	boxes := make([]*mailbox, 0, len(s.mailboxes))
	for _, m := range s.mailboxes {
		boxes = append(boxes, m)
	}
	s.mu.RUnlock()

	d := &Dump{Mailboxes: make(map[string]MailboxDump, len(boxes))}
	for _, mb := range boxes {
		d.Mailboxes[mb.address] = dumpMailbox(mb)
	}
	return d
}

func dumpMailbox(mb *mailbox) MailboxDump {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	out := MailboxDump{DisplayName: mb.displayName, Contacts: []ContactDump{}, Events: []EventDump{}}
	if f := mb.dist["contacts"].childByName(SyncFolderName); f != nil {
		for _, si := range f.sortedItems() {
			if si.Contact != nil {
				out.Contacts = append(out.Contacts, dumpContact(si))
			}
		}
	}
	for _, si := range mb.dist["calendar"].sortedItems() {
		if si.CalendarItem != nil {
			out.Events = append(out.Events, dumpEvent(si))
		}
	}
	return out
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func dumpExtended(props []ExtendedProperty) map[string]string {
	if len(props) == 0 {
		return nil
	}
	m := make(map[string]string, len(props))
	for _, p := range props {
		key := p.PropertyName
		switch {
		case key != "":
		case p.PropertyID != "":
			key = "PropertyId:" + p.PropertyID
		default:
			key = "PropertyTag:" + p.PropertyTag
		}
		v := p.Value
		if isArrayType(p.PropertyType) {
			v = strings.Join(p.Values, "\n")
		}
		m[key] = v
	}
	return m
}

func dumpAddress(c *Contact, key string) *AddressDump {
	a, ok := c.Address(key)
	if !ok {
		return nil
	}
	return &AddressDump{Street: a.Street, City: a.City, State: a.State, PostalCode: a.PostalCode, CountryOrRegion: a.CountryOrRegion}
}

// dumpedPhones are the phone keys ContactDump has fields for.
var dumpedPhones = []string{"BusinessPhone", "MobilePhone", "HomePhone", "OtherTelephone", "BusinessFax", "AssistantPhone"}

func dumpContact(si *storedItem) ContactDump {
	c := si.Contact
	d := ContactDump{
		ItemID: si.ItemID, ChangeKey: si.ChangeKey, DisplayName: c.DisplayName, FileAs: c.FileAs,
		GivenName: c.GivenName, MiddleName: c.MiddleName, Surname: c.Surname, CompanyName: c.CompanyName,
		JobTitle: c.JobTitle, Department: c.Department,
		EmailAddress1: c.Email("EmailAddress1"), EmailAddress2: c.Email("EmailAddress2"), EmailAddress3: c.Email("EmailAddress3"),
		BusinessPhone: c.Phone("BusinessPhone"), MobilePhone: c.Phone("MobilePhone"), HomePhone: c.Phone("HomePhone"),
		OtherTelephone: c.Phone("OtherTelephone"), BusinessFax: c.Phone("BusinessFax"), AssistantPhone: c.Phone("AssistantPhone"),
		BusinessAddress: dumpAddress(c, "Business"), HomeAddress: dumpAddress(c, "Home"), OtherAddress: dumpAddress(c, "Other"),
		AssistantName: c.Other["AssistantName"], Generation: c.Other["Generation"],
		Birthday: rfc3339(c.Birthday), Body: c.Body, Categories: slices.Clone(c.Categories),
		ExtendedProperties: dumpExtended(c.ExtendedProperties), LastModifiedTime: rfc3339(si.LastModified),
	}
	for _, p := range c.PhoneNumbers {
		if !slices.Contains(dumpedPhones, p.Key) {
			if d.OtherPhones == nil {
				d.OtherPhones = map[string]string{}
			}
			d.OtherPhones[p.Key] = p.Number
		}
	}
	return d
}

func dumpAttendees(list []Attendee) []AttendeeDump {
	var out []AttendeeDump
	for _, a := range list {
		out = append(out, AttendeeDump{Name: a.Name, EmailAddress: a.Address, ResponseType: orDefault(a.ResponseType, "Unknown"), LastResponseTime: rfc3339(a.LastResponseTime)})
	}
	return out
}

func dumpEvent(si *storedItem) EventDump {
	e := si.CalendarItem
	d := EventDump{
		ItemID: si.ItemID, ChangeKey: si.ChangeKey, Subject: e.Subject, Start: rfc3339(e.Start), End: rfc3339(e.End),
		StartTimeZone: e.StartTimeZone, EndTimeZone: e.EndTimeZone, IsAllDayEvent: e.IsAllDayEvent,
		Sensitivity: orDefault(e.Sensitivity, "Normal"), Categories: slices.Clone(e.Categories), Location: e.Location,
		Body: e.Body, LegacyFreeBusyStatus: orDefault(e.LegacyFreeBusyStatus, "Busy"),
		RequiredAttendees: dumpAttendees(e.RequiredAttendees), OptionalAttendees: dumpAttendees(e.OptionalAttendees),
		Resources: dumpAttendees(e.Resources), CalendarItemType: e.CalendarItemType(), UID: e.UID,
		ExtendedProperties: dumpExtended(e.ExtendedProperties), LastModifiedTime: rfc3339(si.LastModified),
	}
	if e.Organizer != nil {
		d.Organizer = &RecipientDump{Name: e.Organizer.Name, EmailAddress: e.Organizer.Address}
	}
	if r := e.Recurrence; r != nil {
		d.Recurrence = &RecurrenceDump{Pattern: r.Pattern, Interval: r.Interval, DaysOfWeek: slices.Clone(r.DaysOfWeek),
			DayOfWeekIndex: r.DayOfWeekIndex, DayOfMonth: r.DayOfMonth, Month: r.Month, FirstDayOfWeek: r.FirstDayOfWeek,
			Range: r.Range, StartDate: r.StartDate, EndDate: r.EndDate, NumberOfOccurrences: r.NumberOfOccurrences}
	}
	for _, t := range e.DeletedOccurrences {
		d.DeletedOccurrences = append(d.DeletedOccurrences, rfc3339(t))
	}
	for _, o := range e.ModifiedOccurrences {
		d.ModifiedOccurrences = append(d.ModifiedOccurrences, OccurrenceDump{ItemID: o.ItemID, Start: rfc3339(o.Start), End: rfc3339(o.End), OriginalStart: rfc3339(o.OriginalStart)})
	}
	return d
}
