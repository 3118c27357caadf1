package salesforce

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	contactKind = tandemv1.RecordKind_RECORD_KIND_CONTACT
	eventKind   = tandemv1.RecordKind_RECORD_KIND_EVENT
	userRecords = tandemv1.ContactScope_CONTACT_SCOPE_USER_RECORDS
	allContacts = tandemv1.ContactScope_CONTACT_SCOPE_ALL
	upsert      = tandemv1.ChangeType_CHANGE_TYPE_UPSERT
	deletion    = tandemv1.ChangeType_CHANGE_TYPE_DELETE
)

// seed gives each user n contacts and returns their ids by owner.
// seedInMinute moves the clock to into past the start of the next minute, seeds n contacts per
// user then, and returns the clock's time before the move. The first poll's getUpdated, which
// counts whole minutes, then cannot cover what was seeded, whatever the time the test starts at
// (seeded in a minute's last second, the first poll could start in the next minute).
func (e *simEnv) seedInMinute(into time.Duration, n int) time.Time {
	e.t.Helper()
	now := e.clock.Now()
	e.clock.Advance(now.Truncate(time.Minute).Add(time.Minute + into).Sub(now))
	e.seed(n)
	return now
}

func (e *simEnv) seed(n int) map[string][]string {
	e.t.Helper()
	out := map[string][]string{}
	for i, u := range e.users {
		got, err := e.sim.SeedContacts(u.UserId, n, int64(i+1))
		if err != nil {
			e.t.Fatal(err)
		}
		out[u.UserId] = got
	}
	return out
}

func TestSimPollOneQueryPerObjectForManyUsers(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 40})
	owned := env.seed(3)
	for _, u := range env.users[:5] {
		if _, err := env.sim.SeedEvents(u.UserId, 4, 7); err != nil {
			t.Fatal(err)
		}
	}
	env.clock.Advance(10 * time.Minute)
	env.sim.ResetCounts()

	// First cycle: a full read of everyone, one query per object.
	contacts, contactCursor := env.poll(contactKind, env.audience(userRecords), "")
	events, eventCursor := env.poll(eventKind, env.audience(userRecords), "")
	if got := env.count(sfsim.EndpointQuery); got != 2 {
		t.Errorf("full read of 40 users' contacts and events took %d queries, want 2", got)
	}
	for _, u := range env.users {
		if got, want := sortedCopy(ids(contacts.changes[u.UserId], upsert)), sortedCopy(owned[u.UserId]); !slices.Equal(got, want) {
			t.Errorf("user %s got contacts %v, want %v", u.UserId, got, want)
		}
		if !contacts.full[u.UserId] || !events.full[u.UserId] {
			t.Errorf("user %s: first read not marked full", u.UserId)
		}
	}
	for _, u := range env.users[5:] {
		if events.calls[u.UserId] != 1 || len(events.changes[u.UserId]) != 0 {
			t.Errorf("user %s without events: %d emits with %d changes, want one empty emit", u.UserId, events.calls[u.UserId], len(events.changes[u.UserId]))
		}
	}
	for _, u := range env.users[:5] {
		if got := len(events.changes[u.UserId]); got != 4 {
			t.Errorf("user %s: %d events, want 4", u.UserId, got)
		}
	}

	// Users change records in the Salesforce UI.
	env.clock.Advance(5 * time.Minute)
	changed := map[string]string{}
	for _, u := range env.users[10:13] {
		id := owned[u.UserId][1]
		if err := env.sim.Update("Contact", id, map[string]any{"Title": "VP " + u.UserId}, u.UserId); err != nil {
			t.Fatal(err)
		}
		changed[u.UserId] = id
	}
	env.clock.Advance(5 * time.Minute)
	env.sim.ResetCounts()
	contacts, _ = env.poll(contactKind, env.audience(userRecords), contactCursor)
	_, _ = env.poll(eventKind, env.audience(userRecords), eventCursor)
	if q, qa := env.count(sfsim.EndpointQuery), env.count(sfsim.EndpointQueryAll); q != 0 || qa != 2 {
		t.Errorf("incremental cycle took %d queries and %d queryAll, want 0 and 2", q, qa)
	}
	for _, u := range env.users {
		got := ids(contacts.changes[u.UserId], upsert)
		want := []string(nil)
		if id, ok := changed[u.UserId]; ok {
			want = []string{id}
		}
		if !slices.Equal(got, want) {
			t.Errorf("user %s: incremental changes %v, want %v", u.UserId, got, want)
		}
		if contacts.full[u.UserId] || contacts.calls[u.UserId] == 0 {
			t.Errorf("user %s: full=%t emits=%d; want an incremental emit", u.UserId, contacts.full[u.UserId], contacts.calls[u.UserId])
		}
	}
	for uid, id := range changed {
		rec := contacts.changes[uid][0].GetRecord()
		if rec.GetContact().GetJobTitle() != "VP "+uid || rec.GetOwnerId() != uid || rec.GetVersion() == "" {
			t.Errorf("changed contact %s read as %v", id, rec)
		}
	}
	env.checkStatements()
}

func TestSimPollChunksOwnerLists(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 30})
	env.conn.cfg.maxSOQLLength = 1000 // forces several statements for 30 owners
	owned := env.seed(2)
	env.clock.Advance(10 * time.Minute)
	env.sim.ResetCounts()
	r, cursor := env.poll(contactKind, env.audience(userRecords), "")
	queries := env.count(sfsim.EndpointQuery)
	if queries < 2 {
		t.Fatalf("%d queries: the owner list was not chunked", queries)
	}
	for _, u := range env.users {
		if got, want := sortedCopy(ids(r.changes[u.UserId], upsert)), sortedCopy(owned[u.UserId]); !slices.Equal(got, want) {
			t.Errorf("user %s got %v, want %v", u.UserId, got, want)
		}
	}
	env.mu.Lock()
	for _, q := range env.statements {
		if len(q) > 1000 {
			t.Errorf("statement of %d characters", len(q))
		}
	}
	env.mu.Unlock()
	// Incremental reads are chunked the same way.
	last := env.users[len(env.users)-1]
	env.clock.Advance(time.Minute)
	if err := env.sim.Update("Contact", owned[last.UserId][0], map[string]any{"Department": "Sales"}, ""); err != nil {
		t.Fatal(err)
	}
	env.sim.ResetCounts()
	r, _ = env.poll(contactKind, env.audience(userRecords), cursor)
	if got := ids(r.changes[last.UserId], upsert); !slices.Equal(got, owned[last.UserId][:1]) {
		t.Errorf("last chunk's user got %v", got)
	}
	if got := env.count(sfsim.EndpointQueryAll); got != queries {
		t.Errorf("%d queryAll, want %d (one per chunk)", got, queries)
	}
	env.checkStatements()
}

func TestSimWatermarkOverlapDeduplicates(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	owned := env.seed(5)
	u := env.users[0]
	env.clock.Advance(10 * time.Minute)
	_, cursor := env.poll(contactKind, env.audience(userRecords), "")

	env.clock.Advance(time.Minute)
	target := owned[u.UserId][2]
	if err := env.sim.Update("Contact", target, map[string]any{"Phone": "+1 555 0100"}, u.UserId); err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(time.Minute)
	r, cursor := env.poll(contactKind, env.audience(userRecords), cursor)
	if got := ids(r.changes[u.UserId], upsert); !slices.Equal(got, []string{target}) {
		t.Fatalf("changes %v, want %s", got, target)
	}
	// Every later poll inside the overlap window reads the record again; none reports it.
	for i := range 3 {
		env.clock.Advance(time.Minute)
		env.sim.ResetCounts()
		r, cursor = env.poll(contactKind, env.audience(userRecords), cursor)
		if got := r.changes[u.UserId]; len(got) != 0 {
			t.Errorf("poll %d re-reported %d changes", i, len(got))
		}
		if env.count(sfsim.EndpointQueryAll) != 1 {
			t.Errorf("poll %d: %d queryAll", i, env.count(sfsim.EndpointQueryAll))
		}
	}
	// A second change of the same record is a new version and is reported.
	if err := env.sim.Update("Contact", target, map[string]any{"Phone": "+1 555 0101"}, u.UserId); err != nil {
		t.Fatal(err)
	}
	r, _ = env.poll(contactKind, env.audience(userRecords), cursor)
	if got := ids(r.changes[u.UserId], upsert); !slices.Equal(got, []string{target}) {
		t.Errorf("second change reported as %v", got)
	}
}

func TestSimDeletesReported(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 2})
	owned := env.seed(3)
	env.clock.Advance(10 * time.Minute)
	aud := []Audience{{User: env.users[0], Scope: userRecords}, {User: env.users[1], Scope: allContacts}}
	_, cursor := env.poll(contactKind, aud, "")
	gone := owned[env.users[0].UserId][0]
	if err := env.sim.Delete("Contact", gone); err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(time.Minute)
	env.sim.ResetCounts()
	r, _ := env.poll(contactKind, aud, cursor)
	for _, u := range env.users { // the owner and the user who sees all contacts
		if got := ids(r.changes[u.UserId], deletion); !slices.Equal(got, []string{gone}) {
			t.Errorf("user %s deletes %v, want [%s]", u.UserId, got, gone)
		}
	}
	if got := env.apiCalls(); got != 1 {
		t.Errorf("changes and deletes took %d calls, want 1 queryAll", got)
	}
}

func TestSimFiltersReportOutOfScope(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	u := env.users[0]
	mk := func(last, state string) string {
		id, err := env.sim.Insert("Contact", map[string]any{"LastName": last, "MailingState": state}, u.UserId)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	ca, ny, none := mk("West", "CA"), mk("East", "NY"), mk("Nowhere", "")
	env.clock.Advance(10 * time.Minute)
	aud := env.audience(userRecords, &tandemv1.FieldFilter{Field: "MailingState", Operator: tandemv1.FilterOperator_FILTER_OPERATOR_EQUALS, Values: []string{"ca"}})
	r, cursor := env.poll(contactKind, aud, "")
	scope := map[string]bool{}
	for _, ch := range r.changes[u.UserId] {
		scope[ch.GetRecord().GetId()] = !ch.GetOutOfScope()
	}
	if want := map[string]bool{ca: true, ny: false, none: false}; !mapsEqual(scope, want) {
		t.Errorf("in scope %v, want %v", scope, want)
	}
	// Moving the CA contact to NY takes it out of scope: an upsert marked out_of_scope.
	env.clock.Advance(time.Minute)
	if err := env.sim.Update("Contact", ca, map[string]any{"MailingState": "NY"}, u.UserId); err != nil {
		t.Fatal(err)
	}
	r, _ = env.poll(contactKind, aud, cursor)
	if got := r.changes[u.UserId]; len(got) != 1 || got[0].GetRecord().GetId() != ca || !got[0].GetOutOfScope() || got[0].GetType() != upsert {
		t.Errorf("changes after the move: %v", got)
	}
	env.checkStatements()
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestSimAllContactsScope(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 3})
	owned := env.seed(2)
	env.clock.Advance(10 * time.Minute)
	aud := []Audience{{User: env.users[0], Scope: allContacts}, {User: env.users[1], Scope: userRecords}, {User: env.users[2], Scope: userRecords}}
	env.sim.ResetCounts()
	r, _ := env.poll(contactKind, aud, "")
	var all []string
	for _, u := range env.users {
		all = append(all, owned[u.UserId]...)
	}
	if got := sortedCopy(ids(r.changes[env.users[0].UserId], upsert)); !slices.Equal(got, sortedCopy(all)) {
		t.Errorf("all-contacts user got %d contacts, want %d", len(got), len(all))
	}
	if got := sortedCopy(ids(r.changes[env.users[1].UserId], upsert)); !slices.Equal(got, sortedCopy(owned[env.users[1].UserId])) {
		t.Errorf("user-records user got %v", got)
	}
	if got := env.count(sfsim.EndpointQuery); got != 1 {
		t.Errorf("%d queries, want 1", got)
	}
	env.mu.Lock()
	defer env.mu.Unlock()
	if q := env.statements[len(env.statements)-1]; strings.Contains(q, "OwnerId IN") {
		t.Errorf("all-contacts read still filters by owner: %s", q)
	}
}

func TestSimAudienceChangesGetFullReads(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 3})
	owned := env.seed(2)
	env.clock.Advance(10 * time.Minute)
	a, b, c := env.users[0], env.users[1], env.users[2]
	_, cursor := env.poll(contactKind, []Audience{{User: a, Scope: userRecords}, {User: b, Scope: userRecords}}, "")

	env.clock.Advance(time.Minute)
	env.sim.ResetCounts()
	filter := &tandemv1.FieldFilter{Field: "LastName", Operator: tandemv1.FilterOperator_FILTER_OPERATOR_STARTS_WITH, Values: []string{"zzz"}}
	// c joins; b's filters change; a is unchanged.
	aud := []Audience{{User: a, Scope: userRecords}, {User: b, Scope: userRecords, Filters: []*tandemv1.FieldFilter{filter}}, {User: c, Scope: userRecords}}
	r, cursor := env.poll(contactKind, aud, cursor)
	if r.full[a.UserId] || len(r.changes[a.UserId]) != 0 {
		t.Errorf("unchanged user: full=%t changes=%d", r.full[a.UserId], len(r.changes[a.UserId]))
	}
	for _, u := range []*tandemv1.SyncUser{b, c} {
		if !r.full[u.UserId] || !slices.Equal(sortedCopy(ids(r.changes[u.UserId], upsert)), sortedCopy(owned[u.UserId])) {
			t.Errorf("user %s: full=%t changes=%v", u.UserId, r.full[u.UserId], ids(r.changes[u.UserId], upsert))
		}
	}
	for _, ch := range r.changes[b.UserId] {
		if !ch.GetOutOfScope() {
			t.Errorf("b's contact %s matches no filter but is in scope", ch.GetRecord().GetId())
		}
	}
	if q, qa := env.count(sfsim.EndpointQuery), env.count(sfsim.EndpointQueryAll); q != 1 || qa != 1 {
		t.Errorf("%d queries and %d queryAll, want 1 and 1", q, qa)
	}
	// The next cycle covers all three incrementally.
	r, _ = env.poll(contactKind, aud, cursor)
	for _, u := range env.users {
		if r.full[u.UserId] || len(r.changes[u.UserId]) != 0 {
			t.Errorf("user %s after the audience settled: full=%t changes=%d", u.UserId, r.full[u.UserId], len(r.changes[u.UserId]))
		}
	}
}

func TestSimStaleCursorReadsEverything(t *testing.T) {
	tests := []struct {
		name        string
		gap         time.Duration
		purge       bool // a record deleted after the last poll is purged from the bin
		wantFull    bool
		wantDeleted int64 // getDeleted calls
	}{
		{"regular cycle", 5 * time.Minute, false, false, 0},
		{"hours later, bin intact", 3 * time.Hour, false, false, 1},
		{"after a purge", 8 * 24 * time.Hour, true, true, 1},
		{"beyond the recycle window", 15 * 24 * time.Hour, false, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Sessions outlive the gaps, so that the calls counted are the poll's own.
			env := newSimEnv(t, simOptions{users: 1, tokenLifetime: 30 * 24 * time.Hour})
			env.conn.cfg.fullRescanInterval = 0
			owned := env.seed(3)
			env.clock.Advance(10 * time.Minute)
			_, cursor := env.poll(contactKind, env.audience(userRecords), "")
			if tt.purge {
				// A record deleted after the poll is purged from the bin before the next
				// poll. The simulator purges after 15 days, so its clock runs ahead to purge
				// and comes back, as if a full bin had been emptied early.
				env.clock.Advance(time.Hour)
				if err := env.sim.Delete("Contact", owned[env.users[0].UserId][0]); err != nil {
					t.Fatal(err)
				}
				env.clock.Advance(15*24*time.Hour + time.Minute)
				if err := env.sim.Delete("Contact", owned[env.users[0].UserId][1]); err != nil { // runs the purge
					t.Fatal(err)
				}
				env.clock.Advance(-(15*24*time.Hour + time.Hour + time.Minute) + tt.gap)
			} else {
				env.clock.Advance(tt.gap)
			}
			env.sim.ResetCounts()
			r, _ := env.poll(contactKind, env.audience(userRecords), cursor)
			if got := r.full[env.users[0].UserId]; got != tt.wantFull {
				t.Errorf("full = %t, want %t", got, tt.wantFull)
			}
			if got := env.count(sfsim.EndpointDeleted); got != tt.wantDeleted {
				t.Errorf("%d getDeleted calls, want %d: %v", got, tt.wantDeleted, env.sim.Counts())
			}
		})
	}
}

func TestSimPeriodicFullRescan(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1, opts: []Option{WithFullRescanInterval(6 * time.Hour)}})
	env.seed(2)
	env.clock.Advance(10 * time.Minute)
	_, cursor := env.poll(contactKind, env.audience(userRecords), "")
	uid := env.users[0].UserId
	for i := range 7 { // 5h50m of regular cycles
		env.clock.Advance(50 * time.Minute)
		var r *pollResult
		r, cursor = env.poll(contactKind, env.audience(userRecords), cursor)
		if r.full[uid] || len(r.changes[uid]) != 0 {
			t.Fatalf("cycle %d: full=%t changes=%d", i, r.full[uid], len(r.changes[uid]))
		}
	}
	env.clock.Advance(10 * time.Minute)
	r, _ := env.poll(contactKind, env.audience(userRecords), cursor)
	if !r.full[uid] || len(r.changes[uid]) != 2 {
		t.Errorf("after 6h: full=%t changes=%d, want a full read of 2", r.full[uid], len(r.changes[uid]))
	}
}

func TestSimEventsWithInvitees(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 2})
	rep, colleague := env.users[0], env.users[1]
	contactID, err := env.sim.Insert("Contact", map[string]any{"LastName": "Buyer", "Email": "buyer@customer.example"}, rep.UserId)
	if err != nil {
		t.Fatal(err)
	}
	leadID, err := env.sim.Insert("Lead", map[string]any{"LastName": "Prospect", "Company": "P Inc", "Email": "prospect@lead.example"}, rep.UserId)
	if err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(10 * time.Minute)
	start := env.clock.Now().Add(48 * time.Hour).Truncate(time.Hour)
	att := func(emails ...string) []*tandemv1.Attendee {
		var out []*tandemv1.Attendee
		for _, e := range emails {
			out = append(out, &tandemv1.Attendee{Email: e})
		}
		return out
	}
	cmds := []*tandemv1.WriteCommand{
		{CommandId: "meeting", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk-meeting", Record: &tandemv1.Record{Body: &tandemv1.Record_Event{Event: &tandemv1.Event{
			Subject: "Negotiation", Location: "HQ", Start: timestampOf(start), End: timestampOf(start.Add(time.Hour)),
			Sensitivity: tandemv1.Sensitivity_SENSITIVITY_PRIVATE, ShowAs: tandemv1.ShowAs_SHOW_AS_BUSY,
			Attendees: att("Buyer@Customer.example", colleague.Email, "prospect@lead.example", "stranger@nowhere.example", rep.Email)}}}},
		{CommandId: "offsite", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk-offsite", Record: &tandemv1.Record{Body: &tandemv1.Record_Event{Event: &tandemv1.Event{
			Subject: "Offsite", IsAllDay: true, StartDate: &tandemv1.Date{Year: 2027, Month: 1, Day: 4}, EndDate: &tandemv1.Date{Year: 2027, Month: 1, Day: 6},
			ShowAs: tandemv1.ShowAs_SHOW_AS_FREE}}}},
	}
	env.sim.ResetCounts()
	res, err := env.conn.Apply(t.Context(), rep, eventKind, cmds)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.GetOk() || len(r.GetWarnings()) != 0 {
			t.Fatalf("result %v", r)
		}
	}
	// One upsert, user and contact and lead lookups, one insert; new events have no invitees
	// to read.
	if got := env.apiCalls(); got != 5 || env.count(sfsim.EndpointQuery) != 3 {
		t.Errorf("writing 2 new events with invitees took %d calls, want 5: %v", got, env.sim.Counts())
	}
	meetingID := res[0].GetRecord().GetId()
	relations := map[string]bool{}
	for _, rel := range env.sim.List("EventRelation") {
		if rel["EventId"] == meetingID {
			relations[rel["RelationId"].(string)] = true
		}
	}
	if want := map[string]bool{contactID: true, colleague.UserId: true, leadID: true}; !mapsEqual(relations, want) {
		t.Errorf("invitee relations %v, want %v", relations, want)
	}
	// The same creates again (a retry that finds its first attempt) read the invitees the
	// events have, and add none twice.
	env.sim.ResetCounts()
	again, err := env.conn.Apply(t.Context(), rep, eventKind, cmds)
	if err != nil || !again[0].GetAlreadyApplied() {
		t.Fatalf("retried creates: %v %v", again, err)
	}
	if got := len(env.sim.List("EventRelation")); got != len(relations) {
		t.Errorf("%d invitee relations after the retry, want %d", got, len(relations))
	}
	if got := env.count(sfsim.EndpointQuery); got != 4 {
		t.Errorf("retried creates made %d queries, want 4 (three lookups, the current invitees)", got)
	}

	r, _ := env.poll(eventKind, env.audience(userRecords), "")
	byID := map[string]*tandemv1.Event{}
	for _, ch := range r.changes[rep.UserId] {
		byID[ch.GetRecord().GetId()] = ch.GetRecord().GetEvent()
	}
	meeting, offsite := byID[meetingID], byID[res[1].GetRecord().GetId()]
	if meeting == nil || offsite == nil {
		t.Fatalf("poll returned %v", byID)
	}
	if !meeting.GetStart().AsTime().Equal(start) || !meeting.GetEnd().AsTime().Equal(start.Add(time.Hour)) ||
		meeting.GetSensitivity() != tandemv1.Sensitivity_SENSITIVITY_PRIVATE || meeting.GetSubject() != "Negotiation" {
		t.Errorf("meeting read back as %v", meeting)
	}
	var emails []string
	for _, a := range meeting.GetAttendees() {
		emails = append(emails, strings.ToLower(a.GetEmail()))
	}
	slices.Sort(emails)
	if want := []string{"buyer@customer.example", "prospect@lead.example", colleague.Email}; !slices.Equal(emails, sortedCopy(want)) {
		t.Errorf("attendees read back %v, want %v", emails, want)
	}
	if !offsite.GetIsAllDay() || offsite.GetStartDate().GetDay() != 4 || offsite.GetEndDate().GetDay() != 6 || offsite.GetShowAs() != tandemv1.ShowAs_SHOW_AS_FREE {
		t.Errorf("offsite read back as %v", offsite)
	}

	// Dropping the lead from the invitees removes its relation only.
	env.clock.Advance(time.Minute)
	upd := []*tandemv1.WriteCommand{{CommandId: "u", Op: tandemv1.WriteOp_WRITE_OP_UPDATE, TargetId: meetingID, Fields: []string{fAttendees},
		Record: &tandemv1.Record{Body: &tandemv1.Record_Event{Event: &tandemv1.Event{Attendees: att("buyer@customer.example", colleague.Email)}}}}}
	if res, err := env.conn.Apply(t.Context(), rep, eventKind, upd); err != nil || !res[0].GetOk() {
		t.Fatalf("update: %v %v", res, err)
	}
	relations = map[string]bool{}
	for _, rel := range env.sim.List("EventRelation") {
		if rel["EventId"] == meetingID {
			relations[rel["RelationId"].(string)] = true
		}
	}
	if want := map[string]bool{contactID: true, colleague.UserId: true}; !mapsEqual(relations, want) {
		t.Errorf("after the update: relations %v, want %v", relations, want)
	}
	env.checkStatements()
}

func TestSimOptionalFieldMissing(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	if err := env.sim.RemoveField("Contact", "MiddleName"); err != nil {
		t.Fatal(err)
	}
	env.seed(2)
	env.clock.Advance(10 * time.Minute)
	r, _ := env.poll(contactKind, env.audience(userRecords), "")
	if got := len(r.changes[env.users[0].UserId]); got != 2 {
		t.Errorf("%d contacts read without MiddleName, want 2", got)
	}
	res, err := env.conn.Apply(t.Context(), env.users[0], contactKind, []*tandemv1.WriteCommand{{CommandId: "c", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk-m",
		Record: &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{GivenName: "A", MiddleName: "B", Surname: "C"}}}}})
	if err != nil || !res[0].GetOk() {
		t.Fatalf("create without MiddleName: %v %v", res, err)
	}
}

func TestSimSyncKeyFieldMissing(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	if err := env.sim.RemoveField("Contact", SyncKeyField); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := env.conn.RefreshFieldLengths(ctx); syncerr.As(err).Code != syncerr.SalesforceFieldMissing {
		t.Errorf("RefreshFieldLengths = %v", err)
	}
	_, err := env.conn.Poll(ctx, PollRequest{Kind: contactKind, Audience: env.audience(userRecords)}, newPollResult().emit)
	if syncerr.As(err).Code != syncerr.SalesforceFieldMissing {
		t.Errorf("Poll = %v", err)
	}
	_, err = env.conn.Apply(ctx, env.users[0], contactKind, []*tandemv1.WriteCommand{{CommandId: "c", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk",
		Record: &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{Surname: "C"}}}}})
	if se := syncerr.As(err); se.Code != syncerr.SalesforceFieldMissing || syncerr.ScopeOf(se.Code) != syncerr.ScopeOrg {
		t.Errorf("Apply = %v", err)
	}
}

func TestSimUsersPaging(t *testing.T) {
	env := newSimEnv(t, simOptions{})
	const n = 2100 // more than one page of 2,000
	for i := range n {
		if _, err := env.sim.AddUser(sfsim.User{Username: fmt.Sprintf("u%d@big.example", i), Email: fmt.Sprintf("u%d@big.example", i), IsActive: i%10 != 0}); err != nil {
			t.Fatal(err)
		}
	}
	env.sim.ResetCounts()
	users, err := env.conn.Users(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != n+2 { // plus the admin and the integration user
		t.Errorf("%d users, want %d", len(users), n+2)
	}
	if env.count(sfsim.EndpointQueryMore) == 0 {
		t.Error("the directory came in one page; paging untested")
	}
	inactive := 0
	for _, u := range users {
		if u.GetUserId() == "" || u.GetUsername() == "" || u.GetProfileId() == "" {
			t.Fatalf("incomplete user %v", u)
		}
		if !u.GetActive() {
			inactive++
		}
	}
	if inactive != n/10 {
		t.Errorf("%d inactive users, want %d", inactive, n/10)
	}
}

func TestSimConcurrentPollsAndWrites(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 4})
	env.seed(5)
	env.clock.Advance(10 * time.Minute)
	var wg sync.WaitGroup
	for i, u := range env.users {
		wg.Go(func() {
			var cmds []*tandemv1.WriteCommand
			for k := range 20 {
				cmds = append(cmds, &tandemv1.WriteCommand{CommandId: fmt.Sprint(k), Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: fmt.Sprintf("sk-%d-%d", i, k),
					Record: &tandemv1.Record{Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{Surname: fmt.Sprintf("N%d", k)}}}})
			}
			if _, err := env.conn.Apply(t.Context(), u, contactKind, cmds); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if _, err := env.conn.Poll(t.Context(), PollRequest{Kind: contactKind, Audience: env.audience(userRecords)},
				newPollResult().emit); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := len(env.sim.List("Contact")); got != 4*5+4*20 {
		t.Errorf("%d contacts, want %d", got, 4*5+4*20)
	}
}

func timestampOf(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// TestSimSplitFullRead: a full read of more users than FullReadGroup is one query per group,
// each group's users reported done once all their records are emitted; and an edit made to a
// record of a group already read, while a later group is read, is not lost behind the later
// group's newer stamps: the next poll reads it.
func TestSimSplitFullRead(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 5, wholeSeconds: true})
	owned := env.seed(3)
	env.clock.Advance(10 * time.Minute)
	env.sim.ResetCounts()

	users := slices.Clone(env.users)
	slices.SortFunc(users, func(a, b *tandemv1.SyncUser) int { return strings.Compare(a.GetUserId(), b.GetUserId()) })
	first, last := users[0].GetUserId(), users[4].GetUserId()
	edited := owned[first][0]
	r := newPollResult()
	var groups [][]string
	done := func(_ context.Context, ids []string) error {
		groups = append(groups, ids)
		for _, id := range ids {
			if got := len(r.changes[id]); got != 3 {
				t.Errorf("user %s reported done with %d of 3 contacts emitted", id, got)
			}
		}
		if len(groups) == 1 {
			// A rep edits a contact of the group just read, then one of the last group, a
			// second later, before that group is read.
			env.clock.Advance(time.Second)
			if err := env.sim.Update("Contact", edited, map[string]any{"Title": "Read already"}, first); err != nil {
				t.Fatal(err)
			}
			env.clock.Advance(time.Second)
			if err := env.sim.Update("Contact", owned[last][0], map[string]any{"Title": "Not read yet"}, last); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	}
	cursor, err := env.conn.Poll(t.Context(), PollRequest{Kind: contactKind, Audience: env.audience(userRecords), FullReadGroup: 2, Done: done}, r.emit)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{users[0].GetUserId(), users[1].GetUserId()}, {users[2].GetUserId(), users[3].GetUserId()}, {last}}
	if !slices.EqualFunc(groups, want, slices.Equal[[]string]) {
		t.Errorf("users reported done in groups %v, want %v", groups, want)
	}
	if got := env.count(sfsim.EndpointQuery); got != 3 {
		t.Errorf("a full read of 5 users in groups of 2 took %d queries, want 3", got)
	}
	for _, u := range users {
		if r.calls[u.GetUserId()] == 0 || !r.full[u.GetUserId()] {
			t.Errorf("user %s: %d emits, full %t", u.GetUserId(), r.calls[u.GetUserId()], r.full[u.GetUserId()])
		}
	}

	env.clock.Advance(30 * time.Second)
	next, _ := env.poll(contactKind, env.audience(userRecords), cursor)
	if got := ids(next.changes[first], upsert); !slices.Equal(got, []string{edited}) {
		t.Errorf("the next poll reported %v for the first group's user, want the edit of %s made while a later group was read", got, edited)
	}
	env.checkStatements()
}
