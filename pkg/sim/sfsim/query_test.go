package sfsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sfDateTime matches Salesforce's datetime rendering.
var sfDateTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$`)

func TestQueryShapes(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	acct, err := e.sim.Insert("Account", map[string]any{"Name": "Acme"}, e.userID)
	if err != nil {
		t.Fatal(err)
	}
	withAcct, err := e.sim.Insert("Contact", map[string]any{"FirstName": "Ann", "LastName": "Lee", "Email": "ann@acme.example", "AccountId": acct,
		"Birthdate": "1980-02-29"}, e.userID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.Insert("Contact", map[string]any{"LastName": "Solo"}, e.userID); err != nil {
		t.Fatal(err)
	}
	start := e.clock.Now().Add(24 * time.Hour)
	ev, err := e.sim.Insert("Event", map[string]any{"Subject": "Demo", "StartDateTime": start, "EndDateTime": start.Add(time.Hour), "WhoId": withAcct}, e.userID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.Insert("EventRelation", map[string]any{"EventId": ev, "RelationId": withAcct, "Status": "Accepted"}, e.userID); err != nil {
		t.Fatal(err)
	}
	bare, err := e.sim.Insert("Event", map[string]any{"Subject": "Alone", "StartDateTime": start, "EndDateTime": start.Add(time.Hour)}, e.userID)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("fields, relationship and datetimes", func(t *testing.T) {
		var res queryResult
		c.json(http.MethodGet, "query?q="+url.QueryEscape("select id, firstname, LASTNAME, account.name, Owner.Email, Birthdate, SystemModstamp from contact order by LastName"), nil, http.StatusOK, &res)
		if res.TotalSize != 2 || !res.Done || res.NextRecordsURL != "" || len(res.Records) != 2 {
			t.Fatalf("result %+v", res)
		}
		lee := res.Records[0]
		attrs := lee["attributes"].(map[string]any)
		if attrs["type"] != "Contact" || attrs["url"] != "/services/data/v"+e.sim.APIVersion()+"/sobjects/Contact/"+withAcct {
			t.Errorf("attributes %v", attrs)
		}
		// Keys come back in the schema's spelling, whatever the query's.
		if lee["Id"] != withAcct || lee["FirstName"] != "Ann" || lee["LastName"] != "Lee" || lee["Birthdate"] != "1980-02-29" {
			t.Errorf("record %v", lee)
		}
		account, ok := lee["Account"].(map[string]any)
		if !ok || account["Name"] != "Acme" || account["attributes"].(map[string]any)["type"] != "Account" {
			t.Errorf("Account = %v", lee["Account"])
		}
		if owner := lee["Owner"].(map[string]any); owner["Email"] != "rep@acme.example" {
			t.Errorf("Owner = %v", owner)
		}
		if stamp, _ := lee["SystemModstamp"].(string); !sfDateTime.MatchString(stamp) {
			t.Errorf("SystemModstamp %q is not rendered like Salesforce", stamp)
		}
		if solo := res.Records[1]; solo["Account"] != nil || solo["FirstName"] != nil {
			t.Errorf("an empty relationship and field are null: %v", solo)
		}
	})

	t.Run("child subquery and polymorphic relationship", func(t *testing.T) {
		var res queryResult
		q := "SELECT Id, Subject, Who.Name, Who.Type, (SELECT RelationId, Relation.Email, Relation.Name, Status FROM EventRelations) FROM Event ORDER BY Subject"
		c.json(http.MethodGet, "query?q="+url.QueryEscape(q), nil, http.StatusOK, &res)
		if len(res.Records) != 2 {
			t.Fatalf("records %v", res.Records)
		}
		alone, demo := res.Records[0], res.Records[1]
		if alone["Id"] != bare || alone["EventRelations"] != nil || alone["Who"] != nil {
			t.Errorf("an event without relations has null children: %v", alone)
		}
		who := demo["Who"].(map[string]any)
		if who["Name"] != "Ann Lee" || who["Type"] != "Contact" || who["attributes"].(map[string]any)["type"] != "Name" {
			t.Errorf("Who = %v", who)
		}
		rels := demo["EventRelations"].(map[string]any)
		if rels["totalSize"] != float64(1) || rels["done"] != true {
			t.Fatalf("EventRelations = %v", rels)
		}
		rel := rels["records"].([]any)[0].(map[string]any)
		if rel["RelationId"] != withAcct || rel["Status"] != "Accepted" || rel["Relation"].(map[string]any)["Email"] != "ann@acme.example" {
			t.Errorf("relation %v", rel)
		}
	})

	t.Run("count", func(t *testing.T) {
		var res queryResult
		c.json(http.MethodGet, "query?q="+url.QueryEscape("SELECT COUNT() FROM Contact WHERE Email != null"), nil, http.StatusOK, &res)
		if res.TotalSize != 1 || len(res.Records) != 0 || !res.Done {
			t.Errorf("count result %+v", res)
		}
	})

	t.Run("empty result has the recorded shape", func(t *testing.T) {
		r := c.query("SELECT Id FROM Contact WHERE LastName = 'Nobody'")
		if r.status != http.StatusOK || !jsonEqual(t, r.body, recording(t, "query_empty_response.json")) {
			t.Errorf("%d %s", r.status, r.body)
		}
	})
}

func TestQueryErrors(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	tests := []struct {
		name    string
		query   string
		code    string
		message string
	}{
		{"syntax", "SELECT Id FROM Contact WHERE", "MALFORMED_QUERY", "\nSELECT Id FROM Contact WHERE\n                            ^\nERROR at Row:1:Column:29\nunexpected token: <EOF>"},
		{"unknown field", "SELECT Id, Nope__c FROM Contact", "INVALID_FIELD", "No such column 'Nope__c' on entity 'Contact'."},
		{"unknown object", "SELECT Id FROM Contacts", "INVALID_TYPE", "sObject type 'Contacts' is not supported."},
		{"wrong literal type", "SELECT Id FROM Contact WHERE SystemModstamp > '2024-01-01'", "INVALID_FIELD", "must be of type dateTime"},
		{"bad id", "SELECT Id FROM Contact WHERE OwnerId = '005'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: 005"},
		{"long text filter", "SELECT Id FROM Contact WHERE Description = 'x'", "INVALID_FIELD", "can not be filtered"},
		{"mixed and/or", "SELECT Id FROM Contact WHERE LastName = 'a' AND FirstName = 'b' OR Email = 'c'", "MALFORMED_QUERY", "unexpected token: OR"},
		{"empty", "", "MALFORMED_QUERY", "A query string has to be specified"},
		{"too long", "SELECT Id FROM Contact WHERE LastName IN (" + strings.Repeat("'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',", 3300) + "'x')", "MALFORMED_QUERY", "cannot exceed 100000 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.query(tt.query)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			errs := decodeErrors(t, r.body)
			if len(errs) != 1 || errs[0].ErrorCode != tt.code || !strings.Contains(errs[0].Message, tt.message) {
				t.Errorf("errors %+v, want %s ~%q", errs, tt.code, tt.message)
			}
		})
	}
	t.Run("recorded error shape", func(t *testing.T) {
		var recorded, sim []restError
		strictDecode(t, recording(t, "query_error_response.json"), &recorded)
		strictDecode(t, c.query("SELECT Foo FROM Contact").body, &sim)
		if recorded[0].ErrorCode != sim[0].ErrorCode {
			t.Errorf("recorded %+v, simulated %+v", recorded, sim)
		}
	})
}

func TestQueryPaging(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	ids, err := e.sim.SeedContacts(e.userID, 450, 7)
	if err != nil {
		t.Fatal(err)
	}
	q := "SELECT Id, LastName FROM Contact ORDER BY Id"

	t.Run("batch size header", func(t *testing.T) {
		c.header = http.Header{"Sforce-Query-Options": {"batchSize=200"}}
		defer func() { c.header = nil }()
		e.sim.ResetCounts()
		var got []string
		var res queryResult
		c.json(http.MethodGet, "query?q="+url.QueryEscape(q), nil, http.StatusOK, &res)
		pages := 1
		for {
			if res.TotalSize != 450 {
				t.Fatalf("page %d totalSize %d", pages, res.TotalSize)
			}
			for _, r := range res.Records {
				got = append(got, r["Id"].(string))
			}
			if res.Done {
				if res.NextRecordsURL != "" {
					t.Errorf("the last page has a nextRecordsUrl")
				}
				break
			}
			if !regexp.MustCompile(`^/services/data/v\d+\.0/query/01g[0-9A-Za-z]{15}-\d+$`).MatchString(res.NextRecordsURL) {
				t.Fatalf("nextRecordsUrl %q", res.NextRecordsURL)
			}
			if len(res.Records) != 200 {
				t.Errorf("page %d has %d records", pages, len(res.Records))
			}
			next := res.NextRecordsURL
			res = queryResult{}
			c.json(http.MethodGet, next, nil, http.StatusOK, &res)
			pages++
		}
		if pages != 3 || strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Errorf("%d pages, %d records; want 3 pages with every id in order", pages, len(got))
		}
		counts := e.sim.Counts()
		if counts[EndpointQuery] != 1 || counts[EndpointQueryMore] != 2 {
			t.Errorf("counts %v", counts)
		}
	})

	t.Run("default batch is 2000, limit and offset apply", func(t *testing.T) {
		var res queryResult
		c.json(http.MethodGet, "query?q="+url.QueryEscape(q+" LIMIT 300 OFFSET 100"), nil, http.StatusOK, &res)
		if res.TotalSize != 300 || !res.Done || len(res.Records) != 300 || res.Records[0]["Id"] != ids[100] {
			t.Errorf("totalSize %d done %v first %v", res.TotalSize, res.Done, res.Records[0]["Id"])
		}
	})

	t.Run("invalid locators", func(t *testing.T) {
		c.header = http.Header{"Sforce-Query-Options": {"batchSize=200"}}
		defer func() { c.header = nil }()
		var res queryResult
		c.json(http.MethodGet, "query?q="+url.QueryEscape(q), nil, http.StatusOK, &res)
		locator := strings.SplitN(strings.TrimPrefix(res.NextRecordsURL, "/services/data/v"+e.sim.APIVersion()+"/query/"), "-", 2)[0]
		other := newEnvUser(t, e, "other@acme.example")
		for _, tc := range []struct {
			name string
			c    *client
			path string
		}{
			{"garbage", c, "query/nonsense"},
			{"beyond the end", c, "query/" + locator + "-451"},
			{"another user's cursor", other, "query/" + locator + "-200"},
		} {
			r := tc.c.call(http.MethodGet, tc.path, nil)
			if r.status != http.StatusBadRequest || decodeErrors(t, r.body)[0].ErrorCode != "INVALID_QUERY_LOCATOR" {
				t.Errorf("%s: %d %s", tc.name, r.status, r.body)
			}
		}
		// Cursors expire after 15 idle minutes.
		e.clock.Advance(16 * time.Minute)
		c2 := e.login()
		if r := c2.call(http.MethodGet, "query/"+locator+"-200", nil); r.status != http.StatusBadRequest {
			t.Errorf("an idle cursor still answers: %d", r.status)
		}
	})

	t.Run("recorded page shapes", func(t *testing.T) {
		type page struct {
			TotalSize      int    `json:"totalSize"`
			Done           bool   `json:"done"`
			NextRecordsURL string `json:"nextRecordsUrl"`
			Records        []struct {
				Attributes struct {
					Type string `json:"type"`
					URL  string `json:"url"`
				} `json:"attributes"`
			} `json:"records"`
		}
		var first, last page
		stripFields(t, recording(t, "query_paginated_first_page_response.json"), &first)
		stripFields(t, recording(t, "query_paginated_last_page_response.json"), &last)
		c.header = http.Header{"Sforce-Query-Options": {"batchSize=200"}}
		defer func() { c.header = nil }()
		r := c.query("SELECT Id FROM Contact")
		var simFirst, simLast page
		// Both sides' records carry their own fields; compare the page envelope and attributes.
		stripFields(t, r.body, &simFirst)
		if first.Done || simFirst.Done || first.NextRecordsURL == "" || simFirst.NextRecordsURL == "" || simFirst.Records[0].Attributes.URL == "" {
			t.Errorf("first pages differ in shape: %+v vs %+v", first, simFirst)
		}
		r = c.call(http.MethodGet, simFirst.NextRecordsURL[:strings.LastIndexByte(simFirst.NextRecordsURL, '-')]+"-400", nil)
		stripFields(t, r.body, &simLast)
		if !last.Done || !simLast.Done || last.NextRecordsURL != "" || simLast.NextRecordsURL != "" {
			t.Errorf("last pages differ in shape: %+v vs %+v", last, simLast)
		}
	})
}

// stripFields decodes a query page keeping only totalSize, done, nextRecordsUrl and each
// record's attributes, refusing anything else at the top level.
func stripFields(t *testing.T, body []byte, out any) {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	records, _ := raw["records"].([]any)
	for _, r := range records {
		m := r.(map[string]any)
		for k := range m {
			if k != "attributes" {
				delete(m, k)
			}
		}
	}
	data, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	strictDecode(t, data, out)
}

// newEnvUser adds a user to e and logs it in.
func newEnvUser(t *testing.T, e *env, username string) *client {
	t.Helper()
	if _, err := e.sim.AddUser(User{Username: username, LastName: "Other", IsActive: true}); err != nil {
		t.Fatal(err)
	}
	saved := e.user
	e.user = username
	defer func() { e.user = saved }()
	return e.login()
}

func TestQueryAllShowsTheRecycleBin(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	keep, _ := e.sim.Insert("Contact", map[string]any{"LastName": "Keep"}, e.userID)
	gone, _ := e.sim.Insert("Contact", map[string]any{"LastName": "Gone"}, e.userID)
	if err := e.sim.Delete("Contact", gone); err != nil {
		t.Fatal(err)
	}
	q := url.QueryEscape("SELECT Id, IsDeleted FROM Contact ORDER BY LastName")
	var live, all queryResult
	c.json(http.MethodGet, "query?q="+q, nil, http.StatusOK, &live)
	c.json(http.MethodGet, "queryAll?q="+q, nil, http.StatusOK, &all)
	if live.TotalSize != 1 || live.Records[0]["Id"] != keep {
		t.Errorf("query: %+v", live)
	}
	if all.TotalSize != 2 || all.Records[0]["Id"] != gone || all.Records[0]["IsDeleted"] != true || all.Records[1]["IsDeleted"] != false {
		t.Errorf("queryAll: %+v", all)
	}
	// Paging a queryAll: the next pages are under /query/ and still include deleted records.
	ids, err := e.sim.SeedContacts(e.userID, 250, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[240:] {
		if err := e.sim.Delete("Contact", id); err != nil {
			t.Fatal(err)
		}
	}
	c.header = http.Header{"Sforce-Query-Options": {"batchSize=200"}}
	var page queryResult
	c.json(http.MethodGet, "queryAll?q="+url.QueryEscape("SELECT Id, IsDeleted FROM Contact ORDER BY Id"), nil, http.StatusOK, &page)
	if page.TotalSize != 252 || page.Done || !strings.Contains(page.NextRecordsURL, "/query/") {
		t.Fatalf("first queryAll page: total %d done %v next %q", page.TotalSize, page.Done, page.NextRecordsURL)
	}
	next := page.NextRecordsURL
	page = queryResult{}
	c.json(http.MethodGet, next, nil, http.StatusOK, &page)
	deleted := 0
	for _, r := range page.Records {
		if r["IsDeleted"] == true {
			deleted++
		}
	}
	if !page.Done || len(page.Records) != 52 || deleted != 10 {
		t.Errorf("second queryAll page: %d records, %d deleted, done %v", len(page.Records), deleted, page.Done)
	}
	c.header = nil

	// After 15 days the record leaves the recycle bin.
	e.clock.Advance(15*24*time.Hour + time.Minute)
	c = e.login()
	all = queryResult{}
	c.json(http.MethodGet, "queryAll?q="+q, nil, http.StatusOK, &all)
	if all.TotalSize != 1+240 {
		t.Errorf("queryAll after 15 days: %d records", all.TotalSize)
	}
	if _, ok := e.sim.Get("Contact", gone); ok {
		t.Error("Get still finds a purged record")
	}
}

func TestQueryFilters(t *testing.T) {
	e := newEnv(t)
	c := e.login()
	other, err := e.sim.AddUser(User{Username: "b@acme.example", LastName: "B", IsActive: true})
	if err != nil {
		t.Fatal(err)
	}
	mine, _ := e.sim.SeedContacts(e.userID, 30, 1)
	theirs, _ := e.sim.SeedContacts(other, 20, 2)
	e.clock.Advance(time.Hour)
	mark := e.clock.Now()
	e.clock.Advance(time.Minute)
	if err := e.sim.Update("Contact", mine[3], map[string]any{"Title": "Changed"}, ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		where string
		want  int
	}{
		{fmt.Sprintf("OwnerId = '%s'", e.userID), 30},
		{fmt.Sprintf("OwnerId = '%s'", e.userID[:15]), 30},
		{fmt.Sprintf("OwnerId IN ('%s', '%s')", e.userID, other), 50},
		{fmt.Sprintf("OwnerId = '%s' AND SystemModstamp > %s", e.userID, mark.Format(time.RFC3339)), 1},
		{fmt.Sprintf("Id IN ('%s', '%s')", mine[0], theirs[0]), 2},
		{fmt.Sprintf("Id = '%s' AND OwnerId = '%s'", mine[0], other), 0},
		{"OwnerId = null", 0},
		{"CreatedDate = TODAY", 50},
		{"SystemModstamp > YESTERDAY", 50},
		{"Birthdate = null OR Birthdate < 2010-01-01", 50},
	}
	for _, tt := range tests {
		t.Run(tt.where, func(t *testing.T) {
			var res queryResult
			c.json(http.MethodGet, "query?q="+url.QueryEscape("SELECT Id FROM Contact WHERE "+tt.where), nil, http.StatusOK, &res)
			if res.TotalSize != tt.want {
				t.Errorf("totalSize = %d, want %d", res.TotalSize, tt.want)
			}
		})
	}
}
