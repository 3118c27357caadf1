package sfsim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzCollectionsBody posts arbitrary bodies to the Collections endpoints: the simulator must
// answer 200 with one result per record or 400 with Salesforce's error array, never panic or
// answer 5xx.
func FuzzCollectionsBody(f *testing.F) {
	seeds := []string{
		`{"allOrNone":false,"records":[{"attributes":{"type":"Contact"},"LastName":"A","Email":"a@b.example"}]}`,
		`{"allOrNone":true,"records":[{"attributes":{"type":"Contact"},"LastName":"A"},{"attributes":{"type":"Contact"}}]}`,
		`{"records":[{"attributes":{"type":"Event"},"Subject":"x","StartDateTime":"2024-01-02T03:04:05.000+0000","DurationInMinutes":30}]}`,
		`{"records":[{"attributes":{"type":"Event"},"IsAllDayEvent":true,"ActivityDate":"2024-02-30"}]}`,
		`{"records":[{"attributes":{"type":"Contact"},"id":"003000000000001AAA","LastName":null}]}`,
		`{"records":[{"attributes":{"type":"Contact"},"Tandem_Sync_Key__c":"k","LastName":"x","Birthdate":12}]}`,
		`{"records":[{"attributes":{"type":"Contact"},"LastName":{"nested":true}}]}`,
		`{"records":[{"attributes":{"type":"EventRelation"},"EventId":"00U000000000001","RelationId":"bogus"}]}`,
		`{"records":[{"attributes":{"type":"Contact"},"LastName":"x","OwnerId":"005"}]}`,
		`{"records":[{"attributes":{"type":"Contact"},"LastName":"x","DurationInMinutes":1e309}]}`,
		`{"records":null}`, `{}`, `[]`, `null`, `{"records":[1,2]}`, `{"records":[{"attributes":"Contact"}]}`, ``, `{`,
	}
	for _, s := range seeds {
		f.Add(s, uint8(0))
	}
	// Fuzzing makes far more calls than a day's allocation.
	e := newEnv(f, func(c *Config) { c.DailyAllocation = 1 << 62 })
	c := e.login()
	f.Fuzz(func(t *testing.T, body string, op uint8) {
		method, path := http.MethodPost, "/services/data/v"+e.sim.APIVersion()+"/composite/sobjects"
		switch op % 3 {
		case 1:
			method = http.MethodPatch
		case 2:
			method, path = http.MethodPatch, path+"/Contact/Tandem_Sync_Key__c"
		}
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+c.token)
		rec := httptest.NewRecorder()
		e.sim.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			var results []map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &results); err != nil {
				t.Fatalf("200 with %s: %v", rec.Body, err)
			}
		case http.StatusBadRequest, http.StatusNotFound:
			var errs []restError
			if err := json.Unmarshal(rec.Body.Bytes(), &errs); err != nil || len(errs) == 0 || errs[0].ErrorCode == "" {
				t.Fatalf("%d with %s", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("body %q: status %d %s", body, rec.Code, rec.Body)
		}
	})
}

// FuzzNormalizeID checks that normalising is idempotent and keeps 15-character ids intact.
func FuzzNormalizeID(f *testing.F) {
	for _, s := range []string{"003q000000KvQ1tAAF", "003q000000kvq1taaf", "005x00000012Q9P", "a00D0000008pQRAIA2", "00U000000000001AA5", "", "0000000000000000!!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		norm, ok := NormalizeID(id)
		if !ok {
			return
		}
		again, ok := NormalizeID(norm)
		if !ok || again != norm || len(norm) != 18 {
			t.Fatalf("NormalizeID(%q) = %q, then %q %v", id, norm, again, ok)
		}
		if len(id) == 15 && norm[:15] != id {
			t.Fatalf("15-character %q changed to %q", id, norm)
		}
		if len(id) == 18 && !strings.EqualFold(norm, id) {
			t.Fatalf("18-character %q is not case-insensitively %q", id, norm)
		}
	})
}
