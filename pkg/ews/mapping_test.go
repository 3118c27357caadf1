package ews

import (
	"errors"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// roundTripItem serialises an item element as a request would carry it, wraps it in a GetItem
// answer and reads it back.
func roundTripItem(t *testing.T, build func(holder *etree.Element) error) *tandemv1.Record {
	t.Helper()
	holder := etree.NewElement("m:Items")
	if err := build(holder); err != nil {
		t.Fatalf("build: %v", err)
	}
	item := firstChild(holder)
	id := etree.NewElement("t:ItemId")
	id.CreateAttr("Id", "AAMk=")
	id.CreateAttr("ChangeKey", "CK")
	item.InsertChildAt(0, id)
	doc := etree.NewDocument()
	doc.WriteSettings.CanonicalText = true
	doc.SetRoot(holder)
	data, err := doc.WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	env := mustEnvelope(t, opResponse("GetItem", okMessage("GetItem", data)))
	res, err := parseItemMessages(env, "GetItem", 1, func(int) string { return "" })
	if err != nil || res[0].Err != nil || res[0].Item.Record == nil {
		t.Fatalf("read back: %v %+v", err, res)
	}
	rec := res[0].Item.Record
	if rec.GetId() != "AAMk=" || rec.GetVersion() != "CK" {
		t.Errorf("id/version %q %q", rec.GetId(), rec.GetVersion())
	}
	return rec
}

func TestContactMappingRoundTrip(t *testing.T) {
	for name, c := range map[string]*tandemv1.Contact{
		"full":       fullContact(),
		"names only": {GivenName: "Ann", Surname: "Lee"},
		"empty":      {},
	} {
		t.Run(name, func(t *testing.T) {
			rec := roundTripItem(t, func(h *etree.Element) error { contactToXML(h, c, "sk-1"); return nil })
			if rec.GetSyncKey() != "sk-1" {
				t.Errorf("sync key %q", rec.GetSyncKey())
			}
			if diff := cmp.Diff(c, rec.GetContact(), protocmp.Transform()); diff != "" {
				t.Errorf("contact changed (-wrote +read):\n%s", diff)
			}
		})
	}
}

func TestEventMappingRoundTrip(t *testing.T) {
	events := recurringEvents()
	events["full"] = fullEvent()
	events["all-day"] = allDayEvent()
	events["no time zone"] = &tandemv1.Event{Subject: "UTC", Start: ts("2026-01-01T10:00:00Z"), End: ts("2026-01-01T10:00:00Z")}
	ignore := protocmp.IgnoreFields(&tandemv1.Event{}, "start", "end", "start_date", "end_date", "organizer", "type")
	for name, ev := range events {
		t.Run(name, func(t *testing.T) {
			rec := roundTripItem(t, func(h *etree.Element) error { return eventToXML(h, ev, "sk-1") })
			got := rec.GetEvent()
			want := cloneEventForTest(ev)
			if want.EndTimeZone == "" {
				want.EndTimeZone = want.StartTimeZone
			}
			if want.Sensitivity == tandemv1.Sensitivity_SENSITIVITY_UNSPECIFIED {
				want.Sensitivity = tandemv1.Sensitivity_SENSITIVITY_NORMAL
			}
			if want.ShowAs == tandemv1.ShowAs_SHOW_AS_UNSPECIFIED {
				want.ShowAs = tandemv1.ShowAs_SHOW_AS_BUSY
			}
			for _, a := range want.Attendees {
				a.Response = tandemv1.ResponseType_RESPONSE_TYPE_UNSPECIFIED
			}
			if r := want.Recurrence; r != nil {
				r.TimeZone = want.StartTimeZone
				if r.Interval == 0 {
					r.Interval = 1
				}
				if r.StartDate == nil {
					r.StartDate = &tandemv1.Date{Year: 2026, Month: 1, Day: 5}
				}
			}
			if diff := cmp.Diff(want, got, protocmp.Transform(), ignore); diff != "" {
				t.Errorf("event changed (-wrote +read):\n%s", diff)
			}
			if ev.IsAllDay {
				if diff := cmp.Diff(ev.StartDate, got.StartDate, protocmp.Transform()); diff != "" {
					t.Errorf("start date: %s", diff)
				}
				if diff := cmp.Diff(ev.EndDate, got.EndDate, protocmp.Transform()); diff != "" {
					t.Errorf("end date: %s", diff)
				}
			} else if !got.Start.AsTime().Equal(ev.Start.AsTime()) || !got.End.AsTime().Equal(ev.End.AsTime()) {
				t.Errorf("times %v-%v, wrote %v-%v", got.Start.AsTime(), got.End.AsTime(), ev.Start.AsTime(), ev.End.AsTime())
			}
		})
	}
}

func cloneEventForTest(e *tandemv1.Event) *tandemv1.Event {
	return cloneRecord(eventRecord("", e)).GetEvent()
}

func TestAllDayBoundaries(t *testing.T) {
	d := func(y, m, day int32) *tandemv1.Date { return &tandemv1.Date{Year: y, Month: m, Day: day} }
	tests := []struct {
		zone       string
		first      *tandemv1.Date
		last       *tandemv1.Date
		wantStart  string
		wantEnd    string
		writtenTZ  string
		dateFromTZ string // the zone the dates are read back in
	}{
		{"Eastern Standard Time", d(2026, 7, 1), d(2026, 7, 2), "2026-07-01T04:00:00Z", "2026-07-03T04:00:00Z", "Eastern Standard Time", "Eastern Standard Time"},
		{"Eastern Standard Time", d(2026, 3, 7), d(2026, 3, 8), "2026-03-07T05:00:00Z", "2026-03-09T04:00:00Z", "Eastern Standard Time", "Eastern Standard Time"},
		{"Line Islands Standard Time", d(2026, 1, 1), d(2026, 1, 1), "2025-12-31T10:00:00Z", "2026-01-01T10:00:00Z", "Line Islands Standard Time", "Line Islands Standard Time"},
		{"Dateline Standard Time", d(2026, 1, 1), nil, "2026-01-01T12:00:00Z", "2026-01-02T12:00:00Z", "Dateline Standard Time", "Dateline Standard Time"},
		{"Tokyo Standard Time", d(2026, 2, 28), d(2026, 3, 1), "2026-02-27T15:00:00Z", "2026-03-01T15:00:00Z", "Tokyo Standard Time", "Tokyo Standard Time"},
		{"Europe/Paris", d(2026, 10, 24), d(2026, 10, 25), "2026-10-23T22:00:00Z", "2026-10-25T23:00:00Z", "Europe/Paris", "Europe/Paris"},
		{"Mars Standard Time", d(2026, 5, 5), d(2026, 5, 5), "2026-05-05T00:00:00Z", "2026-05-06T00:00:00Z", "UTC", ""},
		{"", d(2026, 5, 5), d(2026, 5, 6), "2026-05-05T00:00:00Z", "2026-05-07T00:00:00Z", "UTC", ""},
	}
	for _, tc := range tests {
		t.Run(tc.zone+" "+formatDate(tc.first), func(t *testing.T) {
			ev := &tandemv1.Event{IsAllDay: true, StartDate: tc.first, EndDate: tc.last, StartTimeZone: tc.zone}
			tm, err := eventTiming(ev)
			if err != nil {
				t.Fatal(err)
			}
			if formatDateTime(tm.start) != tc.wantStart || formatDateTime(tm.end) != tc.wantEnd || tm.startTZ != tc.writtenTZ {
				t.Errorf("wrote %s..%s in %q, want %s..%s in %q", formatDateTime(tm.start), formatDateTime(tm.end), tm.startTZ, tc.wantStart, tc.wantEnd, tc.writtenTZ)
			}
			last := tc.last
			if last == nil {
				last = tc.first
			}
			if got := allDayDate(tm.start, tc.dateFromTZ); formatDate(got) != formatDate(tc.first) {
				t.Errorf("start reads back as %s", formatDate(got))
			}
			if got := addDays(allDayDate(tm.end, tc.dateFromTZ), -1); formatDate(got) != formatDate(last) {
				t.Errorf("end reads back as %s", formatDate(got))
			}
		})
	}
}

func TestBirthdays(t *testing.T) {
	for _, tc := range []struct{ instant, want string }{
		{"1980-05-17T11:59:00Z", "1980-05-17"}, // Exchange's and Tandem's own convention
		{"1980-05-17T00:00:00Z", "1980-05-17"}, // midnight UTC
		{"1980-05-16T22:00:00Z", "1980-05-17"}, // midnight in UTC+2
		{"1980-05-17T05:00:00Z", "1980-05-17"}, // midnight in UTC-5
		{"1980-05-16T14:30:00Z", "1980-05-17"}, // midnight in UTC+9:30
		{"1980-05-17T11:00:00Z", "1980-05-17"}, // midnight in UTC-11
	} {
		in, err := parseDateTime(tc.instant)
		if err != nil {
			t.Fatal(err)
		}
		if got := formatDate(birthdayFromEWS(in)); got != tc.want {
			t.Errorf("birthday %s read as %s, want %s", tc.instant, got, tc.want)
		}
	}
	if got := birthdayToEWS(&tandemv1.Date{Year: 1980, Month: 5, Day: 17}); got != "1980-05-17T11:59:00Z" {
		t.Errorf("birthday written as %s", got)
	}
}

func TestParseDates(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"2025-07-02", "2025-07-02", true}, {"2025-07-02Z", "2025-07-02", true},
		{"2025-07-02+02:00", "2025-07-02", true}, {"2025-07-02-07:00", "2025-07-02", true},
		{" 2025-07-02 ", "2025-07-02", true}, {"2025-7-2", "", false}, {"", "", false},
		{"2025-02-30", "", false}, {"2025-07-02X", "", false},
	} {
		d, err := parseDate(tc.in)
		if (err == nil) != tc.ok || (tc.ok && formatDate(d) != tc.want) {
			t.Errorf("parseDate(%q) = %v, %v", tc.in, d, err)
		}
	}
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"2020-09-10T14:15:11Z", "2020-09-10T14:15:11Z", true},
		{"2020-09-10T14:15:11.123Z", "2020-09-10T14:15:11Z", true},
		{"2020-09-10T16:15:11+02:00", "2020-09-10T14:15:11Z", true},
		{"2020-09-10T14:15:11", "2020-09-10T14:15:11Z", true},
		{"yesterday", "", false},
	} {
		got, err := parseDateTime(tc.in)
		if (err == nil) != tc.ok || (tc.ok && formatDateTime(got) != tc.want) {
			t.Errorf("parseDateTime(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestInvalidEvents(t *testing.T) {
	rec := func(mutate func(*tandemv1.Recurrence)) *tandemv1.Event {
		e := recurringEvents()["weekly-enddate"]
		mutate(e.Recurrence)
		return e
	}
	for name, ev := range map[string]*tandemv1.Event{
		"no start":                    {Subject: "x", End: ts("2026-01-01T10:00:00Z")},
		"ends before it starts":       {Start: ts("2026-01-01T10:00:00Z"), End: ts("2026-01-01T09:00:00Z")},
		"all-day without dates":       {IsAllDay: true},
		"all-day ends before":         {IsAllDay: true, StartDate: &tandemv1.Date{Year: 2026, Month: 1, Day: 2}, EndDate: &tandemv1.Date{Year: 2026, Month: 1, Day: 1}},
		"weekly without days":         rec(func(r *tandemv1.Recurrence) { r.DaysOfWeek = nil }),
		"no pattern":                  rec(func(r *tandemv1.Recurrence) { r.Pattern = 0 }),
		"monthly on day 32":           rec(func(r *tandemv1.Recurrence) { r.Pattern, r.DayOfMonth = 3, 32 }),
		"yearly in month 13":          rec(func(r *tandemv1.Recurrence) { r.Pattern, r.DayOfMonth, r.Month = 5, 1, 13 }),
		"relative with two days":      rec(func(r *tandemv1.Recurrence) { r.Pattern, r.Index = 4, tandemv1.WeekIndex_WEEK_INDEX_FIRST }),
		"relative without an index":   rec(func(r *tandemv1.Recurrence) { r.Pattern, r.DaysOfWeek = 4, r.DaysOfWeek[:1] }),
		"unknown first day of week":   rec(func(r *tandemv1.Recurrence) { r.FirstDayOfWeek = 42 }),
		"recurrence without a start":  {Recurrence: &tandemv1.Recurrence{Pattern: 1}, IsAllDay: true},
		"relative yearly without day": rec(func(r *tandemv1.Recurrence) { r.Pattern, r.DaysOfWeek, r.Month = 6, nil, 1 }),
	} {
		t.Run(name, func(t *testing.T) {
			err := eventToXML(etree.NewElement("holder"), ev, "k")
			var se *syncerr.Error
			if !errors.As(err, &se) || se.Code != syncerr.SyncMalformedRecord || se.Field == "" {
				t.Errorf("got %v, want a %s naming the field", err, syncerr.SyncMalformedRecord)
			}
		})
	}
}

func TestContactChanges(t *testing.T) {
	c := &tandemv1.Contact{GivenName: "Ann", Surname: "Lee", SalesforceAccountId: "001"}
	changes, err := contactChanges(c, []string{"salesforce_account_id"})
	if err != nil || len(changes) != 0 {
		t.Errorf("a field that never goes to Exchange made %d changes (%v)", len(changes), err)
	}
	changes, err = contactChanges(c, []string{"surname", "job_title"})
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, ch := range changes {
		uris = append(uris, ch.uri)
		if ch.uri == "contacts:JobTitle" && ch.item != nil {
			t.Error("an empty job title must be deleted, not set")
		}
	}
	if diff := cmp.Diff([]string{"contacts:JobTitle", "contacts:Surname", "contacts:DisplayName", "contacts:FileAs"}, uris); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	_, err = contactChanges(c, []string{"shoe_size"})
	if se := syncerr.As(err); se.Code != syncerr.SyncMalformedRecord || se.Field != "shoe_size" {
		t.Errorf("unknown field: %v", err)
	}
}

func TestEventChanges(t *testing.T) {
	ev := fullEvent()
	changes, err := eventChanges(ev, []string{"uid", "organizer", "type", "salesforce_who_id"})
	if err != nil || len(changes) != 0 {
		t.Errorf("read-only fields made %d changes (%v)", len(changes), err)
	}
	changes, err = eventChanges(ev, []string{"start", "end", "start_time_zone"})
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, ch := range changes {
		uris = append(uris, ch.uri)
	}
	want := []string{"calendar:StartTimeZone", "calendar:EndTimeZone", "calendar:Start", "calendar:End", "calendar:IsAllDayEvent"}
	if diff := cmp.Diff(want, uris); diff != "" {
		t.Errorf("timing changes (-want +got):\n%s", diff)
	}
	if _, err := eventChanges(ev, []string{"colour"}); syncerr.As(err).Code != syncerr.SyncMalformedRecord {
		t.Errorf("unknown field: %v", err)
	}
}

func TestDisplayNames(t *testing.T) {
	for _, tc := range []struct {
		c             *tandemv1.Contact
		display, file string
	}{
		{&tandemv1.Contact{GivenName: "Ann", MiddleName: "B.", Surname: "Lee"}, "Ann B. Lee", "Lee, Ann B."},
		{&tandemv1.Contact{Surname: "Lee"}, "Lee", "Lee"},
		{&tandemv1.Contact{GivenName: "Ann"}, "Ann", "Ann"},
		{&tandemv1.Contact{CompanyName: "Acme"}, "Acme", "Acme"},
		{&tandemv1.Contact{EmailAddress1: "a@b.example"}, "a@b.example", "a@b.example"},
		{&tandemv1.Contact{}, "", ""},
	} {
		if d, f := displayName(tc.c), fileAs(tc.c); d != tc.display || f != tc.file {
			t.Errorf("%v: display %q file as %q, want %q %q", tc.c, d, f, tc.display, tc.file)
		}
	}
}

func TestWindowsZones(t *testing.T) {
	for id, name := range windowsZones {
		if _, ok := zoneLocation(id); !ok {
			t.Errorf("%s (%s) does not load", id, name)
		}
	}
	if _, ok := zoneLocation("Not A Zone"); ok {
		t.Error("an unknown zone resolved")
	}
	loc, _ := zoneLocation("Pacific Standard Time")
	if _, off := time.Date(2026, 7, 1, 12, 0, 0, 0, loc).Zone(); off != -7*3600 {
		t.Errorf("Pacific summer offset %d", off)
	}
}
