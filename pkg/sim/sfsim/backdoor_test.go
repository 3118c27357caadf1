package sfsim

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/sim/soql"
)

func TestIDs(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		// Ids from recorded Salesforce responses and documentation: the suffix must match.
		{"003q000000KvQ1tAAF", "003q000000KvQ1tAAF", true},
		{"003q000000KwKFhAAN", "003q000000KwKFhAAN", true},
		{"a00D0000008pQRAIA2", "a00D0000008pQRAIA2", true},
		{"001xx000003DGb2AAG", "001xx000003DGb2AAG", true},
		{"005x00000012Q9P", "005x00000012Q9PAAU", true},
		{"003q000000kvq1taaf", "003q000000KvQ1tAAF", true}, // the suffix restores the case
		{"003Q000000KVQ1TAAF", "003q000000KvQ1tAAF", true},
		{"003q000000KvQ1t", "003q000000KvQ1tAAF", true},
		{"003q000000kvq1t", "003q000000kvq1tAAA", true}, // a 15-character id is case-sensitive: another record
		{"003q000000KvQ1tAA5", "", false},               // the suffix marks a digit upper case
		{"003q000000KvQ1tAA!", "", false},
		{"003q000000KvQ1", "", false},
		{"003q000000KvQ1t-AF", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := NormalizeID(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("NormalizeID(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	// Generated ids are valid, carry the key prefix and sort in creation order.
	prev := ""
	for seq := uint64(1); seq < 200_000; seq += 997 {
		id := makeID(PrefixContact, "5g", seq)
		if !ValidID(id) || !strings.HasPrefix(id, "003") || len(id) != 18 || id <= prev {
			t.Fatalf("makeID(%d) = %s after %s", seq, id, prev)
		}
		prev = id
	}
}

func TestBackdoorEdits(t *testing.T) {
	e := newEnv(t)
	id, err := e.sim.Insert("Contact", map[string]any{"firstname": "Bo", "LastName": "Day", "Birthdate": time.Date(1970, 1, 2, 15, 0, 0, 0, time.UTC)}, e.userID)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := e.sim.Get("Contact", id)
	if !ok || got["FirstName"] != "Bo" || got["Birthdate"] != (soql.Date{Year: 1970, Month: 1, Day: 2}) || got["OwnerId"] != e.userID || got["IsDeleted"] != false {
		t.Fatalf("Get = %v", got)
	}
	if _, err := e.sim.Insert("Contact", map[string]any{"FirstName": "No last"}, ""); err == nil {
		t.Error("a contact without LastName was saved")
	} else {
		var re *RecordError
		if !errors.As(err, &re) || re.Errors[0].StatusCode != "REQUIRED_FIELD_MISSING" {
			t.Errorf("error %v", err)
		}
	}
	if _, err := e.sim.Insert("Widget", nil, ""); !errors.Is(err, ErrUnknownObject) {
		t.Errorf("unknown object: %v", err)
	}
	if _, err := e.sim.Insert("Contact", map[string]any{"LastName": "x", "Nope": 1}, ""); !errors.Is(err, ErrUnknownField) {
		t.Errorf("unknown field: %v", err)
	}
	if err := e.sim.Update("Contact", makeID(PrefixContact, "5g", 99999), map[string]any{"Title": "x"}, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of a missing record: %v", err)
	}
	if err := e.sim.Update("Contact", id, map[string]any{"Email": nil, "Title": "CTO"}, e.userID); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.sim.Get("Contact", id); got["Title"] != "CTO" {
		t.Errorf("after update %v", got)
	}
	if n := len(e.sim.List("Contact")); n != 1 {
		t.Errorf("List = %d records", n)
	}
	if err := e.sim.Delete("Contact", id); err != nil {
		t.Fatal(err)
	}
	if got, ok := e.sim.Get("Contact", id); !ok || got["IsDeleted"] != true {
		t.Errorf("a deleted record is in the recycle bin: %v %v", got, ok)
	}
	if n := len(e.sim.List("Contact")); n != 0 {
		t.Errorf("List shows a deleted record")
	}
	if err := e.sim.Undelete("Contact", id); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.sim.Get("Contact", id); got["IsDeleted"] != false {
		t.Errorf("after undelete %v", got)
	}
}

func TestCascadeDeleteAndUndelete(t *testing.T) {
	e := newEnv(t)
	c, _ := e.sim.Insert("Contact", map[string]any{"LastName": "Guest", "Email": "g@acme.example"}, "")
	start := e.clock.Now()
	ev, err := e.sim.Insert("Event", map[string]any{"Subject": "Party", "StartDateTime": start, "EndDateTime": start.Add(time.Hour)}, "")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := e.sim.Insert("EventRelation", map[string]any{"EventId": ev, "RelationId": c}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := e.sim.Get("EventRelation", rel); got["Status"] != "New" || got["IsInvitee"] != true {
		t.Errorf("relation defaults %v", got)
	}
	if err := e.sim.Delete("Event", ev); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.sim.Get("EventRelation", rel); got["IsDeleted"] != true {
		t.Errorf("the relation outlived its event: %v", got)
	}
	if err := e.sim.Undelete("Event", ev); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.sim.Get("EventRelation", rel); got["IsDeleted"] != false {
		t.Errorf("the relation did not come back with its event: %v", got)
	}
}

func TestSystemModstampStrictlyIncreases(t *testing.T) {
	// A frozen clock: every change still gets a later stamp, also under concurrency.
	e := newEnv(t)
	ids, err := e.sim.SeedContacts(e.userID, 20, 11)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				if err := e.sim.Update("Contact", ids[(w*25+i)%len(ids)], map[string]any{"Title": "t"}, ""); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	seen := map[time.Time]bool{}
	var stamps []time.Time
	for _, o := range []string{"User", "Profile", "Account", "Contact"} {
		for _, r := range e.sim.List(o) {
			stamp := r["SystemModstamp"].(time.Time)
			if seen[stamp] {
				t.Fatalf("two records share SystemModstamp %v", stamp)
			}
			if stamp.Truncate(time.Millisecond) != stamp {
				t.Fatalf("stamp %v has sub-millisecond precision", stamp)
			}
			seen[stamp] = true
			stamps = append(stamps, stamp)
		}
	}
	if len(stamps) < 20 {
		t.Fatalf("%d stamps", len(stamps))
	}
}

func TestUsersAndProfiles(t *testing.T) {
	e := newEnv(t)
	if a, b := e.sim.AddProfile("Sales Rep"), e.sim.AddProfile("sales rep"); a != b || !strings.HasPrefix(a, PrefixProfile) {
		t.Errorf("AddProfile is not idempotent: %s %s", a, b)
	}
	chosen := makeID(PrefixUser, "5g", 77777)
	id, err := e.sim.AddUser(User{ID: chosen[:15], Username: "chosen@acme.example", LastName: "Chosen", IsActive: true})
	if err != nil || id != chosen {
		t.Fatalf("AddUser with an id: %s %v", id, err)
	}
	for _, u := range []User{
		{Username: "REP@acme.example", LastName: "Dup", IsActive: true},
		{Username: "not-an-email", LastName: "Bad"},
		{ID: makeID(PrefixContact, "5g", 1), Username: "c@acme.example"},
		{Username: "x@acme.example", ProfileID: makeID(PrefixProfile, "5g", 55555)},
	} {
		if _, err := e.sim.AddUser(u); err == nil {
			t.Errorf("AddUser(%+v) succeeded", u)
		}
	}
	c := e.login()
	var res queryResult
	c.json(http.MethodGet, "query?q="+url.QueryEscape("SELECT Id, Username, Profile.Name FROM User WHERE IsActive = true ORDER BY Username"), nil, http.StatusOK, &res)
	if res.TotalSize != 3 { // admin, chosen, rep
		t.Errorf("users %+v", res.Records)
	}
	// Users cannot be created through the API.
	var out []result
	c.json(http.MethodPost, "composite/sobjects", collection(false, map[string]any{"attributes": map[string]any{"type": "User"}, "Username": "api@acme.example", "LastName": "Api"}), http.StatusOK, &out)
	if codes(out[0]) != "INVALID_TYPE_FOR_OPERATION" {
		t.Errorf("API user create %+v", out)
	}
	// An inactive owner is refused.
	if err := e.sim.Update("User", chosen, map[string]any{"IsActive": false}, ""); err != nil {
		t.Fatal(err)
	}
	c.json(http.MethodPost, "composite/sobjects", collection(false, contactRec(map[string]any{"LastName": "x", "OwnerId": chosen})), http.StatusOK, &out)
	if codes(out[0]) != "INACTIVE_OWNER_OR_USER" {
		t.Errorf("inactive owner %+v", out)
	}
}

func TestCustomFields(t *testing.T) {
	e := newEnv(t)
	if err := e.sim.AddField("Contact", Field{Name: "Region__c", Type: TypePicklist, Length: 255, Nillable: true, Createable: true, Updateable: true,
		PicklistValues: []string{"EMEA", "AMER"}, RestrictedPicklist: true}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Field{{Name: "Region", Type: TypeString, Length: 10}, {Name: "Region__c", Type: TypeString, Length: 10}, {Name: "X__c", Type: TypeString}} {
		if err := e.sim.AddField("Contact", bad); err == nil {
			t.Errorf("AddField(%+v) succeeded", bad)
		}
	}
	c := e.login()
	var res []result
	c.json(http.MethodPost, "composite/sobjects", collection(false,
		contactRec(map[string]any{"LastName": "Eu", "Region__c": "EMEA"}),
		contactRec(map[string]any{"LastName": "Mars", "Region__c": "MARS"}),
	), http.StatusOK, &res)
	if !res[0].Success || codes(res[1]) != "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" {
		t.Errorf("results %+v", res)
	}
	var q queryResult
	c.json(http.MethodGet, "query?q="+url.QueryEscape("SELECT Id, Region__c FROM Contact WHERE Region__c = 'emea'"), nil, http.StatusOK, &q)
	if q.TotalSize != 1 || q.Records[0]["Region__c"] != "EMEA" {
		t.Errorf("query %+v", q)
	}

	// An org without Tandem's external id field.
	if err := e.sim.RemoveField("Contact", SyncKeyField); err != nil {
		t.Fatal(err)
	}
	var d struct {
		Fields []struct {
			Name string `json:"name"`
		} `json:"fields"`
	}
	c.json(http.MethodGet, "sobjects/Contact/describe", nil, http.StatusOK, &d)
	for _, f := range d.Fields {
		if f.Name == SyncKeyField {
			t.Error("describe still lists the removed field")
		}
	}
	if r := c.query("SELECT Id, Tandem_Sync_Key__c FROM Contact"); r.status != http.StatusBadRequest || decodeErrors(t, r.body)[0].ErrorCode != "INVALID_FIELD" {
		t.Errorf("query of the removed field: %d %s", r.status, r.body)
	}
	if r := c.call(http.MethodPatch, "composite/sobjects/Contact/Tandem_Sync_Key__c", collection(false)); r.status != http.StatusNotFound {
		t.Errorf("upsert on the removed field: %d %s", r.status, r.body)
	}
}

func TestDescribe(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	type field struct {
		Name       string   `json:"name"`
		Type       string   `json:"type"`
		Length     int      `json:"length"`
		ExternalID bool     `json:"externalId"`
		Nillable   bool     `json:"nillable"`
		Unique     bool     `json:"unique"`
		RefTo      []string `json:"referenceTo"`
		RelName    *string  `json:"relationshipName"`
	}
	type describe struct {
		Name      string  `json:"name"`
		KeyPrefix string  `json:"keyPrefix"`
		Fields    []field `json:"fields"`
		Children  []struct {
			ChildSObject     string `json:"childSObject"`
			RelationshipName string `json:"relationshipName"`
		} `json:"childRelationships"`
	}
	checks := map[string]map[string]func(field) bool{
		"Contact": {
			"LastName":       func(f field) bool { return f.Type == "string" && f.Length == 80 && !f.Nillable },
			"Email":          func(f field) bool { return f.Type == "email" && f.Length == 80 },
			SyncKeyField:     func(f field) bool { return f.ExternalID && f.Unique && f.Nillable },
			"AccountId":      func(f field) bool { return f.Type == "reference" && f.RelName != nil && *f.RelName == "Account" },
			"Birthdate":      func(f field) bool { return f.Type == "date" },
			"Description":    func(f field) bool { return f.Type == "textarea" && f.Length == 32000 },
			"SystemModstamp": func(f field) bool { return f.Type == "datetime" && !f.Nillable },
			"Id":             func(f field) bool { return f.Type == "id" && f.Length == 18 },
		},
		"Event": {
			"StartDateTime": func(f field) bool { return f.Type == "datetime" },
			"WhoId":         func(f field) bool { return len(f.RefTo) == 2 && *f.RelName == "Who" },
			"ShowAs":        func(f field) bool { return f.Type == "picklist" },
			SyncKeyField:    func(f field) bool { return f.ExternalID },
		},
		"EventRelation": {"RelationId": func(f field) bool { return len(f.RefTo) == 3 && *f.RelName == "Relation" }},
		"User":          {"Username": func(f field) bool { return f.Unique }},
		"Account":       {"Name": func(f field) bool { return !f.Nillable && f.Length == 255 }},
		"Lead":          {"Company": func(f field) bool { return !f.Nillable }},
	}
	prefixes := map[string]string{"Contact": "003", "Event": "00U", "EventRelation": "0RE", "User": "005", "Account": "001", "Lead": "00Q"}
	for object, fieldChecks := range checks {
		var d describe
		c.json(http.MethodGet, "sobjects/"+object+"/describe", nil, http.StatusOK, &d)
		if d.Name != object || d.KeyPrefix != prefixes[object] {
			t.Errorf("%s: name %s prefix %s", object, d.Name, d.KeyPrefix)
		}
		byName := map[string]field{}
		for _, f := range d.Fields {
			byName[f.Name] = f
		}
		for name, ok := range fieldChecks {
			f, found := byName[name]
			if !found || !ok(f) {
				t.Errorf("%s.%s: %+v (found %v)", object, name, f, found)
			}
		}
		if object == "Event" && (len(d.Children) == 0 || d.Children[0].RelationshipName != "EventRelations") {
			t.Errorf("Event children %+v", d.Children)
		}
	}
	if r := c.call(http.MethodGet, "sobjects/Widget/describe", nil); r.status != http.StatusNotFound {
		t.Errorf("unknown object describe: %d", r.status)
	}
	var global struct {
		MaxBatchSize int `json:"maxBatchSize"`
		SObjects     []struct {
			Name string `json:"name"`
		} `json:"sobjects"`
	}
	c.json(http.MethodGet, "sobjects", nil, http.StatusOK, &global)
	if global.MaxBatchSize != 200 || len(global.SObjects) != 7 {
		t.Errorf("global describe %+v", global)
	}
	// Versions need no session.
	resp, err := e.srv.Client().Get(e.srv.URL + "/services/data/")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("versions: %v %v", resp, err)
	}
	resp.Body.Close()
	if r := c.call(http.MethodGet, "/services/data/v99.0/limits", nil); r.status != http.StatusNotFound {
		t.Errorf("a version newer than served: %d", r.status)
	}
	if r := c.call(http.MethodGet, "/services/data/v58.0/limits", nil); r.status != http.StatusOK {
		t.Errorf("an older version: %d", r.status)
	}
}
