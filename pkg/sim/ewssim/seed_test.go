package ewssim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode"
)

func TestSeedIsDeterministic(t *testing.T) {
	dump := func(seed int64) string {
		e := newEnv(t)
		if err := e.sim.Seed("carol@contoso.com", 60, 25, seed); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(e.sim.Dump().Mailboxes["carol@contoso.com"])
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	a, b, c := dump(42), dump(42), dump(43)
	if a != b {
		t.Error("the same seed produced different mailboxes")
	}
	if a == c {
		t.Error("different seeds produced the same mailbox")
	}
}

func TestSeedIsRealistic(t *testing.T) {
	e := newEnv(t)
	if err := e.sim.Seed(alice, 400, 200, 1); err != nil {
		t.Fatal(err)
	}
	contacts := e.sim.Items(alice, SyncFolderName)
	events := e.sim.Items(alice, "calendar")
	if len(contacts) != 400 || len(events) != 200 {
		t.Fatalf("%d contacts, %d events", len(contacts), len(events))
	}
	var birthdays, notes, international, companies, emails, addresses int
	names := map[string]bool{}
	for _, it := range contacts {
		c := it.Contact
		if c.GivenName == "" || c.Surname == "" {
			t.Fatalf("contact without a name: %+v", c)
		}
		// Namesakes in one mailbox would be ambiguous matches for a namesake in Salesforce.
		if names[c.GivenName+" "+c.Surname] {
			t.Fatalf("two contacts named %s %s in one mailbox", c.GivenName, c.Surname)
		}
		names[c.GivenName+" "+c.Surname] = true
		if !c.Birthday.IsZero() {
			birthdays++
		}
		if c.Body != "" {
			notes++
		}
		if strings.IndexFunc(c.GivenName+c.Surname+c.CompanyName, func(r rune) bool { return r > unicode.MaxASCII }) >= 0 {
			international++
		}
		if c.CompanyName != "" {
			companies++
		}
		if strings.Contains(c.Email("EmailAddress1"), "@") {
			emails++
		}
		if len(c.PhysicalAddresses) > 0 {
			addresses++
		}
	}
	for name, n := range map[string]int{"birthdays": birthdays, "notes": notes, "international names": international, "companies": companies, "emails": emails, "addresses": addresses} {
		if n == 0 || n == len(contacts) && name != "emails" {
			t.Errorf("%s: %d of %d contacts", name, n, len(contacts))
		}
	}
	var allDay, recurring, meetings, exceptions int
	patterns := map[string]bool{}
	for _, it := range events {
		ev := it.CalendarItem
		if ev.IsAllDayEvent {
			allDay++
		}
		if ev.Recurrence != nil {
			recurring++
			patterns[ev.Recurrence.Pattern+"/"+ev.Recurrence.Range] = true
		}
		if ev.isMeeting() {
			meetings++
		}
		if len(ev.DeletedOccurrences)+len(ev.ModifiedOccurrences) > 0 {
			exceptions++
		}
		if ev.End.Before(ev.Start) {
			t.Errorf("event ends before it starts: %+v", ev)
		}
	}
	if allDay == 0 || recurring == 0 || meetings == 0 || exceptions == 0 || len(patterns) < 6 {
		t.Errorf("all-day %d, recurring %d (%v), meetings %d, with exceptions %d", allDay, recurring, patterns, meetings, exceptions)
	}
}

// TestSeededItemsRenderValidly reads every seeded item through EWS (GetItem with all properties,
// SyncFolderItems, FindItem): the recorded responses are validated against the schema at cleanup,
// which covers the encoder on a wide variety of content.
func TestSeededItemsRenderValidly(t *testing.T) {
	e := newEnv(t)
	if err := e.sim.Seed(alice, 150, 150, 9); err != nil {
		t.Fatal(err)
	}
	for _, folder := range []string{SyncFolderName, "calendar"} {
		var ids []string
		for _, it := range e.sim.Items(alice, folder) {
			ids = append(ids, it.ItemID)
		}
		for start := 0; start < len(ids); start += 50 {
			var b strings.Builder
			for _, id := range ids[start:min(start+50, len(ids))] {
				fmt.Fprintf(&b, `<t:ItemId Id="%s"/>`, id)
			}
			for _, shape := range []string{"AllProperties", "Default"} {
				resp := e.mustOK(`<m:GetItem><m:ItemShape><t:BaseShape>` + shape + `</t:BaseShape><t:BodyType>HTML</t:BodyType><t:AdditionalProperties>` + syncKeyURI +
					`</t:AdditionalProperties></m:ItemShape><m:ItemIds>` + b.String() + `</m:ItemIds></m:GetItem>`)
				if n := len(resp.FindElements(".//Items/*")); n != min(50, len(ids)-start) {
					t.Fatalf("GetItem returned %d items", n)
				}
			}
		}
		id, _ := e.sim.FolderID(alice, folder)
		e.mustOK(strings.Replace(syncRequest(id, "", 512, ""), "IdOnly", "AllProperties", 1))
		e.mustOK(`<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape><m:ParentFolderIds><t:FolderId Id="` + id + `"/></m:ParentFolderIds></m:FindItem>`)
	}
	if slices.Contains(e.sim.Mailboxes(), "") {
		t.Error("empty mailbox address")
	}
}
