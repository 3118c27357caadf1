package sfsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestSeedIsDeterministicAndValid(t *testing.T) {
	dump := func() *Dump {
		e := newEnv(t)
		if _, err := e.sim.SeedContacts(e.userID, 300, 42); err != nil {
			t.Fatal(err)
		}
		if _, err := e.sim.SeedEvents(e.userID, 200, 42); err != nil {
			t.Fatal(err)
		}
		return e.sim.Dump()
	}
	a, b := dump(), dump()
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two orgs seeded alike differ")
	}
	if len(a.Contacts) != 300 || len(a.Events) != 200 || len(a.Accounts) == 0 || len(a.EventRelations) == 0 {
		t.Fatalf("%d contacts, %d events, %d accounts, %d relations", len(a.Contacts), len(a.Events), len(a.Accounts), len(a.EventRelations))
	}
	var withAccount, withEmail, allDay, withWho, multiline int
	names := map[string]bool{}
	for _, c := range a.Contacts {
		// Namesakes of one owner would be ambiguous matches for a namesake in the owner's mailbox.
		name := fmt.Sprint(c["FirstName"], " ", c["LastName"])
		if names[name] {
			t.Fatalf("two contacts named %s", name)
		}
		names[name] = true
		if c["AccountId"] != nil {
			withAccount++
		}
		if c["Email"] != nil {
			withEmail++
		}
		if d, ok := c["Description"].(string); ok && len(d) > 0 && containsNewline(d) {
			multiline++
		}
	}
	for _, ev := range a.Events {
		if ev["IsAllDayEvent"] == true {
			allDay++
		}
		if ev["WhoId"] != nil {
			withWho++
		}
	}
	if withAccount == 0 || withEmail < 200 || allDay == 0 || withWho == 0 || multiline == 0 {
		t.Errorf("little variety: %d with account, %d with email, %d all-day, %d with who, %d multi-line notes", withAccount, withEmail, allDay, withWho, multiline)
	}
	e := newEnv(t)
	if _, err := e.sim.SeedContacts("005000000000000", 1, 1); err == nil {
		t.Error("seeding for an unknown owner succeeded")
	}
	// A different seed gives different data.
	if _, err := e.sim.SeedContacts(e.userID, 300, 43); err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(e.sim.Dump().Contacts[0]["LastName"], a.Contacts[0]["LastName"]) &&
		reflect.DeepEqual(e.sim.Dump().Contacts[1]["LastName"], a.Contacts[1]["LastName"]) &&
		reflect.DeepEqual(e.sim.Dump().Contacts[2]["LastName"], a.Contacts[2]["LastName"]) {
		t.Error("seeds 42 and 43 start alike")
	}
}

func containsNewline(s string) bool {
	for _, r := range s {
		if r == '\n' {
			return true
		}
	}
	return false
}

// TestDumpShape checks the JSON that outside tools read: the three required arrays with the
// required keys, no nulls, RFC 3339 times, no deleted records.
func TestDumpShape(t *testing.T) {
	e := newEnv(t)
	ids, err := e.sim.SeedContacts(e.userID, 20, 5)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := e.sim.SeedEvents(e.userID, 20, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.Update("Contact", ids[0], map[string]any{"Tandem_Sync_Key__c": "sync-0"}, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.Delete("Contact", ids[1]); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(e.sim.Dump())
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string][]map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	required := map[string][]string{
		"users":    {"Id", "Email", "ProfileId", "IsActive"},
		"contacts": {"Id", "OwnerId", "LastName", "SystemModstamp"},
		"events":   {"Id", "OwnerId", "Subject", "StartDateTime", "EndDateTime", "IsAllDayEvent", "IsPrivate"},
	}
	for key, fields := range required {
		list, ok := raw[key]
		if !ok || len(list) == 0 {
			t.Fatalf("dump lacks %q", key)
		}
		for _, rec := range list {
			for _, f := range fields {
				if _, ok := rec[f]; !ok {
					t.Errorf("%s record %v lacks %s", key, rec["Id"], f)
				}
			}
			for k, v := range rec {
				if v == nil {
					t.Errorf("%s record %v has null %s", key, rec["Id"], k)
				}
			}
		}
	}
	if len(raw["contacts"]) != 19 || len(raw["events"]) != len(evs) {
		t.Errorf("%d contacts, %d events", len(raw["contacts"]), len(raw["events"]))
	}
	first := raw["contacts"][0]
	if first["Id"] != ids[0] || first["Tandem_Sync_Key__c"] != "sync-0" {
		t.Errorf("first contact %v", first)
	}
	for _, k := range []string{"SystemModstamp", "CreatedDate", "LastModifiedDate"} {
		if _, err := time.Parse(time.RFC3339, first[k].(string)); err != nil {
			t.Errorf("%s = %v: %v", k, first[k], err)
		}
	}
	for _, ev := range raw["events"] {
		for _, k := range []string{"StartDateTime", "EndDateTime"} {
			if _, err := time.Parse(time.RFC3339, ev[k].(string)); err != nil {
				t.Errorf("event %s = %v", k, ev[k])
			}
		}
	}
}

// TestConcurrentClients runs readers and writers against one org under the race detector.
func TestConcurrentClients(t *testing.T) {
	e := newEnv(t)
	if _, err := e.sim.SeedContacts(e.userID, 200, 9); err != nil {
		t.Fatal(err)
	}
	clients := make([]*client, 4)
	for i := range clients {
		clients[i] = e.login()
	}
	var wg sync.WaitGroup
	for w, c := range clients {
		wg.Go(func() {
			for i := range 10 {
				var res []result
				key := fmt.Sprintf("w%d-%d", w, i)
				c.json(http.MethodPatch, "composite/sobjects/Contact/Tandem_Sync_Key__c",
					collection(false, contactRec(map[string]any{"Tandem_Sync_Key__c": key, "LastName": key})), http.StatusOK, &res)
				if !res[0].Success {
					t.Errorf("upsert %s: %+v", key, res[0])
				}
				var q queryResult
				c.json(http.MethodGet, "query?q="+url.QueryEscape("SELECT Id, Account.Name FROM Contact WHERE OwnerId = '"+e.userID+"' ORDER BY LastName LIMIT 50"), nil, http.StatusOK, &q)
				if q.TotalSize != 50 {
					t.Errorf("query: %d", q.TotalSize)
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			if _, err := e.sim.Insert("Contact", map[string]any{"LastName": fmt.Sprint("ui-", i)}, e.userID); err != nil {
				t.Error(err)
			}
			_ = e.sim.Dump()
		}
	})
	wg.Wait()
	if n := len(e.sim.List("Contact")); n != 200+40+20 {
		t.Errorf("%d contacts", n)
	}
}

// TestSeedStampsLikeOneRequest: the records one seeding call creates share one SystemModstamp,
// taken from the clock, as one bulk load request's do; stamped a millisecond apart, a large seed would
// run ahead of the clock, and changes made meanwhile would sort before it.
func TestSeedStampsLikeOneRequest(t *testing.T) {
	e := newEnv(t)
	if _, err := e.sim.SeedContacts(e.userID, 500, 7); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now().UTC()
	stamps := map[string]int{}
	for _, c := range e.sim.Dump().Contacts {
		stamps[fmt.Sprint(c["SystemModstamp"])]++
	}
	if len(stamps) != 1 {
		t.Fatalf("500 seeded contacts carry %d SystemModstamps, want one", len(stamps))
	}
	for s := range stamps {
		at, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		// The clock stands still here: the stamps the setup took before are a millisecond each.
		if at.After(now.Add(10 * time.Millisecond)) {
			t.Errorf("seeded at %s, ahead of the clock's %s", at, now)
		}
	}
}
