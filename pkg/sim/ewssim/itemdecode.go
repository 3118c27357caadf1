package ewssim

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// decodedItem is an item element from a request (CreateItem, or the property carrier of a
// SetItemField/AppendToItemField) with the elements it contained.
type decodedItem struct {
	item    Item
	present []string
	// err is the first problem that makes Exchange refuse the item (not the whole request).
	err *ewsError
}

func (d *decodedItem) fail(err *ewsError) {
	if d.err == nil {
		d.err = err
	}
}

// kindOfElement maps an item element name to its kind.
func kindOfElement(name string) (itemKind, bool) {
	switch name {
	case "Contact":
		return kindContact, true
	case "CalendarItem":
		return kindCalendar, true
	case "Message":
		return kindMessage, true
	}
	return 0, false
}

// otherItemElements are the remaining members of the item choice groups: valid EWS, not
// simulated.
var otherItemElements = []string{
	"Item", "SharingMessage", "DistributionList", "MeetingMessage", "MeetingRequest", "MeetingResponse",
	"MeetingCancellation", "Task", "PostItem", "RoleMember", "Network", "Person", "ReplyToItem", "ForwardItem",
	"ReplyAllToItem", "AcceptItem", "TentativelyAcceptItem", "DeclineItem", "CancelCalendarItem", "RemoveItem",
	"SuppressReadReceipt", "PostReplyItem", "AcceptSharingInvitation",
}

// decodeItem parses an item element. Schema violations (unknown or misordered elements, values
// of the wrong type) are faults for the whole request; properties a client may not set are
// recorded in the result's err.
func decodeItem(e *etree.Element, tz *time.Location) (*decodedItem, *soapFault) {
	if e.NamespaceURI() != nsTypes {
		return nil, schemaFault("item element %s is in the wrong namespace", e.FullTag())
	}
	k, ok := kindOfElement(e.Tag)
	if !ok {
		if slices.Contains(otherItemElements, e.Tag) {
			return &decodedItem{err: &ewsError{code: "ErrorInvalidItemForOperationCreateItem",
				text: "The simulator only stores contacts, calendar items and messages, not " + e.Tag + "."}}, nil
		}
		return nil, schemaFault("the element %s is not an item", e.FullTag())
	}
	d := &decodedItem{}
	switch k {
	case kindContact:
		d.item.Contact = &Contact{}
	case kindCalendar:
		d.item.CalendarItem = &CalendarItem{}
	default:
		d.item.Message = &Message{}
	}
	sch := schemas[k]
	last := -1
	var startRaw, endRaw string
	for _, c := range e.ChildElements() {
		if c.NamespaceURI() != nsTypes {
			return nil, schemaFault("element %s in %s is in the wrong namespace", c.FullTag(), e.Tag)
		}
		i, ok := sch.index[c.Tag]
		if !ok {
			return nil, schemaFault("the element %s is not expected in %s", c.FullTag(), e.Tag)
		}
		if i < last || (i == last && c.Tag != "ExtendedProperty") {
			return nil, schemaFault("the element %s in %s is out of schema order", c.FullTag(), e.Tag)
		}
		last = i
		p := sch.props[i]
		if p.vt != vtComplex {
			if len(c.ChildElements()) > 0 {
				return nil, schemaFault("the element %s has child elements", c.FullTag())
			}
			if f := checkSimple(p, c.Text()); f != nil {
				return nil, f
			}
		}
		d.present = append(d.present, c.Tag)
		switch p.access {
		case accessReadOnly:
			d.fail(&ewsError{code: "ErrorInvalidPropertySet", text: "Set action is invalid for property " + c.Tag + ".", values: [][2]string{{"FieldURI", c.Tag}}})
			continue
		case accessUnsupported:
			d.fail(&ewsError{code: "ErrorInvalidPropertySet", text: "The simulator does not support setting " + c.Tag + "."})
			continue
		case accessOther:
			b := d.item.Base()
			if b.Other == nil {
				b.Other = map[string]string{}
			}
			b.Other[c.Tag] = c.Text()
			continue
		}
		switch c.Tag {
		case "Start":
			startRaw = c.Text()
			continue
		case "End":
			endRaw = c.Text()
			continue
		}
		if f := decodeModeled(d, c); f != nil {
			return nil, f
		}
	}
	if ci := d.item.CalendarItem; ci != nil {
		loc := tz
		if loc == nil {
			loc = zoneLocation(ci.StartTimeZone)
		}
		var err error
		if startRaw != "" {
			if ci.Start, err = parseDateTime(startRaw, loc); err != nil {
				return nil, schemaFault("Start %q is not a dateTime", startRaw)
			}
		}
		if endRaw != "" {
			endLoc := loc
			if tz == nil && ci.EndTimeZone != "" {
				endLoc = zoneLocation(ci.EndTimeZone)
			}
			if ci.End, err = parseDateTime(endRaw, endLoc); err != nil {
				return nil, schemaFault("End %q is not a dateTime", endRaw)
			}
		}
	}
	return d, nil
}

// checkSimple rejects a value the schema type of p does not allow.
func checkSimple(p propDef, v string) *soapFault {
	switch p.vt {
	case vtBool:
		if _, ok := parseBool(v); !ok {
			return schemaFault("%q is not a valid boolean for %s", v, p.name)
		}
	case vtInt:
		if _, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
			return schemaFault("%q is not a valid integer for %s", v, p.name)
		}
	case vtDateTime:
		if _, err := parseDateTime(v, time.UTC); err != nil {
			return schemaFault("%q is not a valid dateTime for %s", v, p.name)
		}
	}
	return nil
}

func enumFault(value, typ string) *soapFault {
	return schemaFault("the value %q is not a valid %s", value, typ)
}

// decodeModeled parses a property the simulator models into d.item.
func decodeModeled(d *decodedItem, c *etree.Element) *soapFault {
	it := &d.item
	b := it.Base()
	text := c.Text()
	switch c.Tag {
	case "ItemClass":
		b.ItemClass = text
	case "Subject":
		b.Subject = text
	case "Sensitivity":
		if !slices.Contains(sensitivities, text) {
			return enumFault(text, "SensitivityChoicesType")
		}
		b.Sensitivity = text
	case "Importance":
		if !slices.Contains(importances, text) {
			return enumFault(text, "ImportanceChoicesType")
		}
		b.Importance = text
	case "Body":
		bt := c.SelectAttr("BodyType")
		if bt == nil {
			return schemaFault("Body has no BodyType attribute")
		}
		if bt.Value != "HTML" && bt.Value != "Text" {
			return enumFault(bt.Value, "BodyTypeType")
		}
		if len(c.ChildElements()) > 0 {
			return schemaFault("Body has child elements; HTML must be escaped")
		}
		b.Body, b.BodyType = text, bt.Value
	case "Categories":
		ks, f := kids(c, nsTypes)
		if f != nil {
			return f
		}
		b.Categories = nil
		for _, s := range ks {
			if s.Tag != "String" {
				return schemaFault("Categories may only contain String elements")
			}
			b.Categories = append(b.Categories, s.Text())
		}
	case "ExtendedProperty":
		p, f, err := decodeExtendedProperty(c)
		if f != nil {
			return f
		}
		if err != nil {
			d.fail(err)
			return nil
		}
		key := p.key()
		b.ExtendedProperties = slices.DeleteFunc(b.ExtendedProperties, func(x ExtendedProperty) bool { return x.key() == key })
		b.ExtendedProperties = append(b.ExtendedProperties, p)
	default:
		switch {
		case it.Contact != nil:
			return decodeContactProp(d, it.Contact, c)
		case it.CalendarItem != nil:
			return decodeCalendarProp(d, it.CalendarItem, c)
		case it.Message != nil && c.Tag == "IsRead":
			v, _ := parseBool(text)
			it.Message.IsRead = v
		}
	}
	return nil
}

func decodeExtendedProperty(c *etree.Element) (ExtendedProperty, *soapFault, *ewsError) {
	ks, f := kids(c, nsTypes)
	if f != nil {
		return ExtendedProperty{}, f, nil
	}
	if len(ks) != 2 || ks[0].Tag != "ExtendedFieldURI" || (ks[1].Tag != "Value" && ks[1].Tag != "Values") {
		return ExtendedProperty{}, schemaFault("ExtendedProperty must contain ExtendedFieldURI and then Value or Values"), nil
	}
	p, f, err := parseExtendedURI(ks[0])
	if f != nil || err != nil {
		return p, f, err
	}
	badValue := &ewsError{code: "ErrorInvalidExtendedPropertyValue", text: "The extended property value is invalid for its type " + p.PropertyType + "."}
	if ks[1].Tag == "Value" {
		if isArrayType(p.PropertyType) {
			return p, nil, badValue
		}
		p.Value = ks[1].Text()
		if !checkExtendedValue(p.PropertyType, p.Value) {
			return p, nil, badValue
		}
		return p, nil, nil
	}
	if !isArrayType(p.PropertyType) {
		return p, nil, badValue
	}
	vs, f := kids(ks[1], nsTypes)
	if f != nil {
		return p, f, nil
	}
	if len(vs) == 0 {
		return p, schemaFault("Values is empty"), nil
	}
	for _, v := range vs {
		if v.Tag != "Value" {
			return p, schemaFault("Values may only contain Value elements"), nil
		}
		if !checkExtendedValue(p.PropertyType, v.Text()) {
			return p, nil, badValue
		}
		p.Values = append(p.Values, v.Text())
	}
	return p, nil, nil
}

func decodeContactProp(d *decodedItem, ct *Contact, c *etree.Element) *soapFault {
	text := c.Text()
	switch c.Tag {
	case "FileAs":
		ct.FileAs = text
	case "DisplayName":
		ct.DisplayName = text
	case "GivenName":
		ct.GivenName = text
	case "MiddleName":
		ct.MiddleName = text
	case "Surname":
		ct.Surname = text
	case "CompanyName":
		ct.CompanyName = text
	case "JobTitle":
		ct.JobTitle = text
	case "Department":
		ct.Department = text
	case "Birthday":
		t, err := parseDateTime(text, time.UTC)
		if err != nil {
			return schemaFault("Birthday %q is not a dateTime", text)
		}
		ct.Birthday = t
	case "EmailAddresses", "PhoneNumbers", "PhysicalAddresses":
		entries, f := kids(c, nsTypes)
		if f != nil {
			return f
		}
		if len(entries) == 0 {
			return schemaFault("%s is empty", c.Tag)
		}
		for _, en := range entries {
			if en.Tag != "Entry" {
				return schemaFault("%s may only contain Entry elements", c.Tag)
			}
			key := en.SelectAttrValue("Key", "")
			if !slices.Contains(dictionaryKeys(c.Tag), key) {
				return enumFault(key, c.Tag+" key")
			}
			switch c.Tag {
			case "EmailAddresses":
				if len(en.ChildElements()) > 0 {
					return schemaFault("an email address entry has child elements")
				}
				ct.SetEmail(key, strings.TrimSpace(en.Text()))
				if name := en.SelectAttrValue("Name", ""); name != "" {
					for i := range ct.EmailAddresses {
						if ct.EmailAddresses[i].Key == key {
							ct.EmailAddresses[i].Name = name
						}
					}
				}
			case "PhoneNumbers":
				if len(en.ChildElements()) > 0 {
					return schemaFault("a phone number entry has child elements")
				}
				ct.SetPhone(key, en.Text())
			default:
				parts, f := sequence(en, nsTypes, addressParts)
				if f != nil {
					return f
				}
				a := PhysicalAddress{Key: key}
				for name, p := range parts {
					a.setPart(name, p.Text())
				}
				ct.SetAddress(a)
			}
		}
	}
	return nil
}

func decodeCalendarProp(d *decodedItem, ci *CalendarItem, c *etree.Element) *soapFault {
	text := c.Text()
	switch c.Tag {
	case "UID":
		ci.UID = text
	case "IsAllDayEvent":
		ci.IsAllDayEvent, _ = parseBool(text)
	case "LegacyFreeBusyStatus":
		if !slices.Contains(freeBusyStatuses, text) {
			return enumFault(text, "LegacyFreeBusyType")
		}
		ci.LegacyFreeBusyStatus = text
	case "Location":
		ci.Location = text
	case "RequiredAttendees", "OptionalAttendees", "Resources":
		list, f := decodeAttendees(d, c)
		if f != nil {
			return f
		}
		switch c.Tag {
		case "RequiredAttendees":
			ci.RequiredAttendees = list
		case "OptionalAttendees":
			ci.OptionalAttendees = list
		default:
			ci.Resources = list
		}
	case "Recurrence":
		r, f := decodeRecurrence(c)
		if f != nil {
			return f
		}
		ci.Recurrence = r
	case "StartTimeZone", "EndTimeZone":
		id := c.SelectAttrValue("Id", "")
		if id == "" {
			id = c.SelectAttrValue("Name", "")
		}
		if id == "" {
			d.fail(&ewsError{code: "ErrorCalendarInvalidTimeZone", text: c.Tag + " has no Id."})
			return nil
		}
		if c.Tag == "StartTimeZone" {
			ci.StartTimeZone = id
		} else {
			ci.EndTimeZone = id
		}
	}
	return nil
}

func decodeAttendees(d *decodedItem, c *etree.Element) ([]Attendee, *soapFault) {
	ks, f := kids(c, nsTypes)
	if f != nil {
		return nil, f
	}
	if len(ks) == 0 {
		return nil, schemaFault("%s is empty", c.Tag)
	}
	var out []Attendee
	for _, k := range ks {
		if k.Tag != "Attendee" {
			return nil, schemaFault("%s may only contain Attendee elements", c.Tag)
		}
		seq, f := sequence(k, nsTypes, []string{"Mailbox", "ResponseType", "LastResponseTime", "ProposedStart", "ProposedEnd"}, "Mailbox")
		if f != nil {
			return nil, f
		}
		name, addr, f := decodeMailbox(seq["Mailbox"])
		if f != nil {
			return nil, f
		}
		if addr == "" {
			d.fail(&ewsError{code: "ErrorInvalidRecipients", text: "An attendee has no email address."})
			continue
		}
		a := Attendee{Name: name, Address: addr}
		if rt := seq["ResponseType"]; rt != nil {
			if !slices.Contains(responseTypes, rt.Text()) {
				return nil, enumFault(rt.Text(), "ResponseTypeType")
			}
			a.ResponseType = rt.Text()
		}
		if lr := seq["LastResponseTime"]; lr != nil {
			t, err := parseDateTime(lr.Text(), time.UTC)
			if err != nil {
				return nil, schemaFault("LastResponseTime %q is not a dateTime", lr.Text())
			}
			a.LastResponseTime = t
		}
		out = append(out, a)
	}
	return out, nil
}

func decodeMailbox(e *etree.Element) (name, address string, f *soapFault) {
	seq, f := sequence(e, nsTypes, []string{"Name", "EmailAddress", "RoutingType", "MailboxType", "ItemId", "OriginalDisplayName"})
	if f != nil {
		return "", "", f
	}
	if n := seq["Name"]; n != nil {
		name = n.Text()
	}
	if a := seq["EmailAddress"]; a != nil {
		address = strings.TrimSpace(a.Text())
	}
	return name, address, nil
}

// recurrencePatterns lists each pattern element's children in schema order.
var recurrencePatterns = map[string][]string{
	"RelativeYearlyRecurrence":  {"DaysOfWeek", "DayOfWeekIndex", "Month"},
	"AbsoluteYearlyRecurrence":  {"DayOfMonth", "Month"},
	"RelativeMonthlyRecurrence": {"Interval", "DaysOfWeek", "DayOfWeekIndex"},
	"AbsoluteMonthlyRecurrence": {"Interval", "DayOfMonth"},
	"WeeklyRecurrence":          {"Interval", "DaysOfWeek", "FirstDayOfWeek"},
	"DailyRecurrence":           {"Interval"},
}

var recurrenceRanges = map[string][]string{
	"NoEndRecurrence":    {"StartDate"},
	"EndDateRecurrence":  {"StartDate", "EndDate"},
	"NumberedRecurrence": {"StartDate", "NumberOfOccurrences"},
}

func decodeRecurrence(c *etree.Element) (*Recurrence, *soapFault) {
	ks, f := kids(c, nsTypes)
	if f != nil {
		return nil, f
	}
	if len(ks) != 2 {
		return nil, schemaFault("Recurrence must contain a pattern and a range")
	}
	fields, ok := recurrencePatterns[ks[0].Tag]
	if !ok {
		return nil, schemaFault("the element %s is not a recurrence pattern", ks[0].FullTag())
	}
	required := slices.DeleteFunc(slices.Clone(fields), func(s string) bool { return s == "FirstDayOfWeek" })
	pat, f := sequence(ks[0], nsTypes, fields, required...)
	if f != nil {
		return nil, f
	}
	r := &Recurrence{Pattern: strings.TrimSuffix(ks[0].Tag, "Recurrence")}
	for name, e := range pat {
		v := strings.TrimSpace(e.Text())
		switch name {
		case "Interval", "DayOfMonth":
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, schemaFault("%s %q is not an int", name, v)
			}
			if name == "Interval" {
				r.Interval = n
			} else {
				r.DayOfMonth = n
			}
		case "DaysOfWeek":
			r.DaysOfWeek = strings.Fields(v)
			for _, day := range r.DaysOfWeek {
				if !slices.Contains(daysOfWeek, day) {
					return nil, enumFault(day, "DayOfWeekType")
				}
			}
			if r.Pattern != "Weekly" && len(r.DaysOfWeek) != 1 {
				return nil, schemaFault("%s takes exactly one day of week", ks[0].Tag)
			}
		case "DayOfWeekIndex":
			if !slices.Contains(dayOfWeekIndexes, v) {
				return nil, enumFault(v, "DayOfWeekIndexType")
			}
			r.DayOfWeekIndex = v
		case "Month":
			if !slices.Contains(monthNames, v) {
				return nil, enumFault(v, "MonthNamesType")
			}
			r.Month = v
		case "FirstDayOfWeek":
			if !slices.Contains(daysOfWeek, v) {
				return nil, enumFault(v, "DayOfWeekType")
			}
			r.FirstDayOfWeek = v
		}
	}
	rfields, ok := recurrenceRanges[ks[1].Tag]
	if !ok {
		return nil, schemaFault("the element %s is not a recurrence range", ks[1].FullTag())
	}
	rg, f := sequence(ks[1], nsTypes, rfields, rfields...)
	if f != nil {
		return nil, f
	}
	r.Range = strings.TrimSuffix(ks[1].Tag, "Recurrence")
	r.StartDate = strings.TrimSpace(rg["StartDate"].Text())
	if _, err := parseDate(r.StartDate); err != nil {
		return nil, schemaFault("StartDate %q is not a date", r.StartDate)
	}
	if e := rg["EndDate"]; e != nil {
		r.EndDate = strings.TrimSpace(e.Text())
		if _, err := parseDate(r.EndDate); err != nil {
			return nil, schemaFault("EndDate %q is not a date", r.EndDate)
		}
	}
	if e := rg["NumberOfOccurrences"]; e != nil {
		n, err := strconv.Atoi(strings.TrimSpace(e.Text()))
		if err != nil {
			return nil, schemaFault("NumberOfOccurrences %q is not an int", e.Text())
		}
		r.NumberOfOccurrences = n
	}
	return r, nil
}
