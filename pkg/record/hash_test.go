package record

import (
	"maps"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// pinnedRecords cover every kind of value a sync field holds: strings, a repeated field, an
// enum, a bool, a timestamp and a nested message.
func pinnedRecords() []*tandemv1.Record {
	return []*tandemv1.Record{
		contact(&tandemv1.Contact{}),
		contact(&tandemv1.Contact{
			GivenName: "Ada", Surname: "Lovelace", EmailAddress1: "ada@example.com", JobTitle: "Analyst",
			CompanyName: "Analytical Engines", BusinessPhone: "+44 20 7946 0000", Notes: "Zürich — met twice",
			BusinessAddress: &tandemv1.PostalAddress{Street: "12 St James's Square", City: "London", PostalCode: "SW1Y 4LB", Country: "UK"},
		}),
		{Id: "e1", Body: &tandemv1.Record_Event{Event: &tandemv1.Event{
			Subject: "Quarterly review", Location: "Board room", Start: timestamppb.New(time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)),
			End: timestamppb.New(time.Date(2026, 3, 29, 3, 0, 0, 0, time.UTC)), IsAllDay: true, Categories: []string{"Salesforce", "Red"},
			Sensitivity: tandemv1.Sensitivity_SENSITIVITY_PRIVATE,
			Attendees:   []*tandemv1.Attendee{{Email: "grace@example.com", Name: "Grace Hopper"}, {Email: "alan@example.com"}},
		}}},
	}
}

// TestHashesArePinned: field and content hashes are stored in every mapping, write in flight
// and refusal, so a change of their algorithm or encoding would make every synced pair look
// changed on both sides. A faster implementation must give these very values.
func TestHashesArePinned(t *testing.T) {
	want := []struct {
		content string
		fields  map[string]string
	}{
		{"f36dfbfece321c453ffd12d14c4f55cb", map[string]string{"assistant_name": "e3b0c44298fc1c149afbf4c8", "assistant_phone": "e3b0c44298fc1c149afbf4c8", "birthday": "e3b0c44298fc1c149afbf4c8", "business_address": "e3b0c44298fc1c149afbf4c8", "business_fax": "e3b0c44298fc1c149afbf4c8", "business_phone": "e3b0c44298fc1c149afbf4c8", "company_name": "e3b0c44298fc1c149afbf4c8", "department": "e3b0c44298fc1c149afbf4c8", "email_address1": "e3b0c44298fc1c149afbf4c8", "given_name": "e3b0c44298fc1c149afbf4c8", "home_phone": "e3b0c44298fc1c149afbf4c8", "job_title": "e3b0c44298fc1c149afbf4c8", "middle_name": "e3b0c44298fc1c149afbf4c8", "mobile_phone": "e3b0c44298fc1c149afbf4c8", "notes": "e3b0c44298fc1c149afbf4c8", "other_address": "e3b0c44298fc1c149afbf4c8", "other_phone": "e3b0c44298fc1c149afbf4c8", "suffix": "e3b0c44298fc1c149afbf4c8", "surname": "e3b0c44298fc1c149afbf4c8"}},
		{"7fcd6999a9f86b9b6116a8fb7b207cac", map[string]string{"assistant_name": "e3b0c44298fc1c149afbf4c8", "assistant_phone": "e3b0c44298fc1c149afbf4c8", "birthday": "e3b0c44298fc1c149afbf4c8", "business_address": "f4fbcf582eff67f284d2f217", "business_fax": "e3b0c44298fc1c149afbf4c8", "business_phone": "1f3c1facffd98230f6ba5dbc", "company_name": "14d18d9c5007dde1f00eb6be", "department": "e3b0c44298fc1c149afbf4c8", "email_address1": "b5fc85e55755f9e0d030a10a", "given_name": "99a563ab2f6e21e96998f9fd", "home_phone": "e3b0c44298fc1c149afbf4c8", "job_title": "80b1357de3f6c4a140a09f47", "middle_name": "e3b0c44298fc1c149afbf4c8", "mobile_phone": "e3b0c44298fc1c149afbf4c8", "notes": "47ac53dd4c8e1e9dd87b8a0b", "other_address": "e3b0c44298fc1c149afbf4c8", "other_phone": "e3b0c44298fc1c149afbf4c8", "suffix": "e3b0c44298fc1c149afbf4c8", "surname": "5d7dc772fa49e131ada65f8a"}},
		{"94c6a0c9a6d5873bc6121b1fd8ad03de", map[string]string{"body": "e3b0c44298fc1c149afbf4c8", "end": "c38a5d72f9a6c586e98930a1", "end_date": "e3b0c44298fc1c149afbf4c8", "is_all_day": "4bf5122f344554c53bde2ebb", "location": "79dfc5ada600d51ebd105cb0", "sensitivity": "d5688a52d55a02ec4aea5ec1", "show_as": "e3b0c44298fc1c149afbf4c8", "start": "6f6eb9c6414fac27a0b61e85", "start_date": "e3b0c44298fc1c149afbf4c8", "subject": "c6e5d4e4c49abb33dd8c7d17"}},
	}
	recs := pinnedRecords()
	if len(want) != len(recs) {
		t.Fatalf("%d pins for %d records", len(want), len(recs))
	}
	for i, r := range recs {
		if got := FieldHashes(r); !maps.Equal(got, want[i].fields) {
			t.Errorf("record %d: field hashes\n got %q\nwant %q", i, got, want[i].fields)
		}
		if got := ContentHash(r); got != want[i].content {
			t.Errorf("record %d: content hash %q, want %q", i, got, want[i].content)
		}
	}
	if EmptyHash != "e3b0c44298fc1c149afbf4c8" {
		t.Errorf("EmptyHash = %q", EmptyHash)
	}
}

func BenchmarkFieldHashes(b *testing.B) {
	recs := pinnedRecords()
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range recs {
			FieldHashes(r)
		}
	}
}

func BenchmarkContentHash(b *testing.B) {
	recs := pinnedRecords()
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range recs {
			ContentHash(r)
		}
	}
}
