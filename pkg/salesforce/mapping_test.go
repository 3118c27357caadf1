package salesforce

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func row(t *testing.T, js string) SObject {
	t.Helper()
	page, err := ParseQueryResult([]byte(`{"totalSize":1,"done":true,"records":[` + js + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	return page.Records[0]
}

func TestContactFromRow(t *testing.T) {
	o := row(t, `{"attributes":{"type":"Contact","url":"/services/data/v62.0/sobjects/Contact/003000000000001AAA"},
		"Id":"003000000000001AAA","IsDeleted":false,"OwnerId":"005000000000001AAA","SystemModstamp":"2026-02-03T04:05:06.789+0000",
		"Tandem_Sync_Key__c":"sk-1","FirstName":"Ada","MiddleName":"B.","LastName":"Lovelace","Title":"Countess","Department":"Math",
		"Email":"ada@example.com","Phone":"+44 1","MobilePhone":"+44 2","HomePhone":"+44 3","OtherPhone":"+44 4","Fax":"+44 5","AssistantPhone":"+44 6",
		"MailingStreet":"1 St James's Sq\nFloor 2","MailingCity":"London","MailingState":null,"MailingPostalCode":"SW1","MailingCountry":"UK",
		"OtherStreet":null,"OtherCity":null,"OtherState":null,"OtherPostalCode":null,"OtherCountry":null,
		"Birthdate":"1815-12-10","Description":"Analyst","AssistantName":"Mary","Suffix":"Jr.","AccountId":"001000000000001AAA","Account":{"attributes":{"type":"Account"},"Name":"Analytical Engines"}}`)
	rec, err := contactFromRow(o)
	if err != nil {
		t.Fatal(err)
	}
	want := &tandemv1.Record{
		Id: "003000000000001AAA", Version: "2026-02-03T04:05:06.789Z", SyncKey: "sk-1", OwnerId: "005000000000001AAA",
		ModifiedAt: timestamppb.New(time.Date(2026, 2, 3, 4, 5, 6, 789_000_000, time.UTC)),
		Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{
			GivenName: "Ada", MiddleName: "B.", Surname: "Lovelace", CompanyName: "Analytical Engines", JobTitle: "Countess",
			Department: "Math", EmailAddress1: "ada@example.com", BusinessPhone: "+44 1", MobilePhone: "+44 2", HomePhone: "+44 3",
			OtherPhone: "+44 4", BusinessFax: "+44 5", AssistantPhone: "+44 6",
			BusinessAddress: &tandemv1.PostalAddress{Street: "1 St James's Sq\nFloor 2", City: "London", PostalCode: "SW1", Country: "UK"},
			Birthday:        &tandemv1.Date{Year: 1815, Month: 12, Day: 10}, Notes: "Analyst", SalesforceAccountId: "001000000000001AAA",
			AssistantName: "Mary", Suffix: "Jr.",
		}},
	}
	if d := cmp.Diff(want, rec, protocmp.Transform()); d != "" {
		t.Errorf("contactFromRow (-want +got):\n%s", d)
	}
}

func TestEventFromRow(t *testing.T) {
	tests := []struct {
		name string
		js   string
		want *tandemv1.Event
	}{
		{"timed with invitees", `{"Id":"00U000000000001AAA","OwnerId":"005000000000001AAA","SystemModstamp":"2026-02-03T04:05:06.000+0000",
			"Subject":"Review","Location":"Room 1","Description":"Agenda","IsAllDayEvent":false,
			"StartDateTime":"2026-02-10T09:00:00.000+0000","EndDateTime":"2026-02-10T09:30:00.000+0000","ActivityDate":"2026-02-10","DurationInMinutes":30,
			"IsPrivate":true,"ShowAs":"OutOfOffice","WhoId":"003000000000001AAA","WhatId":null,
			"EventRelations":{"totalSize":3,"done":true,"records":[
				{"Id":"0RE1","RelationId":"003000000000001AAA","Relation":{"Name":"Ada Lovelace","Email":"ada@example.com"},"Status":"Accepted","RespondedDate":"2026-02-04T00:00:00.000+0000","IsInvitee":true},
				{"Id":"0RE2","RelationId":"00Q000000000001AAA","Relation":{"Name":"Bob","Email":"bob@example.com"},"Status":"New","RespondedDate":null,"IsInvitee":true},
				{"Id":"0RE3","RelationId":"001000000000001AAA","Relation":{"Name":"Acme","Email":null},"Status":null,"IsInvitee":false}]}}`,
			&tandemv1.Event{Subject: "Review", Location: "Room 1", Body: "Agenda",
				Start: timestamppb.New(time.Date(2026, 2, 10, 9, 0, 0, 0, time.UTC)), End: timestamppb.New(time.Date(2026, 2, 10, 9, 30, 0, 0, time.UTC)),
				Sensitivity: tandemv1.Sensitivity_SENSITIVITY_PRIVATE, ShowAs: tandemv1.ShowAs_SHOW_AS_OUT_OF_OFFICE, SalesforceWhoId: "003000000000001AAA",
				Attendees: []*tandemv1.Attendee{
					{Email: "ada@example.com", Name: "Ada Lovelace", Type: tandemv1.AttendeeType_ATTENDEE_TYPE_REQUIRED, Response: tandemv1.ResponseType_RESPONSE_TYPE_ACCEPTED,
						RespondedAt: timestamppb.New(time.Date(2026, 2, 4, 0, 0, 0, 0, time.UTC))},
					{Email: "bob@example.com", Name: "Bob", Type: tandemv1.AttendeeType_ATTENDEE_TYPE_REQUIRED, Response: tandemv1.ResponseType_RESPONSE_TYPE_NO_RESPONSE},
				}}},
		{"timed with duration only", `{"Id":"00U2","SystemModstamp":"2026-02-03T04:05:06.000+0000","IsAllDayEvent":false,
			"StartDateTime":"2026-02-10T09:00:00.000+0000","EndDateTime":null,"DurationInMinutes":45,"IsPrivate":false,"ShowAs":"Busy","EventRelations":null}`,
			&tandemv1.Event{Start: timestamppb.New(time.Date(2026, 2, 10, 9, 0, 0, 0, time.UTC)), End: timestamppb.New(time.Date(2026, 2, 10, 9, 45, 0, 0, time.UTC)),
				Sensitivity: tandemv1.Sensitivity_SENSITIVITY_NORMAL, ShowAs: tandemv1.ShowAs_SHOW_AS_BUSY}},
		{"all-day over three days", `{"Id":"00U3","SystemModstamp":"2026-02-03T04:05:06.000+0000","IsAllDayEvent":true,"ActivityDate":"2026-02-27",
			"StartDateTime":"2026-02-27T00:00:00.000+0000","EndDateTime":"2026-03-01T00:00:00.000+0000","DurationInMinutes":4320,"IsPrivate":false,"ShowAs":"Free"}`,
			&tandemv1.Event{IsAllDay: true, StartDate: &tandemv1.Date{Year: 2026, Month: 2, Day: 27}, EndDate: &tandemv1.Date{Year: 2026, Month: 3, Day: 1},
				Sensitivity: tandemv1.Sensitivity_SENSITIVITY_NORMAL, ShowAs: tandemv1.ShowAs_SHOW_AS_FREE}},
		{"all-day one day", `{"Id":"00U4","SystemModstamp":"2026-02-03T04:05:06.000+0000","IsAllDayEvent":true,"ActivityDate":"2026-02-27","DurationInMinutes":1440}`,
			&tandemv1.Event{IsAllDay: true, StartDate: &tandemv1.Date{Year: 2026, Month: 2, Day: 27}, EndDate: &tandemv1.Date{Year: 2026, Month: 2, Day: 27},
				Sensitivity: tandemv1.Sensitivity_SENSITIVITY_NORMAL}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := eventFromRow(row(t, tt.js))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, rec.GetEvent(), protocmp.Transform()); d != "" {
				t.Errorf("eventFromRow (-want +got):\n%s", d)
			}
		})
	}
}

func TestContactValues(t *testing.T) {
	full := func() *tandemv1.Contact {
		return &tandemv1.Contact{GivenName: "Ada", Surname: "Lovelace", CompanyName: "Set by setAccount, from Accounts looked up", EmailAddress1: "ada@example.com",
			EmailAddress2: "not@mapped.example", BusinessAddress: &tandemv1.PostalAddress{City: "London"},
			Birthday: &tandemv1.Date{Year: 1815, Month: 12, Day: 10}, SalesforceAccountId: "001000000000001AAA"}
	}
	tests := []struct {
		name    string
		c       *tandemv1.Contact
		fields  []string
		create  bool
		missing bool // the org has no MiddleName
		want    map[string]any
	}{
		{"create leaves empty fields out", full(), nil, true, false, map[string]any{
			"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com", "MailingCity": "London",
			"Birthdate": "1815-12-10", "AccountId": "001000000000001AAA"}},
		{"update of listed fields clears empty ones", full(), []string{fGivenName, fMiddleName, fBusinessAddr, fBirthday}, false, false, map[string]any{
			"FirstName": "Ada", "MiddleName": nil, "MailingStreet": nil, "MailingCity": "London", "MailingState": nil,
			"MailingPostalCode": nil, "MailingCountry": nil, "Birthdate": "1815-12-10"}},
		{"account id is never cleared", &tandemv1.Contact{Surname: "X"}, []string{fSurname, fAccountID, fBirthday}, false, false, map[string]any{
			"LastName": "X", "Birthdate": nil}},
		{"unmapped fields and the company (an Account lookup) write nothing here", full(), []string{fCompanyName, "email_address2", "home_address"}, false, false, map[string]any{}},
		{"missing optional field is skipped", &tandemv1.Contact{MiddleName: "B.", Surname: "X"}, []string{fMiddleName, fSurname}, false, true, map[string]any{"LastName": "X"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := newFieldInfo()
			if tt.missing && !info.learnMissing(objContact, "No such column 'MiddleName' on entity 'Contact'") {
				t.Fatal("learnMissing learned nothing")
			}
			got, cuts := contactValues(tt.c, newFieldSet(tt.fields), tt.create, info)
			if len(cuts) != 0 {
				t.Errorf("unexpected truncations %v", cuts)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("contactValues (-want +got):\n%s", d)
			}
		})
	}
}

func TestContactValuesTruncate(t *testing.T) {
	c := &tandemv1.Contact{
		GivenName:       strings.Repeat("é", 45),                                      // 45 characters, 90 bytes: limit 40
		JobTitle:        strings.Repeat("a", 127) + "😀",                               // the emoji counts 2: 129 > 128
		Surname:         strings.Repeat("n", 80),                                      // exactly at the limit
		Notes:           strings.Repeat("x", 31999) + "界界",                            // 32001 > 32000
		BusinessAddress: &tandemv1.PostalAddress{PostalCode: "123456789012345678901"}, // 21 > 20
	}
	vals, cuts := contactValues(c, nil, true, newFieldInfo())
	want := map[string]int{fGivenName: 40, fJobTitle: 127, fNotes: 32000, fBusinessAddr: 20}
	if len(cuts) != len(want) {
		t.Fatalf("truncations %+v, want %d", cuts, len(want))
	}
	for _, cut := range cuts {
		if want[cut.canonical] != cut.to {
			t.Errorf("%s (%s) truncated to %d, want %d", cut.canonical, cut.api, cut.to, want[cut.canonical])
		}
	}
	if got := vals["FirstName"].(string); got != strings.Repeat("é", 40) || c.GivenName != got {
		t.Errorf("FirstName = %q (record %q)", got, c.GivenName)
	}
	if got := vals["Title"].(string); got != strings.Repeat("a", 127) {
		t.Errorf("Title kept a split character: %q", got[120:])
	}
	if got := vals["MailingPostalCode"]; got != "12345678901234567890" || c.BusinessAddress.PostalCode != got {
		t.Errorf("MailingPostalCode = %v", got)
	}
	if vals["LastName"] != c.Surname {
		t.Error("a value at the limit was changed")
	}
}

func TestEventValues(t *testing.T) {
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		e       *tandemv1.Event
		fields  []string
		create  bool
		want    map[string]any
		wantErr bool
	}{
		{"timed create", &tandemv1.Event{Subject: "Call", Start: timestamppb.New(start), End: timestamppb.New(start.Add(90 * time.Minute)),
			Sensitivity: tandemv1.Sensitivity_SENSITIVITY_NORMAL, ShowAs: tandemv1.ShowAs_SHOW_AS_TENTATIVE, SalesforceWhatId: "006000000000001AAA"}, nil, true,
			map[string]any{"Subject": "Call", "IsAllDayEvent": false, "StartDateTime": "2026-03-01T09:00:00.000Z", "EndDateTime": "2026-03-01T10:30:00.000Z",
				"DurationInMinutes": 90, "IsPrivate": false, "ShowAs": "Busy", "WhatId": "006000000000001AAA"}, false},
		{"all-day two days", &tandemv1.Event{IsAllDay: true, StartDate: &tandemv1.Date{Year: 2026, Month: 2, Day: 28}, EndDate: &tandemv1.Date{Year: 2026, Month: 3, Day: 1},
			Sensitivity: tandemv1.Sensitivity_SENSITIVITY_CONFIDENTIAL, ShowAs: tandemv1.ShowAs_SHOW_AS_FREE}, []string{fIsAllDay, fSensitivity, fShowAs}, false,
			map[string]any{"IsAllDayEvent": true, "ActivityDate": "2026-02-28", "DurationInMinutes": 2880, "IsPrivate": true, "ShowAs": "Free"}, false},
		{"update of subject only", &tandemv1.Event{Location: "kept", Start: timestamppb.New(start)}, []string{fSubject, fWhoID}, false,
			map[string]any{"Subject": nil}, false},
		{"timed without end", &tandemv1.Event{Start: timestamppb.New(start)}, []string{fStart}, false, nil, true},
		{"ends before it starts", &tandemv1.Event{Start: timestamppb.New(start), End: timestamppb.New(start.Add(-time.Minute))}, nil, true, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := eventValues(tt.e, newFieldSet(tt.fields), tt.create, newFieldInfo())
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %t", err, tt.wantErr)
			}
			if d := cmp.Diff(tt.want, got); !tt.wantErr && d != "" {
				t.Errorf("eventValues (-want +got):\n%s", d)
			}
		})
	}
}

func TestFilterMatches(t *testing.T) {
	o := row(t, `{"MailingState":"CA","Region__c":"North-West","Level__c":3,"VIP__c":true,"Account":{"Industry":"Banking"},"Empty__c":null}`)
	f := func(field string, op tandemv1.FilterOperator, values ...string) *tandemv1.FieldFilter {
		return &tandemv1.FieldFilter{Field: field, Operator: op, Values: values}
	}
	const (
		eq = tandemv1.FilterOperator_FILTER_OPERATOR_EQUALS
		ne = tandemv1.FilterOperator_FILTER_OPERATOR_NOT_EQUALS
		sw = tandemv1.FilterOperator_FILTER_OPERATOR_STARTS_WITH
		co = tandemv1.FilterOperator_FILTER_OPERATOR_CONTAINS
	)
	tests := []struct {
		f    *tandemv1.FieldFilter
		want bool
	}{
		{f("MailingState", eq, "CA"), true},
		{f("mailingstate", eq, "ca"), true},
		{f("MailingState", eq, "NY", "CA"), true},
		{f("MailingState", eq, "NY"), false},
		{f("MailingState", eq), false},
		{f("MailingState", ne, "NY"), true},
		{f("MailingState", ne, "NY", "ca"), false},
		{f("MailingState", ne), true},
		{f("Region__c", sw, "north"), true},
		{f("Region__c", sw, "west"), false},
		{f("Region__c", co, "west"), true},
		{f("Level__c", eq, "3"), true},
		{f("VIP__c", eq, "TRUE"), true},
		{f("Account.Industry", sw, "Bank"), true},
		{f("Empty__c", eq, ""), true},
		{f("Missing__c", eq, "x"), false},
		{f("MailingState", tandemv1.FilterOperator_FILTER_OPERATOR_UNSPECIFIED, "x"), true},
	}
	for _, tt := range tests {
		if got := filterMatches(o, tt.f); got != tt.want {
			t.Errorf("filterMatches(%v %s %v) = %t, want %t", tt.f.Field, tt.f.Operator, tt.f.Values, got, tt.want)
		}
	}
}

func TestTruncateNeverSplitsCharacters(t *testing.T) {
	tests := []struct {
		in    string
		limit int
		want  string
		cut   bool
	}{
		{"hello", 10, "hello", false},
		{"hello", 5, "hello", false},
		{"hello", 4, "hell", true},
		{"日本語テキスト", 3, "日本語", true},
		{"a😀b", 2, "a", true},
		{"a😀b", 3, "a😀", true},
		{"😀😀", 3, "😀", true},
		{"", 1, "", false},
		{"x", 0, "x", false},
	}
	for _, tt := range tests {
		got, cut := truncate(tt.in, tt.limit)
		if got != tt.want || cut != tt.cut {
			t.Errorf("truncate(%q, %d) = %q, %t; want %q, %t", tt.in, tt.limit, got, cut, tt.want, tt.cut)
		}
	}
}
