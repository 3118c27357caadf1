package soql

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// ignorePos compares ASTs without positions, which change when a query is re-rendered.
var ignorePos = cmp.FilterPath(func(p cmp.Path) bool {
	sf, ok := p.Last().(cmp.StructField)
	return ok && sf.Name() == "Pos"
}, cmp.Ignore())

func TestParseValid(t *testing.T) {
	tests := []struct {
		name  string
		query string
		// want is the canonical rendering.
		want  string
		check func(t *testing.T, q *Query)
	}{
		{
			name:  "simple",
			query: "SELECT Id, Name FROM Contact",
			want:  "SELECT Id, Name FROM Contact",
		},
		{
			name:  "lower-case keywords and odd spacing",
			query: "select  id ,name\n\tfrom   contact   where  name='x'",
			want:  "SELECT id, name FROM contact WHERE name = 'x'",
		},
		{
			name:  "relationship fields",
			query: "SELECT Id, Account.Name, Owner.Profile.Name FROM Contact",
			want:  "SELECT Id, Account.Name, Owner.Profile.Name FROM Contact",
			check: func(t *testing.T, q *Query) {
				if got := q.Select[2].Field.Parts; !reflect.DeepEqual(got, []string{"Owner", "Profile", "Name"}) {
					t.Errorf("parts = %v", got)
				}
			},
		},
		{
			name:  "child subquery",
			query: "SELECT Id, Subject, (SELECT RelationId, Relation.Email, Status FROM EventRelations WHERE IsInvitee = true ORDER BY RelationId LIMIT 50) FROM Event",
			want:  "SELECT Id, Subject, (SELECT RelationId, Relation.Email, Status FROM EventRelations WHERE IsInvitee = true ORDER BY RelationId LIMIT 50) FROM Event",
			check: func(t *testing.T, q *Query) {
				sub := q.Select[2].Subquery
				if sub == nil || sub.From.Name != "EventRelations" || *sub.Limit != 50 {
					t.Errorf("subquery = %+v", sub)
				}
			},
		},
		{
			name:  "count",
			query: "SELECT COUNT() FROM Contact WHERE OwnerId = '005000000000001AAA'",
			want:  "SELECT COUNT() FROM Contact WHERE OwnerId = '005000000000001AAA'",
			check: func(t *testing.T, q *Query) {
				if !q.IsCount() {
					t.Error("IsCount() = false")
				}
			},
		},
		{
			name:  "all comparison operators",
			query: "SELECT Id FROM Contact WHERE A = 1 AND B != 2 AND C <> 3 AND D < 4 AND E <= 5 AND F > 6 AND G >= 7",
			want:  "SELECT Id FROM Contact WHERE A = 1 AND B != 2 AND C != 3 AND D < 4 AND E <= 5 AND F > 6 AND G >= 7",
		},
		{
			name:  "in, not in, like, includes, excludes",
			query: "SELECT Id FROM Contact WHERE OwnerId IN ('a','b') AND Email NOT IN ('x@y.z') AND Name LIKE 'Jo%' AND Tags__c INCLUDES ('a;b','c') AND Tags__c EXCLUDES ('d')",
			want:  "SELECT Id FROM Contact WHERE OwnerId IN ('a', 'b') AND Email NOT IN ('x@y.z') AND Name LIKE 'Jo%' AND Tags__c INCLUDES ('a;b', 'c') AND Tags__c EXCLUDES ('d')",
		},
		{
			name:  "or, not and parentheses",
			query: "SELECT Id FROM Contact WHERE (Email = null OR Email = '') AND NOT (LastName = 'a' OR LastName = 'b') AND NOT IsDeleted = true",
			want:  "SELECT Id FROM Contact WHERE (Email = null OR Email = '') AND NOT (LastName = 'a' OR LastName = 'b') AND NOT IsDeleted = true",
			check: func(t *testing.T, q *Query) {
				and, ok := q.Where.(*And)
				if !ok || len(and.Terms) != 3 {
					t.Fatalf("where = %#v", q.Where)
				}
				if _, ok := and.Terms[0].(*Or); !ok {
					t.Errorf("first term = %T, want *Or", and.Terms[0])
				}
				if n, ok := and.Terms[1].(*Not); !ok {
					t.Errorf("second term = %T, want *Not", and.Terms[1])
				} else if _, ok := n.X.(*Or); !ok {
					t.Errorf("negated = %T, want *Or", n.X)
				}
			},
		},
		{
			name:  "nested parentheses keep their grouping",
			query: "SELECT Id FROM Contact WHERE ((A = 1 AND B = 2) OR C = 3) AND D = 4",
			want:  "SELECT Id FROM Contact WHERE ((A = 1 AND B = 2) OR C = 3) AND D = 4",
		},
		{
			name:  "string escapes",
			query: `SELECT Id FROM Contact WHERE LastName = 'O\'Brien' AND Description = 'a\\b\nc\td\"e\u00e9'`,
			want:  `SELECT Id FROM Contact WHERE LastName = 'O\'Brien' AND Description = 'a\\b\nc\td\"e\u00e9'`,
			check: func(t *testing.T, q *Query) {
				and := q.Where.(*And)
				if got := and.Terms[0].(*Comparison).Value.Str; got != "O'Brien" {
					t.Errorf("first string = %q", got)
				}
				if got := and.Terms[1].(*Comparison).Value.Str; got != "a\\b\nc\td\"eé" {
					t.Errorf("second string = %q", got)
				}
			},
		},
		{
			name:  "numbers, booleans, null",
			query: "SELECT Id FROM Event WHERE DurationInMinutes > -30.5 AND IsPrivate = FALSE AND WhoId = NULL AND X = +2",
			want:  "SELECT Id FROM Event WHERE DurationInMinutes > -30.5 AND IsPrivate = false AND WhoId = null AND X = +2",
			check: func(t *testing.T, q *Query) {
				if got := q.Where.(*And).Terms[0].(*Comparison).Value.Num; got != -30.5 {
					t.Errorf("number = %v", got)
				}
			},
		},
		{
			name:  "datetime literals",
			query: "SELECT Id FROM Contact WHERE SystemModstamp > 2024-01-02T03:04:05Z AND SystemModstamp < 2024-01-02T03:04:05.123Z AND CreatedDate >= 2024-01-02T03:04:05+01:00 AND CreatedDate <= 2024-01-02T03:04:05.500-08:00",
			want:  "SELECT Id FROM Contact WHERE SystemModstamp > 2024-01-02T03:04:05Z AND SystemModstamp < 2024-01-02T03:04:05.123Z AND CreatedDate >= 2024-01-02T03:04:05+01:00 AND CreatedDate <= 2024-01-02T03:04:05.500-08:00",
			check: func(t *testing.T, q *Query) {
				terms := q.Where.(*And).Terms
				want := []time.Time{
					time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
					time.Date(2024, 1, 2, 3, 4, 5, 123e6, time.UTC),
					time.Date(2024, 1, 2, 2, 4, 5, 0, time.UTC),
					time.Date(2024, 1, 2, 11, 4, 5, 500e6, time.UTC),
				}
				for i, w := range want {
					if got := terms[i].(*Comparison).Value.Time; !got.Equal(w) {
						t.Errorf("term %d time = %v, want %v", i, got, w)
					}
				}
			},
		},
		{
			name:  "date and relative date literals",
			query: "SELECT Id FROM Contact WHERE Birthdate = 2024-02-29 OR CreatedDate = TODAY OR CreatedDate = yesterday OR CreatedDate = LAST_N_DAYS:30 OR ActivityDate = next_n_days : 7 OR CreatedDate = THIS_MONTH OR CreatedDate = LAST_MONTH",
			want:  "SELECT Id FROM Contact WHERE Birthdate = 2024-02-29 OR CreatedDate = TODAY OR CreatedDate = YESTERDAY OR CreatedDate = LAST_N_DAYS:30 OR ActivityDate = NEXT_N_DAYS:7 OR CreatedDate = THIS_MONTH OR CreatedDate = LAST_MONTH",
			check: func(t *testing.T, q *Query) {
				terms := q.Where.(*Or).Terms
				if got := terms[0].(*Comparison).Value.Date; got != (Date{2024, time.February, 29}) {
					t.Errorf("date = %v", got)
				}
				if got := terms[3].(*Comparison).Value.Literal; got != (DateLiteral{Name: "LAST_N_DAYS", N: 30}) {
					t.Errorf("literal = %v", got)
				}
			},
		},
		{
			name:  "order by, limit, offset",
			query: "SELECT Id FROM Contact ORDER BY LastName DESC NULLS LAST, FirstName ASC, Email NULLS FIRST, Id LIMIT 200 OFFSET 400",
			want:  "SELECT Id FROM Contact ORDER BY LastName DESC NULLS LAST, FirstName ASC, Email NULLS FIRST, Id LIMIT 200 OFFSET 400",
			check: func(t *testing.T, q *Query) {
				if len(q.OrderBy) != 4 || q.OrderBy[0].Dir != DirDesc || q.OrderBy[0].Nulls != NullsLast || q.OrderBy[2].Nulls != NullsFirst {
					t.Errorf("order = %+v", q.OrderBy)
				}
				if *q.Limit != 200 || *q.Offset != 400 {
					t.Errorf("limit, offset = %d, %d", *q.Limit, *q.Offset)
				}
			},
		},
		{
			name:  "tandem contact poll",
			query: "SELECT Id, OwnerId, FirstName, LastName, Email, Account.Name, Tandem_Sync_Key__c, SystemModstamp, IsDeleted FROM Contact WHERE OwnerId IN ('005000000000001AAA', '005000000000002AAA') AND SystemModstamp > 2024-05-01T00:00:00Z ORDER BY SystemModstamp, Id LIMIT 2000",
			want:  "SELECT Id, OwnerId, FirstName, LastName, Email, Account.Name, Tandem_Sync_Key__c, SystemModstamp, IsDeleted FROM Contact WHERE OwnerId IN ('005000000000001AAA', '005000000000002AAA') AND SystemModstamp > 2024-05-01T00:00:00Z ORDER BY SystemModstamp, Id LIMIT 2000",
		},
		{
			name:  "offset at the maximum",
			query: "SELECT Id FROM Contact OFFSET 2000",
			want:  "SELECT Id FROM Contact OFFSET 2000",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse(tt.query)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.query, err)
			}
			if got := q.String(); got != tt.want {
				t.Errorf("String() =\n%s\nwant\n%s", got, tt.want)
			}
			again, err := Parse(q.String())
			if err != nil {
				t.Fatalf("Parse(String()): %v", err)
			}
			if diff := cmp.Diff(q, again, ignorePos); diff != "" {
				t.Errorf("round trip changed the query (-first +second):\n%s", diff)
			}
			if tt.check != nil {
				tt.check(t, q)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		code    string
		pos     int
		message string // substring
	}{
		{"empty", "", CodeMalformedQuery, 0, "unexpected token: <EOF>"},
		{"no select", "FROM Contact", CodeMalformedQuery, 0, "unexpected token: FROM"},
		{"missing from", "SELECT Id Contact", CodeMalformedQuery, 10, "unexpected token: Contact"},
		{"trailing comma", "SELECT Id, FROM Contact", CodeMalformedQuery, 11, "unexpected token: FROM"},
		{"dangling where", "SELECT Id FROM Contact WHERE", CodeMalformedQuery, 28, "unexpected token: <EOF>"},
		{"and with or unparenthesised", "SELECT Id FROM Contact WHERE A = 1 AND B = 2 OR C = 3", CodeMalformedQuery, 45, "unexpected token: OR"},
		{"or with and unparenthesised", "SELECT Id FROM Contact WHERE A = 1 OR B = 2 AND C = 3", CodeMalformedQuery, 44, "unexpected token: AND"},
		{"double quotes", `SELECT Id FROM Contact WHERE Name = "x"`, CodeMalformedQuery, 36, "no viable alternative at character '\"'"},
		{"unterminated string", "SELECT Id FROM Contact WHERE Name = 'x", CodeMalformedQuery, 38, "expecting '''"},
		{"bad escape", `SELECT Id FROM Contact WHERE Name = 'a\qb'`, CodeMalformedQuery, 38, `Illegal character sequence '\q'`},
		{"missing value", "SELECT Id FROM Contact WHERE Name =", CodeMalformedQuery, 35, "unexpected token: <EOF>"},
		{"missing operator", "SELECT Id FROM Contact WHERE Name 'x'", CodeMalformedQuery, 34, "unexpected token: 'x'"},
		{"empty in list", "SELECT Id FROM Contact WHERE Id IN ()", CodeMalformedQuery, 36, "unexpected token: )"},
		{"unclosed paren", "SELECT Id FROM Contact WHERE (A = 1", CodeMalformedQuery, 35, "unexpected token: <EOF>"},
		{"unknown date literal", "SELECT Id FROM Contact WHERE CreatedDate = LAST_FORTNIGHT", CodeMalformedQuery, 43, "unexpected token: LAST_FORTNIGHT"},
		{"n literal without n", "SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS", CodeMalformedQuery, 54, "unexpected token: <EOF>"},
		{"bad date", "SELECT Id FROM Contact WHERE Birthdate = 2024-13-01", CodeMalformedQuery, 41, "invalid date"},
		{"bad datetime", "SELECT Id FROM Contact WHERE CreatedDate > 2024-01-01T25:00:00Z", CodeMalformedQuery, 43, "invalid datetime"},
		{"datetime without zone", "SELECT Id FROM Contact WHERE CreatedDate > 2024-01-01T10:00:00", CodeMalformedQuery, 43, "invalid datetime"},
		{"like a number", "SELECT Id FROM Contact WHERE Name LIKE 5", CodeMalformedQuery, 39, "unexpected token: 5"},
		{"fractional limit", "SELECT Id FROM Contact LIMIT 1.5", CodeMalformedQuery, 29, "unexpected token: 1.5"},
		{"negative limit", "SELECT Id FROM Contact LIMIT -1", CodeMalformedQuery, 29, "unexpected token: -1"},
		{"offset too large", "SELECT Id FROM Contact OFFSET 2001", CodeNumberOutsideRange, 30, "Maximum SOQL offset allowed is 2000"},
		{"count with fields", "SELECT COUNT(), Id FROM Contact", CodeMalformedQuery, 16, "Field must be grouped or aggregated: Id"},
		{"nested subquery", "SELECT Id, (SELECT Id, (SELECT Id FROM X) FROM Y) FROM Z", CodeMalformedQuery, 23, "unexpected token: ("},
		{"group by unsupported", "SELECT Id FROM Contact GROUP BY Id", CodeMalformedQuery, 23, "unexpected token: GROUP"},
		{"bind variable", "SELECT Id FROM Contact WHERE Id = :ids", CodeMalformedQuery, 34, "unexpected token: :"},
		{"reserved word as field", "SELECT Id, From FROM Contact", CodeMalformedQuery, 11, "unexpected token: From"},
		{"nulls without placement", "SELECT Id FROM Contact ORDER BY Id NULLS", CodeMalformedQuery, 40, "unexpected token: <EOF>"},
		{"trailing garbage", "SELECT Id FROM Contact LIMIT 5 5", CodeMalformedQuery, 31, "unexpected token: 5"},
		{"stray character", "SELECT Id FROM Contact WHERE Name = 'a' ; DROP", CodeMalformedQuery, 40, "no viable alternative at character ';'"},
		{"too long", "SELECT Id FROM Contact WHERE Name = '" + strings.Repeat("a", MaxQueryLength) + "'", CodeMalformedQuery, MaxQueryLength, "cannot exceed 100000 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse(tt.query)
			if err == nil {
				t.Fatalf("Parse succeeded: %s", q)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v, want *Error", err, err)
			}
			if e.Code != tt.code || e.Pos != tt.pos || !strings.Contains(e.Message, tt.message) {
				t.Errorf("error = {%s %q pos %d}, want {%s ~%q pos %d}", e.Code, e.Message, e.Pos, tt.code, tt.message, tt.pos)
			}
		})
	}
}

func TestQueryAtTheLengthLimitParses(t *testing.T) {
	prefix := "SELECT Id FROM Contact WHERE Name = '"
	q := prefix + strings.Repeat("é", MaxQueryLength-len(prefix)-1) + "'"
	if _, err := Parse(q); err != nil {
		t.Fatalf("a %d-character query (more bytes than characters) failed: %v", MaxQueryLength, err)
	}
}

func TestErrorDescribe(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  string
	}{
		{
			name:  "end of statement",
			query: "SELECT Id FROM Contact WHERE",
			want:  "\nSELECT Id FROM Contact WHERE\n                            ^\nERROR at Row:1:Column:29\nunexpected token: <EOF>",
		},
		{
			name:  "second line",
			query: "SELECT Id\nFROM Contact WHERE X = = 1",
			want:  "\nFROM Contact WHERE X = = 1\n                       ^\nERROR at Row:2:Column:24\nunexpected token: =",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.query)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse error = %v", err)
			}
			if got := e.Describe(tt.query); got != tt.want {
				t.Errorf("Describe() =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	tests := []string{"", "plain", "O'Brien", `back\slash`, "line\nbreak\ttab\r", "ünïcödé 日本", "50% off_today"}
	for _, s := range tests {
		q, err := Parse("SELECT Id FROM Contact WHERE Name = " + Quote(s))
		if err != nil {
			t.Errorf("Quote(%q) does not parse: %v", s, err)
			continue
		}
		if got := q.Where.(*Comparison).Value.Str; got != s {
			t.Errorf("Quote(%q) parsed back as %q", s, got)
		}
	}
}
