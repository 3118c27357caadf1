package salesforceworker

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/bus"
	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/devkit/poll"
	"github.com/tandem-sync/tandem/pkg/platform"
	"github.com/tandem-sync/tandem/pkg/salesforce"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

const (
	u1      = "005u1"
	u2      = "005u2"
	u3      = "005u3"
	profile = "00eRep"
)

func user(id string) *tandemv1.SyncUser {
	return &tandemv1.SyncUser{UserId: id, Username: id + "@acme.example", Email: id + "@acme.example", ProfileId: profile, Active: true}
}

// newFakeEnv is a worker with a fake connector whose directory holds three reps, an org and a
// configuration that syncs the reps' own contacts.
func newFakeEnv(t *testing.T) (*env, *fakeConnector) {
	t.Helper()
	fc := &fakeConnector{
		users: []*tandemv1.SyncUser{user(u1), user(u2), user(u3)},
		usage: salesforce.Usage{DailyMax: 15000, Used: 1200, Reserve: 3000, TandemCalls: 42},
	}
	e := newEnv(t, testConfig(), func(*platform.Platform) ConnectorFactory { return fc.factory })
	e.putOrg(&tandemv1.Org{OrgId: testOrg, Name: "Acme", Enabled: true})
	if _, err := e.st.PutConfiguration(t.Context(), testOrg, &tandemv1.SyncConfiguration{
		Name: "Reps", Active: true, ProfileIds: []string{profile},
		Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH, Scope: tandemv1.ContactScope_CONTACT_SCOPE_USER_RECORDS},
	}); err != nil {
		t.Fatal(err)
	}
	return e, fc
}

func job(cycle uint64, kinds []tandemv1.RecordKind, users, full []string) *tandemv1.SyncJob {
	return &tandemv1.SyncJob{
		OrgId: testOrg, System: tandemv1.System_SYSTEM_SALESFORCE, Cycle: cycle, Kinds: kinds, UserIds: users, FullUserIds: full,
	}
}

func (e *env) directoryIDs() []string {
	e.t.Helper()
	users, err := e.st.ListUsers(e.t.Context(), testOrg)
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []string
	for _, u := range users {
		ids = append(ids, u.GetUserId())
	}
	return ids
}

func TestDirectory(t *testing.T) {
	e, fc := newFakeEnv(t)
	ctx := t.Context()
	contacts := []tandemv1.RecordKind{contact}
	run := func(t *testing.T, j *tandemv1.SyncJob) {
		t.Helper()
		if err := e.w.handleJob(ctx, jobMessage(t, j)); err != nil {
			t.Fatal(err)
		}
	}
	// notDue puts the org's next cycle an hour away; due reports whether it is due now.
	notDue := func(t *testing.T) {
		t.Helper()
		now := e.clock.Now()
		if _, ok, err := e.st.ClaimCycle(ctx, testOrg, now, now.Add(time.Hour)); err != nil || !ok {
			t.Fatalf("ClaimCycle: %v, %v", ok, err)
		}
	}
	due := func(t *testing.T) bool {
		t.Helper()
		sch, err := e.st.GetSchedule(ctx, testOrg)
		if err != nil {
			t.Fatal(err)
		}
		return !sch.NextAt.After(e.clock.Now())
	}

	t.Run("a job without users refreshes the directory and publishes nothing", func(t *testing.T) {
		notDue(t)
		run(t, job(1, contacts, nil, nil))
		if !due(t) {
			t.Error("the directory's first users do not make the org's next cycle due now")
		}
		calls, polls, _, _ := fc.state()
		if calls != 1 || len(polls) != 0 {
			t.Errorf("directory reads %d, polls %d; want 1 and 0", calls, len(polls))
		}
		if got := e.directoryIDs(); !slices.Equal(got, []string{u1, u2, u3}) {
			t.Errorf("directory %v", got)
		}
		raw, ok, err := e.st.GetCursor(ctx, store.CursorKey{Org: testOrg, Name: "directory"})
		if err != nil || !ok || raw != strconv.FormatInt(e.clock.Now().UnixMilli(), 10) {
			t.Errorf("directory refresh mark %q (%v, %v), want the time of the read", raw, ok, err)
		}
		if pages, _ := e.changes(); len(pages) != 0 {
			t.Errorf("published %v", pages)
		}
		if u := e.usage(); u.GetDailyMax() != 15000 {
			t.Errorf("usage %v not stored", u)
		}
	})

	fc.script(func(f *fakeConnector) { f.users = append(f.users, user("005u4")) })
	t.Run("the directory is not read again before the refresh interval", func(t *testing.T) {
		e.clock.Advance(59 * time.Minute)
		notDue(t)
		run(t, job(2, contacts, []string{u1}, nil))
		if calls, polls, _, _ := fc.state(); calls != 1 || len(polls) != 1 {
			t.Errorf("directory reads %d, polls %d; want 1 and 1", calls, len(polls))
		}
		if got := e.directoryIDs(); slices.Contains(got, "005u4") {
			t.Errorf("directory %v was read again", got)
		}
		if due(t) {
			t.Error("a job that does not read the directory makes the org's next cycle due now")
		}
	})

	t.Run("a stale directory is read again", func(t *testing.T) {
		e.clock.Advance(2 * time.Minute)
		run(t, job(3, contacts, []string{u1}, nil))
		if calls, _, _, _ := fc.state(); calls != 2 {
			t.Errorf("directory reads %d, want 2", calls)
		}
		if got := e.directoryIDs(); !slices.Contains(got, "005u4") {
			t.Errorf("directory %v, want the new user", got)
		}
		if !due(t) {
			t.Error("a new user in the directory does not make the org's next cycle due now")
		}
	})

	t.Run("a job without users always reads it", func(t *testing.T) {
		notDue(t)
		run(t, job(4, contacts, nil, nil))
		if due(t) {
			t.Error("a directory read again without new users makes the org's next cycle due now")
		}
		if calls, _, _, _ := fc.state(); calls != 3 {
			t.Errorf("directory reads %d, want 3", calls)
		}
	})

	t.Run("a directory the org refuses is reported for the org", func(t *testing.T) {
		fc.script(func(f *fakeConnector) { f.usersErr = syncerr.New(syncerr.SalesforceAuthFailed, "invalid_grant") })
		run(t, job(5, contacts, nil, nil))
		entries := e.errorReport("")
		if len(entries) != 1 || entries[0].GetUserId() != "" || entries[0].GetError().GetCode() != string(syncerr.SalesforceAuthFailed) {
			t.Errorf("error report %v, want one org-level SALESFORCE_AUTH_FAILED entry", entries)
		}
	})

	t.Run("a directory read Salesforce cannot answer now goes back to the bus", func(t *testing.T) {
		fc.script(func(f *fakeConnector) { f.usersErr = syncerr.New(syncerr.SalesforceUnavailable, "503") })
		err := e.w.handleJob(ctx, jobMessage(t, job(6, contacts, nil, nil)))
		if syncerr.As(err).Code != syncerr.SalesforceUnavailable || bus.IsPermanent(err) {
			t.Errorf("handleJob = %v, want SALESFORCE_UNAVAILABLE for the bus to retry", err)
		}
	})
}

// pageWant is what one published page must say.
type pageWant struct {
	ids      []string
	last     bool
	count    uint32
	full     bool
	previous uint64
	readAt   time.Time
}

// checkUserPages checks the pages published for one user and kind, in order.
func checkUserPages(t *testing.T, all []*tandemv1.ChangeBatch, subjects []string, userID string, kind tandemv1.RecordKind, cycle uint64, want []pageWant) {
	t.Helper()
	subject, err := bus.ChangesSubject(testOrg, userID)
	if err != nil {
		t.Fatal(err)
	}
	var got []*tandemv1.ChangeBatch
	for i, b := range all {
		if b.GetUserId() != userID || b.GetKind() != kind {
			continue
		}
		if subjects[i] != subject {
			t.Errorf("%s's page on %s, want %s", userID, subjects[i], subject)
		}
		got = append(got, b)
	}
	if len(got) != len(want) {
		t.Fatalf("%s %s: %d pages, want %d: %v", userID, kind, len(got), len(want), got)
	}
	for i, b := range got {
		w := want[i]
		var ids []string
		for _, c := range b.GetChanges() {
			ids = append(ids, c.GetRecord().GetId())
		}
		if b.GetOrgId() != testOrg || b.GetSource() != tandemv1.System_SYSTEM_SALESFORCE || b.GetCycle() != cycle ||
			b.GetPage() != uint32(i) || !slices.Equal(ids, w.ids) || b.GetLast() != w.last || b.GetPageCount() != w.count ||
			b.GetFullSnapshot() != w.full || b.GetPreviousCycle() != w.previous {
			t.Errorf("%s %s page %d: source %s cycle %d page %d ids %v last %v count %d full %v previous %d\nwant source SALESFORCE cycle %d page %d ids %v last %v count %d full %v previous %d",
				userID, kind, i, b.GetSource(), b.GetCycle(), b.GetPage(), ids, b.GetLast(), b.GetPageCount(), b.GetFullSnapshot(), b.GetPreviousCycle(),
				cycle, i, w.ids, w.last, w.count, w.full, w.previous)
		}
		if !b.GetReadAt().AsTime().Equal(w.readAt) {
			t.Errorf("%s %s page %d: read_at %v, want %v (when the read started)", userID, kind, i, b.GetReadAt().AsTime(), w.readAt)
		}
	}
}

func ids(prefix string, n int) []string {
	var out []string
	for _, c := range upserts(prefix, n) {
		out = append(out, c.GetRecord().GetId())
	}
	return out
}

func TestPollRoutesEachUsersPages(t *testing.T) {
	e, fc := newFakeEnv(t)
	ctx := t.Context()
	if err := e.st.PutCursor(ctx, cursorKey(testOrg, contact), `{"value":"c1","cycle":3}`); err != nil {
		t.Fatal(err)
	}
	fc.script(func(f *fakeConnector) {
		f.beforeEmit = func() { e.clock.Advance(time.Second) }
		f.poll = func(req salesforce.PollRequest) ([]emit, string, error) {
			switch req.Kind {
			case contact:
				return []emit{
					{user: u1, changes: upserts("a", 2)},
					{user: u2, changes: upserts("b", 1)},
					{user: u1, changes: upserts("c", 1)},
					{user: u3},
				}, "c2", nil
			default:
				return []emit{{user: u1, full: true}, {user: u2, changes: upserts("e", 1), full: true}, {user: u3, full: true}}, "e1", nil
			}
		}
	})
	t0 := e.clock.Now()
	j := job(4, []tandemv1.RecordKind{contact, event}, []string{u1, u2, u3, "005gone"}, nil)
	if err := e.w.handleJob(ctx, jobMessage(t, j)); err != nil {
		t.Fatal(err)
	}

	_, polls, _, _ := fc.state()
	if len(polls) != 2 {
		t.Fatalf("%d polls, want one per kind", len(polls))
	}
	for i, want := range []struct {
		kind   tandemv1.RecordKind
		cursor string
	}{{contact, "c1"}, {event, ""}} {
		p := polls[i]
		if p.Kind != want.kind || p.Cursor != want.cursor || !slices.Equal(audienceIDs(p), []string{u1, u2, u3}) {
			t.Errorf("poll %d: kind %s cursor %q audience %v; want %s from %q for every user in the directory", i, p.Kind, p.Cursor, audienceIDs(p), want.kind, want.cursor)
		}
		for _, a := range p.Audience {
			if a.Scope != tandemv1.ContactScope_CONTACT_SCOPE_USER_RECORDS {
				t.Errorf("poll %d: %s's scope %s, want the configuration's", i, a.User.GetUserId(), a.Scope)
			}
		}
	}

	pages, subjects := e.changes()
	eventsAt := t0.Add(4 * time.Second) // the contact poll emitted four times
	checkUserPages(t, pages, subjects, u1, contact, 4, []pageWant{
		{ids: ids("a", 2), previous: 3, readAt: t0},
		{ids: ids("c", 1), previous: 3, readAt: t0},
		{last: true, count: 3, previous: 3, readAt: t0},
	})
	checkUserPages(t, pages, subjects, u2, contact, 4, []pageWant{
		{ids: ids("b", 1), previous: 3, readAt: t0},
		{last: true, count: 2, previous: 3, readAt: t0},
	})
	checkUserPages(t, pages, subjects, u3, contact, 4, []pageWant{
		{previous: 3, readAt: t0},
		{last: true, count: 2, previous: 3, readAt: t0},
	})
	checkUserPages(t, pages, subjects, u2, event, 4, []pageWant{
		{ids: ids("e", 1), full: true, readAt: eventsAt},
		{last: true, count: 2, full: true, readAt: eventsAt},
	})
	checkUserPages(t, pages, subjects, "005gone", contact, 4, nil)
	if len(pages) != 13 {
		t.Errorf("%d pages in all, want 13", len(pages))
	}

	for kind, want := range map[tandemv1.RecordKind]cursor{contact: {Value: "c2", Cycle: 4}, event: {Value: "e1", Cycle: 4}} {
		if got, ok := e.storedCursor(kind); !ok || got != want {
			t.Errorf("%s cursor %+v, want %+v", kind, got, want)
		}
	}
	want := &tandemv1.SalesforceApiUsage{DailyMax: 15000, Used: 1200, Reserve: 3000, TandemCalls: 42}
	if got := e.usage(); !proto.Equal(got, want) {
		t.Errorf("usage %v, want %v", got, want)
	}
}

// TestGroupsOfAFullReadFinishEarly: users the connector reports done while its poll goes on
// (a full read split in groups) get their last page at once, before the later groups' pages,
// and only once.
func TestGroupsOfAFullReadFinishEarly(t *testing.T) {
	e, fc := newFakeEnv(t)
	ctx := t.Context()
	fc.script(func(f *fakeConnector) {
		f.poll = func(req salesforce.PollRequest) ([]emit, string, error) {
			if req.Kind != contact {
				return nil, "e1", nil
			}
			if req.FullReadGroup != DefaultFullReadGroup || req.Done == nil {
				t.Errorf("poll asked with group %d and Done %t, want %d and a Done", req.FullReadGroup, req.Done != nil, DefaultFullReadGroup)
			}
			return []emit{
				{user: u1, changes: upserts("a", 2), full: true},
				{done: []string{u1}},
				{user: u2, changes: upserts("b", 1), full: true},
				{user: u3, full: true},
			}, "c1", nil
		}
	})
	t0 := e.clock.Now()
	j := job(4, []tandemv1.RecordKind{contact}, []string{u1, u2, u3}, nil)
	if err := e.w.handleJob(ctx, jobMessage(t, j)); err != nil {
		t.Fatal(err)
	}
	pages, subjects := e.changes()
	checkUserPages(t, pages, subjects, u1, contact, 4, []pageWant{
		{ids: ids("a", 2), full: true, readAt: t0},
		{last: true, count: 2, full: true, readAt: t0},
	})
	var order []string
	for _, p := range pages {
		if p.GetKind() == contact {
			order = append(order, fmt.Sprintf("%s:%t", p.GetUserId(), p.GetLast()))
		}
	}
	// The later group's users' pages go out together, in no particular order between users.
	if want := []string{u1 + ":false", u1 + ":true"}; len(order) < 4 || !slices.Equal(order[:2], want) ||
		!slices.Contains(order[2:], u2+":false") || !slices.Contains(order[2:], u3+":false") {
		t.Errorf("contact pages in the order %v, want %v first, then the others'", order, want)
	}
}

func TestUsersBeingResetGetAFullRead(t *testing.T) {
	e, fc := newFakeEnv(t)
	ctx := t.Context()
	if err := e.st.PutCursor(ctx, cursorKey(testOrg, contact), `{"value":"c1","cycle":3}`); err != nil {
		t.Fatal(err)
	}
	fc.script(func(f *fakeConnector) {
		f.beforeEmit = func() { e.clock.Advance(time.Second) }
		f.poll = func(req salesforce.PollRequest) ([]emit, string, error) {
			if slices.Equal(audienceIDs(req), []string{u2}) {
				if req.Cursor != "" {
					t.Errorf("the full read started from cursor %q", req.Cursor)
				}
				return []emit{{user: u2, changes: upserts("f", 2), full: true}, {user: u2, changes: upserts("g", 1), full: true}}, "full-read-cursor", nil
			}
			if req.Cursor != "c1" {
				t.Errorf("the incremental read started from cursor %q, want c1", req.Cursor)
			}
			return []emit{{user: u1, changes: upserts("a", 1)}, {user: u3}}, "c2", nil
		}
	})
	t0 := e.clock.Now()
	if err := e.w.handleJob(ctx, jobMessage(t, job(4, []tandemv1.RecordKind{contact}, []string{u1, u2, u3}, []string{u2}))); err != nil {
		t.Fatal(err)
	}
	_, polls, _, _ := fc.state()
	if len(polls) != 2 || !slices.Equal(audienceIDs(polls[0]), []string{u2}) || !slices.Equal(audienceIDs(polls[1]), []string{u1, u3}) {
		t.Fatalf("polls %v, want a full read for u2 and an incremental one for the others", polls)
	}
	incrementalAt := t0.Add(2 * time.Second) // the full read emitted twice
	pages, subjects := e.changes()
	checkUserPages(t, pages, subjects, u2, contact, 4, []pageWant{
		{ids: ids("f", 2), full: true, readAt: t0},
		{ids: ids("g", 1), full: true, readAt: t0},
		{last: true, count: 3, full: true, readAt: t0},
	})
	checkUserPages(t, pages, subjects, u1, contact, 4, []pageWant{
		{ids: ids("a", 1), previous: 3, readAt: incrementalAt},
		{last: true, count: 2, previous: 3, readAt: incrementalAt},
	})
	checkUserPages(t, pages, subjects, u3, contact, 4, []pageWant{
		{previous: 3, readAt: incrementalAt},
		{last: true, count: 2, previous: 3, readAt: incrementalAt},
	})
	// The org's cursor goes on from the incremental read; the full read's is not kept.
	if got, _ := e.storedCursor(contact); got != (cursor{Value: "c2", Cycle: 4}) {
		t.Errorf("cursor %+v, want the incremental read's with the job's cycle", got)
	}
}

func TestPollFailures(t *testing.T) {
	kinds := []tandemv1.RecordKind{contact, event}
	for _, tc := range []struct {
		name      string
		err       error
		retryable bool
	}{
		{"request limit", &syncerr.Error{Code: syncerr.SalesforceRequestLimit, Delay: time.Hour}, true},
		{"unavailable", syncerr.New(syncerr.SalesforceUnavailable, "503"), true},
		{"credentials rejected", syncerr.New(syncerr.SalesforceAuthFailed, "invalid_grant"), false},
		{"field missing", syncerr.New(syncerr.SalesforceFieldMissing, "No such column 'Tandem_Sync_Key__c'"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, fc := newFakeEnv(t)
			ctx := t.Context()
			if err := e.st.PutCursor(ctx, cursorKey(testOrg, contact), `{"value":"c1","cycle":3}`); err != nil {
				t.Fatal(err)
			}
			fc.script(func(f *fakeConnector) {
				f.poll = func(salesforce.PollRequest) ([]emit, string, error) {
					// Pages may have gone out before the failure: the cursor must not move.
					return []emit{{user: u1, changes: upserts("a", 1)}}, "c2", tc.err
				}
			})
			err := e.w.handleJob(ctx, jobMessage(t, job(4, kinds, []string{u1, u2}, nil)))
			entries := e.errorReport("")
			if tc.retryable {
				se := syncerr.As(err)
				if err == nil || bus.IsPermanent(err) || se.Code != syncerr.As(tc.err).Code || se.RetryAfter() != syncerr.As(tc.err).Delay {
					t.Fatalf("handleJob = %v, want %v for the bus to retry", err, tc.err)
				}
				if len(entries) != 0 {
					t.Errorf("a retried poll was reported: %v", entries)
				}
			} else {
				if err != nil {
					t.Fatalf("handleJob = %v, want nil (reported, and the next cycle tries again)", err)
				}
				got := map[string]bool{}
				for _, en := range entries {
					if en.GetError().GetCode() != string(syncerr.As(tc.err).Code) {
						t.Errorf("entry %v", en)
					}
					got[en.GetUserId()+"/"+en.GetKind().String()] = true
				}
				want := map[string]bool{}
				for _, u := range []string{u1, u2} {
					for _, k := range kinds {
						want[u+"/"+k.String()] = true
					}
				}
				if !maps.Equal(got, want) {
					t.Errorf("error report for %v, want one entry per user and kind %v", got, want)
				}
			}
			if got, _ := e.storedCursor(contact); got != (cursor{Value: "c1", Cycle: 3}) {
				t.Errorf("cursor %+v after a failed poll, want it unchanged", got)
			}
			if u := e.usage(); u.GetTandemCalls() != 42 {
				t.Errorf("usage %v not stored after a failed poll", u)
			}
		})
	}
}

func TestMissingSalesforceConnection(t *testing.T) {
	e := newEnv(t, testConfig(), func(p *platform.Platform) ConnectorFactory { return RESTConnectors(p, "Tandem", true) })
	e.putOrg(&tandemv1.Org{OrgId: testOrg, Enabled: true})
	if err := e.w.handleJob(t.Context(), jobMessage(t, job(1, []tandemv1.RecordKind{contact}, []string{u1}, nil))); err != nil {
		t.Fatalf("handleJob = %v, want nil: a missing connection is reported, not retried", err)
	}
	entries := e.errorReport(u1)
	if len(entries) != 1 || entries[0].GetError().GetCode() != string(syncerr.SalesforceConfigMissing) {
		t.Errorf("error report %v", entries)
	}
}

func create(id, key string) *tandemv1.WriteCommand {
	return &tandemv1.WriteCommand{CommandId: id, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: key, Record: upserts(key, 1)[0].GetRecord()}
}

func TestApplyRunsOnlyCommandsInFlight(t *testing.T) {
	e, fc := newFakeEnv(t)
	ctx := t.Context()
	if err := e.st.PutUsers(ctx, testOrg, fc.users); err != nil {
		t.Fatal(err)
	}
	sf := tandemv1.System_SYSTEM_SALESFORCE
	e.putInFlight(u1, contact, sf, create("cmd1", "sk1"), create("cmd2-new", "sk2"), create("cmd5", "sk5"))
	e.putInFlight(u1, contact, tandemv1.System_SYSTEM_EXCHANGE, create("cmd4", "sk4"))
	batch := &tandemv1.WriteBatch{
		BatchId: "batch-1", OrgId: testOrg, UserId: u1, Target: sf, Kind: contact, Cycle: 8,
		Commands: []*tandemv1.WriteCommand{
			create("cmd1", "sk1"),     // in flight
			create("cmd2-old", "sk2"), // superseded
			create("cmd3", "sk3"),     // answered
			create("cmd4", "sk4"),     // in flight towards Exchange, not Salesforce
			create("cmd5", "sk5"),     // in flight
		},
	}
	if err := e.w.handleApply(ctx, platformtest.ApplyMessage(t, batch, 1)); err != nil {
		t.Fatal(err)
	}
	_, _, applied, opts := fc.state()
	if !slices.Equal(applied, []string{"cmd1", "cmd5"}) {
		t.Errorf("applied %v, want [cmd1 cmd5]", applied)
	}
	if !slices.Equal(opts, []int{0}) {
		t.Errorf("apply options %v; a first delivery is not a redelivery", opts)
	}
	if fc.actingAs[0] != u1 {
		t.Errorf("applied as %s, want the batch's user", fc.actingAs[0])
	}
	results, subjects := e.results()
	if len(results) != 1 {
		t.Fatalf("%d result batches, want 1", len(results))
	}
	rb := results[0]
	subject, _ := bus.ResultsSubject(testOrg, u1)
	if subjects[0] != subject || rb.GetBatchId() != "batch-1" || rb.GetTarget() != sf || rb.GetKind() != contact || rb.GetCycle() != 8 ||
		!rb.GetCompletedAt().AsTime().Equal(e.clock.Now()) {
		t.Errorf("results on %s: %v", subjects[0], rb)
	}
	var resultIDs []string
	for _, r := range rb.GetResults() {
		resultIDs = append(resultIDs, r.GetCommandId())
	}
	if !slices.Equal(resultIDs, []string{"cmd1", "cmd5"}) {
		t.Errorf("results for %v, want [cmd1 cmd5]", resultIDs)
	}
	if u := e.usage(); u.GetTandemCalls() != 42 {
		t.Errorf("usage %v not stored after writes", u)
	}

	t.Run("a redelivered batch says so", func(t *testing.T) {
		redelivered := proto.Clone(batch).(*tandemv1.WriteBatch)
		redelivered.BatchId = "batch-2"
		if err := e.w.handleApply(ctx, platformtest.ApplyMessage(t, redelivered, 3)); err != nil {
			t.Fatal(err)
		}
		if _, _, _, opts := fc.state(); !slices.Equal(opts, []int{0, 1}) {
			t.Errorf("apply options %v, want Redelivered on the second call", opts)
		}
	})

	t.Run("a batch with nothing in flight does nothing", func(t *testing.T) {
		e.results()
		stale := proto.Clone(batch).(*tandemv1.WriteBatch)
		stale.Commands = stale.Commands[1:4]
		if err := e.w.handleApply(ctx, platformtest.ApplyMessage(t, stale, 2)); err != nil {
			t.Fatal(err)
		}
		if _, _, _, opts := fc.state(); len(opts) != 2 {
			t.Errorf("the connector was called for a stale batch (%v)", opts)
		}
		if results, _ := e.results(); len(results) != 0 {
			t.Errorf("published %v", results)
		}
	})
}

func TestApplyFailures(t *testing.T) {
	cmd := &tandemv1.WriteCommand{CommandId: "cmd1", Op: tandemv1.WriteOp_WRITE_OP_DELETE, SyncKey: "sk1", TargetId: "003A"}
	for _, tc := range []struct {
		name      string
		setup     func(e *env, fc *fakeConnector)
		code      syncerr.Code
		retryable bool
	}{
		{
			name:  "user not in the directory",
			setup: func(e *env, _ *fakeConnector) { e.putUsers(user(u2)) },
			code:  syncerr.SyncUserNotInDirectory,
		},
		{
			name: "credentials rejected",
			setup: func(_ *env, fc *fakeConnector) {
				fc.applyErr = syncerr.New(syncerr.SalesforceAuthFailed, "invalid_grant")
			},
			code: syncerr.SalesforceAuthFailed,
		},
		{
			name:  "user inactive",
			setup: func(_ *env, fc *fakeConnector) { fc.applyErr = syncerr.New(syncerr.SalesforceUserInactive, "inactive") },
			code:  syncerr.SalesforceUserInactive,
		},
		{
			name: "unavailable",
			setup: func(_ *env, fc *fakeConnector) {
				fc.applyErr = &syncerr.Error{Code: syncerr.SalesforceUnavailable, Delay: time.Minute}
			},
			code:      syncerr.SalesforceUnavailable,
			retryable: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, fc := newFakeEnv(t)
			e.putUsers(fc.users...)
			e.putInFlight(u1, contact, tandemv1.System_SYSTEM_SALESFORCE, cmd)
			fc.script(func(f *fakeConnector) { tc.setup(e, f) })
			batch := &tandemv1.WriteBatch{BatchId: "b1", OrgId: testOrg, UserId: u1, Target: tandemv1.System_SYSTEM_SALESFORCE, Kind: contact, Commands: []*tandemv1.WriteCommand{cmd}}
			err := e.w.handleApply(t.Context(), platformtest.ApplyMessage(t, batch, 1))
			entries := e.errorReport(u1)
			if tc.retryable {
				if syncerr.As(err).Code != tc.code || bus.IsPermanent(err) {
					t.Fatalf("handleApply = %v, want %s for the bus to retry", err, tc.code)
				}
				if len(entries) != 0 {
					t.Errorf("a retried batch was reported: %v", entries)
				}
			} else {
				if err != nil {
					t.Fatalf("handleApply = %v, want nil (reported)", err)
				}
				if len(entries) != 1 || entries[0].GetError().GetCode() != string(tc.code) {
					t.Errorf("error report %v, want one %s entry", entries, tc.code)
				}
			}
			if results, _ := e.results(); len(results) != 0 {
				t.Errorf("published %v", results)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"valid", func(*Config) {}, true},
		{"no job concurrency", func(c *Config) { c.JobConcurrency = 0 }, false},
		{"no apply concurrency", func(c *Config) { c.ApplyConcurrency = 0 }, false},
		{"no directory refresh", func(c *Config) { c.DirectoryRefresh = 0 }, false},
		{"negative CDC refresh", func(c *Config) { c.CDC.Refresh = -time.Second }, false},
		{"negative CDC lease", func(c *Config) { c.CDC.LeaseTTL = -time.Second }, false},
		{"CDC lease under a second", func(c *Config) { c.CDC.LeaseTTL = time.Millisecond }, false},
		{"CDC lease of a minute", func(c *Config) { c.CDC.LeaseTTL = time.Minute }, true},
		{"negative full read group", func(c *Config) { c.FullReadGroup = -1 }, false},
		{"full read groups of one", func(c *Config) { c.FullReadGroup = 1 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.change(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestComponentsOverTheBus runs the worker's consumers against JetStream: a poll job is carried
// out and acked, and a write batch whose first attempt failed is redelivered by the bus and
// carried out as a redelivery.
func TestComponentsOverTheBus(t *testing.T) {
	e, fc := newFakeEnv(t)
	ctx := t.Context()
	fc.script(func(f *fakeConnector) {
		f.poll = func(salesforce.PollRequest) ([]emit, string, error) {
			return []emit{{user: u1, changes: upserts("a", 1), full: true}}, "c1", nil
		}
		f.applyErrOnce = &syncerr.Error{Code: syncerr.SalesforceUnavailable, Delay: 20 * time.Millisecond}
	})
	e.p.Run(t, "salesforce-worker", e.w.Components()...)

	subject, _ := bus.SalesforceJobSubject(testOrg, store.DefaultWorkerPool)
	if err := e.p.Bus.Publish(ctx, subject, job(1, []tandemv1.RecordKind{contact}, []string{u1}, []string{u1}), "job-1"); err != nil {
		t.Fatal(err)
	}
	var pages []*tandemv1.ChangeBatch
	poll.Until(t, "u1's last page", func() bool {
		got, _ := e.changes()
		pages = append(pages, got...)
		return len(pages) > 0 && pages[len(pages)-1].GetLast()
	})
	poll.Until(t, "the job to be acked", func() bool { return e.streamMsgs(bus.StreamJobs) == 0 })
	if len(pages) != 2 || pages[0].GetUserId() != u1 || !pages[0].GetFullSnapshot() {
		t.Errorf("pages %v", pages)
	}

	cmd := create("cmd1", "sk1")
	e.putInFlight(u1, contact, tandemv1.System_SYSTEM_SALESFORCE, cmd)
	batch := &tandemv1.WriteBatch{BatchId: "b1", OrgId: testOrg, UserId: u1, Target: tandemv1.System_SYSTEM_SALESFORCE, Kind: contact, Commands: []*tandemv1.WriteCommand{cmd}}
	applySubject, _ := bus.ApplySubject(testOrg, tandemv1.System_SYSTEM_SALESFORCE, store.DefaultWorkerPool, u1)
	if err := e.p.Bus.Publish(ctx, applySubject, batch, "b1"); err != nil {
		t.Fatal(err)
	}
	var results []*tandemv1.WriteResultBatch
	poll.Until(t, "the batch's results", func() bool {
		got, _ := e.results()
		results = append(results, got...)
		return len(results) > 0
	})
	poll.Until(t, "the batch to be acked", func() bool { return e.streamMsgs(bus.StreamApply) == 0 })
	if _, _, applied, opts := fc.state(); !slices.Equal(opts, []int{0, 1}) || !slices.Equal(applied, []string{"cmd1"}) {
		t.Errorf("apply calls with %v options, applied %v; want a failed first attempt, then a redelivered one", opts, applied)
	}
	if n := e.streamMsgs(bus.StreamDead); n != 0 {
		t.Errorf("%d dead letters", n)
	}
	if len(results[0].GetResults()) != 1 {
		t.Errorf("results %v", results)
	}
}

// A new org whose first cycle reads every user in full (they are all being reset) starts its
// polling from that read: the next cycle is incremental, not another full read.
func TestFirstFullReadStartsTheOrgCursor(t *testing.T) {
	e, fc := newFakeEnv(t)
	ctx := t.Context()
	fc.script(func(f *fakeConnector) {
		f.poll = func(req salesforce.PollRequest) ([]emit, string, error) {
			return []emit{{user: u1, full: true}}, "first-cursor", nil
		}
	})
	if err := e.w.handleJob(ctx, jobMessage(t, job(1, []tandemv1.RecordKind{contact}, []string{u1}, []string{u1}))); err != nil {
		t.Fatal(err)
	}
	raw, ok, err := e.st.GetCursor(ctx, cursorKey(testOrg, contact))
	if err != nil || !ok || raw != `{"value":"first-cursor","cycle":1}` {
		t.Fatalf("org cursor = %q %v %v, want the full read's cursor at cycle 1", raw, ok, err)
	}
}

// TestAnOrgPollsOneJobAtATime: two jobs of an org handled at once on a replica poll one after
// the other, the second from the cursor the first stored, rather than both from the same one
// (reading everything the first reads once more).
func TestAnOrgPollsOneJobAtATime(t *testing.T) {
	e, fc := newFakeEnv(t)
	ctx := t.Context()
	if err := e.st.PutCursor(ctx, cursorKey(testOrg, contact), `{"value":"c1","cycle":3}`); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var emits atomic.Int32
	fc.script(func(f *fakeConnector) {
		f.beforeEmit = func() {
			if emits.Add(1) == 1 {
				<-release // the first poll is under way while the second job is handled
			}
		}
		f.poll = func(req salesforce.PollRequest) ([]emit, string, error) {
			return []emit{{user: u1}, {user: u2}, {user: u3}}, req.Cursor + "+", nil
		}
	})
	errs := make(chan error, 2)
	go func() {
		errs <- e.w.handleJob(ctx, jobMessage(t, job(4, []tandemv1.RecordKind{contact}, []string{u1, u2, u3}, nil)))
	}()
	for emits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	go func() {
		errs <- e.w.handleJob(ctx, jobMessage(t, job(5, []tandemv1.RecordKind{contact}, []string{u1, u2, u3}, nil)))
	}()
	time.Sleep(50 * time.Millisecond) // time for the second job to start polling, were it not waiting
	if _, polls, _, _ := fc.state(); len(polls) != 1 {
		t.Errorf("%d polls under way at once, want the first only", len(polls))
	}
	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	_, polls, _, _ := fc.state()
	if len(polls) != 2 || polls[0].Cursor != "c1" || polls[1].Cursor != "c1+" {
		var cursors []string
		for _, p := range polls {
			cursors = append(cursors, p.Cursor)
		}
		t.Errorf("polls from cursors %q, want the second from where the first ended: [c1 c1+]", cursors)
	}
}
