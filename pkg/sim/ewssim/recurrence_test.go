package ewssim

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRecurrenceRoundTrip creates a series of every pattern and range type through EWS and reads
// it back.
func TestRecurrenceRoundTrip(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, pattern, rng string
		want               Recurrence
	}{
		{"daily numbered", `<t:DailyRecurrence><t:Interval>2</t:Interval></t:DailyRecurrence>`, `<t:NumberedRecurrence><t:StartDate>2026-03-16</t:StartDate><t:NumberOfOccurrences>5</t:NumberOfOccurrences></t:NumberedRecurrence>`,
			Recurrence{Pattern: "Daily", Interval: 2, Range: "Numbered", StartDate: "2026-03-16", NumberOfOccurrences: 5}},
		{"weekly end date", `<t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Monday Wednesday Friday</t:DaysOfWeek></t:WeeklyRecurrence>`, `<t:EndDateRecurrence><t:StartDate>2026-03-16Z</t:StartDate><t:EndDate>2026-06-30Z</t:EndDate></t:EndDateRecurrence>`,
			Recurrence{Pattern: "Weekly", Interval: 1, DaysOfWeek: []string{"Monday", "Wednesday", "Friday"}, Range: "EndDate", StartDate: "2026-03-16Z", EndDate: "2026-06-30Z"}},
		{"absolute monthly no end", `<t:AbsoluteMonthlyRecurrence><t:Interval>1</t:Interval><t:DayOfMonth>16</t:DayOfMonth></t:AbsoluteMonthlyRecurrence>`, `<t:NoEndRecurrence><t:StartDate>2026-03-16</t:StartDate></t:NoEndRecurrence>`,
			Recurrence{Pattern: "AbsoluteMonthly", Interval: 1, DayOfMonth: 16, Range: "NoEnd", StartDate: "2026-03-16"}},
		{"relative monthly", `<t:RelativeMonthlyRecurrence><t:Interval>3</t:Interval><t:DaysOfWeek>Weekday</t:DaysOfWeek><t:DayOfWeekIndex>Last</t:DayOfWeekIndex></t:RelativeMonthlyRecurrence>`, `<t:NoEndRecurrence><t:StartDate>2026-03-31</t:StartDate></t:NoEndRecurrence>`,
			Recurrence{Pattern: "RelativeMonthly", Interval: 3, DaysOfWeek: []string{"Weekday"}, DayOfWeekIndex: "Last", Range: "NoEnd", StartDate: "2026-03-31"}},
		{"absolute yearly", `<t:AbsoluteYearlyRecurrence><t:DayOfMonth>17</t:DayOfMonth><t:Month>May</t:Month></t:AbsoluteYearlyRecurrence>`, `<t:NumberedRecurrence><t:StartDate>2026-05-17</t:StartDate><t:NumberOfOccurrences>10</t:NumberOfOccurrences></t:NumberedRecurrence>`,
			Recurrence{Pattern: "AbsoluteYearly", DayOfMonth: 17, Month: "May", Range: "Numbered", StartDate: "2026-05-17", NumberOfOccurrences: 10}},
		{"relative yearly", `<t:RelativeYearlyRecurrence><t:DaysOfWeek>Thursday</t:DaysOfWeek><t:DayOfWeekIndex>Fourth</t:DayOfWeekIndex><t:Month>November</t:Month></t:RelativeYearlyRecurrence>`, `<t:NoEndRecurrence><t:StartDate>2026-11-26</t:StartDate></t:NoEndRecurrence>`,
			Recurrence{Pattern: "RelativeYearly", DaysOfWeek: []string{"Thursday"}, DayOfWeekIndex: "Fourth", Month: "November", Range: "NoEnd", StartDate: "2026-11-26"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.mustOK(`<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items><t:CalendarItem><t:Subject>` + tc.name +
				`</t:Subject><t:Start>2026-03-16T09:00:00Z</t:Start><t:End>2026-03-16T09:30:00Z</t:End><t:Recurrence>` + tc.pattern + tc.rng +
				`</t:Recurrence></t:CalendarItem></m:Items></m:CreateItem>`)
			ids, _ := itemIDs(resp)
			g := e.mustOK(`<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="calendar:Recurrence"/><t:FieldURI FieldURI="calendar:CalendarItemType"/></t:AdditionalProperties></m:ItemShape><m:ItemIds><t:ItemId Id="` + ids[0] + `"/></m:ItemIds></m:GetItem>`)
			rec := g.FindElement(".//Recurrence")
			if rec == nil {
				t.Fatal("no Recurrence returned")
			}
			var b strings.Builder
			for _, c := range rec.ChildElements() {
				d := c.Copy()
				stripPrefixes(d)
				s, _ := docString(d)
				b.WriteString(s)
			}
			if want := localNames(tc.pattern + tc.rng); b.String() != want {
				t.Errorf("Recurrence =\n%s\nwant\n%s", b.String(), want)
			}
			if got := text(g, ".//CalendarItemType"); got != "RecurringMaster" {
				t.Errorf("CalendarItemType = %q", got)
			}
			var stored *Recurrence
			for _, it := range e.sim.Items(alice, "calendar") {
				if it.CalendarItem.Subject == tc.name {
					stored = it.CalendarItem.Recurrence
				}
			}
			if stored == nil || stored.Pattern != tc.want.Pattern || stored.Range != tc.want.Range || !slices.Equal(stored.DaysOfWeek, tc.want.DaysOfWeek) ||
				stored.Interval != tc.want.Interval || stored.DayOfMonth != tc.want.DayOfMonth || stored.Month != tc.want.Month ||
				stored.DayOfWeekIndex != tc.want.DayOfWeekIndex || stored.NumberOfOccurrences != tc.want.NumberOfOccurrences ||
				stored.StartDate != tc.want.StartDate || stored.EndDate != tc.want.EndDate {
				t.Errorf("stored recurrence = %+v, want %+v", stored, tc.want)
			}
		})
	}
}

func TestSeriesExceptionsFromOutlook(t *testing.T) {
	e := newEnv(t)
	start := time.Date(2026, 3, 16, 9, 0, 0, 0, time.UTC)
	id, err := e.sim.PutEvent(alice, CalendarItem{
		ItemBase: ItemBase{Subject: "Standup"}, Start: start, End: start.Add(15 * time.Minute),
		Recurrence:          &Recurrence{Pattern: "Daily", Interval: 1, Range: "Numbered", StartDate: "2026-03-16", NumberOfOccurrences: 10},
		DeletedOccurrences:  []time.Time{start.AddDate(0, 0, 2)},
		ModifiedOccurrences: []Occurrence{{Start: start.AddDate(0, 0, 3).Add(time.Hour), End: start.AddDate(0, 0, 3).Add(75 * time.Minute), OriginalStart: start.AddDate(0, 0, 3)}},
		RequiredAttendees:   []Attendee{{Name: "Bob", Address: bob, ResponseType: "Accept", LastResponseTime: start.Add(-time.Hour)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	g := e.mustOK(`<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id="` + id + `"/></m:ItemIds></m:GetItem>`)
	if got := text(g, ".//DeletedOccurrences/DeletedOccurrence/Start"); got != "2026-03-18T09:00:00Z" {
		t.Errorf("deleted occurrence = %q", got)
	}
	if got := text(g, ".//ModifiedOccurrences/Occurrence/OriginalStart"); got != "2026-03-19T09:00:00Z" {
		t.Errorf("modified occurrence = %q", got)
	}
	if attr(g, ".//ModifiedOccurrences/Occurrence/ItemId", "Id") == "" {
		t.Error("modified occurrence without an id")
	}
	if got := text(g, ".//RequiredAttendees/Attendee/ResponseType"); got != "Accept" {
		t.Errorf("attendee response = %q (responses set by the owner's side are kept)", got)
	}
	if got := text(g, ".//RequiredAttendees/Attendee/LastResponseTime"); got != "2026-03-16T08:00:00Z" {
		t.Errorf("LastResponseTime = %q", got)
	}
}
