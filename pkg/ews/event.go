package ews

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

var sensitivities = map[string]tandemv1.Sensitivity{
	"Normal":       tandemv1.Sensitivity_SENSITIVITY_NORMAL,
	"Personal":     tandemv1.Sensitivity_SENSITIVITY_PERSONAL,
	"Private":      tandemv1.Sensitivity_SENSITIVITY_PRIVATE,
	"Confidential": tandemv1.Sensitivity_SENSITIVITY_CONFIDENTIAL,
}

var freeBusy = map[string]tandemv1.ShowAs{
	"Free":             tandemv1.ShowAs_SHOW_AS_FREE,
	"Tentative":        tandemv1.ShowAs_SHOW_AS_TENTATIVE,
	"Busy":             tandemv1.ShowAs_SHOW_AS_BUSY,
	"OOF":              tandemv1.ShowAs_SHOW_AS_OUT_OF_OFFICE,
	"WorkingElsewhere": tandemv1.ShowAs_SHOW_AS_WORKING_ELSEWHERE,
}

var responseTypes = map[string]tandemv1.ResponseType{
	"Organizer":          tandemv1.ResponseType_RESPONSE_TYPE_ORGANIZER,
	"Tentative":          tandemv1.ResponseType_RESPONSE_TYPE_TENTATIVE,
	"Accept":             tandemv1.ResponseType_RESPONSE_TYPE_ACCEPTED,
	"Decline":            tandemv1.ResponseType_RESPONSE_TYPE_DECLINED,
	"NoResponseReceived": tandemv1.ResponseType_RESPONSE_TYPE_NO_RESPONSE,
}

var itemTypes = map[string]tandemv1.EventType{
	"Single":          tandemv1.EventType_EVENT_TYPE_SINGLE,
	"Occurrence":      tandemv1.EventType_EVENT_TYPE_OCCURRENCE,
	"Exception":       tandemv1.EventType_EVENT_TYPE_EXCEPTION,
	"RecurringMaster": tandemv1.EventType_EVENT_TYPE_SERIES_MASTER,
}

var weekdays = map[string]tandemv1.DayOfWeek{
	"Sunday":     tandemv1.DayOfWeek_DAY_OF_WEEK_SUNDAY,
	"Monday":     tandemv1.DayOfWeek_DAY_OF_WEEK_MONDAY,
	"Tuesday":    tandemv1.DayOfWeek_DAY_OF_WEEK_TUESDAY,
	"Wednesday":  tandemv1.DayOfWeek_DAY_OF_WEEK_WEDNESDAY,
	"Thursday":   tandemv1.DayOfWeek_DAY_OF_WEEK_THURSDAY,
	"Friday":     tandemv1.DayOfWeek_DAY_OF_WEEK_FRIDAY,
	"Saturday":   tandemv1.DayOfWeek_DAY_OF_WEEK_SATURDAY,
	"Day":        tandemv1.DayOfWeek_DAY_OF_WEEK_DAY,
	"Weekday":    tandemv1.DayOfWeek_DAY_OF_WEEK_WEEKDAY,
	"WeekendDay": tandemv1.DayOfWeek_DAY_OF_WEEK_WEEKEND_DAY,
}

var weekIndexes = map[string]tandemv1.WeekIndex{
	"First":  tandemv1.WeekIndex_WEEK_INDEX_FIRST,
	"Second": tandemv1.WeekIndex_WEEK_INDEX_SECOND,
	"Third":  tandemv1.WeekIndex_WEEK_INDEX_THIRD,
	"Fourth": tandemv1.WeekIndex_WEEK_INDEX_FOURTH,
	"Last":   tandemv1.WeekIndex_WEEK_INDEX_LAST,
}

// nameOf returns the EWS name of a canonical enum value in m.
func nameOf[V comparable](m map[string]V, v V) (string, bool) {
	for k, x := range m {
		if x == v {
			return k, true
		}
	}
	return "", false
}

// eventFromXML maps a t:CalendarItem to the canonical event. Unreadable optional values are
// left out rather than failing the whole item.
func eventFromXML(e *etree.Element) *tandemv1.Event {
	ev := &tandemv1.Event{
		Subject:     childText(e, nsTypes, "Subject"),
		Location:    childText(e, nsTypes, "Location"),
		Body:        childText(e, nsTypes, "Body"),
		Uid:         childText(e, nsTypes, "UID"),
		Sensitivity: sensitivities[childText(e, nsTypes, "Sensitivity")],
		ShowAs:      freeBusy[childText(e, nsTypes, "LegacyFreeBusyStatus")],
		Type:        itemTypes[childText(e, nsTypes, "CalendarItemType")],
		IsAllDay:    childText(e, nsTypes, "IsAllDayEvent") == "true",
	}
	for _, s := range children(child(e, nsTypes, "Categories"), nsTypes, "String") {
		ev.Categories = append(ev.Categories, s.Text())
	}
	if tz := child(e, nsTypes, "StartTimeZone"); tz != nil {
		ev.StartTimeZone = tz.SelectAttrValue("Id", "")
	}
	if tz := child(e, nsTypes, "EndTimeZone"); tz != nil {
		ev.EndTimeZone = tz.SelectAttrValue("Id", "")
	}
	start, startErr := parseDateTime(childText(e, nsTypes, "Start"))
	end, endErr := parseDateTime(childText(e, nsTypes, "End"))
	if startErr == nil {
		ev.Start = timestamppb.New(start)
	}
	if endErr == nil {
		ev.End = timestamppb.New(end)
	}
	if ev.IsAllDay && startErr == nil {
		ev.StartDate = allDayDate(start, ev.StartTimeZone)
		ev.EndDate = ev.StartDate
		if endErr == nil && end.After(start) {
			endZone := ev.EndTimeZone
			if endZone == "" {
				endZone = ev.StartTimeZone
			}
			// Exchange's End is the midnight after the last day; the canonical end date is inclusive.
			ev.EndDate = addDays(allDayDate(end, endZone), -1)
		}
	}
	if os := childText(e, nsTypes, "OriginalStart"); os != "" {
		if t, err := parseDateTime(os); err == nil {
			ev.OriginalStart = timestamppb.New(t)
		}
	}
	if mb := child(child(e, nsTypes, "Organizer"), nsTypes, "Mailbox"); mb != nil {
		ev.Organizer = &tandemv1.Attendee{
			Email:    childText(mb, nsTypes, "EmailAddress"),
			Name:     childText(mb, nsTypes, "Name"),
			Response: tandemv1.ResponseType_RESPONSE_TYPE_ORGANIZER,
		}
	}
	for _, group := range []struct {
		tag string
		typ tandemv1.AttendeeType
	}{
		{"RequiredAttendees", tandemv1.AttendeeType_ATTENDEE_TYPE_REQUIRED},
		{"OptionalAttendees", tandemv1.AttendeeType_ATTENDEE_TYPE_OPTIONAL},
		{"Resources", tandemv1.AttendeeType_ATTENDEE_TYPE_RESOURCE},
	} {
		for _, a := range children(child(e, nsTypes, group.tag), nsTypes, "Attendee") {
			mb := child(a, nsTypes, "Mailbox")
			att := &tandemv1.Attendee{
				Email:    childText(mb, nsTypes, "EmailAddress"),
				Name:     childText(mb, nsTypes, "Name"),
				Type:     group.typ,
				Response: responseTypes[childText(a, nsTypes, "ResponseType")],
			}
			if lr := childText(a, nsTypes, "LastResponseTime"); lr != "" {
				if t, err := parseDateTime(lr); err == nil {
					att.RespondedAt = timestamppb.New(t)
				}
			}
			ev.Attendees = append(ev.Attendees, att)
		}
	}
	if r := child(e, nsTypes, "Recurrence"); r != nil {
		ev.Recurrence = recurrenceFromXML(r)
		if ev.Recurrence != nil {
			ev.Recurrence.TimeZone = ev.StartTimeZone
			for _, d := range children(child(e, nsTypes, "DeletedOccurrences"), nsTypes, "DeletedOccurrence") {
				if t, err := parseDateTime(childText(d, nsTypes, "Start")); err == nil {
					ev.Recurrence.DeletedOccurrences = append(ev.Recurrence.DeletedOccurrences, timestamppb.New(t))
				}
			}
			for _, o := range children(child(e, nsTypes, "ModifiedOccurrences"), nsTypes, "Occurrence") {
				if t, err := parseDateTime(childText(o, nsTypes, "OriginalStart")); err == nil {
					ev.Recurrence.ModifiedOccurrences = append(ev.Recurrence.ModifiedOccurrences, timestamppb.New(t))
				}
			}
		}
	}
	return ev
}

// recurrenceFromXML maps a t:Recurrence; nil when its pattern is unknown.
func recurrenceFromXML(e *etree.Element) *tandemv1.Recurrence {
	r := &tandemv1.Recurrence{}
	var pattern *etree.Element
	for _, p := range []struct {
		tag string
		typ tandemv1.RecurrencePatternType
	}{
		{"DailyRecurrence", tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_DAILY},
		{"WeeklyRecurrence", tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_WEEKLY},
		{"AbsoluteMonthlyRecurrence", tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_ABSOLUTE_MONTHLY},
		{"RelativeMonthlyRecurrence", tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_RELATIVE_MONTHLY},
		{"AbsoluteYearlyRecurrence", tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_ABSOLUTE_YEARLY},
		{"RelativeYearlyRecurrence", tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_RELATIVE_YEARLY},
	} {
		if pattern = child(e, nsTypes, p.tag); pattern != nil {
			r.Pattern = p.typ
			break
		}
	}
	if pattern == nil {
		return nil
	}
	if v, err := parseInt32(childText(pattern, nsTypes, "Interval")); err == nil {
		r.Interval = v
	}
	if r.Interval == 0 {
		// Yearly patterns have no interval in EWS: they repeat every year.
		r.Interval = 1
	}
	for _, d := range strings.Fields(childText(pattern, nsTypes, "DaysOfWeek")) {
		if w, ok := weekdays[d]; ok {
			r.DaysOfWeek = append(r.DaysOfWeek, w)
		}
	}
	r.FirstDayOfWeek = weekdays[childText(pattern, nsTypes, "FirstDayOfWeek")]
	r.Index = weekIndexes[childText(pattern, nsTypes, "DayOfWeekIndex")]
	if v, err := parseInt32(childText(pattern, nsTypes, "DayOfMonth")); err == nil {
		r.DayOfMonth = v
	}
	if m := childText(pattern, nsTypes, "Month"); m != "" {
		if t, err := time.Parse("January", m); err == nil {
			r.Month = int32(t.Month())
		}
	}
	for _, tag := range []string{"NoEndRecurrence", "EndDateRecurrence", "NumberedRecurrence"} {
		rng := child(e, nsTypes, tag)
		if rng == nil {
			continue
		}
		if d, err := parseDate(childText(rng, nsTypes, "StartDate")); err == nil {
			r.StartDate = d
		}
		if d, err := parseDate(childText(rng, nsTypes, "EndDate")); err == nil {
			r.EndDate = d
		}
		if n, err := parseInt32(childText(rng, nsTypes, "NumberOfOccurrences")); err == nil {
			r.NumberOfOccurrences = n
		}
		break
	}
	return r
}

// invalidEvent reports an event that cannot be written.
func invalidEvent(field, format string, args ...any) error {
	return &syncerr.Error{Code: syncerr.SyncMalformedRecord, Detail: fmt.Sprintf(format, args...), Field: field}
}

// timing is when an event happens, as Exchange wants it written.
type timing struct {
	start, end     time.Time
	allDay         bool
	startTZ, endTZ string
	startDate      *tandemv1.Date
}

// eventTiming resolves an event's start and end. All-day events run from midnight of the
// start date to midnight after the (inclusive) end date in the event's time zone; when Tandem
// does not know that zone, the event is written in UTC so that Exchange and Tandem agree on
// where midnight is.
func eventTiming(ev *tandemv1.Event) (timing, error) {
	t := timing{allDay: ev.GetIsAllDay(), startTZ: ev.GetStartTimeZone(), endTZ: ev.GetEndTimeZone()}
	if t.endTZ == "" {
		t.endTZ = t.startTZ
	}
	if !t.allDay {
		if ev.GetStart() == nil || ev.GetEnd() == nil {
			return timing{}, invalidEvent("start", "event needs a start and an end")
		}
		t.start, t.end = ev.GetStart().AsTime(), ev.GetEnd().AsTime()
		if t.end.Before(t.start) {
			return timing{}, invalidEvent("end", "event ends (%s) before it starts (%s)", formatDateTime(t.end), formatDateTime(t.start))
		}
		loc := time.UTC
		if l, ok := zoneLocation(t.startTZ); ok {
			loc = l
		}
		t.startDate = dateOf(t.start.In(loc))
		return t, nil
	}
	loc, ok := zoneLocation(t.startTZ)
	if !ok {
		loc, t.startTZ, t.endTZ = time.UTC, "UTC", "UTC"
	} else {
		t.endTZ = t.startTZ
	}
	first := ev.GetStartDate()
	if !validDate(first) {
		if ev.GetStart() == nil {
			return timing{}, invalidEvent("start_date", "all-day event needs a start date")
		}
		first = dateOf(ev.GetStart().AsTime().In(loc))
	}
	last := ev.GetEndDate()
	if !validDate(last) {
		last = first
		if ev.GetEnd() != nil && ev.GetEnd().AsTime().After(midnight(first, loc)) {
			last = dateOf(ev.GetEnd().AsTime().In(loc).Add(-time.Nanosecond))
		}
	}
	if midnight(last, time.UTC).Before(midnight(first, time.UTC)) {
		return timing{}, invalidEvent("end_date", "all-day event ends (%s) before it starts (%s)", formatDate(last), formatDate(first))
	}
	t.start, t.end = midnight(first, loc), midnight(addDays(last, 1), loc)
	t.startDate = first
	return t, nil
}

func attendeeList(parent *etree.Element, tag string, atts []*tandemv1.Attendee) {
	if len(atts) == 0 {
		return
	}
	list := add(parent, tag)
	for _, a := range atts {
		mb := add(add(list, "t:Attendee"), "t:Mailbox")
		optText(mb, "t:Name", a.GetName())
		addText(mb, "t:EmailAddress", a.GetEmail())
	}
}

// attendeesByType splits attendees into required, optional and resources; attendees without
// an email address cannot be invited and are left out.
func attendeesByType(atts []*tandemv1.Attendee) (required, optional, resources []*tandemv1.Attendee) {
	for _, a := range atts {
		if a.GetEmail() == "" {
			continue
		}
		switch a.GetType() {
		case tandemv1.AttendeeType_ATTENDEE_TYPE_OPTIONAL:
			optional = append(optional, a)
		case tandemv1.AttendeeType_ATTENDEE_TYPE_RESOURCE:
			resources = append(resources, a)
		default:
			required = append(required, a)
		}
	}
	return required, optional, resources
}

func categoriesXML(parent *etree.Element, cats []string) {
	list := add(parent, "t:Categories")
	for _, c := range cats {
		addText(list, "t:String", c)
	}
}

// eventToXML appends a t:CalendarItem for CreateItem, children in CalendarItemType's order.
func eventToXML(parent *etree.Element, ev *tandemv1.Event, syncKey string) error {
	t, err := eventTiming(ev)
	if err != nil {
		return err
	}
	var recurrence *etree.Element
	if ev.GetRecurrence() != nil {
		if recurrence, err = recurrenceToXML(ev.GetRecurrence(), t.startDate); err != nil {
			return err
		}
	}
	e := add(parent, "t:CalendarItem")
	optText(e, "t:Subject", ev.GetSubject())
	addText(e, "t:Sensitivity", sensitivityName(ev.GetSensitivity()))
	if ev.GetBody() != "" {
		addText(e, "t:Body", ev.GetBody()).CreateAttr("BodyType", "Text")
	}
	if len(ev.GetCategories()) > 0 {
		categoriesXML(e, ev.GetCategories())
	}
	if syncKey != "" {
		syncKeyProperty(e, syncKey)
	}
	optText(e, "t:UID", ev.GetUid())
	addText(e, "t:Start", formatDateTime(t.start))
	addText(e, "t:End", formatDateTime(t.end))
	addText(e, "t:IsAllDayEvent", strconv.FormatBool(t.allDay))
	addText(e, "t:LegacyFreeBusyStatus", showAsName(ev.GetShowAs()))
	optText(e, "t:Location", ev.GetLocation())
	required, optional, resources := attendeesByType(ev.GetAttendees())
	attendeeList(e, "t:RequiredAttendees", required)
	attendeeList(e, "t:OptionalAttendees", optional)
	attendeeList(e, "t:Resources", resources)
	if recurrence != nil {
		e.AddChild(recurrence)
	}
	if t.startTZ != "" {
		add(e, "t:StartTimeZone").CreateAttr("Id", t.startTZ)
		add(e, "t:EndTimeZone").CreateAttr("Id", t.endTZ)
	}
	return nil
}

func sensitivityName(s tandemv1.Sensitivity) string {
	if n, ok := nameOf(sensitivities, s); ok {
		return n
	}
	return "Normal"
}

func showAsName(s tandemv1.ShowAs) string {
	if n, ok := nameOf(freeBusy, s); ok {
		return n
	}
	return "Busy"
}

// recurrenceToXML builds a t:Recurrence. seriesStart is the date of the first occurrence,
// used when the recurrence does not state its own start date.
func recurrenceToXML(r *tandemv1.Recurrence, seriesStart *tandemv1.Date) (*etree.Element, error) {
	e := etree.NewElement("t:Recurrence")
	interval := strconv.Itoa(int(max(r.GetInterval(), 1)))
	switch r.GetPattern() {
	case tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_DAILY:
		addText(add(e, "t:DailyRecurrence"), "t:Interval", interval)
	case tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_WEEKLY:
		if len(r.GetDaysOfWeek()) == 0 {
			return nil, invalidEvent("recurrence", "weekly recurrence needs days of the week")
		}
		days := make([]string, 0, len(r.GetDaysOfWeek()))
		for _, d := range r.GetDaysOfWeek() {
			n, err := dayName(d)
			if err != nil {
				return nil, err
			}
			days = append(days, n)
		}
		p := add(e, "t:WeeklyRecurrence")
		addText(p, "t:Interval", interval)
		addText(p, "t:DaysOfWeek", strings.Join(days, " "))
		if r.GetFirstDayOfWeek() != tandemv1.DayOfWeek_DAY_OF_WEEK_UNSPECIFIED {
			n, err := dayName(r.GetFirstDayOfWeek())
			if err != nil {
				return nil, err
			}
			addText(p, "t:FirstDayOfWeek", n)
		}
	case tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_ABSOLUTE_MONTHLY:
		dom, err := dayOfMonth(r)
		if err != nil {
			return nil, err
		}
		p := add(e, "t:AbsoluteMonthlyRecurrence")
		addText(p, "t:Interval", interval)
		addText(p, "t:DayOfMonth", dom)
	case tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_RELATIVE_MONTHLY:
		day, index, err := relativeDay(r)
		if err != nil {
			return nil, err
		}
		p := add(e, "t:RelativeMonthlyRecurrence")
		addText(p, "t:Interval", interval)
		addText(p, "t:DaysOfWeek", day)
		addText(p, "t:DayOfWeekIndex", index)
	case tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_ABSOLUTE_YEARLY:
		dom, err := dayOfMonth(r)
		if err != nil {
			return nil, err
		}
		month, err := monthName(r)
		if err != nil {
			return nil, err
		}
		p := add(e, "t:AbsoluteYearlyRecurrence")
		addText(p, "t:DayOfMonth", dom)
		addText(p, "t:Month", month)
	case tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_RELATIVE_YEARLY:
		day, index, err := relativeDay(r)
		if err != nil {
			return nil, err
		}
		month, err := monthName(r)
		if err != nil {
			return nil, err
		}
		p := add(e, "t:RelativeYearlyRecurrence")
		addText(p, "t:DaysOfWeek", day)
		addText(p, "t:DayOfWeekIndex", index)
		addText(p, "t:Month", month)
	default:
		return nil, invalidEvent("recurrence", "recurrence pattern %v is not valid", r.GetPattern())
	}
	start := r.GetStartDate()
	if !validDate(start) {
		start = seriesStart
	}
	if !validDate(start) {
		return nil, invalidEvent("recurrence", "recurrence needs a start date")
	}
	switch {
	case validDate(r.GetEndDate()):
		rng := add(e, "t:EndDateRecurrence")
		addText(rng, "t:StartDate", formatDate(start))
		addText(rng, "t:EndDate", formatDate(r.GetEndDate()))
	case r.GetNumberOfOccurrences() > 0:
		rng := add(e, "t:NumberedRecurrence")
		addText(rng, "t:StartDate", formatDate(start))
		addText(rng, "t:NumberOfOccurrences", strconv.Itoa(int(r.GetNumberOfOccurrences())))
	default:
		addText(add(e, "t:NoEndRecurrence"), "t:StartDate", formatDate(start))
	}
	return e, nil
}

func dayName(d tandemv1.DayOfWeek) (string, error) {
	if n, ok := nameOf(weekdays, d); ok {
		return n, nil
	}
	return "", invalidEvent("recurrence", "recurrence day of week %v is not valid", d)
}

// relativeDay returns the day and week index of a relative pattern. EWS relative patterns
// take a single day (which may be a group such as Weekday).
func relativeDay(r *tandemv1.Recurrence) (day, index string, err error) {
	if len(r.GetDaysOfWeek()) != 1 {
		return "", "", invalidEvent("recurrence", "%v recurrence needs exactly one day of the week", r.GetPattern())
	}
	if day, err = dayName(r.GetDaysOfWeek()[0]); err != nil {
		return "", "", err
	}
	index, ok := nameOf(weekIndexes, r.GetIndex())
	if !ok {
		return "", "", invalidEvent("recurrence", "%v recurrence needs a week index", r.GetPattern())
	}
	return day, index, nil
}

func dayOfMonth(r *tandemv1.Recurrence) (string, error) {
	if r.GetDayOfMonth() < 1 || r.GetDayOfMonth() > 31 {
		return "", invalidEvent("recurrence", "recurrence day of month %d is not valid", r.GetDayOfMonth())
	}
	return strconv.Itoa(int(r.GetDayOfMonth())), nil
}

func monthName(r *tandemv1.Recurrence) (string, error) {
	if r.GetMonth() < 1 || r.GetMonth() > 12 {
		return "", invalidEvent("recurrence", "recurrence month %d is not valid", r.GetMonth())
	}
	return time.Month(r.GetMonth()).String(), nil
}

// eventFieldNames are the canonical event fields Exchange holds, in update order.
var eventFieldNames = []string{
	"subject", "location", "body", "start", "end", "start_time_zone", "end_time_zone", "is_all_day",
	"start_date", "end_date", "sensitivity", "show_as", "attendees", "recurrence", "categories",
}

// eventReadOnlyFields are canonical fields Exchange sets itself (or that never go to Exchange);
// updates listing them skip them.
var eventReadOnlyFields = map[string]bool{
	"organizer": true, "type": true, "uid": true, "original_start": true,
	"salesforce_who_id": true, "salesforce_what_id": true,
}

// timingFields are written together: Start and End depend on all of them.
var timingFields = map[string]bool{
	"start": true, "end": true, "start_time_zone": true, "end_time_zone": true,
	"is_all_day": true, "start_date": true, "end_date": true,
}

// eventChanges returns the UpdateItem changes writing fields of ev (all when fields is empty).
func eventChanges(ev *tandemv1.Event, fields []string) ([]fieldChange, error) {
	const item = "t:CalendarItem"
	var out []fieldChange
	timingDone := false
	for _, f := range selectFields(fields, eventFieldNames) {
		switch {
		case f == "subject":
			out = append(out, textField("item:Subject", item, "t:Subject", ev.GetSubject()))
		case f == "location":
			out = append(out, textField("calendar:Location", item, "t:Location", ev.GetLocation()))
		case f == "body":
			out = append(out, bodyField(item, ev.GetBody()))
		case f == "sensitivity":
			out = append(out, textField("item:Sensitivity", item, "t:Sensitivity", sensitivityName(ev.GetSensitivity())))
		case f == "show_as":
			out = append(out, textField("calendar:LegacyFreeBusyStatus", item, "t:LegacyFreeBusyStatus", showAsName(ev.GetShowAs())))
		case f == "categories":
			if len(ev.GetCategories()) == 0 {
				out = append(out, deleteField("item:Categories", ""))
			} else {
				out = append(out, setField("item:Categories", "", item, func(e *etree.Element) { categoriesXML(e, ev.GetCategories()) }))
			}
		case f == "attendees":
			required, optional, resources := attendeesByType(ev.GetAttendees())
			for _, g := range []struct {
				uri, tag string
				list     []*tandemv1.Attendee
			}{
				{"calendar:RequiredAttendees", "t:RequiredAttendees", required},
				{"calendar:OptionalAttendees", "t:OptionalAttendees", optional},
				{"calendar:Resources", "t:Resources", resources},
			} {
				if len(g.list) == 0 {
					out = append(out, deleteField(g.uri, ""))
					continue
				}
				out = append(out, setField(g.uri, "", item, func(e *etree.Element) { attendeeList(e, g.tag, g.list) }))
			}
		case f == "recurrence":
			if ev.GetRecurrence() == nil {
				out = append(out, deleteField("calendar:Recurrence", ""))
				continue
			}
			// The series' first day comes from the recurrence, else from the event's start.
			var seriesStart *tandemv1.Date
			if !validDate(ev.GetRecurrence().GetStartDate()) {
				t, err := eventTiming(ev)
				if err != nil {
					return nil, err
				}
				seriesStart = t.startDate
			}
			rec, err := recurrenceToXML(ev.GetRecurrence(), seriesStart)
			if err != nil {
				return nil, err
			}
			out = append(out, fieldChange{uri: "calendar:Recurrence", item: wrapItem(item, rec)})
		case timingFields[f]:
			if timingDone {
				continue
			}
			timingDone = true
			t, err := eventTiming(ev)
			if err != nil {
				return nil, err
			}
			if t.startTZ != "" {
				out = append(out,
					setField("calendar:StartTimeZone", "", item, func(e *etree.Element) { add(e, "t:StartTimeZone").CreateAttr("Id", t.startTZ) }),
					setField("calendar:EndTimeZone", "", item, func(e *etree.Element) { add(e, "t:EndTimeZone").CreateAttr("Id", t.endTZ) }))
			}
			out = append(out,
				textField("calendar:Start", item, "t:Start", formatDateTime(t.start)),
				textField("calendar:End", item, "t:End", formatDateTime(t.end)),
				textField("calendar:IsAllDayEvent", item, "t:IsAllDayEvent", strconv.FormatBool(t.allDay)))
		case eventReadOnlyFields[f]:
		default:
			return nil, unknownFieldError("event", f)
		}
	}
	return out, nil
}

func wrapItem(tag string, child *etree.Element) *etree.Element {
	e := etree.NewElement(tag)
	e.AddChild(child)
	return e
}

// parseInt32 reads an xs:int: a number that does not fit is an error, never a wrapped value.
func parseInt32(s string) (int32, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	return int32(v), err
}
