package sfsim

import (
	"errors"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/sim/soql"
)

func TestEventDates(t *testing.T) {
	e := newEnv(t)
	start := time.Date(2024, 6, 3, 14, 0, 0, 0, time.UTC)
	get := func(id string) map[string]any {
		t.Helper()
		ev, ok := e.sim.Get("Event", id)
		if !ok {
			t.Fatalf("event %s missing", id)
		}
		return ev
	}
	at := func(ev map[string]any, k string) time.Time {
		t.Helper()
		v, ok := ev[k].(time.Time)
		if !ok {
			t.Fatalf("%s = %v", k, ev[k])
		}
		return v
	}

	id, err := e.sim.Insert("Event", map[string]any{"Subject": "Timed", "StartDateTime": start, "DurationInMinutes": 45}, "")
	if err != nil {
		t.Fatal(err)
	}
	ev := get(id)
	if !at(ev, "EndDateTime").Equal(start.Add(45*time.Minute)) || !at(ev, "ActivityDateTime").Equal(start) ||
		ev["ActivityDate"] != (soql.Date{Year: 2024, Month: 6, Day: 3}) {
		t.Errorf("created %v", ev)
	}

	// Moving the start keeps the length.
	if err := e.sim.Update("Event", id, map[string]any{"StartDateTime": start.Add(2 * time.Hour)}, ""); err != nil {
		t.Fatal(err)
	}
	ev = get(id)
	if !at(ev, "EndDateTime").Equal(start.Add(2*time.Hour+45*time.Minute)) || ev["DurationInMinutes"] != int64(45) {
		t.Errorf("moved %v", ev)
	}
	// Changing the end changes the length.
	if err := e.sim.Update("Event", id, map[string]any{"EndDateTime": start.Add(4 * time.Hour)}, ""); err != nil {
		t.Fatal(err)
	}
	if ev = get(id); ev["DurationInMinutes"] != int64(120) {
		t.Errorf("stretched %v", ev)
	}
	// Unrelated edits leave the times alone.
	if err := e.sim.Update("Event", id, map[string]any{"Location": "Room 1"}, ""); err != nil {
		t.Fatal(err)
	}
	if ev = get(id); ev["DurationInMinutes"] != int64(120) || !at(ev, "StartDateTime").Equal(start.Add(2*time.Hour)) {
		t.Errorf("after a location edit %v", ev)
	}
	// Turning it into an all-day event keeps its day.
	if err := e.sim.Update("Event", id, map[string]any{"IsAllDayEvent": true}, ""); err != nil {
		t.Fatal(err)
	}
	ev = get(id)
	if ev["DurationInMinutes"] != int64(1440) || !at(ev, "StartDateTime").Equal(time.Date(2024, 6, 3, 0, 0, 0, 0, time.UTC)) || ev["ActivityDateTime"] != nil {
		t.Errorf("all-day %v", ev)
	}

	// A three-day event: start and end are the first and last days at midnight GMT.
	multi, err := e.sim.Insert("Event", map[string]any{"Subject": "Offsite", "IsAllDayEvent": true,
		"StartDateTime": "2024-07-01T00:00:00Z", "EndDateTime": "2024-07-03T00:00:00Z"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if ev = get(multi); ev["DurationInMinutes"] != int64(3*1440) || ev["EndDate"] != (soql.Date{Year: 2024, Month: 7, Day: 3}) {
		t.Errorf("multi-day %v", ev)
	}

	for name, values := range map[string]map[string]any{
		"no times":            {"Subject": "x"},
		"start only":          {"Subject": "x", "StartDateTime": start},
		"all-day without day": {"Subject": "x", "IsAllDayEvent": true},
		"end before start":    {"Subject": "x", "StartDateTime": start, "EndDateTime": start.Add(-time.Second)},
		"fifteen days":        {"Subject": "x", "StartDateTime": start, "EndDateTime": start.Add(15 * 24 * time.Hour)},
		"read-only EndDate":   {"Subject": "x", "StartDateTime": start, "DurationInMinutes": 5, "EndDate": "2024-06-03"},
	} {
		var re *RecordError
		if _, err := e.sim.Insert("Event", values, ""); !errors.As(err, &re) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestEventAccountFollowsWho(t *testing.T) {
	e := newEnv(t)
	acct, _ := e.sim.Insert("Account", map[string]any{"Name": "Acme"}, "")
	who, _ := e.sim.Insert("Contact", map[string]any{"LastName": "Lee", "AccountId": acct}, "")
	lead, err := e.sim.Insert("Lead", map[string]any{"LastName": "Prospect", "Company": "Initech"}, "")
	if err != nil {
		t.Fatal(err)
	}
	start := e.clock.Now()
	id, err := e.sim.Insert("Event", map[string]any{"Subject": "x", "StartDateTime": start, "DurationInMinutes": 30, "WhoId": who}, "")
	if err != nil {
		t.Fatal(err)
	}
	if ev, _ := e.sim.Get("Event", id); ev["AccountId"] != acct {
		t.Errorf("AccountId %v, want the contact's account", ev["AccountId"])
	}
	if err := e.sim.Update("Event", id, map[string]any{"WhoId": lead}, ""); err != nil {
		t.Fatal(err)
	}
	if ev, _ := e.sim.Get("Event", id); ev["AccountId"] != nil {
		t.Errorf("AccountId %v after moving to a lead", ev["AccountId"])
	}
	var re *RecordError
	if err := e.sim.Update("Event", id, map[string]any{"WhoId": acct}, ""); !errors.As(err, &re) || re.Errors[0].StatusCode != "FIELD_INTEGRITY_EXCEPTION" {
		t.Errorf("an account as Who: %v", err)
	}
}
