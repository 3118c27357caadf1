package ewssim

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// Item is one item in a mailbox folder, in EWS terms. Exactly one of Contact, CalendarItem and
// Message is set.
type Item struct {
	// ItemID is the EWS ItemId Id: opaque, base64, and new whenever the item moves folders.
	ItemID string
	// ChangeKey is the EWS ChangeKey; it changes on every modification.
	ChangeKey string
	// FolderID is the id of the folder that holds the item.
	FolderID string
	// Created and LastModified are the item's DateTimeCreated and LastModifiedTime.
	Created, LastModified time.Time

	Contact      *Contact
	CalendarItem *CalendarItem
	Message      *Message
}

// Base returns the properties every kind of item has.
func (it *Item) Base() *ItemBase {
	switch {
	case it.Contact != nil:
		return &it.Contact.ItemBase
	case it.CalendarItem != nil:
		return &it.CalendarItem.ItemBase
	case it.Message != nil:
		return &it.Message.ItemBase
	}
	return nil
}

// kind names the item's EWS element: Contact, CalendarItem or Message.
func (it *Item) kind() itemKind {
	switch {
	case it.Contact != nil:
		return kindContact
	case it.CalendarItem != nil:
		return kindCalendar
	default:
		return kindMessage
	}
}

// Clone returns a deep copy.
func (it Item) Clone() Item {
	if it.Contact != nil {
		c := it.Contact.clone()
		it.Contact = &c
	}
	if it.CalendarItem != nil {
		c := it.CalendarItem.clone()
		it.CalendarItem = &c
	}
	if it.Message != nil {
		m := *it.Message
		m.ItemBase = m.ItemBase.clone()
		it.Message = &m
	}
	return it
}

// ItemBase holds the properties of EWS ItemType that every item kind has.
type ItemBase struct {
	// ItemClass is the message class, e.g. IPM.Contact; defaulted from the item kind.
	ItemClass string
	// Subject is the subject; for contacts Exchange keeps it equal to the display name unless
	// set explicitly.
	Subject string
	// Sensitivity is Normal, Personal, Private or Confidential; empty means Normal.
	Sensitivity string
	// Body is the body text; BodyType is "Text" (the default) or "HTML".
	Body     string
	BodyType string
	// Categories are the Outlook categories.
	Categories []string
	// Importance is Low, Normal or High; empty means Normal.
	Importance string
	// ExtendedProperties are MAPI properties set through ExtendedFieldURI.
	ExtendedProperties []ExtendedProperty
	// Other holds the remaining simple-typed properties a client set (ReminderIsSet, Nickname,
	// IsResponseRequested, ...), by EWS element name, with the text as sent.
	Other map[string]string
}

func (b ItemBase) clone() ItemBase {
	b.Categories = slices.Clone(b.Categories)
	b.ExtendedProperties = slices.Clone(b.ExtendedProperties)
	for i := range b.ExtendedProperties {
		b.ExtendedProperties[i].Values = slices.Clone(b.ExtendedProperties[i].Values)
	}
	b.Other = maps.Clone(b.Other)
	return b
}

// ExtendedProperty is one MAPI property addressed by an ExtendedFieldURI: a property set
// (PropertySetID GUID or DistinguishedPropertySetID) with a PropertyName or PropertyID, or a
// bare PropertyTag.
type ExtendedProperty struct {
	DistinguishedPropertySetID string
	PropertySetID              string
	PropertyTag                string
	PropertyName               string
	// PropertyID is the numeric id in decimal, empty when the property is named.
	PropertyID string
	// PropertyType is the MAPI type name (String, Integer, Boolean, SystemTime, StringArray, ...).
	PropertyType string
	// Value is the value of a single-valued property; Values those of an array property.
	Value  string
	Values []string
}

// key identifies the property regardless of type and spelling (GUID case, tag notation).
func (p ExtendedProperty) key() string {
	var b strings.Builder
	b.WriteString(strings.ToLower(p.DistinguishedPropertySetID))
	b.WriteByte('|')
	b.WriteString(strings.ToLower(strings.Trim(p.PropertySetID, "{}")))
	b.WriteByte('|')
	b.WriteString(normalizeTag(p.PropertyTag))
	b.WriteByte('|')
	b.WriteString(p.PropertyName)
	b.WriteByte('|')
	b.WriteString(p.PropertyID)
	return b.String()
}

// Contact is an EWS contact (ContactItemType).
type Contact struct {
	ItemBase
	FileAs      string
	DisplayName string
	GivenName   string
	MiddleName  string
	Surname     string
	CompanyName string
	JobTitle    string
	Department  string
	// EmailAddresses are the EmailAddress1..3 entries.
	EmailAddresses []ContactEmail
	// PhoneNumbers are the phone entries, by PhoneNumberKeyType (BusinessPhone, MobilePhone,
	// HomePhone, OtherTelephone, BusinessFax, AssistantPhone, ...).
	PhoneNumbers []PhoneNumber
	// PhysicalAddresses are the Business, Home and Other addresses.
	PhysicalAddresses []PhysicalAddress
	// Birthday is the birthday; zero when unset. Only its date counts.
	Birthday time.Time
}

func (c Contact) clone() Contact {
	c.ItemBase = c.ItemBase.clone()
	c.EmailAddresses = slices.Clone(c.EmailAddresses)
	c.PhoneNumbers = slices.Clone(c.PhoneNumbers)
	c.PhysicalAddresses = slices.Clone(c.PhysicalAddresses)
	return c
}

// ContactEmail is one EmailAddresses entry.
type ContactEmail struct {
	// Key is EmailAddress1, EmailAddress2 or EmailAddress3.
	Key string
	// Address is the SMTP address.
	Address string
	// Name is the display name Exchange returns with the entry; defaults to the address.
	Name string
}

// PhoneNumber is one PhoneNumbers entry.
type PhoneNumber struct {
	// Key is a PhoneNumberKeyType value such as BusinessPhone.
	Key    string
	Number string
}

// PhysicalAddress is one PhysicalAddresses entry.
type PhysicalAddress struct {
	// Key is Business, Home or Other.
	Key             string
	Street          string
	City            string
	State           string
	CountryOrRegion string
	PostalCode      string
}

func (a PhysicalAddress) empty() bool {
	return a.Street == "" && a.City == "" && a.State == "" && a.CountryOrRegion == "" && a.PostalCode == ""
}

// Email returns the address stored under key (EmailAddress1..3), or "".
func (c *Contact) Email(key string) string {
	for _, e := range c.EmailAddresses {
		if e.Key == key {
			return e.Address
		}
	}
	return ""
}

// SetEmail sets (or with an empty address removes) the entry under key.
func (c *Contact) SetEmail(key, address string) {
	c.EmailAddresses = slices.DeleteFunc(c.EmailAddresses, func(e ContactEmail) bool { return e.Key == key })
	if address != "" {
		c.EmailAddresses = append(c.EmailAddresses, ContactEmail{Key: key, Address: address})
		slices.SortFunc(c.EmailAddresses, func(a, b ContactEmail) int { return strings.Compare(a.Key, b.Key) })
	}
}

// Phone returns the number stored under key, or "".
func (c *Contact) Phone(key string) string {
	for _, p := range c.PhoneNumbers {
		if p.Key == key {
			return p.Number
		}
	}
	return ""
}

// SetPhone sets (or with an empty number removes) the entry under key.
func (c *Contact) SetPhone(key, number string) {
	c.PhoneNumbers = slices.DeleteFunc(c.PhoneNumbers, func(p PhoneNumber) bool { return p.Key == key })
	if number != "" {
		c.PhoneNumbers = append(c.PhoneNumbers, PhoneNumber{Key: key, Number: number})
	}
}

// Address returns the address stored under key (Business, Home, Other) and whether there is one.
func (c *Contact) Address(key string) (PhysicalAddress, bool) {
	for _, a := range c.PhysicalAddresses {
		if a.Key == key {
			return a, true
		}
	}
	return PhysicalAddress{}, false
}

// SetAddress sets the address under a.Key; an address with no parts removes it.
func (c *Contact) SetAddress(a PhysicalAddress) {
	c.PhysicalAddresses = slices.DeleteFunc(c.PhysicalAddresses, func(x PhysicalAddress) bool { return x.Key == a.Key })
	if !a.empty() {
		c.PhysicalAddresses = append(c.PhysicalAddresses, a)
	}
}

// CalendarItem is an EWS calendar item (CalendarItemType): a single appointment or meeting, or
// the master of a recurring series.
type CalendarItem struct {
	ItemBase
	// UID is the iCalendar UID; generated when empty.
	UID   string
	Start time.Time
	End   time.Time
	// StartTimeZone and EndTimeZone are Windows time zone ids, e.g. "Pacific Standard Time".
	StartTimeZone string
	EndTimeZone   string
	IsAllDayEvent bool
	// LegacyFreeBusyStatus is Free, Tentative, Busy, OOF, WorkingElsewhere or NoData; empty
	// means Busy.
	LegacyFreeBusyStatus string
	Location             string
	// Organizer defaults to the mailbox owner.
	Organizer         *Recipient
	RequiredAttendees []Attendee
	OptionalAttendees []Attendee
	Resources         []Attendee
	// Recurrence makes the item the master of a series.
	Recurrence *Recurrence
	// ModifiedOccurrences and DeletedOccurrences describe the series' exceptions.
	ModifiedOccurrences []Occurrence
	DeletedOccurrences  []time.Time
}

func (c CalendarItem) clone() CalendarItem {
	c.ItemBase = c.ItemBase.clone()
	if c.Organizer != nil {
		o := *c.Organizer
		c.Organizer = &o
	}
	c.RequiredAttendees = slices.Clone(c.RequiredAttendees)
	c.OptionalAttendees = slices.Clone(c.OptionalAttendees)
	c.Resources = slices.Clone(c.Resources)
	if c.Recurrence != nil {
		r := *c.Recurrence
		r.DaysOfWeek = slices.Clone(r.DaysOfWeek)
		c.Recurrence = &r
	}
	c.ModifiedOccurrences = slices.Clone(c.ModifiedOccurrences)
	c.DeletedOccurrences = slices.Clone(c.DeletedOccurrences)
	return c
}

// CalendarItemType is what EWS reports in CalendarItemType: RecurringMaster for a series, else
// Single.
func (c *CalendarItem) CalendarItemType() string {
	if c.Recurrence != nil {
		return "RecurringMaster"
	}
	return "Single"
}

// Recipient is a mailbox: a display name and an SMTP address.
type Recipient struct {
	Name    string
	Address string
}

// Attendee is one attendee of a meeting with the attendee's answer.
type Attendee struct {
	Name    string
	Address string
	// ResponseType is Unknown, Organizer, Tentative, Accept, Decline or NoResponseReceived.
	ResponseType string
	// LastResponseTime is when the attendee last answered; zero when unknown.
	LastResponseTime time.Time
}

// Recurrence is an EWS recurrence: one pattern and one range.
type Recurrence struct {
	// Pattern is RelativeYearly, AbsoluteYearly, RelativeMonthly, AbsoluteMonthly, Weekly or Daily.
	Pattern string
	// Interval is the number of days, weeks or months between occurrences (not used by the
	// yearly patterns).
	Interval int
	// DaysOfWeek lists the days of a weekly pattern, or the single day (Sunday..Saturday, Day,
	// Weekday, WeekendDay) of a relative pattern.
	DaysOfWeek []string
	// DayOfWeekIndex is First, Second, Third, Fourth or Last for relative patterns.
	DayOfWeekIndex string
	// DayOfMonth is 1..31 for absolute monthly and yearly patterns.
	DayOfMonth int
	// Month is January..December for yearly patterns.
	Month string
	// FirstDayOfWeek optionally sets the week start of a weekly pattern.
	FirstDayOfWeek string
	// Range is NoEnd, EndDate or Numbered.
	Range string
	// StartDate and EndDate are xs:date values ("2025-07-02"); EndDate only for EndDate ranges.
	StartDate string
	EndDate   string
	// NumberOfOccurrences is set for Numbered ranges.
	NumberOfOccurrences int
}

// Occurrence describes one modified occurrence of a series.
type Occurrence struct {
	ItemID        string
	Start         time.Time
	End           time.Time
	OriginalStart time.Time
}

// Message is an email message. The simulator keeps only the common item properties and the
// read flag, which is enough to produce ReadFlagChange changes in SyncFolderItems.
type Message struct {
	ItemBase
	IsRead bool
}
