package ews

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// fullContact sets every contact field Exchange holds, with characters that need escaping.
func fullContact() *tandemv1.Contact {
	return &tandemv1.Contact{
		GivenName:      "Zoë",
		MiddleName:     "Q.",
		Surname:        "O'Brien & Søn",
		CompanyName:    "Acme <Intl>",
		JobTitle:       "VP Sales",
		Department:     "EMEA",
		EmailAddress1:  "zoe@acme.example",
		EmailAddress2:  "zoe.obrien@gmail.example",
		EmailAddress3:  "z@acme.example",
		BusinessPhone:  "+44 20 7946 0000",
		MobilePhone:    "+44 7700 900000",
		HomePhone:      "+44 20 7946 0001",
		OtherPhone:     "+44 20 7946 0002",
		BusinessFax:    "+44 20 7946 0003",
		AssistantPhone: "+44 20 7946 0004",
		BusinessAddress: &tandemv1.PostalAddress{
			Street: "1 Main St\nFloor 2", City: "London", State: "Greater London", PostalCode: "EC1A 1BB", Country: "United Kingdom",
		},
		HomeAddress:   &tandemv1.PostalAddress{Street: "2 Side St", City: "Bath", PostalCode: "BA1 1AA", Country: "United Kingdom"},
		OtherAddress:  &tandemv1.PostalAddress{City: "Paris", Country: "France"},
		Birthday:      &tandemv1.Date{Year: 1980, Month: 5, Day: 17},
		Notes:         "Met at the conference.\r\nLikes tea.",
		AssistantName: "Zoë's <Assistant>",
		Suffix:        "Jr.",
	}
}

func ts(s string) *timestamppb.Timestamp {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return timestamppb.New(t)
}

// fullEvent is a timed event with every writable field.
func fullEvent() *tandemv1.Event {
	return &tandemv1.Event{
		Subject:       "Quarterly review <Q3> & plans",
		Location:      "Room 4.01",
		Body:          "Agenda:\n1. Numbers\n2. Plans",
		Start:         ts("2026-03-10T14:00:00Z"),
		End:           ts("2026-03-10T15:30:00Z"),
		StartTimeZone: "W. Europe Standard Time",
		EndTimeZone:   "W. Europe Standard Time",
		Sensitivity:   tandemv1.Sensitivity_SENSITIVITY_PRIVATE,
		ShowAs:        tandemv1.ShowAs_SHOW_AS_TENTATIVE,
		Attendees: []*tandemv1.Attendee{
			{Email: "bob@contoso.com", Name: "Bob", Type: tandemv1.AttendeeType_ATTENDEE_TYPE_REQUIRED},
			{Email: "carol@fabrikam.example", Name: "Carol", Type: tandemv1.AttendeeType_ATTENDEE_TYPE_OPTIONAL},
			{Email: "room401@contoso.com", Name: "Room 4.01", Type: tandemv1.AttendeeType_ATTENDEE_TYPE_RESOURCE},
		},
		Uid:        "040000008200E00074C5B7101A82E0080000000012345",
		Categories: []string{"Salesforce", "Customer"},
	}
}

// allDayEvent is a two-day all-day event in New York time.
func allDayEvent() *tandemv1.Event {
	return &tandemv1.Event{
		Subject:       "Offsite",
		IsAllDay:      true,
		StartDate:     &tandemv1.Date{Year: 2026, Month: 7, Day: 1},
		EndDate:       &tandemv1.Date{Year: 2026, Month: 7, Day: 2},
		StartTimeZone: "Eastern Standard Time",
		ShowAs:        tandemv1.ShowAs_SHOW_AS_OUT_OF_OFFICE,
	}
}

// recurringEvents covers every pattern type and every range type.
func recurringEvents() map[string]*tandemv1.Event {
	base := func(r *tandemv1.Recurrence) *tandemv1.Event {
		return &tandemv1.Event{
			Subject:       "Series",
			Start:         ts("2026-01-05T09:00:00Z"),
			End:           ts("2026-01-05T09:30:00Z"),
			StartTimeZone: "UTC",
			Recurrence:    r,
		}
	}
	d := func(y, m, day int32) *tandemv1.Date { return &tandemv1.Date{Year: y, Month: m, Day: day} }
	return map[string]*tandemv1.Event{
		"daily-numbered": base(&tandemv1.Recurrence{
			Pattern: tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_DAILY, Interval: 2, NumberOfOccurrences: 10,
		}),
		"weekly-enddate": base(&tandemv1.Recurrence{
			Pattern: tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_WEEKLY, Interval: 1,
			DaysOfWeek:     []tandemv1.DayOfWeek{tandemv1.DayOfWeek_DAY_OF_WEEK_MONDAY, tandemv1.DayOfWeek_DAY_OF_WEEK_WEDNESDAY},
			FirstDayOfWeek: tandemv1.DayOfWeek_DAY_OF_WEEK_MONDAY,
			StartDate:      d(2026, 1, 5), EndDate: d(2026, 6, 30),
		}),
		"absolute-monthly-noend": base(&tandemv1.Recurrence{
			Pattern: tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_ABSOLUTE_MONTHLY, Interval: 1, DayOfMonth: 5,
		}),
		"relative-monthly-numbered": base(&tandemv1.Recurrence{
			Pattern: tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_RELATIVE_MONTHLY, Interval: 3,
			DaysOfWeek: []tandemv1.DayOfWeek{tandemv1.DayOfWeek_DAY_OF_WEEK_WEEKDAY}, Index: tandemv1.WeekIndex_WEEK_INDEX_LAST,
			NumberOfOccurrences: 8,
		}),
		"absolute-yearly-enddate": base(&tandemv1.Recurrence{
			Pattern: tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_ABSOLUTE_YEARLY, DayOfMonth: 5, Month: 1,
			EndDate: d(2030, 1, 5),
		}),
		"relative-yearly-noend": base(&tandemv1.Recurrence{
			Pattern:    tandemv1.RecurrencePatternType_RECURRENCE_PATTERN_TYPE_RELATIVE_YEARLY,
			DaysOfWeek: []tandemv1.DayOfWeek{tandemv1.DayOfWeek_DAY_OF_WEEK_MONDAY}, Index: tandemv1.WeekIndex_WEEK_INDEX_FIRST, Month: 1,
		}),
	}
}

func contactRecord(key string, c *tandemv1.Contact) *tandemv1.Record {
	return &tandemv1.Record{SyncKey: key, Body: &tandemv1.Record_Contact{Contact: c}}
}

func eventRecord(key string, e *tandemv1.Event) *tandemv1.Record {
	return &tandemv1.Record{SyncKey: key, Body: &tandemv1.Record_Event{Event: e}}
}
