package sfsim

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// benchOrg is an org of 100 users with 1,000 contacts each.
func benchOrg(b *testing.B) (*Server, []string, string) {
	b.Helper()
	sim := New(Config{DailyAllocation: 1 << 62})
	var users []string
	for i := range 100 {
		id, err := sim.AddUser(User{Username: fmt.Sprintf("u%d@bench.example", i), LastName: "U", IsActive: true})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := sim.SeedContacts(id, 1000, int64(i)); err != nil {
			b.Fatal(err)
		}
		users = append(users, id)
	}
	if err := sim.AddConnectedApp(ConnectedApp{ClientID: "bench", ClientSecret: "s", ExecutionUserID: users[0]}); err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/services/oauth2/token",
		stringsReader(url.Values{"grant_type": {"client_credentials"}, "client_id": {"bench"}, "client_secret": {"s"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	sim.ServeHTTP(rec, req)
	var tok tokenResponse
	mustJSON(b, rec.Body.Bytes(), &tok)
	return sim, users, tok.AccessToken
}

func benchQuery(b *testing.B, sim *Server, token, q string) {
	b.Helper()
	path := "/services/data/v" + sim.APIVersion() + "/query?q=" + url.QueryEscape(q)
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkQueryOwnersChangedSince is the salesforce-worker's poll: one org-wide query for a
// chunk of owners' recent changes, over 100,000 contacts.
func BenchmarkQueryOwnersChangedSince(b *testing.B) {
	sim, users, token := benchOrg(b)
	in := ""
	for i, u := range users[:50] {
		if i > 0 {
			in += ","
		}
		in += "'" + u + "'"
	}
	since := sim.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	benchQuery(b, sim, token, "SELECT Id, OwnerId, FirstName, LastName, Email, Account.Name, SystemModstamp FROM Contact WHERE OwnerId IN ("+in+") AND SystemModstamp > "+since+" ORDER BY SystemModstamp, Id")
}

// BenchmarkQueryFullScan filters 100,000 contacts without an index.
func BenchmarkQueryFullScan(b *testing.B) {
	sim, _, token := benchOrg(b)
	benchQuery(b, sim, token, "SELECT Id FROM Contact WHERE Email LIKE '%.example.com' AND Title != null ORDER BY LastName LIMIT 200")
}

func BenchmarkSeedContacts(b *testing.B) {
	sim := New(Config{})
	owner := sim.AdminUserID()
	for b.Loop() {
		if _, err := sim.SeedContacts(owner, 1000, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCollectionsUpsert200(b *testing.B) {
	sim, _, token := benchOrg(b)
	path := "/services/data/v" + sim.APIVersion() + "/composite/sobjects/Contact/Tandem_Sync_Key__c"
	n := 0
	for b.Loop() {
		records := make([]map[string]any, 200)
		for i := range records {
			n++
			records[i] = contactRec(map[string]any{"Tandem_Sync_Key__c": fmt.Sprint("bench-", n%5000), "LastName": fmt.Sprint("L", n)})
		}
		req := httptest.NewRequest(http.MethodPatch, path, jsonReader(b, collection(false, records...)))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}
