package salesforce

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tandem-sync/tandem/pkg/sim/soql"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestSOQLString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `'plain'`},
		{"O'Brien", `'O\'Brien'`},
		{`back\slash`, `'back\\slash'`},
		{"line\nbreak\r\ttab", `'line\nbreak\r\ttab'`},
		{`"quoted"`, `'"quoted"'`},
		{"\b\f", `'\b\f'`},
		{"Zürich ☃", `'Zürich ☃'`},
		{"' OR Id != '", `'\' OR Id != \''`},
	}
	for _, tt := range tests {
		if got := soqlString(tt.in); got != tt.want {
			t.Errorf("soqlString(%q) = %s, want %s", tt.in, got, tt.want)
		}
		q := "SELECT Id FROM Contact WHERE LastName = " + soqlString(tt.in)
		parsed, err := soql.Parse(q)
		if err != nil {
			t.Errorf("soql.Parse(%s): %v", q, err)
			continue
		}
		// The literal must come back as the very string it encodes, or it changed meaning.
		if s := parsed.String(); !strings.Contains(s, "LastName") {
			t.Errorf("rendered %s", s)
		}
		if got := parsed.Where.(*soql.Comparison).Value.Str; got != tt.in {
			t.Errorf("soqlString(%q) parsed back as %q", tt.in, got)
		}
	}
}

// FuzzSOQLString checks that any string the connector quotes reads back, through the
// simulator's SOQL parser, as exactly that string and nothing more.
func FuzzSOQLString(f *testing.F) {
	for _, s := range []string{"", "O'Brien", `\'`, "' OR Id != '", "line\nbreak", "日本\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			t.Skip("SOQL statements are UTF-8")
		}
		q, err := soql.Parse("SELECT Id FROM Contact WHERE LastName = " + soqlString(s))
		if err != nil {
			t.Fatalf("soqlString(%q) does not parse: %v", s, err)
		}
		if got := q.Where.(*soql.Comparison).Value.Str; got != s {
			t.Fatalf("soqlString(%q) parsed back as %q", s, got)
		}
	})
}

func TestSOQLDateTime(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.FixedZone("CET", 3600))
	if got, want := soqlDateTime(at), "2026-03-04T04:06:07Z"; got != want {
		t.Errorf("soqlDateTime = %s, want %s", got, want)
	}
}

func TestValidIdentifier(t *testing.T) {
	for _, ok := range []string{"Email", "MailingState", "Region__c", "ns__Field__c", "Account.Name", "Owner.Profile.Name", "a1"} {
		if !validIdentifier(ok) {
			t.Errorf("validIdentifier(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "1abc", "_x", "Email,Id", "Email FROM User", "a..b", "a.", "Name'", "a b", strings.Repeat("a", 256)} {
		if validIdentifier(bad) {
			t.Errorf("validIdentifier(%q) = true", bad)
		}
	}
}

func userIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("005%012dAAA", i)
	}
	return ids
}

// TestGeneratedStatementsParse builds every statement shape the connector sends, through the
// same code that sends them, and checks that the SOQL parser accepts each one.
func TestGeneratedStatementsParse(t *testing.T) {
	c := newTestConnector(t, jwtOrg(t, "https://acme.my.salesforce.com"))
	since := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	filters := []*tandemv1.FieldFilter{
		{Field: "MailingState", Operator: tandemv1.FilterOperator_FILTER_OPERATOR_EQUALS, Values: []string{"CA"}},
		{Field: "Region__c", Operator: tandemv1.FilterOperator_FILTER_OPERATOR_CONTAINS, Values: []string{"west"}},
		{Field: "Account.Industry", Operator: tandemv1.FilterOperator_FILTER_OPERATOR_STARTS_WITH, Values: []string{"Bank"}},
	}
	owners := func(ids []string, all bool, filters []*tandemv1.FieldFilter) []*member {
		var out []*member
		for _, id := range ids {
			out = append(out, &member{id: id, filters: filters})
		}
		if all {
			out = append(out, &member{id: "005000000000ALLAAA", all: true})
		}
		return out
	}
	type shape struct {
		name       string
		stmts      func() ([]string, error)
		wantChunks int
	}
	poll := func(object string, set []*member, cond string, everyone bool) func() ([]string, error) {
		return func() ([]string, error) {
			p := &poller{c: c, object: object}
			return p.statements(set, cond, everyone)
		}
	}
	// The conditions incremental reads start from: reading back the overlap, resuming after a
	// watermark and an Id, after a watermark alone.
	p0 := &poller{c: c}
	readBack := p0.changedSince(&pollCursor{Watermark: since.UnixMilli(), Horizon: since.Add(time.Minute).UnixMilli()})
	keyset := p0.changedSince(&pollCursor{Watermark: since.UnixMilli(), LastID: "003000000000001AAA", Horizon: since.Add(time.Hour).UnixMilli()})
	afterMark := p0.changedSince(&pollCursor{Watermark: since.UnixMilli(), Horizon: since.Add(time.Hour).UnixMilli()})
	if readBack != "SystemModstamp >= 2026-01-02T03:00:05Z" ||
		keyset != "SystemModstamp >= 2026-01-02T03:04:05Z AND (SystemModstamp >= 2026-01-02T03:04:06Z OR Id > '003000000000001AAA')" ||
		afterMark != "SystemModstamp >= 2026-01-02T03:04:06Z" {
		t.Errorf("conditions:\n%s\n%s\n%s", readBack, keyset, afterMark)
	}
	fixed := func(s selectStmt) func() ([]string, error) {
		return func() ([]string, error) { return s.chunks(c.cfg.maxSOQLLength) }
	}
	shapes := []shape{
		{"contact incremental by owner", poll(objContact, owners(userIDs(3), false, nil), keyset, false), 1},
		{"contact incremental reading back", poll(objContact, owners(userIDs(3), false, nil), readBack, false), 1},
		{"contact incremental after the watermark", poll(objContact, owners(userIDs(3), false, nil), afterMark, false), 1},
		{"contact incremental without watermark", poll(objContact, owners(userIDs(3), false, nil), "", false), 1},
		{"contact incremental all contacts", poll(objContact, owners(nil, true, nil), keyset, true), 1},
		{"contact incremental with filters", poll(objContact, owners(userIDs(2), false, filters), keyset, false), 1},
		{"contact full by owner", poll(objContact, owners(userIDs(5), false, filters), "", false), 1},
		{"contact full all contacts", poll(objContact, owners(userIDs(5), true, filters), "", true), 1},
		{"contact incremental 10000 owners chunked", poll(objContact, owners(userIDs(10_000), false, nil), keyset, false), 3},
		{"event incremental by owner", poll(objEvent, owners(userIDs(3), false, nil), keyset, false), 1},
		{"event full by owner", poll(objEvent, owners(userIDs(3), false, nil), "", false), 1},
		{"event full 6000 owners chunked", poll(objEvent, owners(userIDs(6000), false, nil), "", false), 2},
		{"users", fixed(usersStmt()), 1},
		{"resolve users by email", fixed(emailStmt(objUser, []string{"a@x.example", "o'brien@x.example", `odd\"@x.example`})), 1},
		{"resolve contacts by email", fixed(emailStmt(objContact, []string{"a@x.example"})), 1},
		{"resolve leads by email", fixed(emailStmt(objLead, []string{"a@x.example", "b@y.example"})), 1},
		{"invitee relations", fixed(inviteeStmt([]string{"00U000000000001AAA", "00U000000000002AAA"})), 1},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			stmts, err := sh.stmts()
			if err != nil {
				t.Fatal(err)
			}
			if len(stmts) != sh.wantChunks {
				t.Errorf("%d statements, want %d", len(stmts), sh.wantChunks)
			}
			for _, q := range stmts {
				if len(q) > soql.MaxQueryLength {
					t.Errorf("statement of %d characters exceeds %d", len(q), soql.MaxQueryLength)
				}
				if _, err := soql.Parse(q); err != nil {
					t.Errorf("soql.Parse rejected %.300s…: %v", q, err)
				}
			}
		})
	}
}

func TestChunksSplitINListUnderLimit(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		limit  int
		want   int
	}{
		{"fits in one", userIDs(10), 1000, 1},
		{"exact boundary", userIDs(4), len(selectStmt{fields: []string{"Id"}, from: "Contact", inField: "OwnerId", inValues: userIDs(4)}.String()), 1},
		{"one over boundary", userIDs(4), len(selectStmt{fields: []string{"Id"}, from: "Contact", inField: "OwnerId", inValues: userIDs(4)}.String()) - 1, 2},
		{"many small chunks", userIDs(100), 200, 0},
		{"real limit", userIDs(20_000), maxSOQLLength, 5},
		{"values needing escapes", []string{"o'brien@x", `a\b@x`, "plain@x", "x'y'z@x"}, 120, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := selectStmt{fields: []string{"Id"}, from: "Contact", where: []string{"IsDeleted = false"}, inField: "OwnerId", inValues: tt.values, orderBy: "Id ASC"}
			if tt.name == "exact boundary" || tt.name == "one over boundary" {
				s.where, s.orderBy = nil, ""
			}
			chunks, err := s.chunks(tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want > 0 && len(chunks) != tt.want {
				t.Errorf("%d chunks, want %d", len(chunks), tt.want)
			}
			// Greedy is minimal: no chunk could have taken the next chunk's first value.
			for i := 0; i+1 < len(chunks); i++ {
				first := inValues(t, mustParse(t, chunks[i+1]))[0]
				grown := strings.Replace(chunks[i], ") ORDER BY", ", "+soqlString(first)+") ORDER BY", 1)
				if !strings.Contains(chunks[i], "ORDER BY") {
					grown = strings.TrimSuffix(chunks[i], ")") + ", " + soqlString(first) + ")"
				}
				if len(grown) <= tt.limit {
					t.Errorf("chunk %d (%d chars) could also hold %q", i, len(chunks[i]), first)
				}
			}
			var got []string
			for _, q := range chunks {
				if len(q) > tt.limit {
					t.Errorf("chunk of %d characters exceeds %d", len(q), tt.limit)
				}
				parsed, err := soql.Parse(q)
				if err != nil {
					t.Fatalf("soql.Parse(%s): %v", q, err)
				}
				got = append(got, inValues(t, parsed)...)
			}
			if !slices.Equal(got, tt.values) {
				t.Errorf("chunks carry %d values %v…, want the %d input values in order", len(got), head(got), len(tt.values))
			}
		})
	}
}

func TestChunksRejectValueAboveLimit(t *testing.T) {
	s := selectStmt{fields: []string{"Id"}, from: "Contact", inField: "Email", inValues: []string{strings.Repeat("x", 100)}}
	if _, err := s.chunks(80); err == nil {
		t.Fatal("chunks accepted a value that cannot fit any statement")
	}
	if chunks, err := (selectStmt{fields: []string{"Id"}, from: "Contact", inField: "Email"}).chunks(80); err != nil || len(chunks) != 0 {
		t.Errorf("empty IN list gave %v, %v; want no statement", chunks, err)
	}
}

// inValues returns the literals of the query's IN condition, decoded by the parser.
func inValues(t *testing.T, q *soql.Query) []string {
	t.Helper()
	var out []string
	var walk func(e soql.Expr)
	walk = func(e soql.Expr) {
		switch x := e.(type) {
		case *soql.And:
			for _, term := range x.Terms {
				walk(term)
			}
		case *soql.Comparison:
			if x.Op == soql.OpIn {
				for _, v := range x.Values {
					out = append(out, v.Str)
				}
			}
		}
	}
	if q.Where != nil {
		walk(q.Where)
	}
	return out
}

func mustParse(t *testing.T, q string) *soql.Query {
	t.Helper()
	parsed, err := soql.Parse(q)
	if err != nil {
		t.Fatalf("soql.Parse(%s): %v", q, err)
	}
	return parsed
}

func head(s []string) []string { return s[:min(len(s), 3)] }
