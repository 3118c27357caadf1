package sfsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func contactRec(fields map[string]any) map[string]any {
	out := map[string]any{"attributes": map[string]any{"type": "Contact"}}
	for k, v := range fields {
		out[k] = v
	}
	return out
}

func collection(allOrNone bool, records ...map[string]any) map[string]any {
	return map[string]any{"allOrNone": allOrNone, "records": records}
}

func codes(r result) string {
	var out []string
	for _, e := range r.Errors {
		out = append(out, e.StatusCode)
	}
	return strings.Join(out, ",")
}

func TestCollectionsCreate(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	long := strings.Repeat("x", 81)
	mixed := []map[string]any{
		contactRec(map[string]any{"FirstName": "Ok", "LastName": "One", "Email": "one@acme.example"}),
		contactRec(map[string]any{"FirstName": "No last name"}),
		contactRec(map[string]any{"LastName": long}),
		contactRec(map[string]any{"LastName": "Bad", "Email": "not an email"}),
		contactRec(map[string]any{"LastName": "Ok Two", "Birthdate": "1990-04-01", "Tandem_Sync_Key__c": "k-2"}),
		contactRec(map[string]any{"LastName": "Name is read-only", "Name": "x"}),
		contactRec(map[string]any{"LastName": "Wrong account", "AccountId": e.userID}),
	}

	t.Run("allOrNone false keeps the valid records", func(t *testing.T) {
		var res []result
		c.json(http.MethodPost, "composite/sobjects", collection(false, mixed...), http.StatusOK, &res)
		want := []string{"", "REQUIRED_FIELD_MISSING", "STRING_TOO_LONG", "INVALID_EMAIL_ADDRESS", "", "INVALID_FIELD_FOR_INSERT_UPDATE", "FIELD_INTEGRITY_EXCEPTION"}
		if len(res) != len(want) {
			t.Fatalf("%d results for %d records", len(res), len(want))
		}
		for i, w := range want {
			if codes(res[i]) != w || res[i].Success != (w == "") {
				t.Errorf("record %d: %+v, want %q", i, res[i], w)
			}
			if w == "" && !ValidID(res[i].ID) {
				t.Errorf("record %d: id %q", i, res[i].ID)
			}
			if w != "" && res[i].ID != "" {
				t.Errorf("record %d failed but has id %q", i, res[i].ID)
			}
		}
		if f := res[1].Errors[0].Fields; len(f) != 1 || f[0] != "LastName" {
			t.Errorf("required field error fields %v", f)
		}
		if e := res[2].Errors[0]; len(e.Fields) != 1 || e.Fields[0] != "LastName" || !strings.Contains(e.Message, "(max length=80)") {
			t.Errorf("STRING_TOO_LONG %+v", e)
		}
		one, ok := e.sim.Get("Contact", res[0].ID)
		if !ok || one["OwnerId"] != e.userID || one["CreatedById"] != e.userID || one["Name"] != "Ok One" {
			t.Errorf("stored %v", one)
		}
	})

	t.Run("allOrNone true rolls everything back", func(t *testing.T) {
		before := len(e.sim.List("Contact"))
		var res []result
		c.json(http.MethodPost, "composite/sobjects", collection(true, mixed...), http.StatusOK, &res)
		for i, r := range res {
			if r.Success || r.ID != "" {
				t.Errorf("record %d: %+v", i, r)
			}
		}
		if codes(res[0]) != "ALL_OR_NONE_OPERATION_ROLLED_BACK" || codes(res[1]) != "REQUIRED_FIELD_MISSING" {
			t.Errorf("results %+v", res)
		}
		if after := len(e.sim.List("Contact")); after != before {
			t.Errorf("%d contacts before, %d after a rolled back call", before, after)
		}
		c.json(http.MethodPost, "composite/sobjects", collection(true, mixed[0], contactRec(map[string]any{"LastName": "Three", "Tandem_Sync_Key__c": "k-3"})), http.StatusOK, &res)
		if !res[0].Success || !res[1].Success {
			t.Errorf("valid records under allOrNone: %+v", res)
		}
	})

	t.Run("request-level errors", func(t *testing.T) {
		tooMany := make([]map[string]any, 201)
		for i := range tooMany {
			tooMany[i] = contactRec(map[string]any{"LastName": fmt.Sprint(i)})
		}
		tests := []struct {
			name string
			body any
			code string
		}{
			{"201 records", collection(false, tooMany...), "EXCEEDED_ID_LIMIT"},
			{"unknown field", collection(false, contactRec(map[string]any{"LastName": "x", "Region__c": "EU"})), "INVALID_FIELD"},
			{"unknown type", collection(false, map[string]any{"attributes": map[string]any{"type": "Widget"}, "Name": "x"}), "INVALID_TYPE"},
			{"no type", collection(false, map[string]any{"LastName": "x"}), "INVALID_TYPE"},
			{"wrong value type", collection(false, contactRec(map[string]any{"LastName": "x", "Birthdate": true})), "JSON_PARSER_ERROR"},
			{"not json", "{records:", "JSON_PARSER_ERROR"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := c.call(http.MethodPost, "composite/sobjects", tt.body)
				if r.status != http.StatusBadRequest || decodeErrors(t, r.body)[0].ErrorCode != tt.code {
					t.Errorf("%d %s, want 400 %s", r.status, r.body, tt.code)
				}
			})
		}
		var res []result
		c.json(http.MethodPost, "composite/sobjects", collection(false, tooMany[:200]...), http.StatusOK, &res)
		if len(res) != 200 || !res[199].Success {
			t.Errorf("200 records are accepted: %d results", len(res))
		}
	})

	t.Run("mixed object types and events", func(t *testing.T) {
		start := e.clock.Now().Add(48 * time.Hour)
		var res []result
		c.json(http.MethodPost, "composite/sobjects", collection(false,
			contactRec(map[string]any{"LastName": "With event"}),
			map[string]any{"attributes": map[string]any{"type": "Event"}, "Subject": "Call", "StartDateTime": start.Format(time.RFC3339), "EndDateTime": start.Add(30 * time.Minute).Format("2006-01-02T15:04:05.000-0700")},
			map[string]any{"attributes": map[string]any{"type": "Event"}, "Subject": "No times"},
			map[string]any{"attributes": map[string]any{"type": "Event"}, "Subject": "All day", "IsAllDayEvent": true, "ActivityDate": "2024-06-01"},
			map[string]any{"attributes": map[string]any{"type": "Event"}, "Subject": "Backwards", "StartDateTime": start.Format(time.RFC3339), "EndDateTime": start.Add(-time.Minute).Format(time.RFC3339)},
			map[string]any{"attributes": map[string]any{"type": "Event"}, "Subject": "Too long", "StartDateTime": start.Format(time.RFC3339), "EndDateTime": start.Add(15 * 24 * time.Hour).Format(time.RFC3339)},
			map[string]any{"attributes": map[string]any{"type": "Event"}, "Subject": "Bad ShowAs", "StartDateTime": start.Format(time.RFC3339), "DurationInMinutes": 30, "ShowAs": "Maybe"},
		), http.StatusOK, &res)
		want := []string{"", "", "REQUIRED_FIELD_MISSING", "", "FIELD_INTEGRITY_EXCEPTION", "FIELD_INTEGRITY_EXCEPTION", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"}
		for i, w := range want {
			if codes(res[i]) != w {
				t.Errorf("record %d: %+v, want %q", i, res[i], w)
			}
		}
		ev, _ := e.sim.Get("Event", res[1].ID)
		if ev["DurationInMinutes"] != int64(30) || !ev["ActivityDateTime"].(time.Time).Equal(start) || ev["ShowAs"] != "Busy" || ev["IsPrivate"] != false {
			t.Errorf("timed event %v", ev)
		}
		allDay, _ := e.sim.Get("Event", res[3].ID)
		if allDay["DurationInMinutes"] != int64(1440) || allDay["ActivityDateTime"] != nil ||
			!allDay["StartDateTime"].(time.Time).Equal(time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("all-day event %v", allDay)
		}
	})
}

func TestCollectionsUpdateAndDelete(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	ids, err := e.sim.SeedContacts(e.userID, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.Delete("Contact", ids[4]); err != nil {
		t.Fatal(err)
	}
	ev, err := e.sim.Insert("Event", map[string]any{"Subject": "x", "StartDateTime": e.clock.Now(), "DurationInMinutes": 30}, "")
	if err != nil {
		t.Fatal(err)
	}
	missing := makeID(PrefixContact, "5g", 999999)
	before, _ := e.sim.Get("Contact", ids[0])

	var res []result
	c.json(http.MethodPatch, "composite/sobjects", collection(false,
		contactRec(map[string]any{"id": ids[0], "Title": "Chief Tester"}),
		contactRec(map[string]any{"Id": ids[1][:15], "LastName": nil}),
		contactRec(map[string]any{"Title": "no id"}),
		contactRec(map[string]any{"id": ids[4], "Title": "deleted"}),
		contactRec(map[string]any{"id": missing, "Title": "missing"}),
		contactRec(map[string]any{"id": ev, "Title": "an event id"}),
		contactRec(map[string]any{"id": "003notanid", "Title": "malformed"}),
		contactRec(map[string]any{"id": ids[2], "CreatedDate": "2020-01-01T00:00:00Z"}),
	), http.StatusOK, &res)
	want := []string{"", "REQUIRED_FIELD_MISSING", "MISSING_ARGUMENT", "ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID", "MALFORMED_ID", "INVALID_FIELD_FOR_INSERT_UPDATE"}
	for i, w := range want {
		if codes(res[i]) != w {
			t.Errorf("update %d: %+v, want %q", i, res[i], w)
		}
	}
	if res[1].ID != ids[1] {
		t.Errorf("a 15-character id comes back in 18: %q", res[1].ID)
	}
	after, _ := e.sim.Get("Contact", ids[0])
	if after["Title"] != "Chief Tester" || !after["SystemModstamp"].(time.Time).After(before["SystemModstamp"].(time.Time)) ||
		after["LastModifiedById"] != e.userID || after["CreatedById"] != before["CreatedById"] {
		t.Errorf("updated %v", after)
	}

	r := c.call(http.MethodDelete, "composite/sobjects?allOrNone=false&ids="+strings.Join([]string{ids[0], ids[4], missing, "bogus", ev}, ","), nil)
	var del []result
	if err := json.Unmarshal(r.body, &del); err != nil || r.status != http.StatusOK {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	want = []string{"", "ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "MALFORMED_ID", ""}
	for i, w := range want {
		if codes(del[i]) != w {
			t.Errorf("delete %d: %+v, want %q", i, del[i], w)
		}
	}
	if del[0].ID != ids[0] || del[1].ID != ids[4] {
		t.Errorf("delete results carry the ids: %+v", del)
	}
	// allOrNone: the valid delete is rolled back with the invalid one.
	r = c.call(http.MethodDelete, "composite/sobjects?allOrNone=true&ids="+ids[1]+","+missing, nil)
	_ = json.Unmarshal(r.body, &del)
	if del[0].Success || codes(del[0]) != "ALL_OR_NONE_OPERATION_ROLLED_BACK" {
		t.Errorf("allOrNone delete %+v", del)
	}
	if got, _ := e.sim.Get("Contact", ids[1]); got["IsDeleted"] != false {
		t.Error("a rolled back delete deleted")
	}
	tooMany := strings.TrimSuffix(strings.Repeat(ids[1]+",", 201), ",")
	if r := c.call(http.MethodDelete, "composite/sobjects?ids="+tooMany, nil); r.status != http.StatusBadRequest || decodeErrors(t, r.body)[0].ErrorCode != "EXCEEDED_ID_LIMIT" {
		t.Errorf("201 ids: %d %s", r.status, r.body)
	}
}

func TestCollectionsUpsert(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	path := "composite/sobjects/Contact/Tandem_Sync_Key__c"
	var res []result
	c.json(http.MethodPatch, path, collection(false,
		contactRec(map[string]any{"Tandem_Sync_Key__c": "key-a", "LastName": "A"}),
		contactRec(map[string]any{"Tandem_Sync_Key__c": "KEY-A", "LastName": "Upper A"}),
	), http.StatusOK, &res)
	for i, r := range res {
		if !r.Success || r.Created == nil || !*r.Created {
			t.Fatalf("first upsert %d: %+v", i, r)
		}
	}
	if res[0].ID == res[1].ID {
		t.Error("the external id is case-sensitive: key-a and KEY-A are two records")
	}
	first := res[0].ID

	c.json(http.MethodPatch, path, collection(false,
		contactRec(map[string]any{"Tandem_Sync_Key__c": "key-a", "LastName": "A2"}),
		contactRec(map[string]any{"Tandem_Sync_Key__c": "dup", "LastName": "D1"}),
		contactRec(map[string]any{"Tandem_Sync_Key__c": "dup", "LastName": "D2"}),
		contactRec(map[string]any{"LastName": "no key"}),
		contactRec(map[string]any{"Tandem_Sync_Key__c": "new", "LastName": strings.Repeat("y", 100)}),
	), http.StatusOK, &res)
	if !res[0].Success || res[0].ID != first || res[0].Created == nil || *res[0].Created {
		t.Errorf("second upsert of key-a: %+v", res[0])
	}
	want := []string{"", "DUPLICATE_EXTERNAL_ID", "DUPLICATE_EXTERNAL_ID", "MISSING_ARGUMENT", "STRING_TOO_LONG"}
	for i, w := range want {
		if codes(res[i]) != w {
			t.Errorf("upsert %d: %+v, want %q", i, res[i], w)
		}
	}
	if got, _ := e.sim.Get("Contact", first); got["LastName"] != "A2" {
		t.Errorf("upsert did not update: %v", got)
	}

	// A deleted record's key is free again: the upsert creates.
	if err := e.sim.Delete("Contact", first); err != nil {
		t.Fatal(err)
	}
	c.json(http.MethodPatch, path, collection(false, contactRec(map[string]any{"Tandem_Sync_Key__c": "key-a", "LastName": "A3"})), http.StatusOK, &res)
	if !res[0].Success || !*res[0].Created || res[0].ID == first {
		t.Errorf("upsert after delete: %+v", res[0])
	}
	// Creating through the plain create endpoint with a taken key fails.
	c.json(http.MethodPost, "composite/sobjects", collection(false, contactRec(map[string]any{"Tandem_Sync_Key__c": "key-a", "LastName": "x"})), http.StatusOK, &res)
	if codes(res[0]) != "DUPLICATE_VALUE" {
		t.Errorf("create with a taken key: %+v", res[0])
	}

	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"composite/sobjects/Contact/LastName", http.StatusBadRequest, "INVALID_FIELD"},
		{"composite/sobjects/Contact/Nope__c", http.StatusNotFound, "NOT_FOUND"},
		{"composite/sobjects/Widget/Tandem_Sync_Key__c", http.StatusBadRequest, "INVALID_TYPE"},
	} {
		r := c.call(http.MethodPatch, tc.path, collection(false, contactRec(map[string]any{"LastName": "x"})))
		if r.status != tc.status || decodeErrors(t, r.body)[0].ErrorCode != tc.code {
			t.Errorf("%s: %d %s", tc.path, r.status, r.body)
		}
	}
	// The recorded NOT_FOUND error has the same shape.
	var recorded, sim []restError
	strictDecode(t, recording(t, "upsert_error_response.json"), &recorded)
	strictDecode(t, c.call(http.MethodPatch, "composite/sobjects/Contact/Namez", collection(false)).body, &sim)
	if recorded[0].ErrorCode != sim[0].ErrorCode || !strings.HasPrefix(sim[0].Message, "Provided external ID field does not exist or is not accessible: ") {
		t.Errorf("recorded %+v, simulated %+v", recorded, sim)
	}
}

func TestDuplicateRuleAndLocks(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	if err := e.sim.SetDuplicateRule("Contact", "Email"); err != nil {
		t.Fatal(err)
	}
	existing, err := e.sim.Insert("Contact", map[string]any{"LastName": "Orig", "Email": "dup@acme.example"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var res []result
	c.json(http.MethodPost, "composite/sobjects", collection(false,
		contactRec(map[string]any{"LastName": "Copy", "Email": "DUP@acme.example"}),
		contactRec(map[string]any{"LastName": "No email"}),
		contactRec(map[string]any{"LastName": "Other", "Email": "other@acme.example"}),
		contactRec(map[string]any{"LastName": "Other again", "Email": "other@acme.example"}),
	), http.StatusOK, &res)
	want := []string{"DUPLICATES_DETECTED", "", "", "DUPLICATES_DETECTED"}
	for i, w := range want {
		if codes(res[i]) != w {
			t.Errorf("record %d: %+v, want %q", i, res[i], w)
		}
	}
	if res[0].Errors[0].Message != "Use one of these records?" {
		t.Errorf("message %q", res[0].Errors[0].Message)
	}
	if err := e.sim.SetDuplicateRule("Contact"); err != nil {
		t.Fatal(err)
	}
	c.json(http.MethodPost, "composite/sobjects", collection(false, contactRec(map[string]any{"LastName": "Copy", "Email": "dup@acme.example"})), http.StatusOK, &res)
	if !res[0].Success {
		t.Errorf("without the rule: %+v", res[0])
	}

	// Locks: the record fails twice, then saves.
	e.sim.InjectFault(Fault{Kind: FaultLockRows, IDs: []string{existing}, Times: 2})
	update := collection(false, contactRec(map[string]any{"id": existing, "Title": "locked?"}))
	for i := range 3 {
		c.json(http.MethodPatch, "composite/sobjects", update, http.StatusOK, &res)
		wantCode := "UNABLE_TO_LOCK_ROW"
		if i == 2 {
			wantCode = ""
		}
		if codes(res[0]) != wantCode {
			t.Errorf("attempt %d: %+v", i, res[0])
		}
	}
	if got, _ := e.sim.Get("Contact", existing); got["Title"] != "locked?" {
		t.Errorf("title after the lock cleared: %v", got["Title"])
	}
}

func TestSingleRecordResources(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	var created result
	c.json(http.MethodPost, "sobjects/Contact", map[string]any{"LastName": "Single", "Email": "s@acme.example"}, http.StatusCreated, &created)
	var recorded struct {
		ID      string `json:"id"`
		Errors  []any  `json:"errors"`
		Success bool   `json:"success"`
	}
	strictDecode(t, recording(t, "create_success_response.json"), &recorded)
	if !created.Success || !ValidID(created.ID) || !recorded.Success {
		t.Fatalf("create %+v", created)
	}
	var got map[string]any
	c.json(http.MethodGet, "sobjects/Contact/"+created.ID+"?fields=LastName,Email", nil, http.StatusOK, &got)
	if got["LastName"] != "Single" || got["Email"] != "s@acme.example" || len(got) != 3 {
		t.Errorf("get %v", got)
	}
	if r := c.call(http.MethodPatch, "sobjects/Contact/"+created.ID, map[string]any{"Title": "T"}); r.status != http.StatusNoContent {
		t.Errorf("patch %d %s", r.status, r.body)
	}
	r := c.call(http.MethodPatch, "sobjects/Contact/"+created.ID, map[string]any{"LastName": strings.Repeat("z", 90)})
	if r.status != http.StatusBadRequest || decodeErrors(t, r.body)[0].Fields[0] != "LastName" {
		t.Errorf("patch too long: %d %s", r.status, r.body)
	}
	if r := c.call(http.MethodDelete, "sobjects/Contact/"+created.ID, nil); r.status != http.StatusNoContent {
		t.Errorf("delete %d %s", r.status, r.body)
	}
	if r := c.call(http.MethodDelete, "sobjects/Contact/"+created.ID, nil); r.status != http.StatusNotFound || decodeErrors(t, r.body)[0].ErrorCode != "ENTITY_IS_DELETED" {
		t.Errorf("second delete %d %s", r.status, r.body)
	}
	r = c.call(http.MethodGet, "sobjects/Contact/23foo", nil)
	if r.status != http.StatusNotFound || !jsonEqual(t, r.body, recording(t, "sobject_find_error_response.json")) {
		t.Errorf("malformed id: %d %s", r.status, r.body)
	}

	// Retrieve through Collections: nulls for what is not there.
	keep, _ := e.sim.Insert("Contact", map[string]any{"LastName": "Keep"}, "")
	var many []map[string]any
	c.json(http.MethodGet, "composite/sobjects/Contact?fields=Id,LastName&ids="+keep+","+created.ID, nil, http.StatusOK, &many)
	if len(many) != 2 || many[0]["LastName"] != "Keep" || many[1] != nil {
		t.Errorf("retrieve %v", many)
	}
	if r := c.call(http.MethodPut, "composite/sobjects", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", r.status)
	}
}

// TestPrivateSharing: with Config.PrivateSharing, a user without Modify All writes only what they
// own: another's contact cannot be updated or deleted, a contact cannot be created for another
// owner, and invitees cannot be added to another's event; each refusal is that record's error and
// never fails the others. A user with Modify All, and backdoor edits, write anything.
func TestPrivateSharing(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PrivateSharing = true })
	other, err := e.sim.AddUser(User{Username: "other@acme.example", IsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := e.sim.Insert("Contact", map[string]any{"LastName": "Theirs"}, other)
	if err != nil {
		t.Fatalf("a backdoor edit is refused under private sharing: %v", err)
	}
	mine, err := e.sim.Insert("Contact", map[string]any{"LastName": "Mine"}, e.userID)
	if err != nil {
		t.Fatal(err)
	}
	start := e.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	theirEvent, err := e.sim.Insert("Event", map[string]any{"Subject": "Theirs", "StartDateTime": start, "DurationInMinutes": 30}, other)
	if err != nil {
		t.Fatal(err)
	}
	c := e.login() // the rep, a Standard User without Modify All
	var res []result
	c.json(http.MethodPost, "composite/sobjects", collection(false,
		contactRec(map[string]any{"LastName": "For me"}),
		contactRec(map[string]any{"LastName": "For them", "OwnerId": other}),
		map[string]any{"attributes": map[string]any{"type": "EventRelation"}, "EventId": theirEvent, "RelationId": e.userID, "IsInvitee": true},
	), http.StatusOK, &res)
	if want := []string{"", "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY", "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"}; len(res) != 3 ||
		codes(res[0]) != want[0] || codes(res[1]) != want[1] || codes(res[2]) != want[2] {
		t.Fatalf("creates: %+v, want %v", res, want)
	}
	if f := res[1].Errors[0].Fields; len(f) != 1 || f[0] != "OwnerId" {
		t.Errorf("refused create names fields %v, want OwnerId", f)
	}
	c.json(http.MethodPatch, "composite/sobjects", collection(false,
		contactRec(map[string]any{"id": mine, "Title": "Mine to edit"}),
		contactRec(map[string]any{"id": theirs, "Title": "Not mine"}),
	), http.StatusOK, &res)
	if codes(res[0]) != "" || codes(res[1]) != "INSUFFICIENT_ACCESS_OR_READONLY" {
		t.Errorf("updates: %+v", res)
	}
	r := c.call(http.MethodDelete, "composite/sobjects?allOrNone=false&ids="+theirs, nil)
	if err := json.Unmarshal(r.body, &res); err != nil || codes(res[0]) != "INSUFFICIENT_ACCESS_OR_READONLY" {
		t.Errorf("delete of another's contact: %d %s", r.status, r.body)
	}
	if got, _ := e.sim.Get("Contact", theirs); got["IsDeleted"] != false || got["Title"] != nil {
		t.Errorf("another's contact was written: %v", got)
	}

	// With Modify All, the same writes go through.
	if _, err := e.sim.AddUser(User{Username: "integration@acme.example", IsActive: true, ModifyAll: true}); err != nil {
		t.Fatal(err)
	}
	e.user = "integration@acme.example"
	admin := e.login()
	admin.json(http.MethodPost, "composite/sobjects", collection(false,
		contactRec(map[string]any{"LastName": "For them", "OwnerId": other}),
		map[string]any{"attributes": map[string]any{"type": "EventRelation"}, "EventId": theirEvent, "RelationId": e.userID, "IsInvitee": true},
	), http.StatusOK, &res)
	if codes(res[0]) != "" || codes(res[1]) != "" {
		t.Errorf("creates with Modify All: %+v", res)
	}
	if got, _ := e.sim.Get("Contact", res[0].ID); got["OwnerId"] != other {
		t.Errorf("a contact created for another owner: %v", got)
	}
	admin.json(http.MethodPatch, "composite/sobjects", collection(false, contactRec(map[string]any{"id": theirs, "Title": "Edited"})), http.StatusOK, &res)
	if codes(res[0]) != "" {
		t.Errorf("update with Modify All: %+v", res)
	}
}

// TestCollectionsStampTheirRecordsAlike: the records one collections call saves share its
// SystemModstamp, as Salesforce stamps the records of one request, and the next call's is later.
// A bulk load therefore never stamps records ahead of the clock by a millisecond per record: a
// later edit would share a second with them instead of coming after them.
func TestCollectionsStampTheirRecordsAlike(t *testing.T) {
	e := newEnv(t) // a frozen clock
	c := e.login()
	create := func(call int) []string {
		recs := make([]map[string]any, 200)
		for i := range recs {
			recs[i] = contactRec(map[string]any{"LastName": fmt.Sprintf("Bulk %d-%d", call, i)})
		}
		var res []result
		c.json(http.MethodPost, "composite/sobjects", collection(false, recs...), http.StatusOK, &res)
		ids := make([]string, len(res))
		for i, r := range res {
			if !r.Success {
				t.Fatalf("create %d of call %d: %+v", i, call, r)
			}
			ids[i] = r.ID
		}
		return ids
	}
	stampsOf := func(ids []string) map[time.Time]int {
		out := map[time.Time]int{}
		for _, id := range ids {
			got, _ := e.sim.Get("Contact", id)
			out[got["SystemModstamp"].(time.Time)]++
		}
		return out
	}
	first, second := stampsOf(create(1)), stampsOf(create(2))
	if len(first) != 1 || len(second) != 1 {
		t.Fatalf("two calls of 200 creates stamped their records with %d and %d stamps, want one each", len(first), len(second))
	}
	for a := range first {
		for b := range second {
			if !b.After(a) {
				t.Errorf("the second call's stamp %v is not after the first's %v", b, a)
			}
			if gap := b.Sub(a); gap > time.Millisecond {
				t.Errorf("the second call's stamp is %v after the first's under a frozen clock, want a millisecond: the first call's records ran the stamps ahead", gap)
			}
		}
	}
}
