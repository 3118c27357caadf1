package salesforce

import (
	"fmt"
	"strings"
	"time"
)

// SOQL building. Every statement the connector sends is assembled here from identifiers it
// validates and literals it escapes, so no configuration value (a filter field, a user id, an
// email address read from Exchange) can change a statement's meaning.

// soqlDateTimeLayout is how a datetime is written in a request body (always UTC).
const soqlDateTimeLayout = "2006-01-02T15:04:05.000Z"

// soqlLiteralLayout is the documented form of a SOQL datetime literal: whole seconds, UTC.
// Salesforce compares datetimes to the second, so milliseconds would say nothing.
const soqlLiteralLayout = "2006-01-02T15:04:05Z"

// soqlEscaper escapes what a SOQL string literal cannot hold as is: the quote, the backslash
// and the control characters SOQL has escape sequences for.
var soqlEscaper = strings.NewReplacer(
	`'`, `\'`, `\`, `\\`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "\b", `\b`, "\f", `\f`,
)

// soqlString returns s as a SOQL string literal.
func soqlString(s string) string { return "'" + soqlEscaper.Replace(s) + "'" }

// soqlDateTime returns t, truncated to the second, as a SOQL datetime literal.
func soqlDateTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(soqlLiteralLayout) }

// soqlIn returns "field IN ('a', 'b')".
func soqlIn(field string, values []string) string {
	var b strings.Builder
	b.WriteString(field)
	b.WriteString(" IN (")
	for i, v := range values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(soqlString(v))
	}
	b.WriteByte(')')
	return b.String()
}

// validIdentifier reports whether name is a field API name or a relationship path of them
// (Account.Name, Region__c, ns__Field__c).
func validIdentifier(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for part := range strings.SplitSeq(name, ".") {
		if part == "" {
			return false
		}
		for i, r := range part {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
			case i > 0 && (r >= '0' && r <= '9' || r == '_'):
			default:
				return false
			}
		}
	}
	return true
}

// selectStmt is a SELECT statement under construction.
type selectStmt struct {
	fields   []string // validated field names, subqueries in parentheses
	from     string
	where    []string // conditions, ANDed
	orderBy  string
	inField  string   // when set, a condition "inField IN (inValues)" chunked by chunks()
	inValues []string // values of the IN condition
}

// String renders the statement with the whole IN list (use chunks to stay under the limit).
func (s selectStmt) String() string { return s.render(s.inValues) }

func (s selectStmt) render(in []string) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	b.WriteString(strings.Join(s.fields, ", "))
	b.WriteString(" FROM ")
	b.WriteString(s.from)
	conds := s.where
	if s.inField != "" {
		conds = append(append([]string(nil), conds...), soqlIn(s.inField, in))
	}
	if len(conds) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(conds, " AND "))
	}
	if s.orderBy != "" {
		b.WriteString(" ORDER BY ")
		b.WriteString(s.orderBy)
	}
	return b.String()
}

// chunks renders the statement as few times as possible with its IN list split so that no
// statement exceeds limit characters. A statement without an IN condition is one chunk.
func (s selectStmt) chunks(limit int) ([]string, error) {
	if s.inField == "" {
		q := s.render(nil)
		if len(q) > limit {
			return nil, fmt.Errorf("SOQL statement of %d characters exceeds %d", len(q), limit)
		}
		return []string{q}, nil
	}
	if len(s.inValues) == 0 {
		return nil, nil
	}
	// The statement's length is its fixed part plus each literal and its separator; counting
	// runes is unnecessary because the limit is in characters and every character is at least
	// one byte, so counting bytes only ever splits earlier.
	fixed := len(s.render([]string{}))
	var out []string
	start, size := 0, fixed
	for i, v := range s.inValues {
		n := len(soqlString(v))
		if i > start {
			n += len(", ")
		}
		if size+n > limit {
			if i == start {
				return nil, fmt.Errorf("SOQL statement with the value %q exceeds %d characters", clip(v, 40), limit)
			}
			out = append(out, s.render(s.inValues[start:i]))
			start, size = i, fixed+len(soqlString(v))
			continue
		}
		size += n
	}
	return append(out, s.render(s.inValues[start:])), nil
}

// addField appends name unless an equal name (case-insensitively, as SOQL compares them) is
// already selected.
func addField(fields []string, name string) []string {
	for _, f := range fields {
		if strings.EqualFold(f, name) {
			return fields
		}
	}
	return append(fields, name)
}
