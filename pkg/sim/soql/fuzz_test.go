package soql

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse checks that Parse never panics, that every error is a positioned *Error, and that
// rendering a parsed query and parsing it again is stable.
func FuzzParse(f *testing.F) {
	seeds := []string{
		// Queries Tandem's Salesforce worker sends.
		"SELECT Id, OwnerId, FirstName, MiddleName, LastName, Email, Phone, MobilePhone, Title, Department, MailingStreet, MailingCity, Account.Name, Birthdate, Description, Tandem_Sync_Key__c, SystemModstamp, IsDeleted FROM Contact WHERE OwnerId IN ('005000000000001AAA','005000000000002AAA') AND SystemModstamp > 2024-05-01T00:00:00.000Z ORDER BY SystemModstamp ASC, Id ASC LIMIT 2000",
		"SELECT Id, Subject, StartDateTime, EndDateTime, IsAllDayEvent, ActivityDate, Location, Description, IsPrivate, ShowAs, OwnerId, WhoId, WhatId, Tandem_Sync_Key__c, SystemModstamp, (SELECT RelationId, Relation.Email, Relation.Name, Status, Response FROM EventRelations WHERE IsInvitee = true) FROM Event WHERE OwnerId = '005000000000001AAA' AND EndDateTime >= LAST_N_DAYS:30",
		"SELECT Id, Username, Email, IsActive, ProfileId, Profile.Name FROM User WHERE IsActive = true",
		"SELECT COUNT() FROM Contact WHERE Tandem_Sync_Key__c != null",
		"SELECT Id FROM Contact WHERE Tandem_Sync_Key__c IN ('k1','k2') AND IsDeleted = true",
		"SELECT Id, IsDeleted, OwnerId, SystemModstamp FROM Contact WHERE SystemModstamp >= 2024-05-16T10:00:00Z AND (SystemModstamp >= 2024-05-16T10:00:01Z OR Id > '003000000000002AAA') AND OwnerId IN ('005000000000001AAA') ORDER BY SystemModstamp ASC, Id ASC",
		"SELECT Id FROM Contact WHERE SystemModstamp >= 2024-05-16T09:55:00Z AND OwnerId IN ('005000000000001AAA') ORDER BY SystemModstamp ASC, Id ASC",
		// Every literal and operator shape.
		`select id from contact where (a = 'x\'y\\z\n' or b <> -1.5) and not c like 'a\%b_%' and d not in (1, 2) and e includes ('a;b') and f excludes ('c') and g = TODAY and h > 2024-01-02 and i <= 2024-01-02T03:04:05+05:30 order by a desc nulls last, b nulls first limit 10 offset 5`,
		"SELECT Id FROM Contact WHERE CreatedDate = NEXT_N_DAYS:7 OR CreatedDate = THIS_MONTH OR CreatedDate = LAST_MONTH OR CreatedDate = YESTERDAY",
		// Broken inputs.
		"", "SELECT", "SELECT Id FROM", "SELECT Id FROM Contact WHERE", "SELECT Id FROM Contact WHERE A = 1 AND B = 2 OR C = 3",
		"SELECT Id FROM Contact WHERE Name = 'unterminated", `SELECT Id FROM Contact WHERE Name = "dq"`, "SELECT Id FROM Contact WHERE Name = '\\q'",
		"SELECT Id FROM Contact LIMIT -1", "SELECT Id FROM Contact OFFSET 99999999999999999999", "SELECT Id, (SELECT Id, (SELECT Id FROM A) FROM B) FROM C",
		"SELECT Id FROM Contact WHERE d = 2024-02-30", "SELECT Id FROM Contact WHERE d = 2024-01-01T00:00:00", "SELECT Id FROM Contact WHERE x = \\u00",
		"SELECT Id FROM Contact WHERE ((((a = 1))))", "SELECT COUNT(), Id FROM Contact", "SELECT Id FROM Contact WHERE x IN ()",
		"SELECT Id FROM Contact WHERE Name = '\xff\xfe'", "SELECT Id FROM Contact WHERE Name = 'a\\u00e9'",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		q, err := Parse(src)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) error %T is not *Error", src, err)
			}
			if e.Pos < 0 || e.Pos > len(src) && e.Pos != MaxQueryLength {
				t.Fatalf("Parse(%q) error position %d outside the input", src, e.Pos)
			}
			_ = e.Describe(src)
			return
		}
		rendered := q.String()
		again, err := Parse(rendered)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its rendering %q fails: %v", src, rendered, err)
		}
		if diff := cmp.Diff(q, again, ignorePos); diff != "" {
			t.Fatalf("round trip of %q through %q changed the query:\n%s", src, rendered, diff)
		}
		if again.String() != rendered {
			t.Fatalf("rendering is not stable: %q then %q", rendered, again.String())
		}
		if m, err := q.Matcher(Env{}); err == nil {
			_, _ = m.Match(rec{fields: map[string]any{}})
		}
	})
}
