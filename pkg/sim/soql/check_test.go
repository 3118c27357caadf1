package soql

import (
	"errors"
	"strings"
	"testing"
)

// testSchema is a small Contact/Account/Event schema.
type testSchema struct{}

var testFields = map[string]map[string]FieldInfo{
	"contact": {
		"id":                 {Name: "Id", Type: TypeID, Filterable: true, Sortable: true},
		"lastname":           {Name: "LastName", Type: TypeString, Filterable: true, Sortable: true},
		"email":              {Name: "Email", Type: TypeString, Filterable: true, Sortable: true},
		"accountid":          {Name: "AccountId", Type: TypeID, Filterable: true, Sortable: true},
		"birthdate":          {Name: "Birthdate", Type: TypeDate, Filterable: true, Sortable: true},
		"systemmodstamp":     {Name: "SystemModstamp", Type: TypeDateTime, Filterable: true, Sortable: true},
		"isdeleted":          {Name: "IsDeleted", Type: TypeBoolean, Filterable: true, Sortable: true},
		"description":        {Name: "Description", Type: TypeString},
		"interests__c":       {Name: "Interests__c", Type: TypeMultiPicklist, Filterable: true},
		"numberofemployees":  {Name: "NumberOfEmployees", Type: TypeNumber, Filterable: true, Sortable: true},
		"tandem_sync_key__c": {Name: "Tandem_Sync_Key__c", Type: TypeString, Filterable: true, Sortable: true},
	},
	"account": {
		"id":   {Name: "Id", Type: TypeID, Filterable: true, Sortable: true},
		"name": {Name: "Name", Type: TypeString, Filterable: true, Sortable: true},
	},
	"event": {
		"id":      {Name: "Id", Type: TypeID, Filterable: true, Sortable: true},
		"subject": {Name: "Subject", Type: TypeString, Filterable: true, Sortable: true},
	},
	"eventrelation": {
		"id":         {Name: "Id", Type: TypeID, Filterable: true, Sortable: true},
		"relationid": {Name: "RelationId", Type: TypeID, Filterable: true, Sortable: true},
	},
}

func (testSchema) Object(name string) (string, bool) {
	switch strings.ToLower(name) {
	case "contact":
		return "Contact", true
	case "account":
		return "Account", true
	case "event":
		return "Event", true
	}
	return "", false
}

func (testSchema) Field(object, field string) (FieldInfo, bool) {
	f, ok := testFields[strings.ToLower(object)][strings.ToLower(field)]
	return f, ok
}

func (testSchema) Parent(object, rel string) (string, bool) {
	if strings.EqualFold(object, "Contact") && strings.EqualFold(rel, "Account") {
		return "Account", true
	}
	return "", false
}

func (testSchema) Child(object, rel string) (string, bool) {
	if strings.EqualFold(object, "Event") && strings.EqualFold(rel, "EventRelations") {
		return "EventRelation", true
	}
	return "", false
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		code    string // "" for valid
		message string
	}{
		{"valid", "SELECT Id, LastName, Account.Name FROM Contact WHERE LastName = 'x' AND Birthdate = TODAY AND SystemModstamp > 2024-01-01T00:00:00Z ORDER BY LastName", "", ""},
		{"case-insensitive names", "select id, LASTNAME, account.NAME from CONTACT where ISDELETED = false", "", ""},
		{"valid subquery", "SELECT Id, (SELECT RelationId FROM EventRelations) FROM Event", "", ""},
		{"valid id literals", "SELECT Id FROM Contact WHERE Id IN ('003000000000001', '003000000000001AAA') AND AccountId = null", "", ""},
		{"unknown object", "SELECT Id FROM Contactz", CodeInvalidType, "sObject type 'Contactz' is not supported."},
		{"unknown field", "SELECT Id, Nope FROM Contact", CodeInvalidField, "No such column 'Nope' on entity 'Contact'."},
		{"unknown field on parent", "SELECT Account.Nope FROM Contact", CodeInvalidField, "No such column 'Nope' on entity 'Account'."},
		{"unknown relationship", "SELECT Owner.Name FROM Contact", CodeInvalidField, "Didn't understand relationship 'Owner' in field path."},
		{"unknown child relationship", "SELECT Id, (SELECT Id FROM Attendees) FROM Event", CodeInvalidType, "Didn't understand relationship 'Attendees'"},
		{"unknown field in subquery", "SELECT Id, (SELECT Nope FROM EventRelations) FROM Event", CodeInvalidField, "No such column 'Nope' on entity 'EventRelation'."},
		{"duplicate field", "SELECT Id, LastName, lastname FROM Contact", CodeMalformedQuery, "duplicate field selected: lastname"},
		{"unknown field in where", "SELECT Id FROM Contact WHERE Nope = 1", CodeInvalidField, "No such column 'Nope'"},
		{"unknown field in order by", "SELECT Id FROM Contact ORDER BY Nope", CodeInvalidField, "No such column 'Nope'"},
		{"number for string", "SELECT Id FROM Contact WHERE LastName = 5", CodeInvalidField, "value of filter criterion for field 'LastName' must be of type string and should be enclosed in quotes"},
		{"string for datetime", "SELECT Id FROM Contact WHERE SystemModstamp > '2024-01-01T00:00:00Z'", CodeInvalidField, "must be of type dateTime and should not be enclosed in quotes"},
		{"date for datetime", "SELECT Id FROM Contact WHERE SystemModstamp > 2024-01-01", CodeInvalidField, "must be of type dateTime"},
		{"datetime for date", "SELECT Id FROM Contact WHERE Birthdate > 2024-01-01T00:00:00Z", CodeInvalidField, "must be of type date and"},
		{"string for boolean", "SELECT Id FROM Contact WHERE IsDeleted = 'false'", CodeInvalidField, "must be of type boolean"},
		{"string for number", "SELECT Id FROM Contact WHERE NumberOfEmployees > '5'", CodeInvalidField, "must be of type double"},
		{"malformed id", "SELECT Id FROM Contact WHERE Id = 'abc'", CodeInvalidFilterOperator, "invalid ID field: abc"},
		{"malformed id in list", "SELECT Id FROM Contact WHERE AccountId IN ('001000000000001AAA', 'x-y')", CodeInvalidFilterOperator, "invalid ID field: x-y"},
		{"like on a date", "SELECT Id FROM Contact WHERE Birthdate LIKE '2024%'", CodeInvalidFilterOperator, "invalid operator on date field"},
		{"includes on text", "SELECT Id FROM Contact WHERE LastName INCLUDES ('a')", CodeInvalidFilterOperator, "invalid operator on string field"},
		{"ordering a boolean", "SELECT Id FROM Contact WHERE IsDeleted > false", CodeInvalidFilterOperator, "invalid operator on boolean field"},
		{"null with an ordering operator", "SELECT Id FROM Contact WHERE LastName > null", CodeMalformedQuery, "unexpected token: null"},
		{"long text area in where", "SELECT Id FROM Contact WHERE Description = 'x'", CodeInvalidField, "field 'Description' can not be filtered"},
		{"long text area in order by", "SELECT Id FROM Contact ORDER BY Description", CodeInvalidField, "field 'Description' can not be sorted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse(tt.query)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = q.Check(testSchema{})
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Check error = %v, want code %s", err, tt.code)
			}
			if e.Code != tt.code || !strings.Contains(e.Message, tt.message) {
				t.Errorf("Check error = %s %q, want %s ~%q", e.Code, e.Message, tt.code, tt.message)
			}
			if e.Pos < 0 || e.Pos > len(tt.query) {
				t.Errorf("position %d outside the query", e.Pos)
			}
		})
	}
}
