package salesforce

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tandem-sync/tandem/pkg/syncerr"
)

func TestCheckJSON(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name string
		body string
		want error
	}{
		{"a query page", `{"totalSize":1,"done":true,"records":[{"Id":"003","Account":{"Name":"Zoë & Co"}}]}`, nil},
		{"brackets and escaped quotes inside strings", `{"Description":"[[[{{a\\\"[[[` + strings.Repeat("[", 100) + `"}`, nil},
		{"nesting at the limit", deep(maxJSONDepth), nil},
		{"nesting past the limit", deep(maxJSONDepth + 1), ErrTooDeep},
		{"an unclosed bracket bomb", strings.Repeat("[", 1<<20), ErrTooDeep},
		{"Latin-1 text", "{\"LastName\":\"Caf\xe9\"}", ErrInvalidUTF8},
		{"an overlong encoding", "{\"LastName\":\"\xc0\xaf\"}", ErrInvalidUTF8},
		{"a truncated sequence at the end", "{\"LastName\":\"\xe2\x82", ErrInvalidUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want == nil && !json.Valid([]byte(tt.body)) {
				t.Fatal("the accepted case is not valid JSON")
			}
			if err := checkJSON([]byte(tt.body)); !errors.Is(err, tt.want) {
				t.Errorf("checkJSON = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestHostileResponsesAreRejectedClearly sends bodies no Salesforce would send through the
// connector's read path: each fails fast with SALESFORCE_MALFORMED_RESPONSE (or
// SALESFORCE_RESPONSE_TOO_LARGE) and an error saying what was wrong.
func TestHostileResponsesAreRejectedClearly(t *testing.T) {
	const limit = 1 << 20
	tests := []struct {
		name     string
		body     string
		wantCode syncerr.Code
		wantErr  error
	}{
		{"invalid UTF-8 in a record", "{\"totalSize\":1,\"done\":true,\"records\":[{\"Id\":\"003\",\"LastName\":\"M\xfcller\"}]}",
			syncerr.SalesforceMalformedResponse, ErrInvalidUTF8},
		{"deep nesting", `{"totalSize":1,"done":true,"records":[` + strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000) + `]}`,
			syncerr.SalesforceMalformedResponse, ErrTooDeep},
		{"a body past the cap", `{"totalSize":1,"done":true,"records":[{"Description":"` + strings.Repeat("x", limit) + `"}]}`,
			syncerr.SalesforceResponseTooLarge, &ResponseTooLargeError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeOrg(t, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(tt.body))
			})
			c := newTestConnector(t, jwtOrg(t, f.srv.URL), WithMaxResponseBytes(limit))
			start := time.Now()
			_, err := c.queryAllRows(t.Context(), testIntegration, "SELECT Id FROM Contact")
			if se := syncerr.As(err); se.Code != tt.wantCode {
				t.Fatalf("err = %v, want code %s", err, tt.wantCode)
			}
			var tooLarge *ResponseTooLargeError
			if errors.As(tt.wantErr, &tooLarge) {
				if !errors.As(err, &tooLarge) || tooLarge.Limit != limit {
					t.Errorf("err = %v, want a ResponseTooLargeError of %d bytes", err, limit)
				}
			} else if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if el := time.Since(start); el > 10*time.Second {
				t.Errorf("rejecting took %s", el)
			}
		})
	}
}
