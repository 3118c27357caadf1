package record

import (
	"slices"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func contact(c *tandemv1.Contact) *tandemv1.Record {
	return &tandemv1.Record{Id: "x", Body: &tandemv1.Record_Contact{Contact: c}}
}

func TestSyncFieldsExistOnTheMessages(t *testing.T) {
	for kind, msg := range map[tandemv1.RecordKind]proto.Message{
		tandemv1.RecordKind_RECORD_KIND_CONTACT: &tandemv1.Contact{},
		tandemv1.RecordKind_RECORD_KIND_EVENT:   &tandemv1.Event{},
	} {
		fields := msg.ProtoReflect().Descriptor().Fields()
		for _, name := range SyncFields(kind) {
			if fields.ByName(protoreflect.Name(name)) == nil {
				t.Errorf("%s: sync field %q is not a field of %T", kind, name, msg)
			}
		}
	}
}

func TestHashesIgnoreIdentityAndOneSidedFields(t *testing.T) {
	a := contact(&tandemv1.Contact{GivenName: "Ada", Surname: "Lovelace", SalesforceAccountId: "001", EmailAddress2: "x@y"})
	b := contact(&tandemv1.Contact{GivenName: "Ada", Surname: "Lovelace"})
	b.Id, b.Version, b.SyncKey = "other", "v2", "t1KEY"
	if ContentHash(a) != ContentHash(b) {
		t.Error("identity or one-sided fields changed the content hash")
	}
	b.GetContact().Surname = "Byron"
	if ContentHash(a) == ContentHash(b) {
		t.Error("a synced field change did not change the content hash")
	}
	b.GetContact().Surname = "Lovelace"
	b.GetContact().CompanyName = "Analytical"
	if ContentHash(a) == ContentHash(b) {
		t.Error("the company (synced, as the Salesforce Account's name) did not change the content hash")
	}
}

func TestUnsetEqualsEmpty(t *testing.T) {
	a := contact(&tandemv1.Contact{BusinessAddress: &tandemv1.PostalAddress{}})
	b := contact(&tandemv1.Contact{})
	if got := DifferingFields(a, b); len(got) != 0 {
		t.Errorf("an empty address differs from no address: %v", got)
	}
	if ContentHash(contact(&tandemv1.Contact{Notes: ""})) != ContentHash(contact(&tandemv1.Contact{})) {
		t.Error("empty string and unset string hash differently")
	}
}

func TestChangedFields(t *testing.T) {
	base := FieldHashes(contact(&tandemv1.Contact{GivenName: "Ada", Surname: "Lovelace", Department: "R&D"}))
	cur := FieldHashes(contact(&tandemv1.Contact{GivenName: "Ada", Surname: "King", Notes: "met at the Royal Society"}))
	got := ChangedFields(tandemv1.RecordKind_RECORD_KIND_CONTACT, cur, base)
	want := []string{"surname", "department", "notes"}
	if !slices.Equal(got, want) {
		t.Errorf("ChangedFields = %v, want %v", got, want)
	}
	if got := ChangedFields(tandemv1.RecordKind_RECORD_KIND_CONTACT, cur, nil); !slices.Equal(got, SyncFields(tandemv1.RecordKind_RECORD_KIND_CONTACT)) {
		t.Errorf("ChangedFields with no base = %v, want every field", got)
	}
}

func TestCopyFieldsDoesNotAlias(t *testing.T) {
	src := &tandemv1.Record{Body: &tandemv1.Record_Event{Event: &tandemv1.Event{
		Subject: "QBR", Start: timestamppb.Now(), Categories: []string{"a"},
		Attendees: []*tandemv1.Attendee{{Email: "a@b"}},
	}}}
	dst := &tandemv1.Record{Id: "dst", Version: "ck", Body: &tandemv1.Record_Event{Event: &tandemv1.Event{Subject: "old", Location: "Room 1"}}}
	out := CopyFields(dst, src, []string{"subject", "start", "location"})
	if out.GetId() != "dst" || out.GetVersion() != "ck" {
		t.Error("identity not kept")
	}
	if out.GetEvent().GetSubject() != "QBR" || out.GetEvent().GetLocation() != "" || !out.GetEvent().GetStart().AsTime().Equal(src.GetEvent().GetStart().AsTime()) {
		t.Errorf("copied content wrong: %v", out)
	}
	if dst.GetEvent().GetSubject() != "old" {
		t.Error("dst was modified")
	}
	out.GetEvent().Start.Seconds++
	if out.GetEvent().GetStart().GetSeconds() == src.GetEvent().GetStart().GetSeconds() {
		t.Error("copied message aliases the source")
	}
	list := CopyFields(&tandemv1.Record{}, src, []string{"attendees", "categories"})
	list.GetEvent().Attendees[0].Email = "changed"
	list.GetEvent().Categories[0] = "changed"
	if src.GetEvent().GetAttendees()[0].GetEmail() != "a@b" || src.GetEvent().GetCategories()[0] != "a" {
		t.Error("copied list aliases the source")
	}
}

func TestContentIsSyncFieldsOnly(t *testing.T) {
	r := contact(&tandemv1.Contact{GivenName: "Ada", CompanyName: "Analytical", SalesforceAccountId: "001"})
	r.Id, r.Version = "id", "v"
	c := Content(r)
	if c.GetId() != "" || c.GetContact().GetCompanyName() != "Analytical" || c.GetContact().GetSalesforceAccountId() != "" || c.GetContact().GetGivenName() != "Ada" {
		t.Errorf("Content = %v", c)
	}
}

func TestMatchKeys(t *testing.T) {
	r := contact(&tandemv1.Contact{GivenName: " Ada ", Surname: "LOVELACE", CompanyName: "Analytical  Engines", EmailAddress1: " Ada@Example.COM "})
	if got := EmailKey(r); got != "ada@example.com" {
		t.Errorf("EmailKey = %q", got)
	}
	other := contact(&tandemv1.Contact{GivenName: "ada", Surname: "Lovelace", CompanyName: "analytical engines"})
	if NameKey(r) != NameKey(other) || NameKey(r) == "" {
		t.Errorf("NameKey differs: %q %q", NameKey(r), NameKey(other))
	}
	if NameKey(contact(&tandemv1.Contact{GivenName: "Ada"})) != "" {
		t.Error("NameKey without a surname should be empty")
	}
}

func TestSyncKeyStableAndDistinct(t *testing.T) {
	k := SyncKey("org", "user", tandemv1.RecordKind_RECORD_KIND_CONTACT, tandemv1.System_SYSTEM_EXCHANGE, "AAMk=")
	if k != SyncKey("org", "user", tandemv1.RecordKind_RECORD_KIND_CONTACT, tandemv1.System_SYSTEM_EXCHANGE, "AAMk=") {
		t.Error("not stable")
	}
	if len(k) != 32 {
		t.Errorf("len = %d", len(k))
	}
	if k == SyncKey("org", "user", tandemv1.RecordKind_RECORD_KIND_CONTACT, tandemv1.System_SYSTEM_SALESFORCE, "AAMk=") {
		t.Error("sides collide")
	}
	if SyncKey("a", "bc", 1, 1, "x") == SyncKey("ab", "c", 1, 1, "x") {
		t.Error("parts are not delimited")
	}
}

func TestFieldNameIsTheSyncFieldsOwnName(t *testing.T) {
	for _, kind := range []tandemv1.RecordKind{tandemv1.RecordKind_RECORD_KIND_CONTACT, tandemv1.RecordKind_RECORD_KIND_EVENT} {
		for _, name := range syncFields(kind) {
			got := FieldName([]byte(name))
			if got != name || unsafe.StringData(got) != unsafe.StringData(name) {
				t.Errorf("FieldName(%q) = %q, not the sync field's own string", name, got)
			}
		}
	}
	if got := FieldName([]byte("no_such_field")); got != "no_such_field" {
		t.Errorf("FieldName(no_such_field) = %q", got)
	}
}
