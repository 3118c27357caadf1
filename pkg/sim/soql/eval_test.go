package soql

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// rec is a test record: a map of lower-cased paths to values. A key absent from fields is an
// unknown field unless it is listed in nulls.
type rec struct {
	fields map[string]any
}

func (r rec) Get(path []string) (any, bool) {
	v, ok := r.fields[strings.ToLower(strings.Join(path, "."))]
	return v, ok
}

func contact(fields map[string]any) rec {
	base := map[string]any{
		"id": ID("003000000000001AAA"), "firstname": nil, "lastname": "Smith", "email": nil,
		"ownerid": ID("005000000000001AAA"), "birthdate": nil, "createddate": nil, "isdeleted": false,
		"account.name": nil, "numberofemployees": nil, "tags__c": nil,
	}
	for k, v := range fields {
		base[strings.ToLower(k)] = v
	}
	return rec{fields: base}
}

func TestMatch(t *testing.T) {
	// Thursday 2024-05-16 10:30 UTC.
	now := time.Date(2024, 5, 16, 10, 30, 0, 0, time.UTC)
	env := Env{Now: now}
	at := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	tests := []struct {
		name  string
		where string
		rec   rec
		want  bool
	}{
		{"equal, case-insensitive", "LastName = 'smith'", contact(nil), true},
		{"not equal", "LastName != 'Smith'", contact(nil), false},
		{"less than, text", "LastName < 'Taylor'", contact(nil), true},
		{"greater or equal, text", "LastName >= 'SMITH'", contact(nil), true},

		{"null equals null", "Email = null", contact(nil), true},
		{"value is not null", "Email != null", contact(map[string]any{"Email": "a@b.c"}), true},
		{"null is unequal to a value", "Email != 'a@b.c'", contact(nil), true},
		{"null does not equal a value", "Email = 'a@b.c'", contact(nil), false},
		{"null never orders", "Email < 'z'", contact(nil), false},
		{"null never orders, other side", "Email >= ''", contact(nil), false},
		{"null is not like anything", "Email LIKE '%'", contact(nil), false},
		{"null is not in a list", "Email IN ('a@b.c')", contact(nil), false},
		{"null is not in a list, so NOT IN matches", "Email NOT IN ('a@b.c')", contact(nil), true},
		{"null listed in IN", "Email IN ('a@b.c', null)", contact(nil), true},
		{"parent not set compares as null", "Account.Name = null", contact(nil), true},
		{"parent field", "Account.Name = 'Acme'", contact(map[string]any{"Account.Name": "ACME"}), true},

		{"like prefix", "LastName LIKE 'Sm%'", contact(nil), true},
		{"like single character", "LastName LIKE 'Sm_th'", contact(nil), true},
		{"like case-insensitive", "LastName LIKE '%MIT%'", contact(nil), true},
		{"like whole string", "LastName LIKE 'Smit'", contact(nil), false},
		{"like escaped percent is literal", `LastName LIKE '100\%'`, contact(map[string]any{"LastName": "100%"}), true},
		{"like escaped percent does not wildcard", `LastName LIKE '100\%'`, contact(map[string]any{"LastName": "1000"}), false},
		{"like backtracks", "LastName LIKE '%a%b%c'", contact(map[string]any{"LastName": "xaxbxbxc"}), true},
		{"like unicode", "LastName LIKE 'Ö_'", contact(map[string]any{"LastName": "öz"}), true},

		{"in", "OwnerId IN ('005000000000002AAA', '005000000000001AAA')", contact(nil), true},
		{"not in", "OwnerId NOT IN ('005000000000001AAA')", contact(nil), false},
		{"15-character id equals 18-character id", "OwnerId = '005000000000001'", contact(nil), true},
		{"15-character id is case-sensitive", "OwnerId = '005000000000001aaa'", contact(nil), true},
		{"18-character id is case-insensitive", "Id = '003000000000001aaa'", contact(nil), true},
		{"15-character id mismatch", "Id = '003000000000002'", contact(nil), false},

		{"boolean", "IsDeleted = false", contact(nil), true},
		{"number", "NumberOfEmployees > 10", contact(map[string]any{"NumberOfEmployees": 11}), true},
		{"number equality across types", "NumberOfEmployees = 11.0", contact(map[string]any{"NumberOfEmployees": int64(11)}), true},

		{"and", "LastName = 'Smith' AND IsDeleted = false", contact(nil), true},
		{"and short-circuits false", "LastName = 'Jones' AND IsDeleted = false", contact(nil), false},
		{"or", "LastName = 'Jones' OR LastName = 'Smith'", contact(nil), true},
		{"not", "NOT LastName = 'Jones'", contact(nil), true},
		{"not of group", "NOT (LastName = 'Jones' OR IsDeleted = false)", contact(nil), false},

		{"includes one of", "Tags__c INCLUDES ('b', 'z')", contact(map[string]any{"Tags__c": "a;b;c"}), true},
		{"includes all of a combination", "Tags__c INCLUDES ('a;c')", contact(map[string]any{"Tags__c": "a;b;c"}), true},
		{"includes a missing combination", "Tags__c INCLUDES ('a;z')", contact(map[string]any{"Tags__c": "a;b;c"}), false},
		{"excludes", "Tags__c EXCLUDES ('z')", contact(map[string]any{"Tags__c": "a;b;c"}), true},

		{"datetime after", "CreatedDate > 2024-05-16T10:00:00Z", contact(map[string]any{"CreatedDate": at("2024-05-16T10:00:01Z")}), true},
		{"datetime with offset", "CreatedDate = 2024-05-16T12:00:00+02:00", contact(map[string]any{"CreatedDate": at("2024-05-16T10:00:00Z")}), true},
		{"datetime with ms", "CreatedDate < 2024-05-16T10:00:01.500Z", contact(map[string]any{"CreatedDate": at("2024-05-16T10:00:00.499Z")}), true},
		// Salesforce compares datetimes to the second, milliseconds ignored on both sides.
		{"datetime equal within the second", "CreatedDate = 2024-05-16T10:00:00Z", contact(map[string]any{"CreatedDate": at("2024-05-16T10:00:00.900Z")}), true},
		{"datetime not after within the second", "CreatedDate > 2024-05-16T10:00:00Z", contact(map[string]any{"CreatedDate": at("2024-05-16T10:00:00.001Z")}), false},
		{"datetime literal ms ignored", "CreatedDate >= 2024-05-16T10:00:00.900Z", contact(map[string]any{"CreatedDate": at("2024-05-16T10:00:00.100Z")}), true},
		{"datetime literal ms ignored, less", "CreatedDate < 2024-05-16T10:00:00.500Z", contact(map[string]any{"CreatedDate": at("2024-05-16T10:00:00.499Z")}), false},
		{"datetime in list within the second", "CreatedDate IN (2024-05-16T10:00:00Z)", contact(map[string]any{"CreatedDate": at("2024-05-16T10:00:00.250Z")}), true},
		{"id after", "Id > '003000000000001AAA'", contact(map[string]any{"Id": ID("003000000000002AAA")}), true},
		{"id not after itself", "Id > '003000000000002AAA'", contact(map[string]any{"Id": ID("003000000000002AAA")}), false},
		{"keyset after the watermark", "SystemModstamp >= 2024-05-16T10:00:00Z AND (SystemModstamp >= 2024-05-16T10:00:01Z OR Id > '003000000000002AAA')",
			contact(map[string]any{"SystemModstamp": at("2024-05-16T10:00:00.700Z"), "Id": ID("003000000000003AAA")}), true},
		{"keyset skips the watermark's smaller ids", "SystemModstamp >= 2024-05-16T10:00:00Z AND (SystemModstamp >= 2024-05-16T10:00:01Z OR Id > '003000000000002AAA')",
			contact(map[string]any{"SystemModstamp": at("2024-05-16T10:00:00.700Z"), "Id": ID("003000000000001AAA")}), false},
		{"keyset takes later seconds", "SystemModstamp >= 2024-05-16T10:00:00Z AND (SystemModstamp >= 2024-05-16T10:00:01Z OR Id > '003000000000002AAA')",
			contact(map[string]any{"SystemModstamp": at("2024-05-16T10:00:01Z"), "Id": ID("003000000000001AAA")}), true},
		{"date", "Birthdate = 1980-02-29", contact(map[string]any{"Birthdate": Date{1980, 2, 29}}), true},
		{"date before", "Birthdate < 1980-03-01", contact(map[string]any{"Birthdate": Date{1980, 2, 29}}), true},

		{"today, datetime", "CreatedDate = TODAY", contact(map[string]any{"CreatedDate": at("2024-05-16T00:00:00Z")}), true},
		{"today excludes tomorrow", "CreatedDate = TODAY", contact(map[string]any{"CreatedDate": at("2024-05-17T00:00:00Z")}), false},
		{"after today", "CreatedDate > TODAY", contact(map[string]any{"CreatedDate": at("2024-05-17T00:00:00Z")}), true},
		{"not after today within today", "CreatedDate > TODAY", contact(map[string]any{"CreatedDate": at("2024-05-16T23:59:59Z")}), false},
		{"up to end of today", "CreatedDate <= TODAY", contact(map[string]any{"CreatedDate": at("2024-05-16T23:59:59Z")}), true},
		{"before today", "CreatedDate < TODAY", contact(map[string]any{"CreatedDate": at("2024-05-16T00:00:00Z")}), false},
		{"from start of today", "CreatedDate >= TODAY", contact(map[string]any{"CreatedDate": at("2024-05-16T00:00:00Z")}), true},
		{"yesterday", "CreatedDate = YESTERDAY", contact(map[string]any{"CreatedDate": at("2024-05-15T23:00:00Z")}), true},
		{"today, date field", "Birthdate = TODAY", contact(map[string]any{"Birthdate": Date{2024, 5, 16}}), true},
		{"last n days includes today", "CreatedDate = LAST_N_DAYS:1", contact(map[string]any{"CreatedDate": at("2024-05-16T10:00:00Z")}), true},
		{"last n days starts n days ago", "CreatedDate = LAST_N_DAYS:1", contact(map[string]any{"CreatedDate": at("2024-05-15T00:00:00Z")}), true},
		{"last n days stops there", "CreatedDate = LAST_N_DAYS:1", contact(map[string]any{"CreatedDate": at("2024-05-14T23:59:59Z")}), false},
		{"next n days excludes today", "Birthdate = NEXT_N_DAYS:7", contact(map[string]any{"Birthdate": Date{2024, 5, 16}}), false},
		{"next n days ends on day n", "Birthdate = NEXT_N_DAYS:7", contact(map[string]any{"Birthdate": Date{2024, 5, 23}}), true},
		{"next n days not after", "Birthdate = NEXT_N_DAYS:7", contact(map[string]any{"Birthdate": Date{2024, 5, 24}}), false},
		{"this month", "CreatedDate = THIS_MONTH", contact(map[string]any{"CreatedDate": at("2024-05-01T00:00:00Z")}), true},
		{"last month", "CreatedDate = LAST_MONTH", contact(map[string]any{"CreatedDate": at("2024-04-30T23:59:59Z")}), true},
		{"last month not this month", "CreatedDate = LAST_MONTH", contact(map[string]any{"CreatedDate": at("2024-05-01T00:00:00Z")}), false},
		{"this week starts on sunday", "CreatedDate = THIS_WEEK", contact(map[string]any{"CreatedDate": at("2024-05-12T00:00:00Z")}), true},
		{"last week", "CreatedDate = LAST_WEEK", contact(map[string]any{"CreatedDate": at("2024-05-11T12:00:00Z")}), true},
		{"in with date literals", "CreatedDate IN (YESTERDAY, TODAY)", contact(map[string]any{"CreatedDate": at("2024-05-15T12:00:00Z")}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse("SELECT Id FROM Contact WHERE " + tt.where)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			m, err := q.Matcher(env)
			if err != nil {
				t.Fatalf("Matcher: %v", err)
			}
			got, err := m.Match(tt.rec)
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			if got != tt.want {
				t.Errorf("Match(%s) = %v, want %v", tt.where, got, tt.want)
			}
		})
	}
}

func TestMatchTimeZone(t *testing.T) {
	// 23:30 in New York on May 15 is already May 16 in UTC: TODAY follows the user's zone.
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no tz database: %v", err)
	}
	now := time.Date(2024, 5, 15, 23, 30, 0, 0, ny)
	q, err := Parse("SELECT Id FROM Contact WHERE CreatedDate = TODAY")
	if err != nil {
		t.Fatal(err)
	}
	m, err := q.Matcher(Env{Now: now, Location: ny})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		at   time.Time
		want bool
	}{
		{time.Date(2024, 5, 15, 4, 0, 0, 0, time.UTC), true},   // 00:00 New York
		{time.Date(2024, 5, 15, 3, 59, 0, 0, time.UTC), false}, // 23:59 the day before
		{time.Date(2024, 5, 16, 3, 59, 0, 0, time.UTC), true},  // 23:59 New York
		{time.Date(2024, 5, 16, 4, 0, 0, 0, time.UTC), false},
	}
	for _, tt := range tests {
		got, err := m.Match(contact(map[string]any{"CreatedDate": tt.at}))
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("CreatedDate %v = TODAY: %v, want %v", tt.at, got, tt.want)
		}
	}
}

func TestMatchErrors(t *testing.T) {
	tests := []struct {
		name  string
		where string
		code  string
	}{
		{"unknown field", "Nope__c = 'x'", CodeInvalidField},
		{"string against number", "LastName = 5", CodeInvalidField},
		{"unquoted date against datetime", "CreatedDate = 2024-01-01", CodeInvalidField},
		{"datetime against date", "Birthdate = 2024-01-01T00:00:00Z", CodeInvalidField},
		{"like on a boolean", "IsDeleted LIKE 'x'", CodeInvalidField},
	}
	r := contact(map[string]any{"CreatedDate": time.Now(), "Birthdate": Date{2000, 1, 1}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse("SELECT Id FROM Contact WHERE " + tt.where)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			_, err = q.Match(r)
			var e *Error
			if !errors.As(err, &e) || e.Code != tt.code {
				t.Errorf("Match error = %v, want code %s", err, tt.code)
			}
		})
	}
}

func TestSortAndWindow(t *testing.T) {
	recs := []Record{
		contact(map[string]any{"Id": ID("a"), "LastName": "beta", "FirstName": "x"}),
		contact(map[string]any{"Id": ID("b"), "LastName": nil, "FirstName": "y"}),
		contact(map[string]any{"Id": ID("c"), "LastName": "Alpha", "FirstName": "z"}),
		contact(map[string]any{"Id": ID("d"), "LastName": "alpha", "FirstName": "a"}),
		contact(map[string]any{"Id": ID("e"), "LastName": "Gamma", "FirstName": nil}),
	}
	ids := func(rs []Record) string {
		var out []string
		for _, r := range rs {
			v, _ := r.Get([]string{"Id"})
			out = append(out, string(v.(ID)))
		}
		return strings.Join(out, "")
	}
	tests := []struct {
		order string
		want  string
	}{
		{"LastName", "bcdae"},                            // nulls first ascending; stable for equal keys
		{"LastName ASC NULLS LAST", "cdaeb"},             // explicit placement
		{"LastName DESC", "eacdb"},                       // nulls last descending
		{"LastName DESC NULLS FIRST", "beacd"},           // explicit placement
		{"LastName, FirstName DESC", "bcdae"},            // tie broken by the second key
		{"LastName, FirstName", "bdcae"},                 // a < z
		{"FirstName DESC NULLS LAST, LastName", "cbade"}, // z y x a, then null
	}
	for _, tt := range tests {
		t.Run(tt.order, func(t *testing.T) {
			q, err := Parse("SELECT Id FROM Contact ORDER BY " + tt.order)
			if err != nil {
				t.Fatal(err)
			}
			got := slices.Clone(recs)
			if err := q.Sort(got); err != nil {
				t.Fatal(err)
			}
			if ids(got) != tt.want {
				t.Errorf("order %s = %s, want %s", tt.order, ids(got), tt.want)
			}
		})
	}

	windows := []struct {
		clause string
		n      int
		lo, hi int
	}{
		{"", 10, 0, 10},
		{"LIMIT 3", 10, 0, 3},
		{"LIMIT 30", 10, 0, 10},
		{"OFFSET 4", 10, 4, 10},
		{"LIMIT 3 OFFSET 4", 10, 4, 7},
		{"LIMIT 3 OFFSET 40", 10, 10, 10},
		{"LIMIT 0", 10, 0, 0},
		{"LIMIT 9223372036854775807 OFFSET 5", 10, 5, 10},
	}
	for _, w := range windows {
		q, err := Parse("SELECT Id FROM Contact " + w.clause)
		if err != nil {
			t.Fatal(err)
		}
		if lo, hi := q.Window(w.n); lo != w.lo || hi != w.hi {
			t.Errorf("%q Window(%d) = %d, %d; want %d, %d", w.clause, w.n, lo, hi, w.lo, w.hi)
		}
	}
}
