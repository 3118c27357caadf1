package ewssim

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDumpShape decodes the JSON the way tools outside the repository do and checks the keys
// they rely on.
func TestDumpShape(t *testing.T) {
	e := newEnv(t)
	folder := e.syncFolderID(alice)
	createContact(t, e, folder, "sk-dump")
	if _, err := e.sim.PutContact(alice, SyncFolderName, Contact{GivenName: "Only", Surname: "Names"}); err != nil {
		t.Fatal(err)
	}
	r := e.file("create-event.xml", map[string]any{"Mailbox": alice, "Subject": "Revue", "SyncKey": "ev-dump", "Invitations": "SendToNone"}, reqOpts{})
	if got := r.codes(); !slices.Equal(got, []string{"NoError"}) {
		t.Fatal(got)
	}
	raw, err := json.Marshal(e.sim.Dump())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	mailboxes, ok := doc["mailboxes"].(map[string]any)
	if !ok {
		t.Fatalf("no mailboxes object: %s", raw)
	}
	if len(mailboxes) != 3 {
		t.Errorf("%d mailboxes, want 3", len(mailboxes))
	}
	mb := mailboxes[alice].(map[string]any)
	contacts := mb["contacts"].([]any)
	if len(contacts) != 2 {
		t.Fatalf("%d contacts", len(contacts))
	}
	full := contacts[0].(map[string]any)
	for _, k := range []string{"ItemId", "ChangeKey", "GivenName", "MiddleName", "Surname", "CompanyName", "JobTitle", "Department",
		"EmailAddress1", "EmailAddress2", "BusinessPhone", "MobilePhone", "BusinessFax", "BusinessAddress", "HomeAddress", "Birthday", "Body", "ExtendedProperties"} {
		if _, ok := full[k]; !ok {
			t.Errorf("contact has no %s key: %v", k, full)
		}
	}
	addr := full["BusinessAddress"].(map[string]any)
	for _, k := range []string{"Street", "City", "State", "PostalCode", "CountryOrRegion"} {
		if _, ok := addr[k]; !ok {
			t.Errorf("BusinessAddress has no %s", k)
		}
	}
	if ext := full["ExtendedProperties"].(map[string]any); ext["TandemSyncKey"] != "sk-dump" {
		t.Errorf("ExtendedProperties = %v", ext)
	}
	if _, err := time.Parse(time.RFC3339, full["Birthday"].(string)); err != nil {
		t.Errorf("Birthday is not RFC 3339: %v", err)
	}
	sparse := contacts[1].(map[string]any)
	for _, k := range []string{"CompanyName", "EmailAddress1", "BusinessAddress", "Birthday", "Body", "ExtendedProperties", "Categories"} {
		if _, ok := sparse[k]; ok {
			t.Errorf("empty field %s is not omitted", k)
		}
	}

	events := mb["events"].([]any)
	if len(events) != 1 {
		t.Fatalf("%d events", len(events))
	}
	ev := events[0].(map[string]any)
	for _, k := range []string{"ItemId", "ChangeKey", "Subject", "Start", "End", "Sensitivity", "Categories", "Location", "Body",
		"LegacyFreeBusyStatus", "Organizer", "RequiredAttendees", "OptionalAttendees", "CalendarItemType", "UID", "Recurrence", "ExtendedProperties"} {
		if _, ok := ev[k]; !ok {
			t.Errorf("event has no %s key", k)
		}
	}
	if _, ok := ev["IsAllDayEvent"]; ok {
		t.Error("IsAllDayEvent false is not omitted")
	}
	for _, k := range []string{"Start", "End"} {
		if _, err := time.Parse(time.RFC3339, ev[k].(string)); err != nil {
			t.Errorf("%s is not RFC 3339: %v", k, err)
		}
	}
	att := ev["RequiredAttendees"].([]any)[0].(map[string]any)
	if att["EmailAddress"] != bob {
		t.Errorf("attendee = %v", att)
	}
	rec := ev["Recurrence"].(map[string]any)
	if rec["Pattern"] != "Weekly" || rec["Range"] != "Numbered" {
		t.Errorf("recurrence = %v", rec)
	}

	bobBox := mailboxes[bob].(map[string]any)
	if c, ok := bobBox["contacts"].([]any); !ok || len(c) != 0 {
		t.Errorf("a mailbox without a Salesforce_Sync folder must dump an empty contacts list, got %v", bobBox["contacts"])
	}
}

func TestDumpFieldNamesAreStable(t *testing.T) {
	// The JSON names are a contract with external tools: EWS names, ItemId not ItemID.
	for _, c := range []struct {
		v     any
		names []string
	}{
		{ContactDump{}, []string{"ItemId", "GivenName", "Surname", "CompanyName", "EmailAddress1", "OtherTelephone", "BusinessAddress", "Birthday", "ExtendedProperties"}},
		{EventDump{}, []string{"ItemId", "Subject", "Start", "End", "IsAllDayEvent", "Sensitivity", "Categories", "Location", "Body", "LegacyFreeBusyStatus", "Organizer", "RequiredAttendees", "OptionalAttendees", "CalendarItemType", "UID", "Recurrence"}},
	} {
		tags := map[string]bool{}
		rt := reflect.TypeOf(c.v)
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			tags[name] = true
		}
		for _, n := range c.names {
			if !tags[n] {
				t.Errorf("%s has no JSON field %q", rt.Name(), n)
			}
		}
	}
}

// TestDumpAssistantAndSuffix checks that the contact properties Tandem syncs beyond the modelled
// ones appear in the dump under their EWS names.
func TestDumpAssistantAndSuffix(t *testing.T) {
	e := newEnv(t)
	e.syncFolderID(alice)
	c := Contact{GivenName: "Ada", Surname: "Lovelace"}
	c.Other = map[string]string{"AssistantName": "Mary Somerville", "Generation": "Jr."}
	if _, err := e.sim.PutContact(alice, SyncFolderName, c); err != nil {
		t.Fatal(err)
	}
	contacts := e.sim.Dump().Mailboxes[alice].Contacts
	if len(contacts) != 1 || contacts[0].AssistantName != "Mary Somerville" || contacts[0].Generation != "Jr." {
		t.Errorf("dumped contacts %+v", contacts)
	}
}
