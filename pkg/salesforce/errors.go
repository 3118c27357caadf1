package salesforce

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/tandem-sync/tandem/pkg/syncerr"
)

// APIError is one error Salesforce reported, either for a whole request (the JSON array
// body of a 4xx/5xx response) or for one record of an sObject Collections call.
type APIError struct {
	// StatusCode is the HTTP status of the response; 0 for a per-record error of a 200 response.
	StatusCode int
	// ErrorCode is Salesforce's code, e.g. "INVALID_FIELD" or "DUPLICATES_DETECTED"
	// (errorCode in request errors, statusCode in per-record errors).
	ErrorCode string
	// Message is Salesforce's message.
	Message string
	// Fields are the API names of the fields concerned, if Salesforce named any.
	Fields []string
}

func (e *APIError) Error() string {
	var b strings.Builder
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, "HTTP %d ", e.StatusCode)
	}
	b.WriteString(e.ErrorCode)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if len(e.Fields) > 0 {
		fmt.Fprintf(&b, " (fields %s)", strings.Join(e.Fields, ", "))
	}
	return b.String()
}

// TokenError is an error answer of the OAuth token endpoint.
type TokenError struct {
	// StatusCode is the HTTP status of the response.
	StatusCode int
	// Code is the OAuth error, e.g. "invalid_grant" or "invalid_client".
	Code string
	// Description is Salesforce's error_description, e.g. "user hasn't approved this consumer".
	Description string
}

func (e *TokenError) Error() string {
	if e.Description == "" {
		return fmt.Sprintf("token endpoint: HTTP %d %s", e.StatusCode, e.Code)
	}
	return fmt.Sprintf("token endpoint: HTTP %d %s: %s", e.StatusCode, e.Code, e.Description)
}

// restError is the wire shape of one element of a REST error body.
type restError struct {
	Message   string   `json:"message"`
	ErrorCode string   `json:"errorCode"`
	Fields    []string `json:"fields"`
}

// maxErrorText bounds how much of an unparseable error body ends up in a message: proxies
// answer with whole HTML pages.
const maxErrorText = 512

// parseErrorBody reads a REST error response. Salesforce answers errors with a JSON array of
// {message, errorCode, fields}; a few endpoints (and the OAuth server) answer with an object,
// and proxies with anything at all, so every body yields at least one *APIError.
func parseErrorBody(status int, body []byte) []*APIError {
	trimmed := bytes.TrimSpace(body)
	var list []restError
	if err := json.Unmarshal(trimmed, &list); err == nil && len(list) > 0 {
		out := make([]*APIError, 0, len(list))
		for _, e := range list {
			out = append(out, &APIError{StatusCode: status, ErrorCode: e.ErrorCode, Message: e.Message, Fields: e.Fields})
		}
		return out
	}
	var one struct {
		restError
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if err := json.Unmarshal(trimmed, &one); err == nil {
		switch {
		case one.ErrorCode != "" || one.Message != "":
			return []*APIError{{StatusCode: status, ErrorCode: one.ErrorCode, Message: one.Message, Fields: one.Fields}}
		case one.Error != "":
			return []*APIError{{StatusCode: status, ErrorCode: one.Error, Message: one.ErrorDescription}}
		}
	}
	return []*APIError{{StatusCode: status, ErrorCode: http.StatusText(status), Message: clip(string(trimmed), maxErrorText)}}
}

// clip shortens s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// classify maps a Salesforce error code (and, where the code alone is ambiguous, its message)
// to Tandem's catalogue. It is the single place that knows Salesforce's codes.
func classify(errorCode, message string) syncerr.Code {
	switch {
	case errorCode == "DUPLICATES_DETECTED":
		return syncerr.SalesforceDuplicatesFound
	case errorCode == "FIELD_CUSTOM_VALIDATION_EXCEPTION":
		return syncerr.SalesforceValidationFailed
	case errorCode == "STRING_TOO_LONG":
		return syncerr.SalesforceStringTooLong
	case errorCode == "ENTITY_IS_DELETED":
		return syncerr.SalesforceEntityDeleted
	case errorCode == "INVALID_CROSS_REFERENCE_KEY":
		return syncerr.SalesforceInvalidReference
	case errorCode == "UNABLE_TO_LOCK_ROW":
		return syncerr.SalesforceRowLocked
	case strings.HasPrefix(errorCode, "INSUFFICIENT_ACCESS"):
		return syncerr.SalesforceInsufficientAccess
	case errorCode == "INVALID_FIELD", strings.Contains(message, "No such column '"+SyncKeyField+"'"):
		return syncerr.SalesforceFieldMissing
	case errorCode == "NOT_FOUND" && strings.Contains(message, "external ID field does not exist"):
		// Upserting on an external id field that is missing or hidden answers NOT_FOUND.
		return syncerr.SalesforceFieldMissing
	case errorCode == "NOT_FOUND":
		return syncerr.SalesforceNotFound
	case errorCode == "REQUEST_LIMIT_EXCEEDED":
		return syncerr.SalesforceRequestLimit
	case errorCode == "INVALID_SESSION_ID", errorCode == "API_DISABLED_FOR_ORG", errorCode == "API_CURRENTLY_DISABLED":
		return syncerr.SalesforceAuthFailed
	case errorCode == "SERVER_UNAVAILABLE":
		return syncerr.SalesforceUnavailable
	case errorCode == "QUERY_TIMEOUT":
		return syncerr.SalesforceTimeout
	default:
		return syncerr.SalesforceRejected
	}
}

// classifyAPIError turns an *APIError into the catalogue error wrapping it.
func classifyAPIError(e *APIError) *syncerr.Error {
	code := classify(e.ErrorCode, e.Message)
	if e.StatusCode >= 500 && code == syncerr.SalesforceRejected {
		code = syncerr.SalesforceUnavailable
	}
	return &syncerr.Error{Code: code, Detail: e.Error(), Upstream: e.ErrorCode, Err: e}
}

// classifyTokenError turns a token endpoint failure into the catalogue error wrapping it.
func classifyTokenError(e *TokenError) *syncerr.Error {
	code := syncerr.SalesforceAuthFailed
	switch {
	case e.StatusCode >= 500:
		code = syncerr.SalesforceUnavailable
	case strings.Contains(strings.ToLower(e.Description), "inactive"):
		code = syncerr.SalesforceUserInactive
	}
	return &syncerr.Error{Code: code, Detail: e.Error(), Upstream: e.Code, Err: e}
}
