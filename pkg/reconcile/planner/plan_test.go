package planner

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/record"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

var t0 = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)

const contactKind = tandemv1.RecordKind_RECORD_KIND_CONTACT

func person(id, first, last, email string) *tandemv1.Record {
	return &tandemv1.Record{Id: id, Version: "v-" + id, Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{
		GivenName: first, Surname: last, EmailAddress1: email,
	}}}
}

func mirror(recs ...*tandemv1.Record) map[string]*tandemv1.MirrorRecord {
	m := map[string]*tandemv1.MirrorRecord{}
	for _, r := range recs {
		m[r.GetId()] = &tandemv1.MirrorRecord{Record: r, ObservedAt: timestamppb.New(t0)}
	}
	return m
}

// synced returns a mapping for a pair that was last synced with the given contents.
func synced(key string, ex, sf *tandemv1.Record) *tandemv1.Mapping {
	m := &tandemv1.Mapping{
		SyncKey: key, Kind: contactKind, Origin: salesforce,
		ExchangeId: ex.GetId(), ExchangeVersion: ex.GetVersion(),
		SalesforceId: sf.GetId(), SalesforceVersion: sf.GetVersion(),
		ExchangeFieldHashes: record.FieldHashes(ex), SalesforceFieldHashes: record.FieldHashes(sf),
	}
	m.ExchangeHash = record.Hash(contactKind, m.ExchangeFieldHashes)
	m.SalesforceHash = record.Hash(contactKind, m.SalesforceFieldHashes)
	return m
}

func both() Settings {
	return SettingsFor(&tandemv1.SyncConfiguration{Active: true, Contacts: &tandemv1.ContactSyncSettings{
		Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH,
	}}, contactKind)
}

func state(set Settings) *State {
	return &State{
		OrgID: "00Dorg", UserID: "005user", Kind: contactKind, Cycle: 7, Now: t0, Settings: set,
		Exchange: map[string]*tandemv1.MirrorRecord{}, Salesforce: map[string]*tandemv1.MirrorRecord{},
		Mappings: map[string]*tandemv1.Mapping{}, Pending: map[string]*tandemv1.PendingWrite{},
		Rejected: map[string]*tandemv1.RejectedWrite{}, Tombstones: map[string]bool{},
	}
}

func edit(r *tandemv1.Record, f func(c *tandemv1.Contact)) *tandemv1.Record {
	n := proto.Clone(r).(*tandemv1.Record)
	f(n.GetContact())
	n.Version += "+"
	return n
}

// content returns the plan's writes but key-only updates (stamps of a pair's sync key, which
// tests of stamping look at on their own).
func content(p *Plan) []Write {
	var out []Write
	for _, w := range p.Writes {
		if !record.KeyOnly(w.GetCommand().GetFields()) {
			out = append(out, w)
		}
	}
	return out
}

// summary renders the plan's writes as "target op key fields" lines, for compact assertions.
// Key-only updates (stamps of a pair's sync key) are left out: stamps(p) lists them.
func summary(p *Plan) []string {
	var out []string
	for _, w := range p.Writes {
		c := w.GetCommand()
		if record.KeyOnly(c.GetFields()) {
			continue
		}
		line := sideName(w.GetTarget()) + " " + strings.TrimPrefix(c.GetOp().String(), "WRITE_OP_")
		if c.GetOp() == tandemv1.WriteOp_WRITE_OP_UPDATE {
			line += " " + strings.Join(c.GetFields(), ",")
		}
		out = append(out, line)
	}
	slices.Sort(out)
	return out
}

func TestUnchangedAndEchoCauseNoWrite(t *testing.T) {
	ex, sf := person("E1", "Ada", "Lovelace", "ada@example.com"), person("S1", "Ada", "Lovelace", "ada@example.com")
	s := state(both())
	s.Mappings["k1"] = synced("k1", ex, sf)
	// The echo of Tandem's own write: a new version, same content.
	echo := proto.Clone(sf).(*tandemv1.Record)
	echo.Version = "2026-11-21T09:05:00.000Z"
	s.Exchange, s.Salesforce = mirror(ex), mirror(echo)
	p := Compute(s)
	if len(content(p)) != 0 || p.Unchanged != 1 {
		t.Fatalf("writes %v unchanged %d", summary(p), p.Unchanged)
	}
	if len(p.Links) != 1 || p.Links[0].GetSalesforceVersion() != echo.GetVersion() {
		t.Errorf("the new version was not recorded: %v", p.Links)
	}
}

func TestOneSidedChanges(t *testing.T) {
	ex, sf := person("E1", "Ada", "Lovelace", "ada@example.com"), person("S1", "Ada", "Lovelace", "ada@example.com")
	tests := []struct {
		name      string
		direction tandemv1.SyncDirection
		exEdit    bool
		want      []string
	}{
		{"exchange change flows to salesforce", tandemv1.SyncDirection_SYNC_DIRECTION_BOTH, true, []string{"salesforce UPDATE job_title"}},
		{"salesforce change flows to exchange", tandemv1.SyncDirection_SYNC_DIRECTION_BOTH, false, []string{"exchange UPDATE job_title"}},
		{"exchange change stays in a salesforce-to-exchange config", tandemv1.SyncDirection_SYNC_DIRECTION_SALESFORCE_TO_EXCHANGE, true, nil},
		{"salesforce change stays in an exchange-to-salesforce config", tandemv1.SyncDirection_SYNC_DIRECTION_EXCHANGE_TO_SALESFORCE, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := both()
			set.Direction = tt.direction
			s := state(set)
			s.Mappings["k1"] = synced("k1", ex, sf)
			retitle := func(c *tandemv1.Contact) { c.JobTitle = "Countess" }
			if tt.exEdit {
				s.Exchange, s.Salesforce = mirror(edit(ex, retitle)), mirror(sf)
			} else {
				s.Exchange, s.Salesforce = mirror(ex), mirror(edit(sf, retitle))
			}
			if got := summary(Compute(s)); !slices.Equal(got, tt.want) {
				t.Errorf("writes = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUpdateCarriesTargetIdentityAndChangeKey(t *testing.T) {
	ex, sf := person("E1", "Ada", "Lovelace", ""), person("S1", "Ada", "Lovelace", "")
	s := state(both())
	s.Mappings["k1"] = synced("k1", ex, sf)
	s.Exchange, s.Salesforce = mirror(ex), mirror(edit(sf, func(c *tandemv1.Contact) { c.Surname = "King" }))
	w := content(Compute(s))[0]
	c := w.GetCommand()
	if c.GetTargetId() != "E1" || c.GetExpectedVersion() != "v-E1" || c.GetRecord().GetContact().GetSurname() != "King" || c.GetSyncKey() != "k1" {
		t.Errorf("command = %v", c)
	}
	if c.GetCommandId() != CommandID(exchange, 7, c) || c.GetCommandId() == "" {
		t.Error("command id not deterministic")
	}
}

func TestConflictPolicies(t *testing.T) {
	ex, sf := person("E1", "Ada", "Lovelace", "ada@example.com"), person("S1", "Ada", "Lovelace", "ada@example.com")
	exTitle := func(c *tandemv1.Contact) { c.JobTitle = "Analyst" }
	sfTitle := func(c *tandemv1.Contact) { c.JobTitle = "Countess" }
	sfDept := func(c *tandemv1.Contact) { c.Department = "Mathematics" }
	tests := []struct {
		name       string
		policy     tandemv1.ConflictPolicy
		sfEdit     func(*tandemv1.Contact)
		want       []string
		resolution string
	}{
		{"salesforce wins by default", tandemv1.ConflictPolicy_CONFLICT_POLICY_UNSPECIFIED, sfTitle, []string{"exchange UPDATE job_title"}, "Salesforce wins"},
		{"exchange wins", tandemv1.ConflictPolicy_CONFLICT_POLICY_EXCHANGE_WINS, sfTitle, []string{"salesforce UPDATE job_title"}, "Exchange wins"},
		{"merge of disjoint fields", tandemv1.ConflictPolicy_CONFLICT_POLICY_FIELD_MERGE, sfDept, []string{"exchange UPDATE department", "salesforce UPDATE job_title"}, "merged: the changed fields were disjoint"},
		{"merge of overlapping fields falls back to salesforce", tandemv1.ConflictPolicy_CONFLICT_POLICY_FIELD_MERGE, sfTitle, []string{"exchange UPDATE job_title"}, "Salesforce wins"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := both()
			set.Conflict = tt.policy
			s := state(set)
			s.Mappings["k1"] = synced("k1", ex, sf)
			s.Exchange, s.Salesforce = mirror(edit(ex, exTitle)), mirror(edit(sf, tt.sfEdit))
			p := Compute(s)
			if got := summary(p); !slices.Equal(got, tt.want) {
				t.Errorf("writes = %v, want %v", got, tt.want)
			}
			if len(p.Conflicts) != 1 || p.Conflicts[0].Resolution != tt.resolution {
				t.Errorf("conflicts = %+v, want one resolved %q", p.Conflicts, tt.resolution)
			}
		})
	}
}

func TestSameChangeOnBothSidesIsNoConflict(t *testing.T) {
	ex, sf := person("E1", "Ada", "Lovelace", ""), person("S1", "Ada", "Lovelace", "")
	s := state(both())
	s.Mappings["k1"] = synced("k1", ex, sf)
	same := func(c *tandemv1.Contact) { c.Department = "R&D" }
	s.Exchange, s.Salesforce = mirror(edit(ex, same)), mirror(edit(sf, same))
	p := Compute(s)
	if len(content(p)) != 0 || len(p.Conflicts) != 0 {
		t.Fatalf("writes %v conflicts %v", summary(p), p.Conflicts)
	}
	if len(p.Links) != 1 || p.Links[0].GetExchangeFieldHashes()["department"] != record.FieldHashes(edit(ex, same))["department"] {
		t.Error("the agreed field was not rebased")
	}
}

func TestDeletes(t *testing.T) {
	ex, sf := person("E1", "Ada", "Lovelace", ""), person("S1", "Ada", "Lovelace", "")
	changedSF := edit(sf, func(c *tandemv1.Contact) { c.Department = "R&D" })
	changedEx := edit(ex, func(c *tandemv1.Contact) { c.Department = "R&D" })
	tests := []struct {
		name      string
		direction tandemv1.SyncDirection
		policy    tandemv1.ExchangeDeletePolicy
		exchange  []*tandemv1.Record
		sales     []*tandemv1.Record
		want      []string
		unlinked  bool
		tombstone string
	}{
		{"salesforce delete removes the exchange contact", tandemv1.SyncDirection_SYNC_DIRECTION_BOTH, 0, []*tandemv1.Record{ex}, nil, []string{"exchange DELETE"}, false, ""},
		{"exchange delete unlinks by default and keeps salesforce", tandemv1.SyncDirection_SYNC_DIRECTION_BOTH, 0, nil, []*tandemv1.Record{sf}, nil, true, "salesforce:S1"},
		{"exchange delete deletes in salesforce when configured", tandemv1.SyncDirection_SYNC_DIRECTION_BOTH, tandemv1.ExchangeDeletePolicy_EXCHANGE_DELETE_POLICY_DELETE, nil, []*tandemv1.Record{sf}, []string{"salesforce DELETE"}, false, ""},
		{"a salesforce modification beats an exchange deletion", tandemv1.SyncDirection_SYNC_DIRECTION_BOTH, tandemv1.ExchangeDeletePolicy_EXCHANGE_DELETE_POLICY_DELETE, nil, []*tandemv1.Record{changedSF}, []string{"exchange CREATE"}, false, ""},
		{"an exchange modification beats a salesforce deletion", tandemv1.SyncDirection_SYNC_DIRECTION_BOTH, 0, []*tandemv1.Record{changedEx}, nil, []string{"salesforce CREATE"}, false, ""},
		{"salesforce delete in an exchange-to-salesforce config unlinks", tandemv1.SyncDirection_SYNC_DIRECTION_EXCHANGE_TO_SALESFORCE, 0, []*tandemv1.Record{ex}, nil, nil, true, "exchange:E1"},
		{"both gone drops the link", tandemv1.SyncDirection_SYNC_DIRECTION_BOTH, 0, nil, nil, nil, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := both()
			set.Direction, set.ExchangeDelete = tt.direction, tt.policy
			set.MassDeletePercent = 100
			s := state(set)
			s.Mappings["k1"] = synced("k1", ex, sf)
			s.Exchange, s.Salesforce = mirror(tt.exchange...), mirror(tt.sales...)
			p := Compute(s)
			if got := summary(p); !slices.Equal(got, tt.want) {
				t.Errorf("writes = %v, want %v", got, tt.want)
			}
			if got := slices.Contains(p.Unlinks, "k1"); got != tt.unlinked {
				t.Errorf("unlinked = %v, want %v", got, tt.unlinked)
			}
			if tt.tombstone != "" && !slices.Contains(p.Tombstones, tt.tombstone) {
				t.Errorf("tombstones = %v, want %s", p.Tombstones, tt.tombstone)
			}
		})
	}
}

func TestDeletedRecordNeverComesBack(t *testing.T) {
	sf := person("S1", "Ada", "Lovelace", "")
	s := state(both())
	s.Salesforce = mirror(sf)
	s.Tombstones[TombstoneKey(salesforce, "S1")] = true
	if p := Compute(s); len(content(p)) != 0 {
		t.Fatalf("a tombstoned record was recreated: %v", summary(p))
	}
	// A stale observation after the deletion marker must not revive it either.
	s = state(both())
	s.Exchange = map[string]*tandemv1.MirrorRecord{"E1": {Record: &tandemv1.Record{Id: "E1"}, Deleted: true}}
	if p := Compute(s); len(content(p)) != 0 {
		t.Fatalf("a deleted record was recreated: %v", summary(p))
	}
}

func TestOutOfScopeLeavesExchangeOnly(t *testing.T) {
	ex, sf := person("E1", "Ada", "Lovelace", ""), person("S1", "Ada", "Lovelace", "")
	s := state(both())
	s.Mappings["k1"] = synced("k1", ex, sf)
	s.Exchange, s.Salesforce = mirror(ex), mirror(sf)
	s.Salesforce["S1"].OutOfScope = true
	if got := summary(Compute(s)); !slices.Equal(got, []string{"exchange DELETE"}) {
		t.Errorf("writes = %v, want the Exchange copy removed", got)
	}
	// A pair that started in Exchange stays, whatever the Salesforce filters say.
	s.Mappings["k1"].Origin = exchange
	if p := Compute(s); len(content(p)) != 0 {
		t.Errorf("an Exchange-originated contact was removed: %v", summary(p))
	}
	// An unlinked out-of-scope record is never created in Exchange.
	s = state(both())
	s.Salesforce = mirror(sf)
	s.Salesforce["S1"].OutOfScope = true
	if p := Compute(s); len(content(p)) != 0 {
		t.Errorf("an out-of-scope record was created: %v", summary(p))
	}
}

func TestMatchingBeforeCreating(t *testing.T) {
	tests := []struct {
		name      string
		ex, sf    *tandemv1.Record
		wantLinks int
		want      []string
	}{
		{"same email links", person("E1", "Ada", "Lovelace", "ada@example.com"), person("S1", "Ada", "Lovelace", "ada@example.com"), 1, nil},
		{"email matches regardless of case; salesforce's spelling wins", person("E1", "Ada", "Lovelace", "ADA@example.com"), person("S1", "Ada", "Lovelace", "ada@example.com"), 1, []string{"exchange UPDATE email_address1"}},
		{"same email, other content: salesforce wins", person("E1", "Ada", "King", "ada@example.com"), person("S1", "Ada", "Lovelace", "ada@example.com"), 1, []string{"exchange UPDATE surname"}},
		{"same name and company links", person("E1", "Ada", "Lovelace", ""), person("S1", "ada", "LOVELACE", ""), 1, []string{"exchange UPDATE given_name,surname"}},
		{"different people are both created", person("E1", "Ada", "Lovelace", "ada@example.com"), person("S1", "Charles", "Babbage", "cb@example.com"), 0, []string{"exchange CREATE", "salesforce CREATE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := state(both())
			s.Exchange, s.Salesforce = mirror(tt.ex), mirror(tt.sf)
			p := Compute(s)
			if len(p.Links) != tt.wantLinks {
				t.Errorf("links = %d, want %d", len(p.Links), tt.wantLinks)
			}
			if got := summary(p); !slices.Equal(got, tt.want) {
				t.Errorf("writes = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRelinkBySyncKeyAfterReset(t *testing.T) {
	ex, sf := person("E1", "Ada", "Lovelace", ""), person("S1", "Ada", "Lovelace", "")
	ex.SyncKey, sf.SyncKey = "t1KEY", "t1KEY"
	s := state(both())
	s.Exchange, s.Salesforce = mirror(ex), mirror(sf)
	p := Compute(s)
	if len(content(p)) != 0 || len(p.Links) != 1 || p.Links[0].GetSyncKey() != "t1KEY" {
		t.Fatalf("writes %v links %v", summary(p), p.Links)
	}
}

func TestCreateKeysAreStableAndNotRepeatedWhileInFlight(t *testing.T) {
	ex := person("E1", "Ada", "Lovelace", "")
	s := state(both())
	s.Exchange = mirror(ex)
	first := Compute(s)
	if got := summary(first); !slices.Equal(got, []string{"salesforce CREATE"}) {
		t.Fatalf("writes = %v", got)
	}
	w := content(first)[0]
	if again := Compute(s); content(again)[0].GetCommand().GetCommandId() != w.GetCommand().GetCommandId() {
		t.Error("the same decision produced a different command id")
	}
	s.Pending[PendingKey(salesforce, w.GetCommand().GetSyncKey())] = w.PendingWrite
	if p := Compute(s); len(content(p)) != 0 || p.InFlight != 1 {
		t.Errorf("create repeated while in flight: %v", summary(p))
	}
	if w.GetCommand().GetRetry() {
		t.Error("a first create is marked as a retry")
	}
	s.Now = t0.Add(DefaultPendingTimeout + time.Second)
	p := Compute(s)
	if len(content(p)) != 1 || content(p)[0].GetCommand().GetSyncKey() != w.GetCommand().GetSyncKey() {
		t.Fatalf("an overdue create was not re-sent with the same key: %v", summary(p))
	}
	// The target must look for what the first attempt made, from when it was issued.
	again := content(p)[0].GetCommand()
	if !again.GetRetry() || !again.GetIssuedAt().AsTime().Equal(w.GetCommand().GetIssuedAt().AsTime()) {
		t.Errorf("the overdue create planned again: retry %v, issued at %v; want a retry issued at %v",
			again.GetRetry(), again.GetIssuedAt().AsTime(), w.GetCommand().GetIssuedAt().AsTime())
	}
	if content(p)[0].GetIssuedAt().AsTime().Equal(w.GetIssuedAt().AsTime()) {
		t.Error("the retry's time in flight was not restarted")
	}
}

func TestRefusedWriteNotRetriedUntilChanged(t *testing.T) {
	ex := person("E1", "Ada", "Lovelace", "")
	s := state(both())
	s.Exchange = mirror(ex)
	key := content(Compute(s))[0].GetCommand().GetSyncKey()
	s.Rejected[PendingKey(salesforce, key)] = &tandemv1.RejectedWrite{SourceHash: record.ContentHash(ex)}
	if p := Compute(s); len(content(p)) != 0 {
		t.Fatalf("a refused write was retried unchanged: %v", summary(p))
	}
	s.Exchange = mirror(edit(ex, func(c *tandemv1.Contact) { c.Department = "R&D" }))
	if p := Compute(s); len(content(p)) != 1 {
		t.Fatalf("a refused write was not retried after the record changed")
	}
}

func TestRecordLimit(t *testing.T) {
	set := both()
	set.MaxRecords = 2
	s := state(set)
	s.Exchange = mirror(person("E1", "A", "A", ""), person("E2", "B", "B", ""), person("E3", "C", "C", ""))
	p := Compute(s)
	if len(content(p)) != 2 {
		t.Errorf("creates = %d, want 2", len(content(p)))
	}
	if len(p.Errors) != 1 || p.Errors[0].Code != syncerr.SyncRecordLimit {
		t.Errorf("errors = %v", p.Errors)
	}
}

func massState(n, deleted int) *State {
	s := state(both())
	s.Exchange, s.Salesforce = mirror(), mirror()
	for i := range n {
		id := string(rune('a' + i))
		ex, sf := person("E"+id, "N", id, ""), person("S"+id, "N", id, "")
		s.Mappings["k"+id] = synced("k"+id, ex, sf)
		s.Exchange[ex.GetId()] = &tandemv1.MirrorRecord{Record: ex}
		if i >= deleted {
			s.Salesforce[sf.GetId()] = &tandemv1.MirrorRecord{Record: sf}
		}
	}
	return s
}

func TestMassDeleteGuard(t *testing.T) {
	// 4 of 10 deleted in Salesforce: under 50%, carried out.
	if p := Compute(massState(10, 4)); len(content(p)) != 4 || p.NewHold != nil {
		t.Fatalf("4 of 10: writes %v hold %v", summary(p), p.NewHold)
	}
	// 6 of 10: held, nothing deleted, an error raised.
	p := Compute(massState(10, 6))
	if len(content(p)) != 0 || p.NewHold == nil || p.NewHold.GetSummary().GetCount() != 6 {
		t.Fatalf("6 of 10: writes %v hold %v", summary(p), p.NewHold)
	}
	if p.Errors[0].Code != syncerr.SyncMassDeleteHeld {
		t.Errorf("error = %v", p.Errors[0])
	}
	// A side that suddenly looks empty is a fault, whatever the threshold.
	s := massState(10, 10)
	s.Settings.MassDeletePercent = 100
	p = Compute(s)
	if p.NewHold == nil || p.Errors[0].Code != syncerr.SyncSideLooksEmpty {
		t.Fatalf("empty side not held: %v %v", summary(p), p.Errors)
	}

	// Undecided: nothing happens. Approved: the deletes go out. Rejected: the records are restored.
	held := p.NewHold
	s.Hold = &ActiveHold{Hold: held}
	if p := Compute(s); len(content(p)) != 0 || p.NewHold != nil {
		t.Fatalf("undecided hold: writes %v", summary(p))
	}
	s.Hold.Decision = HoldApproved
	p = Compute(s)
	if len(content(p)) != 10 || p.ResolvedHold != held.GetSummary().GetHoldId() {
		t.Fatalf("approved hold: writes %d resolved %q", len(content(p)), p.ResolvedHold)
	}
	s.Hold.Decision = HoldRejected
	p = Compute(s)
	if got := summary(p); len(got) != 10 || got[0] != "salesforce CREATE" {
		t.Fatalf("rejected hold: writes %v", got)
	}
}

func TestNotSyncingKindPlansNothing(t *testing.T) {
	s := state(SettingsFor(&tandemv1.SyncConfiguration{Active: false, Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH}}, contactKind))
	s.Exchange = mirror(person("E1", "A", "B", ""))
	if p := Compute(s); len(content(p)) != 0 {
		t.Errorf("inactive configuration planned %v", summary(p))
	}
}

// A create from a record unchanged since before the ledger began may repeat one a Tandem that
// lost its state made already: it is a retry, looked up from when the record last changed. A
// user whose records carry no sync key was never synced: the first sync's creates are not.
func TestCreateFromARecordOlderThanTheLedgerIsARetry(t *testing.T) {
	for _, tc := range []struct {
		name      string
		changed   time.Time
		keyed     bool
		wantRetry bool
	}{
		{"changed before the ledger began", t0.Add(-time.Hour), true, true},
		{"changed since", t0.Add(time.Minute), true, false},
		{"never synced", t0.Add(-time.Hour), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := person("E1", "Ada", "Lovelace", "")
			ex.ModifiedAt = timestamppb.New(tc.changed)
			s := state(both())
			s.Exchange = mirror(ex)
			if tc.keyed {
				// A pair Tandem synced before, as the records themselves show after lost state.
				e9, s9 := person("E9", "Grace", "Hopper", "g@example.com"), person("S9", "Grace", "Hopper", "g@example.com")
				e9.SyncKey, s9.SyncKey = "k9", "k9"
				s.Exchange["E9"] = mirror(e9)["E9"]
				s.Salesforce = mirror(s9)
			}
			s.LedgerBegan = t0
			s.Now = t0.Add(2 * time.Minute)
			p := Compute(s)
			if len(content(p)) != 1 {
				t.Fatalf("writes = %v", summary(p))
			}
			cmd := content(p)[0].GetCommand()
			if cmd.GetRetry() != tc.wantRetry {
				t.Errorf("retry = %v, want %v", cmd.GetRetry(), tc.wantRetry)
			}
			wantIssued := s.Now
			if tc.wantRetry {
				wantIssued = tc.changed
			}
			if !cmd.GetIssuedAt().AsTime().Equal(wantIssued) {
				t.Errorf("issued at %v, want %v", cmd.GetIssuedAt().AsTime(), wantIssued)
			}
		})
	}
}

// TestUpdateAppliedThenDeleted: Tandem copied an Exchange edit to Salesforce, the result was
// lost, and the rep deleted the Salesforce contact before the retried update ran. The retry
// fails as deleted; whether the deleted record held the update's values decides what happens.
// If it did (already_applied), the pair was in sync when it was deleted: the deletion reaches
// Exchange. If not, the Exchange edit is newer than anything Salesforce held, and modification
// wins: the contact is created in Salesforce again.
func TestUpdateAppliedThenDeleted(t *testing.T) {
	ex, sf := person("E1", "Ada", "Lovelace", ""), person("S1", "Ada", "Lovelace", "")
	changedEx := edit(ex, func(c *tandemv1.Contact) { c.Department = "R&D" })
	for _, tc := range []struct {
		name    string
		applied bool
		want    []string
	}{
		{"the deleted record held the update", true, []string{"exchange DELETE"}},
		{"the deleted record did not hold the update", false, []string{"salesforce CREATE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := both()
			set.MassDeletePercent = 100
			s := state(set)
			m := synced("k1", ex, sf)
			s.Mappings["k1"] = m
			s.Exchange, s.Salesforce = mirror(changedEx), mirror(sf)
			p := Compute(s)
			if got := summary(p); !slices.Equal(got, []string{"salesforce UPDATE department"}) {
				t.Fatalf("writes = %v, want the edit copied to Salesforce", got)
			}
			pw := content(p)[0].PendingWrite
			e := syncerr.New(syncerr.SalesforceEntityDeleted, "entity is deleted").Proto()
			res := &tandemv1.WriteResult{CommandId: pw.GetCommand().GetCommandId(), SyncKey: "k1", Op: tandemv1.WriteOp_WRITE_OP_UPDATE, Error: e}
			if tc.applied {
				held := edit(sf, func(c *tandemv1.Contact) { c.Department = "R&D" })
				res.AlreadyApplied, res.Record = true, held
			}
			eff := ApplyResult(contactKind, pw, m, s.Salesforce["S1"], res, t0.Add(time.Minute))
			if !eff.Mirror.GetDeleted() {
				t.Fatalf("the target is observed as %v, want deleted", eff.Mirror)
			}
			next := state(set)
			next.Cycle = s.Cycle + 1
			next.Mappings["k1"] = m
			if eff.Mapping != nil {
				next.Mappings["k1"] = eff.Mapping
			}
			next.Exchange = mirror(changedEx)
			next.Salesforce = map[string]*tandemv1.MirrorRecord{"S1": eff.Mirror}
			if got := summary(Compute(next)); !slices.Equal(got, tc.want) {
				t.Errorf("next cycle writes = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLinkResolutionOntoADeletedRecord: after lost state, a pair is linked again while its
// records differ (the rep's last Exchange edit never reached Salesforce), and Salesforce wins the
// differing title. The rep deleted the Exchange contact meanwhile, so the update fails as gone.
// Salesforce changed nothing since the pair was last in sync, so the Exchange deletion stands
// (by default: the pair is unlinked and the Salesforce contact kept); the contact is not
// created in Exchange again as if Salesforce had been edited after the deletion.
func TestLinkResolutionOntoADeletedRecord(t *testing.T) {
	ex := person("E1", "Ada", "Lovelace", "ada@example.com")
	ex.SyncKey = "k1"
	ex = edit(ex, func(c *tandemv1.Contact) { c.JobTitle = "Countess" })
	sf := person("S1", "Ada", "Lovelace", "ada@example.com")
	sf.SyncKey = "k1"
	set := both()
	set.MassDeletePercent = 100
	s := state(set)
	s.Exchange, s.Salesforce = mirror(ex), mirror(sf)
	p := Compute(s)
	if len(p.Links) != 1 {
		t.Fatalf("links = %v, want the pair relinked", p.Links)
	}
	if got := summary(p); !slices.Equal(got, []string{"exchange UPDATE job_title"}) {
		t.Fatalf("writes = %v, want Salesforce's title copied to Exchange", got)
	}
	pw := content(p)[0].PendingWrite
	m := p.Links[0]
	e := syncerr.New(syncerr.ExchangeItemNotFound, "item not found").Proto()
	res := &tandemv1.WriteResult{CommandId: pw.GetCommand().GetCommandId(), SyncKey: "k1", Op: tandemv1.WriteOp_WRITE_OP_UPDATE, Error: e}
	eff := ApplyResult(contactKind, pw, m, s.Exchange["E1"], res, t0.Add(time.Minute))
	if eff.Mapping != nil {
		m = eff.Mapping
	}
	next := state(set)
	next.Cycle = s.Cycle + 1
	next.Mappings["k1"] = m
	next.Exchange = map[string]*tandemv1.MirrorRecord{"E1": eff.Mirror}
	next.Salesforce = mirror(sf)
	np := Compute(next)
	if got := summary(np); len(got) != 0 {
		t.Errorf("next cycle writes = %v, want none: the Exchange deletion stands", got)
	}
	if !slices.Contains(np.Unlinks, "k1") {
		t.Errorf("unlinks = %v, want the pair unlinked", np.Unlinks)
	}
}

// TestCreatedHashIsTheCopysContentHash checks that a create's content hash, computed from the
// source's field hashes, is that of the record the create writes, whichever fields it carries.
func TestCreatedHashIsTheCopysContentHash(t *testing.T) {
	src := &tandemv1.Record{Id: "x", Version: "v", Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{
		GivenName: "Ada", Surname: "Lovelace", EmailAddress1: "ada@example.com", CompanyName: "Analytical",
		JobTitle: "Countess", MobilePhone: "+44 20 0000", Birthday: &tandemv1.Date{Year: 1815, Month: 12, Day: 10},
		Notes: "first programmer", Department: "Mathematics",
	}}}
	event := &tandemv1.Record{Id: "e", Body: &tandemv1.Record_Event{Event: &tandemv1.Event{
		Subject: "Review", Start: timestamppb.New(t0), End: timestamppb.New(t0.Add(time.Hour)), IsAllDay: true,
		StartDate: &tandemv1.Date{Year: 2026, Month: 11, Day: 21}, Sensitivity: tandemv1.Sensitivity_SENSITIVITY_PRIVATE,
	}}}
	for _, tc := range []struct {
		kind tandemv1.RecordKind
		src  *tandemv1.Record
		some []string
	}{
		{contactKind, src, []string{"surname", "birthday", "notes", "no_such_field"}},
		{tandemv1.RecordKind_RECORD_KIND_EVENT, event, []string{"start", "start_date", "sensitivity", "location"}},
	} {
		all := record.SyncFields(tc.kind)
		for _, fields := range [][]string{all, all[:3], all[len(all)/2:], nil, tc.some} {
			want := record.ContentHash(record.CopyFields(&tandemv1.Record{}, tc.src, fields))
			if got := createdHash(tc.kind, record.FieldHashes(tc.src), fields); got != want {
				t.Errorf("%s fields %v: createdHash %s, content hash of the copy %s", tc.kind, fields, got, want)
			}
		}
	}
}
