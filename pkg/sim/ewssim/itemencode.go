package ewssim

import (
	"html"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/beevik/etree"
)

// encodeMode says which operation renders items: FindItem and SyncFolderItems never return the
// properties Exchange serves from GetItem only.
type encodeMode uint8

const (
	modeGet encodeMode = iota + 1
	modeFind
	modeSync
)

// defaultProps is what the Default shape returns for each kind, besides the item id.
var defaultProps = map[itemKind][]string{
	kindContact: {"ParentFolderId", "ItemClass", "Subject", "Sensitivity", "Body", "Categories", "DateTimeCreated",
		"HasAttachments", "LastModifiedTime", "FileAs", "DisplayName", "GivenName", "MiddleName", "CompanyName",
		"EmailAddresses", "PhysicalAddresses", "PhoneNumbers", "Birthday", "Department", "JobTitle", "Surname"},
	kindCalendar: {"ParentFolderId", "ItemClass", "Subject", "Sensitivity", "Body", "Categories", "DateTimeCreated",
		"HasAttachments", "LastModifiedTime", "UID", "Start", "End", "IsAllDayEvent", "LegacyFreeBusyStatus",
		"Location", "IsMeeting", "IsCancelled", "IsRecurring", "CalendarItemType", "MyResponseType", "Organizer",
		"RequiredAttendees", "OptionalAttendees", "Resources", "Recurrence", "StartTimeZone", "EndTimeZone"},
	kindMessage: {"ParentFolderId", "ItemClass", "Subject", "Sensitivity", "Body", "Categories", "DateTimeCreated",
		"HasAttachments", "LastModifiedTime", "IsRead"},
}

// kindShape is a shape resolved for one item kind.
type kindShape struct {
	want map[string]bool
	// index restricts a dictionary to some keys (and, for addresses, parts) when the shape
	// asked for entries rather than the whole dictionary.
	index map[string]map[string][]string
	ext   []ExtendedProperty
}

// itemWriter renders stored items as EWS item elements.
type itemWriter struct {
	mb    *mailbox
	sh    *shape
	mode  encodeMode
	kinds map[itemKind]*kindShape
}

func newItemWriter(mb *mailbox, sh *shape, mode encodeMode) *itemWriter {
	return &itemWriter{mb: mb, sh: sh, mode: mode, kinds: map[itemKind]*kindShape{}}
}

// heavyRequest returns an error when the shape explicitly asks FindItem for a property only
// GetItem returns.
func (w *itemWriter) heavyRequest() *ewsError {
	if w.mode != modeFind {
		return nil
	}
	for _, p := range w.sh.paths {
		for _, k := range []itemKind{kindContact, kindCalendar, kindMessage} {
			if el, ok := p.element(k); ok && heavyProps[el] {
				return &ewsError{code: "ErrorInvalidPropertyRequest", text: "The property " + p.String() + " can't be used in FindItem requests."}
			}
		}
	}
	return nil
}

func (w *itemWriter) resolve(k itemKind) *kindShape {
	if ks, ok := w.kinds[k]; ok {
		return ks
	}
	ks := &kindShape{want: map[string]bool{"ItemId": true}, index: map[string]map[string][]string{}}
	switch w.sh.base {
	case "Default":
		for _, p := range defaultProps[k] {
			ks.want[p] = true
		}
	case "AllProperties":
		for _, p := range schemas[k].props {
			if p.name != "ExtendedProperty" {
				ks.want[p.name] = true
			}
		}
	}
	for _, p := range w.sh.paths {
		el, ok := p.element(k)
		if !ok {
			continue
		}
		switch p.kind {
		case pathField:
			ks.want[el] = true
			delete(ks.index, el)
		case pathIndexed:
			if ks.want[el] && ks.index[el] == nil {
				continue // the whole dictionary is already wanted
			}
			ks.want[el] = true
			if ks.index[el] == nil {
				ks.index[el] = map[string][]string{}
			}
			ks.index[el][p.index] = append(ks.index[el][p.index], dictionaryURIs[p.uri].part)
		case pathExtended:
			ks.ext = append(ks.ext, p.ext)
		}
	}
	if w.mode != modeGet {
		for el := range heavyProps {
			delete(ks.want, el)
		}
	}
	w.kinds[k] = ks
	return ks
}

// write appends si's element to parent.
func (w *itemWriter) write(parent *etree.Element, si *storedItem) {
	k := si.kind()
	ks := w.resolve(k)
	e := parent.CreateElement("t:" + k.element())
	for _, p := range schemas[k].props {
		if p.name == "ExtendedProperty" {
			w.writeExtended(e, si, ks.ext)
			continue
		}
		if !ks.want[p.name] {
			continue
		}
		if p.vt != vtComplex {
			if v, ok := simpleValue(si, w.mb, p.name); ok {
				e.CreateElement("t:" + p.name).SetText(v)
			}
			continue
		}
		w.writeComplex(e, si, p.name, ks.index[p.name])
	}
}

func (w *itemWriter) writeExtended(e *etree.Element, si *storedItem, want []ExtendedProperty) {
	props := si.Base().ExtendedProperties
	for _, req := range want {
		key := req.key()
		i := slices.IndexFunc(props, func(p ExtendedProperty) bool { return p.key() == key })
		if i < 0 {
			continue
		}
		p := props[i]
		x := e.CreateElement("t:ExtendedProperty")
		writeExtendedURI(x, p)
		if isArrayType(p.PropertyType) {
			vs := x.CreateElement("t:Values")
			for _, v := range p.Values {
				vs.CreateElement("t:Value").SetText(v)
			}
		} else {
			x.CreateElement("t:Value").SetText(p.Value)
		}
	}
}

// simpleValue is the text of a simple-typed property as Exchange returns it, and whether the
// item has one. Restrictions and sorting compare these texts too.
func simpleValue(si *storedItem, mb *mailbox, name string) (string, bool) {
	it := &si.Item
	b := it.Base()
	if v, ok := b.Other[name]; ok {
		return v, true
	}
	some := func(s string) (string, bool) { return s, s != "" }
	switch name {
	case "ItemClass":
		return b.ItemClass, true
	case "Subject":
		return some(b.Subject)
	case "Sensitivity":
		return orDefault(b.Sensitivity, "Normal"), true
	case "DateTimeReceived", "DateTimeSent", "DateTimeCreated":
		return formatDateTime(it.Created), true
	case "Size":
		return strconv.Itoa(itemSize(it)), true
	case "Importance":
		return orDefault(b.Importance, "Normal"), true
	case "IsSubmitted", "IsFromMe", "IsResend", "IsUnmodified", "HasAttachments", "IsAssociated":
		return "false", true
	case "IsDraft":
		// Exchange reports contacts as drafts (they were never sent).
		return formatBool(it.Contact != nil), true
	case "DisplayCc", "DisplayTo":
		return "", true
	case "Culture":
		return "en-US", true
	case "LastModifiedName":
		return mb.displayName, true
	case "LastModifiedTime":
		return formatDateTime(it.LastModified), true
	}
	if c := it.Contact; c != nil {
		switch name {
		case "FileAs":
			return c.FileAs, true
		case "DisplayName":
			return some(c.DisplayName)
		case "GivenName":
			return some(c.GivenName)
		case "MiddleName":
			return some(c.MiddleName)
		case "Surname":
			return some(c.Surname)
		case "CompanyName":
			return some(c.CompanyName)
		case "JobTitle":
			return some(c.JobTitle)
		case "Department":
			return some(c.Department)
		case "Birthday":
			if c.Birthday.IsZero() {
				return "", false
			}
			return formatDateTime(c.Birthday), true
		}
	}
	if c := it.CalendarItem; c != nil {
		switch name {
		case "UID":
			return c.UID, true
		case "DateTimeStamp":
			return formatDateTime(it.Created), true
		case "Start":
			return formatDateTime(c.Start), true
		case "End":
			return formatDateTime(c.End), true
		case "IsAllDayEvent":
			return formatBool(c.IsAllDayEvent), true
		case "LegacyFreeBusyStatus":
			return orDefault(c.LegacyFreeBusyStatus, "Busy"), true
		case "Location":
			return some(c.Location)
		case "IsMeeting":
			return formatBool(c.isMeeting()), true
		case "IsCancelled", "IsRecurring", "MeetingRequestWasSent", "IsOnlineMeeting":
			return "false", true
		case "IsResponseRequested", "ReminderIsSet":
			return "true", true
		case "ReminderMinutesBeforeStart":
			return "15", true
		case "ReminderDueBy":
			return formatDateTime(c.Start), true
		case "CalendarItemType":
			return c.CalendarItemType(), true
		case "MyResponseType":
			return "Organizer", true
		case "Duration":
			return formatDuration(c.End.Sub(c.Start)), true
		case "AppointmentSequenceNumber":
			return "0", true
		case "AppointmentState":
			if c.isMeeting() {
				return "1", true
			}
			return "0", true
		}
	}
	if m := it.Message; m != nil {
		switch name {
		case "IsRead":
			return formatBool(m.IsRead), true
		case "IsReadReceiptRequested", "IsDeliveryReceiptRequested", "IsResponseRequested", "ReminderIsSet":
			return "false", true
		}
	}
	return "", false
}

func (c *CalendarItem) isMeeting() bool {
	return len(c.RequiredAttendees)+len(c.OptionalAttendees)+len(c.Resources) > 0
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// itemSize approximates the item's Size the way a client would see it grow with content.
func itemSize(it *Item) int {
	b := it.Base()
	n := 512 + len(b.Subject) + len(b.Body)
	for _, p := range b.ExtendedProperties {
		n += 32 + len(p.Value)
		for _, v := range p.Values {
			n += len(v)
		}
	}
	if c := it.Contact; c != nil {
		n += len(c.DisplayName) + len(c.GivenName) + len(c.Surname) + len(c.CompanyName) +
			64*(len(c.EmailAddresses)+len(c.PhoneNumbers)+len(c.PhysicalAddresses))
	}
	if c := it.CalendarItem; c != nil {
		n += len(c.Location) + 96*(len(c.RequiredAttendees)+len(c.OptionalAttendees)+len(c.Resources))
	}
	return n
}

func (w *itemWriter) writeComplex(e *etree.Element, si *storedItem, name string, index map[string][]string) {
	it := &si.Item
	b := it.Base()
	switch name {
	case "ItemId":
		idElement(e, "t:ItemId", it.ItemID, it.ChangeKey)
	case "ParentFolderId":
		idElement(e, "t:ParentFolderId", si.folder.id, si.folder.changeKey)
	case "Body":
		bt, text := renderBody(b.Body, orDefault(b.BodyType, "Text"), w.sh.bodyType)
		body := e.CreateElement("t:Body")
		body.CreateAttr("BodyType", bt)
		if text != "" {
			body.SetText(text)
		}
	case "Categories":
		if len(b.Categories) > 0 {
			cs := e.CreateElement("t:Categories")
			for _, c := range b.Categories {
				cs.CreateElement("t:String").SetText(c)
			}
		}
	case "EffectiveRights":
		r := e.CreateElement("t:EffectiveRights")
		for _, x := range [][2]string{{"CreateAssociated", "false"}, {"CreateContents", "false"}, {"CreateHierarchy", "false"},
			{"Delete", "true"}, {"Modify", "true"}, {"Read", "true"}} {
			r.CreateElement("t:" + x[0]).SetText(x[1])
		}
	}
	if c := it.Contact; c != nil {
		w.writeContactComplex(e, c, name, index)
	}
	if c := it.CalendarItem; c != nil {
		w.writeCalendarComplex(e, c, name)
	}
}

func (w *itemWriter) writeContactComplex(e *etree.Element, c *Contact, name string, index map[string][]string) {
	wanted := func(key string) ([]string, bool) {
		if index == nil {
			return nil, true
		}
		parts, ok := index[key]
		return parts, ok
	}
	switch name {
	case "CompleteName":
		if c.GivenName == "" && c.MiddleName == "" && c.Surname == "" && c.DisplayName == "" {
			return
		}
		cn := e.CreateElement("t:CompleteName")
		for _, x := range [][2]string{{"FirstName", c.GivenName}, {"MiddleName", c.MiddleName}, {"LastName", c.Surname}, {"FullName", c.DisplayName}} {
			if x[1] != "" {
				cn.CreateElement("t:" + x[0]).SetText(x[1])
			}
		}
	case "EmailAddresses":
		var dict *etree.Element
		for _, key := range emailKeys {
			addr := c.Email(key)
			if _, ok := wanted(key); !ok || addr == "" {
				continue
			}
			if dict == nil {
				dict = e.CreateElement("t:EmailAddresses")
			}
			entry := dict.CreateElement("t:Entry")
			entry.CreateAttr("Key", key)
			entry.CreateAttr("Name", orDefault(c.emailName(key), addr))
			entry.CreateAttr("RoutingType", "SMTP")
			entry.CreateAttr("MailboxType", "Contact")
			entry.SetText(addr)
		}
	case "PhysicalAddresses":
		var dict *etree.Element
		for _, key := range addressKeys {
			a, ok := c.Address(key)
			parts, want := wanted(key)
			if !ok || !want {
				continue
			}
			if dict == nil {
				dict = e.CreateElement("t:PhysicalAddresses")
			}
			entry := dict.CreateElement("t:Entry")
			entry.CreateAttr("Key", key)
			for _, part := range addressParts {
				v := a.part(part)
				if v == "" || (parts != nil && !slices.Contains(parts, part)) {
					continue
				}
				entry.CreateElement("t:" + part).SetText(v)
			}
		}
	case "PhoneNumbers":
		var dict *etree.Element
		for _, key := range phoneKeys {
			n := c.Phone(key)
			if _, ok := wanted(key); !ok || n == "" {
				continue
			}
			if dict == nil {
				dict = e.CreateElement("t:PhoneNumbers")
			}
			entry := dict.CreateElement("t:Entry")
			entry.CreateAttr("Key", key)
			entry.SetText(n)
		}
	}
}

func (c *Contact) emailName(key string) string {
	for _, e := range c.EmailAddresses {
		if e.Key == key {
			return e.Name
		}
	}
	return ""
}

func (a PhysicalAddress) part(name string) string {
	switch name {
	case "Street":
		return a.Street
	case "City":
		return a.City
	case "State":
		return a.State
	case "CountryOrRegion":
		return a.CountryOrRegion
	case "PostalCode":
		return a.PostalCode
	}
	return ""
}

func (a *PhysicalAddress) setPart(name, v string) {
	switch name {
	case "Street":
		a.Street = v
	case "City":
		a.City = v
	case "State":
		a.State = v
	case "CountryOrRegion":
		a.CountryOrRegion = v
	case "PostalCode":
		a.PostalCode = v
	}
}

func (w *itemWriter) writeCalendarComplex(e *etree.Element, c *CalendarItem, name string) {
	switch name {
	case "Organizer":
		if c.Organizer != nil {
			writeMailbox(e.CreateElement("t:Organizer"), c.Organizer.Name, c.Organizer.Address)
		}
	case "RequiredAttendees", "OptionalAttendees", "Resources":
		list := map[string][]Attendee{"RequiredAttendees": c.RequiredAttendees, "OptionalAttendees": c.OptionalAttendees, "Resources": c.Resources}[name]
		if len(list) == 0 {
			return
		}
		l := e.CreateElement("t:" + name)
		for _, a := range list {
			at := l.CreateElement("t:Attendee")
			writeMailbox(at, a.Name, a.Address)
			at.CreateElement("t:ResponseType").SetText(orDefault(a.ResponseType, "Unknown"))
			if !a.LastResponseTime.IsZero() {
				at.CreateElement("t:LastResponseTime").SetText(formatDateTime(a.LastResponseTime))
			}
		}
	case "Recurrence":
		if c.Recurrence != nil {
			writeRecurrence(e.CreateElement("t:Recurrence"), c.Recurrence)
		}
	case "ModifiedOccurrences":
		if len(c.ModifiedOccurrences) == 0 {
			return
		}
		l := e.CreateElement("t:ModifiedOccurrences")
		for _, o := range c.ModifiedOccurrences {
			oc := l.CreateElement("t:Occurrence")
			id := oc.CreateElement("t:ItemId")
			id.CreateAttr("Id", o.ItemID)
			oc.CreateElement("t:Start").SetText(formatDateTime(o.Start))
			oc.CreateElement("t:End").SetText(formatDateTime(o.End))
			oc.CreateElement("t:OriginalStart").SetText(formatDateTime(o.OriginalStart))
		}
	case "DeletedOccurrences":
		if len(c.DeletedOccurrences) == 0 {
			return
		}
		l := e.CreateElement("t:DeletedOccurrences")
		for _, t := range c.DeletedOccurrences {
			l.CreateElement("t:DeletedOccurrence").CreateElement("t:Start").SetText(formatDateTime(t))
		}
	case "StartTimeZone", "EndTimeZone":
		id := c.StartTimeZone
		if name == "EndTimeZone" {
			id = c.EndTimeZone
		}
		if id != "" {
			e.CreateElement("t:"+name).CreateAttr("Id", id)
		}
	}
}

func writeMailbox(parent *etree.Element, name, address string) {
	mb := parent.CreateElement("t:Mailbox")
	if name != "" {
		mb.CreateElement("t:Name").SetText(name)
	}
	mb.CreateElement("t:EmailAddress").SetText(address)
	mb.CreateElement("t:RoutingType").SetText("SMTP")
	mb.CreateElement("t:MailboxType").SetText("Mailbox")
}

func writeRecurrence(e *etree.Element, r *Recurrence) {
	p := e.CreateElement("t:" + r.Pattern + "Recurrence")
	days := strings.Join(r.DaysOfWeek, " ")
	switch r.Pattern {
	case "RelativeYearly":
		p.CreateElement("t:DaysOfWeek").SetText(days)
		p.CreateElement("t:DayOfWeekIndex").SetText(r.DayOfWeekIndex)
		p.CreateElement("t:Month").SetText(r.Month)
	case "AbsoluteYearly":
		p.CreateElement("t:DayOfMonth").SetText(strconv.Itoa(r.DayOfMonth))
		p.CreateElement("t:Month").SetText(r.Month)
	case "RelativeMonthly":
		p.CreateElement("t:Interval").SetText(strconv.Itoa(r.Interval))
		p.CreateElement("t:DaysOfWeek").SetText(days)
		p.CreateElement("t:DayOfWeekIndex").SetText(r.DayOfWeekIndex)
	case "AbsoluteMonthly":
		p.CreateElement("t:Interval").SetText(strconv.Itoa(r.Interval))
		p.CreateElement("t:DayOfMonth").SetText(strconv.Itoa(r.DayOfMonth))
	case "Weekly":
		p.CreateElement("t:Interval").SetText(strconv.Itoa(r.Interval))
		p.CreateElement("t:DaysOfWeek").SetText(days)
		if r.FirstDayOfWeek != "" {
			p.CreateElement("t:FirstDayOfWeek").SetText(r.FirstDayOfWeek)
		}
	case "Daily":
		p.CreateElement("t:Interval").SetText(strconv.Itoa(r.Interval))
	}
	rg := e.CreateElement("t:" + r.Range + "Recurrence")
	rg.CreateElement("t:StartDate").SetText(r.StartDate)
	switch r.Range {
	case "EndDate":
		rg.CreateElement("t:EndDate").SetText(r.EndDate)
	case "Numbered":
		rg.CreateElement("t:NumberOfOccurrences").SetText(strconv.Itoa(r.NumberOfOccurrences))
	}
}

var (
	htmlTags   = regexp.MustCompile(`(?s)<[^>]*>`)
	htmlBreaks = regexp.MustCompile(`(?i)<br\s*/?>|</p>|</div>`)
)

// renderBody converts the stored body to the type the shape asked for, roughly as Exchange
// does: text becomes a minimal HTML document, HTML loses its markup.
func renderBody(body, stored, want string) (bodyType, text string) {
	switch {
	case want == "Best" || want == stored:
		return stored, body
	case want == "HTML":
		if body == "" {
			return "HTML", ""
		}
		lines := strings.Split(html.EscapeString(body), "\n")
		return "HTML", "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body><div>" +
			strings.Join(lines, "<br>") + "</div></body></html>"
	default:
		text = htmlBreaks.ReplaceAllString(body, "\n")
		text = html.UnescapeString(htmlTags.ReplaceAllString(text, ""))
		return "Text", strings.TrimSpace(text)
	}
}
