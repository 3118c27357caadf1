package planner

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// mapped is both() with field mappings.
func mapped(fields map[string]tandemv1.FieldDirection) Settings {
	cfg := &tandemv1.SyncConfiguration{Active: true, Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH}}
	for f, d := range fields {
		cfg.Contacts.FieldMappings = append(cfg.Contacts.FieldMappings, &tandemv1.FieldMapping{Field: f, Direction: d})
	}
	return SettingsFor(cfg, contactKind)
}

const (
	fieldNone  = tandemv1.FieldDirection_FIELD_DIRECTION_NONE
	fieldToSF  = tandemv1.FieldDirection_FIELD_DIRECTION_EXCHANGE_TO_SALESFORCE
	fieldToEx  = tandemv1.FieldDirection_FIELD_DIRECTION_SALESFORCE_TO_EXCHANGE
	fieldBoth  = tandemv1.FieldDirection_FIELD_DIRECTION_BOTH
	mobileSet  = "555-0100"
	titleSet   = "Countess"
	titleOther = "Analyst"
)

// applyLinks stores a plan's links into s, as the engine would commit them.
func applyLinks(s *State, p *Plan) {
	for _, m := range p.Links {
		s.Mappings[m.GetSyncKey()] = m
	}
}

func TestMappingsThatChangeNothingPlanAsNone(t *testing.T) {
	set := mapped(map[string]tandemv1.FieldDirection{"job_title": fieldBoth, "notes": tandemv1.FieldDirection_FIELD_DIRECTION_UNSPECIFIED})
	if set.Fields != nil {
		t.Fatalf("mappings that say what the direction says kept: %v", set.Fields)
	}
	oneWay := SettingsFor(&tandemv1.SyncConfiguration{Active: true, Contacts: &tandemv1.ContactSyncSettings{
		Direction:     tandemv1.SyncDirection_SYNC_DIRECTION_EXCHANGE_TO_SALESFORCE,
		FieldMappings: []*tandemv1.FieldMapping{{Field: "job_title", Direction: fieldToSF}, {Field: "notes", Direction: fieldNone}},
	}}, contactKind)
	if len(oneWay.Fields) != 1 || oneWay.Fields["notes"] != fieldNone {
		t.Fatalf("in a one-way kind, only NONE restricts: %v", oneWay.Fields)
	}
}

func TestAFieldMappedNoneNeverSyncs(t *testing.T) {
	ex, sf := person("E1", "Ada", "Lovelace", "ada@example.com"), person("S1", "Ada", "Lovelace", "ada@example.com")
	s := state(mapped(map[string]tandemv1.FieldDirection{"mobile_phone": fieldNone}))
	s.Mappings["k1"] = synced("k1", ex, sf)
	s.Exchange = mirror(edit(ex, func(c *tandemv1.Contact) { c.MobilePhone = mobileSet }))
	s.Salesforce = mirror(sf)
	p := Compute(s)
	if got := summary(p); len(got) != 0 {
		t.Fatalf("an Exchange change of a field that does not sync: writes %v", got)
	}
	// Planned again, the pair stays as it is: nothing to write, nothing to store.
	applyLinks(s, p)
	s.Cycle++
	if again := Compute(s); len(summary(again)) != 0 || len(again.Links) != 0 {
		t.Fatalf("the next cycle writes %v and stores %d links: the ignored change churns", summary(again), len(again.Links))
	}
	// A change of a field that syncs still goes.
	s.Exchange = mirror(edit(edit(ex, func(c *tandemv1.Contact) { c.MobilePhone = mobileSet }), func(c *tandemv1.Contact) { c.JobTitle = titleSet }))
	if got := summary(Compute(s)); !slices.Equal(got, []string{"salesforce UPDATE job_title"}) {
		t.Fatalf("with a synced field changed too: writes %v, want the synced field only", got)
	}
}

func TestAFieldMappedOneWay(t *testing.T) {
	ex, sf := person("E1", "Ada", "Lovelace", "ada@example.com"), person("S1", "Ada", "Lovelace", "ada@example.com")
	retitle := func(c *tandemv1.Contact) { c.JobTitle = titleSet }
	s := state(mapped(map[string]tandemv1.FieldDirection{"job_title": fieldToSF}))
	s.Mappings["k1"] = synced("k1", ex, sf)

	// Salesforce's change of an Exchange-to-Salesforce field stays in Salesforce.
	s.Exchange, s.Salesforce = mirror(ex), mirror(edit(sf, retitle))
	if got := summary(Compute(s)); len(got) != 0 {
		t.Fatalf("a Salesforce change of an Exchange-to-Salesforce field: writes %v", got)
	}
	// Exchange's goes to Salesforce.
	s.Exchange, s.Salesforce = mirror(edit(ex, retitle)), mirror(sf)
	if got := summary(Compute(s)); !slices.Equal(got, []string{"salesforce UPDATE job_title"}) {
		t.Fatalf("an Exchange change of an Exchange-to-Salesforce field: writes %v", got)
	}
}

func TestConflictsKeepFieldsOneWay(t *testing.T) {
	ex, sf := person("E1", "Ada", "Lovelace", "ada@example.com"), person("S1", "Ada", "Lovelace", "ada@example.com")
	// Both sides changed the job title (Exchange to Salesforce only) and the surname (both ways).
	exEdit := edit(ex, func(c *tandemv1.Contact) { c.JobTitle, c.Surname = titleOther, "King" })
	sfEdit := edit(sf, func(c *tandemv1.Contact) { c.JobTitle, c.Surname = titleSet, "Byron" })
	s := state(mapped(map[string]tandemv1.FieldDirection{"job_title": fieldToSF}))
	s.Mappings["k1"] = synced("k1", ex, sf)
	s.Exchange, s.Salesforce = mirror(exEdit), mirror(sfEdit)
	p := Compute(s)
	// Salesforce wins the surname (the default policy); the job title still comes from Exchange.
	got := summary(p)
	slices.Sort(got)
	if !slices.Equal(got, []string{"exchange UPDATE surname", "salesforce UPDATE job_title"}) {
		t.Fatalf("writes %v", got)
	}
	for _, w := range p.Writes {
		if w.GetTarget() == salesforce && w.GetCommand().GetRecord().GetContact().GetJobTitle() != titleOther {
			t.Errorf("Salesforce gets job title %q, want Exchange's", w.GetCommand().GetRecord().GetContact().GetJobTitle())
		}
	}
}

func TestNewLinksAndCreatesFollowFieldMappings(t *testing.T) {
	set := mapped(map[string]tandemv1.FieldDirection{"mobile_phone": fieldNone, "job_title": fieldToEx})
	// Created in Salesforce from Exchange: without the mobile phone, nor the job title (which goes
	// the other way only).
	s := state(set)
	src := edit(person("E1", "Ada", "Lovelace", "ada@example.com"), func(c *tandemv1.Contact) { c.MobilePhone, c.JobTitle = mobileSet, titleSet })
	s.Exchange = map[string]*tandemv1.MirrorRecord{"E1": {Record: src, ObservedAt: timestamppb.New(t0)}}
	p := Compute(s)
	if len(p.Writes) != 1 || p.Writes[0].GetCommand().GetOp() != tandemv1.WriteOp_WRITE_OP_CREATE {
		t.Fatalf("writes %v, want one create", summary(p))
	}
	cmd := p.Writes[0].GetCommand()
	if c := cmd.GetRecord().GetContact(); c.GetMobilePhone() != "" || c.GetJobTitle() != "" || c.GetGivenName() != "Ada" {
		t.Errorf("the create carries %v; want the name without the mobile phone and the job title", c)
	}
	if slices.Contains(cmd.GetFields(), "mobile_phone") || slices.Contains(cmd.GetFields(), "job_title") || !slices.Contains(cmd.GetFields(), "given_name") {
		t.Errorf("the create's fields are %v", cmd.GetFields())
	}

	// Two records linked by email that differ on the job title (Salesforce to Exchange only) and
	// the department (both ways, Salesforce wins): both go to Exchange; the mobile phone nowhere.
	s = state(set)
	ex := edit(person("E2", "Ada", "Lovelace", "ada@example.com"), func(c *tandemv1.Contact) { c.JobTitle, c.MobilePhone = titleOther, mobileSet })
	sf := edit(person("S2", "Ada", "Lovelace", "ada@example.com"), func(c *tandemv1.Contact) { c.JobTitle, c.Department = titleSet, "Mathematics" })
	s.Exchange, s.Salesforce = mirror(ex), mirror(sf)
	got := summary(Compute(s))
	if !slices.Equal(got, []string{"exchange UPDATE job_title,department"}) && !slices.Equal(got, []string{"exchange UPDATE department,job_title"}) {
		t.Fatalf("a new link's writes %v", got)
	}
}
