package salesforce

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/syncerr"
)

func recording(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "recordings", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestRecordedTokenResponses(t *testing.T) {
	tests := []struct {
		file, wantToken, wantInstance string
	}{
		{"restforce/auth_success_response.json", "00Dx0000000BV7z!AR8AQAxo9UfVkh8AlV0Gomt9Czx9LjHnSSpwBMmbRcgKFmxOtvxjTrKW19ye6PE3Ds1eQz3z8jr3W7_VbWmEu4Q8TVGSTHxs", "https://na1.salesforce.com"},
		{"restforce/refresh_success_response.json", "refreshed_access_token", "https://na1.salesforce.com"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			tok, inst, err := ParseTokenResponse(recording(t, tt.file), "https://acme.my.salesforce.com")
			if err != nil {
				t.Fatal(err)
			}
			if tok != tt.wantToken || inst != tt.wantInstance {
				t.Errorf("got token %q instance %q, want %q %q", tok, inst, tt.wantToken, tt.wantInstance)
			}
		})
	}
}

func TestRecordedTokenErrors(t *testing.T) {
	tests := []struct {
		file, wantCode, wantDesc string
	}{
		{"restforce/auth_error_response.json", "invalid_grant", "authentication failure - Invalid Password"},
		{"restforce/refresh_error_response.json", "invalid_grant", "expired access/refresh token"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			te := ParseTokenError(400, recording(t, tt.file))
			if te.Code != tt.wantCode || te.Description != tt.wantDesc {
				t.Fatalf("got %+v", te)
			}
			se := classifyTokenError(te)
			if se.Code != syncerr.SalesforceAuthFailed || se.Upstream != tt.wantCode {
				t.Errorf("classified %+v, want SALESFORCE_AUTH_FAILED with upstream %s", se, tt.wantCode)
			}
			if got := se.Proto().GetMessage(); !strings.Contains(got, tt.wantDesc) {
				t.Errorf("message %q lacks the upstream text %q", got, tt.wantDesc)
			}
		})
	}
}

func TestRecordedErrorBodies(t *testing.T) {
	tests := []struct {
		file      string
		status    int
		wantCode  string
		wantClass syncerr.Code
	}{
		{"restforce/expired_session_response.json", 401, "INVALID_SESSION_ID", syncerr.SalesforceAuthFailed},
		{"restforce/query_error_response.json", 400, "INVALID_FIELD", syncerr.SalesforceFieldMissing},
		{"restforce/write_error_response.json", 400, "INVALID_FIELD", syncerr.SalesforceFieldMissing},
		{"restforce/delete_error_response.json", 404, "NOT_FOUND", syncerr.SalesforceFieldMissing},
		{"restforce/upsert_error_response.json", 404, "NOT_FOUND", syncerr.SalesforceFieldMissing},
		{"restforce/sobject_find_error_response.json", 404, "NOT_FOUND", syncerr.SalesforceFieldMissing},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			errs := parseErrorBody(tt.status, recording(t, tt.file))
			if len(errs) != 1 || errs[0].ErrorCode != tt.wantCode || errs[0].Message == "" {
				t.Fatalf("parsed %+v", errs)
			}
			if got := classifyAPIError(errs[0]).Code; got != tt.wantClass {
				t.Errorf("classified %s, want %s", got, tt.wantClass)
			}
		})
	}
}

func TestRecordedQueryPages(t *testing.T) {
	tests := []struct {
		file     string
		done     bool
		next     string
		records  int
		wantText string
	}{
		{"restforce/query_paginated_first_page_response.json", false, "/services/data/v26.0/query/01gD", 1, "First Page"},
		{"restforce/query_paginated_last_page_response.json", true, "", 1, "Last Page"},
		{"restforce/query_empty_response.json", true, "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r, err := ParseQueryResult(recording(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if r.Done != tt.done || r.NextRecordsURL != tt.next || len(r.Records) != tt.records {
				t.Fatalf("got done=%t next=%q records=%d", r.Done, r.NextRecordsURL, len(r.Records))
			}
			if tt.records > 0 {
				if got := r.Records[0].String("text_label"); got != tt.wantText {
					t.Errorf("Text_Label = %q, want %q", got, tt.wantText)
				}
				if got := r.Records[0].String("attributes.type"); got != "Whizbang" {
					t.Errorf("attributes.type = %q", got)
				}
			}
		})
	}
}

func TestRecordedSaveResults(t *testing.T) {
	var one SaveResult
	if err := json.Unmarshal(recording(t, "restforce/create_success_response.json"), &one); err != nil {
		t.Fatal(err)
	}
	if !one.Success || one.ID != "some_id" || one.apiError() != nil {
		t.Errorf("create success parsed as %+v", one)
	}

	// The composite recordings carry one sub-response per record: SaveResults on success,
	// error arrays on failure, the same shapes sObject Collections uses.
	var composite struct {
		CompositeResponse []struct {
			Body           json.RawMessage `json:"body"`
			HTTPStatusCode int             `json:"httpStatusCode"`
		} `json:"compositeResponse"`
	}
	if err := json.Unmarshal(recording(t, "apache-camel/composite_response_example_success.json"), &composite); err != nil {
		t.Fatal(err)
	}
	bodies := []byte("[")
	for i, sub := range composite.CompositeResponse {
		if i > 0 {
			bodies = append(bodies, ',')
		}
		bodies = append(bodies, sub.Body...)
	}
	bodies = append(bodies, ']')
	results, err := ParseSaveResults(bodies)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 || results[0].ID != "a1V3E000000EXomUAM" || !results[1].Success {
		t.Errorf("composite success parsed as %+v", results)
	}

	if err := json.Unmarshal(recording(t, "apache-camel/composite_response_example_failure.json"), &composite); err != nil {
		t.Fatal(err)
	}
	wantCodes := []syncerr.Code{syncerr.SalesforceRejected, syncerr.SalesforceFieldMissing}
	for i, sub := range composite.CompositeResponse {
		errs := parseErrorBody(sub.HTTPStatusCode, sub.Body)
		if got := classifyAPIError(errs[0]).Code; got != wantCodes[i] {
			t.Errorf("sub-response %d (%s) classified %s, want %s", i, errs[0].ErrorCode, got, wantCodes[i])
		}
	}
}

func TestRecordedReplicationResults(t *testing.T) {
	upd, err := ParseReplicationResult(recording(t, "restforce/get_updated_success_response.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(upd.IDs) != 7 || upd.IDs[0] != "003q000000KvQ1tAAF" || !upd.LatestDateCovered.Equal(time.Date(2015, 8, 19, 8, 17, 0, 0, time.UTC)) {
		t.Errorf("getUpdated parsed as %+v", upd)
	}
	del, err := ParseReplicationResult(recording(t, "restforce/get_deleted_success_response.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(del.Deleted) != 1 || del.Deleted[0].ID != "a00D0000008pQRAIA2" ||
		!del.Deleted[0].DeletedDate.Equal(time.Date(2013, 5, 7, 22, 7, 19, 0, time.UTC)) ||
		!del.EarliestDateAvailable.Equal(time.Date(2013, 5, 3, 15, 57, 0, 0, time.UTC)) {
		t.Errorf("getDeleted parsed as %+v", del)
	}
}

func TestRecordedLimits(t *testing.T) {
	var l limitsResponse
	if err := json.Unmarshal(recording(t, "apache-camel/limits.json"), &l); err != nil {
		t.Fatal(err)
	}
	if l.DailyAPIRequests == nil || l.DailyAPIRequests.Max != 15000 || l.DailyAPIRequests.Remaining != 14998 {
		t.Errorf("limits parsed as %+v", l.DailyAPIRequests)
	}
}
