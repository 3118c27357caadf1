package salesforce

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// Mapping between Salesforce rows and canonical records. Canonical field names are the
// protobuf field names; WriteCommand.fields lists them.

// Canonical field names the mapping knows.
const (
	fGivenName      = "given_name"
	fMiddleName     = "middle_name"
	fSurname        = "surname"
	fCompanyName    = "company_name"
	fJobTitle       = "job_title"
	fDepartment     = "department"
	fEmail1         = "email_address1"
	fBusinessPhone  = "business_phone"
	fMobilePhone    = "mobile_phone"
	fHomePhone      = "home_phone"
	fOtherPhone     = "other_phone"
	fBusinessFax    = "business_fax"
	fAssistantPhone = "assistant_phone"
	fBusinessAddr   = "business_address"
	fOtherAddr      = "other_address"
	fBirthday       = "birthday"
	fNotes          = "notes"
	fAssistantName  = "assistant_name"
	fSuffix         = "suffix"
	fAccountID      = "salesforce_account_id"

	fSubject     = "subject"
	fLocation    = "location"
	fBody        = "body"
	fStart       = "start"
	fEnd         = "end"
	fIsAllDay    = "is_all_day"
	fStartDate   = "start_date"
	fEndDate     = "end_date"
	fSensitivity = "sensitivity"
	fShowAs      = "show_as"
	fAttendees   = "attendees"
	fWhoID       = "salesforce_who_id"
	fWhatID      = "salesforce_what_id"
)

const (
	versionLayout = "2006-01-02T15:04:05.000Z07:00" // Record.version: RFC 3339 with milliseconds
	dateLayout    = "2006-01-02"
	minutesPerDay = 24 * 60
)

// textField maps one canonical text (sub)field to one Salesforce field.
type textField[T any] struct {
	canonical string
	api       string
	get       func(T) string
	set       func(T, string)
}

func address(p **tandemv1.PostalAddress) *tandemv1.PostalAddress {
	if *p == nil {
		*p = &tandemv1.PostalAddress{}
	}
	return *p
}

type contactField = textField[*tandemv1.Contact]

// contactText are the contact's text fields in the order they are written.
var contactText = []contactField{
	{fGivenName, "FirstName", (*tandemv1.Contact).GetGivenName, func(c *tandemv1.Contact, v string) { c.GivenName = v }},
	{fMiddleName, "MiddleName", (*tandemv1.Contact).GetMiddleName, func(c *tandemv1.Contact, v string) { c.MiddleName = v }},
	{fSurname, "LastName", (*tandemv1.Contact).GetSurname, func(c *tandemv1.Contact, v string) { c.Surname = v }},
	{fJobTitle, "Title", (*tandemv1.Contact).GetJobTitle, func(c *tandemv1.Contact, v string) { c.JobTitle = v }},
	{fDepartment, "Department", (*tandemv1.Contact).GetDepartment, func(c *tandemv1.Contact, v string) { c.Department = v }},
	{fEmail1, "Email", (*tandemv1.Contact).GetEmailAddress1, func(c *tandemv1.Contact, v string) { c.EmailAddress1 = v }},
	{fBusinessPhone, "Phone", (*tandemv1.Contact).GetBusinessPhone, func(c *tandemv1.Contact, v string) { c.BusinessPhone = v }},
	{fMobilePhone, "MobilePhone", (*tandemv1.Contact).GetMobilePhone, func(c *tandemv1.Contact, v string) { c.MobilePhone = v }},
	{fHomePhone, "HomePhone", (*tandemv1.Contact).GetHomePhone, func(c *tandemv1.Contact, v string) { c.HomePhone = v }},
	{fOtherPhone, "OtherPhone", (*tandemv1.Contact).GetOtherPhone, func(c *tandemv1.Contact, v string) { c.OtherPhone = v }},
	{fBusinessFax, "Fax", (*tandemv1.Contact).GetBusinessFax, func(c *tandemv1.Contact, v string) { c.BusinessFax = v }},
	{fAssistantPhone, "AssistantPhone", (*tandemv1.Contact).GetAssistantPhone, func(c *tandemv1.Contact, v string) { c.AssistantPhone = v }},
	{fBusinessAddr, "MailingStreet", func(c *tandemv1.Contact) string { return c.GetBusinessAddress().GetStreet() }, func(c *tandemv1.Contact, v string) { address(&c.BusinessAddress).Street = v }},
	{fBusinessAddr, "MailingCity", func(c *tandemv1.Contact) string { return c.GetBusinessAddress().GetCity() }, func(c *tandemv1.Contact, v string) { address(&c.BusinessAddress).City = v }},
	{fBusinessAddr, "MailingState", func(c *tandemv1.Contact) string { return c.GetBusinessAddress().GetState() }, func(c *tandemv1.Contact, v string) { address(&c.BusinessAddress).State = v }},
	{fBusinessAddr, "MailingPostalCode", func(c *tandemv1.Contact) string { return c.GetBusinessAddress().GetPostalCode() }, func(c *tandemv1.Contact, v string) { address(&c.BusinessAddress).PostalCode = v }},
	{fBusinessAddr, "MailingCountry", func(c *tandemv1.Contact) string { return c.GetBusinessAddress().GetCountry() }, func(c *tandemv1.Contact, v string) { address(&c.BusinessAddress).Country = v }},
	{fOtherAddr, "OtherStreet", func(c *tandemv1.Contact) string { return c.GetOtherAddress().GetStreet() }, func(c *tandemv1.Contact, v string) { address(&c.OtherAddress).Street = v }},
	{fOtherAddr, "OtherCity", func(c *tandemv1.Contact) string { return c.GetOtherAddress().GetCity() }, func(c *tandemv1.Contact, v string) { address(&c.OtherAddress).City = v }},
	{fOtherAddr, "OtherState", func(c *tandemv1.Contact) string { return c.GetOtherAddress().GetState() }, func(c *tandemv1.Contact, v string) { address(&c.OtherAddress).State = v }},
	{fOtherAddr, "OtherPostalCode", func(c *tandemv1.Contact) string { return c.GetOtherAddress().GetPostalCode() }, func(c *tandemv1.Contact, v string) { address(&c.OtherAddress).PostalCode = v }},
	{fOtherAddr, "OtherCountry", func(c *tandemv1.Contact) string { return c.GetOtherAddress().GetCountry() }, func(c *tandemv1.Contact, v string) { address(&c.OtherAddress).Country = v }},
	{fNotes, "Description", (*tandemv1.Contact).GetNotes, func(c *tandemv1.Contact, v string) { c.Notes = v }},
	{fAssistantName, "AssistantName", (*tandemv1.Contact).GetAssistantName, func(c *tandemv1.Contact, v string) { c.AssistantName = v }},
	{fSuffix, "Suffix", (*tandemv1.Contact).GetSuffix, func(c *tandemv1.Contact, v string) { c.Suffix = v }},
}

type eventField = textField[*tandemv1.Event]

var eventText = []eventField{
	{fSubject, "Subject", (*tandemv1.Event).GetSubject, func(e *tandemv1.Event, v string) { e.Subject = v }},
	{fLocation, "Location", (*tandemv1.Event).GetLocation, func(e *tandemv1.Event, v string) { e.Location = v }},
	{fBody, "Description", (*tandemv1.Event).GetBody, func(e *tandemv1.Event, v string) { e.Body = v }},
}

// systemFields are selected for every record kind.
var systemFields = []string{"Id", "IsDeleted", "OwnerId", "SystemModstamp", SyncKeyField}

// contactSelect lists the Contact fields a poll reads (optional fields the org lacks excluded).
func contactSelect(f *fieldInfo) []string {
	out := append([]string(nil), systemFields...)
	for _, tf := range contactText {
		if f.has(objContact, tf.api) {
			out = append(out, tf.api)
		}
	}
	return append(out, "Birthdate", "AccountId", "Account.Name")
}

// eventRelationSubquery reads an event's invitees with the event, so attendees cost no extra call.
const eventRelationSubquery = "(SELECT Id, RelationId, Relation.Name, Relation.Email, Status, RespondedDate, IsInvitee FROM EventRelations)"

// eventSelect lists the Event fields a poll reads.
func eventSelect() []string {
	out := append([]string(nil), systemFields...)
	for _, tf := range eventText {
		out = append(out, tf.api)
	}
	return append(out, "IsAllDayEvent", "StartDateTime", "EndDateTime", "ActivityDate", "DurationInMinutes",
		"IsPrivate", "ShowAs", "WhoId", "WhatId", eventRelationSubquery)
}

// recordHeader fills the identity of a record read from a row.
func recordHeader(o SObject) (*tandemv1.Record, error) {
	id := o.String("Id")
	if id == "" {
		return nil, fmt.Errorf("row without Id")
	}
	rec := &tandemv1.Record{Id: id, SyncKey: o.String(SyncKeyField), OwnerId: o.String("OwnerId")}
	mod, ok, err := o.Time("SystemModstamp")
	if err != nil {
		return nil, fmt.Errorf("record %s: SystemModstamp: %w", id, err)
	}
	if ok {
		rec.Version = mod.UTC().Format(versionLayout)
		rec.ModifiedAt = timestamppb.New(mod)
	}
	return rec, nil
}

// contactFromRow maps a Contact row to a canonical record.
func contactFromRow(o SObject) (*tandemv1.Record, error) {
	rec, err := recordHeader(o)
	if err != nil {
		return nil, err
	}
	c := &tandemv1.Contact{}
	for _, tf := range contactText {
		if v := o.String(tf.api); v != "" {
			tf.set(c, v)
		}
	}
	c.CompanyName = o.String("Account.Name")
	c.SalesforceAccountId = o.String("AccountId")
	if d, err := parseDate(o.String("Birthdate")); err == nil {
		c.Birthday = d // a contact is worth syncing even with a birthdate Tandem cannot read
	}
	rec.Body = &tandemv1.Record_Contact{Contact: c}
	return rec, nil
}

// eventFromRow maps an Event row (with its EventRelations) to a canonical record.
func eventFromRow(o SObject) (*tandemv1.Record, error) {
	rec, err := recordHeader(o)
	if err != nil {
		return nil, err
	}
	e := &tandemv1.Event{}
	for _, tf := range eventText {
		tf.set(e, o.String(tf.api))
	}
	if o.Bool("IsAllDayEvent") {
		e.IsAllDay = true
		start, err := parseDate(o.String("ActivityDate"))
		if err != nil {
			return nil, fmt.Errorf("event %s: ActivityDate: %w", rec.Id, err)
		}
		days := int64(1)
		if d := o.Int("DurationInMinutes"); d > minutesPerDay {
			days = (d + minutesPerDay - 1) / minutesPerDay
		}
		e.StartDate = start
		e.EndDate = addDays(start, int(days-1))
	} else {
		start, ok, err := o.Time("StartDateTime")
		if err == nil && !ok { // StartDateTime arrived in API 13.0; ActivityDateTime holds the same instant
			start, ok, err = o.Time("ActivityDateTime")
		}
		if err != nil || !ok {
			return nil, fmt.Errorf("event %s: StartDateTime %q is not a datetime", rec.Id, o.String("StartDateTime"))
		}
		e.Start = timestamppb.New(start)
		end, ok, err := o.Time("EndDateTime")
		switch {
		case err != nil:
			return nil, fmt.Errorf("event %s: EndDateTime: %w", rec.Id, err)
		case ok:
			e.End = timestamppb.New(end)
		default:
			e.End = timestamppb.New(start.Add(time.Duration(o.Int("DurationInMinutes")) * time.Minute))
		}
	}
	if o.Bool("IsPrivate") {
		e.Sensitivity = tandemv1.Sensitivity_SENSITIVITY_PRIVATE
	} else {
		e.Sensitivity = tandemv1.Sensitivity_SENSITIVITY_NORMAL
	}
	e.ShowAs = showAsFromAPI(o.String("ShowAs"))
	e.SalesforceWhoId = o.String("WhoId")
	e.SalesforceWhatId = o.String("WhatId")
	rels, _ := o.Child("EventRelations")
	e.Attendees = attendeesFromRelations(rels)
	rec.Body = &tandemv1.Record_Event{Event: e}
	return rec, nil
}

// attendeesFromRelations maps invitee EventRelation rows to attendees; relations that are not
// invitations (the Who and What of shared activities) are not attendees.
func attendeesFromRelations(rels []SObject) []*tandemv1.Attendee {
	var out []*tandemv1.Attendee
	for _, r := range rels {
		if v, ok := r.Get("IsInvitee"); ok && v == false {
			continue
		}
		a := &tandemv1.Attendee{
			Email:    r.String("Relation.Email"),
			Name:     r.String("Relation.Name"),
			Type:     tandemv1.AttendeeType_ATTENDEE_TYPE_REQUIRED,
			Response: responseFromStatus(r.String("Status")),
		}
		if t, ok, err := r.Time("RespondedDate"); ok && err == nil {
			a.RespondedAt = timestamppb.New(t)
		}
		out = append(out, a)
	}
	return out
}

func responseFromStatus(s string) tandemv1.ResponseType {
	switch strings.ToLower(s) {
	case "accepted":
		return tandemv1.ResponseType_RESPONSE_TYPE_ACCEPTED
	case "declined":
		return tandemv1.ResponseType_RESPONSE_TYPE_DECLINED
	case "maybe", "tentative":
		return tandemv1.ResponseType_RESPONSE_TYPE_TENTATIVE
	default:
		return tandemv1.ResponseType_RESPONSE_TYPE_NO_RESPONSE
	}
}

// Salesforce's ShowAs picklist has Busy, OutOfOffice and Free; other canonical states show
// as busy, which is how Exchange treats them for availability.
func showAsFromAPI(s string) tandemv1.ShowAs {
	switch s {
	case "Free":
		return tandemv1.ShowAs_SHOW_AS_FREE
	case "OutOfOffice":
		return tandemv1.ShowAs_SHOW_AS_OUT_OF_OFFICE
	case "":
		return tandemv1.ShowAs_SHOW_AS_UNSPECIFIED
	default:
		return tandemv1.ShowAs_SHOW_AS_BUSY
	}
}

func showAsToAPI(s tandemv1.ShowAs) string {
	switch s {
	case tandemv1.ShowAs_SHOW_AS_FREE:
		return "Free"
	case tandemv1.ShowAs_SHOW_AS_OUT_OF_OFFICE:
		return "OutOfOffice"
	default:
		return "Busy"
	}
}

func parseDate(s string) (*tandemv1.Date, error) {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a date", s)
	}
	return &tandemv1.Date{Year: int32(t.Year()), Month: int32(t.Month()), Day: int32(t.Day())}, nil
}

// dateTime converts a canonical date; ok is false when it is not a real calendar date.
func dateTime(d *tandemv1.Date) (time.Time, bool) {
	if d == nil || d.Month < 1 || d.Month > 12 || d.Day < 1 || d.Day > 31 || d.Year < 1 || d.Year > 9999 {
		return time.Time{}, false
	}
	t := time.Date(int(d.Year), time.Month(d.Month), int(d.Day), 0, 0, 0, 0, time.UTC)
	if t.Day() != int(d.Day) { // e.g. 31 April
		return time.Time{}, false
	}
	return t, true
}

func addDays(d *tandemv1.Date, n int) *tandemv1.Date {
	t, ok := dateTime(d)
	if !ok {
		return d
	}
	t = t.AddDate(0, 0, n)
	return &tandemv1.Date{Year: int32(t.Year()), Month: int32(t.Month()), Day: int32(t.Day())}
}

// fieldSet is the set of canonical fields a write covers; nil means all.
type fieldSet map[string]bool

func newFieldSet(fields []string) fieldSet {
	if len(fields) == 0 {
		return nil
	}
	s := fieldSet{}
	for _, f := range fields {
		s[f] = true
	}
	return s
}

func (s fieldSet) has(f string) bool { return s == nil || s[f] }

// truncation is a value cut to a field's length.
type truncation struct {
	canonical, api string
	from, to       int
}

// contactValues maps a contact to API field values. On create, empty values are left out; on
// update an empty value clears the field (null), except AccountId, which Tandem never clears
// (Exchange has no account). Over-long values are truncated in c itself, so c is what the
// org then holds.
func contactValues(c *tandemv1.Contact, fields fieldSet, create bool, info *fieldInfo) (map[string]any, []truncation) {
	vals := map[string]any{}
	var cuts []truncation
	for _, tf := range contactText {
		if !fields.has(tf.canonical) || !info.has(objContact, tf.api) {
			continue
		}
		v := tf.get(c)
		if cut, ok := truncate(v, info.maxLen(objContact, tf.api)); ok {
			cuts = append(cuts, truncation{tf.canonical, tf.api, charCount(v), charCount(cut)})
			v = cut
			tf.set(c, v)
		}
		setValue(vals, tf.api, v, create)
	}
	if fields.has(fBirthday) {
		if t, ok := dateTime(c.GetBirthday()); ok {
			vals["Birthdate"] = t.Format(dateLayout)
		} else if !create {
			vals["Birthdate"] = nil
		}
	}
	if fields.has(fAccountID) && c.GetSalesforceAccountId() != "" {
		vals["AccountId"] = c.GetSalesforceAccountId()
	}
	return vals, cuts
}

func setValue(vals map[string]any, api, v string, create bool) {
	switch {
	case v != "":
		vals[api] = v
	case !create:
		vals[api] = nil
	}
}

// timingFields are the canonical fields that together decide an event's time.
var timingFields = []string{fStart, fEnd, fIsAllDay, fStartDate, fEndDate}

// eventValues maps an event to API field values. Timing is written as a whole whenever any
// timing field is listed: an all-day event as ActivityDate plus a whole number of days in
// DurationInMinutes, a timed one as StartDateTime and EndDateTime plus the matching
// DurationInMinutes, as Salesforce requires. WhoId and WhatId are written when set and never
// cleared.
func eventValues(e *tandemv1.Event, fields fieldSet, create bool, info *fieldInfo) (map[string]any, []truncation, error) {
	vals := map[string]any{}
	var cuts []truncation
	for _, tf := range eventText {
		if !fields.has(tf.canonical) {
			continue
		}
		v := tf.get(e)
		if cut, ok := truncate(v, info.maxLen(objEvent, tf.api)); ok {
			cuts = append(cuts, truncation{tf.canonical, tf.api, charCount(v), charCount(cut)})
			v = cut
			tf.set(e, v)
		}
		setValue(vals, tf.api, v, create)
	}
	timing := false
	for _, f := range timingFields {
		timing = timing || fields.has(f)
	}
	if timing {
		if err := eventTiming(e, vals); err != nil {
			return nil, nil, err
		}
	}
	if fields.has(fSensitivity) {
		s := e.GetSensitivity()
		vals["IsPrivate"] = s == tandemv1.Sensitivity_SENSITIVITY_PRIVATE || s == tandemv1.Sensitivity_SENSITIVITY_CONFIDENTIAL
	}
	if fields.has(fShowAs) {
		vals["ShowAs"] = showAsToAPI(e.GetShowAs())
	}
	if fields.has(fWhoID) && e.GetSalesforceWhoId() != "" {
		vals["WhoId"] = e.GetSalesforceWhoId()
	}
	if fields.has(fWhatID) && e.GetSalesforceWhatId() != "" {
		vals["WhatId"] = e.GetSalesforceWhatId()
	}
	return vals, cuts, nil
}

func eventTiming(e *tandemv1.Event, vals map[string]any) error {
	if e.GetIsAllDay() {
		start, ok := dateTime(e.GetStartDate())
		if !ok {
			if e.GetStart() == nil {
				return fmt.Errorf("all-day event without a start date")
			}
			start = e.GetStart().AsTime().UTC().Truncate(24 * time.Hour)
		}
		days := 1
		if end, ok := dateTime(e.GetEndDate()); ok && !end.Before(start) {
			days = int(end.Sub(start).Hours()/24) + 1
		}
		vals["IsAllDayEvent"] = true
		vals["ActivityDate"] = start.Format(dateLayout)
		vals["DurationInMinutes"] = days * minutesPerDay
		return nil
	}
	if e.GetStart() == nil || e.GetEnd() == nil {
		return fmt.Errorf("timed event without start and end")
	}
	start, end := e.GetStart().AsTime().UTC(), e.GetEnd().AsTime().UTC()
	if end.Before(start) {
		return fmt.Errorf("event ends (%s) before it starts (%s)", end.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	vals["IsAllDayEvent"] = false
	vals["StartDateTime"] = start.Format(soqlDateTimeLayout)
	vals["EndDateTime"] = end.Format(soqlDateTimeLayout)
	vals["DurationInMinutes"] = int(end.Sub(start) / time.Minute)
	return nil
}

// canonicalField returns the canonical name of an API field of object, for error reports.
func canonicalField(object, api string) string {
	switch object {
	case objContact:
		for _, tf := range contactText {
			if strings.EqualFold(tf.api, api) {
				return tf.canonical
			}
		}
		switch strings.ToLower(api) {
		case "birthdate":
			return fBirthday
		case "accountid":
			return fAccountID
		}
	case objEvent:
		for _, tf := range eventText {
			if strings.EqualFold(tf.api, api) {
				return tf.canonical
			}
		}
		switch strings.ToLower(api) {
		case "startdatetime", "activitydatetime":
			return fStart
		case "enddatetime", "durationinminutes":
			return fEnd
		case "activitydate":
			return fStartDate
		case "isalldayevent":
			return fIsAllDay
		case "isprivate":
			return fSensitivity
		case "showas":
			return fShowAs
		case "whoid":
			return fWhoID
		case "whatid":
			return fWhatID
		}
	}
	return ""
}
