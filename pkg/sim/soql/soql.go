// Package soql parses and evaluates the subset of the Salesforce Object Query Language that
// Tandem sends: field lists with parent relationship paths and child-relationship subqueries,
// WHERE conditions with every comparison operator, IN lists, LIKE, date and datetime literals
// and relative date literals (TODAY, LAST_N_DAYS:n ...), ORDER BY, LIMIT and OFFSET. Datetimes
// compare to the second, as Salesforce compares them.
//
// The Salesforce simulator (package sfsim) uses it to answer queries the way Salesforce does,
// including Salesforce's error codes and messages, so that a client bug (a misspelt field, an
// unquoted string, AND mixed with OR without parentheses) fails in tests as it would in
// production. Keywords and names are case-insensitive, as in Salesforce.
package soql

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxQueryLength is the longest statement, in characters, that Salesforce accepts by default.
const MaxQueryLength = 100_000

// MaxOffset is the largest OFFSET Salesforce allows.
const MaxOffset = 2000

// Error codes, as Salesforce names them in its API errors.
const (
	CodeMalformedQuery        = "MALFORMED_QUERY"
	CodeInvalidField          = "INVALID_FIELD"
	CodeInvalidType           = "INVALID_TYPE"
	CodeInvalidFilterOperator = "INVALID_QUERY_FILTER_OPERATOR"
	CodeNumberOutsideRange    = "NUMBER_OUTSIDE_VALID_RANGE"
)

// Error is a query error. Code is a Salesforce error code (MALFORMED_QUERY for syntax, INVALID_FIELD
// and INVALID_TYPE for names the schema does not know, ...), Message is Salesforce's wording and
// Pos is the byte offset in the statement the error points at.
type Error struct {
	Code    string
	Message string
	Pos     int
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s (at offset %d)", e.Code, e.Message, e.Pos)
}

// Describe renders the error the way Salesforce words it in an API response: the statement
// line around the position, a caret under it, the row and column, then the message. query must
// be the statement the error came from.
func (e *Error) Describe(query string) string {
	pos := min(max(e.Pos, 0), len(query))
	lineStart := strings.LastIndexByte(query[:pos], '\n') + 1
	lineEnd := len(query)
	if i := strings.IndexByte(query[pos:], '\n'); i >= 0 {
		lineEnd = pos + i
	}
	row := strings.Count(query[:lineStart], "\n") + 1
	col := utf8.RuneCountInString(query[lineStart:pos]) + 1

	// Long lines are cut to a window around the position, as Salesforce does.
	const window = 60
	from, to := lineStart, lineEnd
	if pos-from > window {
		from = pos - window
		for from < pos && !utf8.RuneStart(query[from]) {
			from++
		}
	}
	if to-pos > window {
		to = pos + window
		for to > pos && to < len(query) && !utf8.RuneStart(query[to]) {
			to--
		}
	}
	caret := strings.Repeat(" ", utf8.RuneCountInString(query[from:pos]))
	return fmt.Sprintf("\n%s\n%s^\nERROR at Row:%d:Column:%d\n%s", query[from:to], caret, row, col, e.Message)
}

func malformed(pos int, format string, args ...any) *Error {
	return &Error{Code: CodeMalformedQuery, Message: fmt.Sprintf(format, args...), Pos: pos}
}
