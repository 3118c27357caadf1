package salesforce

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// repCreates returns n contact creates for rep i, each naming one of companies.
func repCreates(i, n int, companies ...string) []*tandemv1.WriteCommand {
	cmds := make([]*tandemv1.WriteCommand, n)
	for k := range cmds {
		c := &tandemv1.Contact{GivenName: fmt.Sprintf("Rep%d", i), Surname: fmt.Sprintf("Contact %d", k)}
		if len(companies) > 0 {
			c.CompanyName = companies[k%len(companies)]
		}
		cmds[k] = contactCreate(fmt.Sprintf("sk-%d-%03d", i, k), c)
	}
	return cmds
}

// TestSimApplyManySharesCalls: as the integration user, the creates of three reps (70 each) go
// into two upsert calls, not three, with one token and one Account lookup for all their
// companies; each contact is owned by its rep, and each result goes back to its rep's command.
func TestSimApplyManySharesCalls(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 3})
	acme, err := env.sim.Insert("Account", map[string]any{"Name": "Acme"}, "")
	if err != nil {
		t.Fatal(err)
	}
	globex, err := env.sim.Insert("Account", map[string]any{"Name": "Globex"}, "")
	if err != nil {
		t.Fatal(err)
	}
	accounts := map[string]string{"Acme": acme, "Globex": globex}
	batches := make([]UserCommands, len(env.users))
	for i, u := range env.users {
		batches[i] = UserCommands{User: u, Commands: repCreates(i, 70, "Acme", "Globex")}
	}
	env.sim.ResetCounts()
	out := env.conn.ApplyMany(t.Context(), contactKind, batches)
	if got := env.count(sfsim.EndpointCollectionsUpsert); got != 2 {
		t.Errorf("%d upsert calls for 3 reps' 70 creates, want 2", got)
	}
	if got := env.count(sfsim.EndpointQuery); got != 1 {
		t.Errorf("%d queries, want 1 Account lookup for every rep's companies", got)
	}
	if got := env.count(sfsim.EndpointToken); got != 1 {
		t.Errorf("%d token requests, want 1 (the integration user's)", got)
	}
	if got := env.apiCalls(); got != 3 {
		t.Errorf("%d API calls, want 3: %v", got, env.sim.Counts())
	}
	for i, u := range env.users {
		if out[i].Err != nil || len(out[i].Results) != 70 {
			t.Fatalf("rep %d: %d results, %v", i, len(out[i].Results), out[i].Err)
		}
		for k, r := range out[i].Results {
			cmd := batches[i].Commands[k]
			if !r.GetOk() || r.GetAlreadyApplied() || r.GetCommandId() != cmd.GetCommandId() || r.GetSyncKey() != cmd.GetSyncKey() ||
				r.GetRecord().GetOwnerId() != u.UserId || len(r.GetWarnings()) != 0 {
				t.Fatalf("rep %d result %d: %v", i, k, r)
			}
			stored, ok := env.sim.Get("Contact", r.GetRecord().GetId())
			company := cmd.GetRecord().GetContact().GetCompanyName()
			if !ok || stored["OwnerId"] != u.UserId || stored["CreatedById"] != env.integrationID || stored[SyncKeyField] != cmd.GetSyncKey() ||
				stored["AccountId"] != accounts[company] || r.GetRecord().GetContact().GetSalesforceAccountId() != accounts[company] {
				t.Fatalf("rep %d command %d stored as %v", i, k, stored)
			}
		}
	}
	env.checkStatements()
}

// TestSimApplyManyIsolatesRecordErrors: a record Salesforce rejects fails only its own result,
// whichever rep it belongs to, and the rest of every rep's commands keep today's outcomes in
// shared calls: creates, updates, deletes of deleted records (already applied), upserts that
// find their first attempt (already applied), truncation warnings.
func TestSimApplyManyIsolatesRecordErrors(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 3})
	a, b, c := env.users[0], env.users[1], env.users[2]
	insert := func(owner string, fields map[string]any) string {
		t.Helper()
		id, err := env.sim.Insert("Contact", fields, owner)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	bOwn := insert(b.UserId, map[string]any{"LastName": "B's"})
	cGone := insert(c.UserId, map[string]any{"LastName": "C's gone"})
	cGoneToo := insert(c.UserId, map[string]any{"LastName": "C's gone too"})
	for _, id := range []string{cGone, cGoneToo} {
		if err := env.sim.Delete("Contact", id); err != nil {
			t.Fatal(err)
		}
	}
	first := contactCreate("sk-b-first", &tandemv1.Contact{Surname: "Applied before"})
	if res, err := env.conn.Apply(t.Context(), b, contactKind, []*tandemv1.WriteCommand{first}); err != nil || !res[0].GetOk() {
		t.Fatalf("earlier create: %v %v", res, err)
	}
	longTitle := strings.Repeat("Senior ", 25)
	batches := []UserCommands{
		{User: a, Commands: []*tandemv1.WriteCommand{
			contactCreate("sk-a-ok", &tandemv1.Contact{Surname: "Fine"}),
			contactCreate("sk-a-nolast", &tandemv1.Contact{GivenName: "Only"}),
			contactCreate("sk-a-long", &tandemv1.Contact{Surname: "Wordy", JobTitle: longTitle}),
		}},
		{User: b, Commands: []*tandemv1.WriteCommand{
			contactUpdate(bOwn, &tandemv1.Contact{Department: "Ops"}, fDepartment),
			first,
			contactCreate("sk-b-bad-email", &tandemv1.Contact{Surname: "Mail", EmailAddress1: "not an email"}),
		}},
		{User: c, Commands: []*tandemv1.WriteCommand{
			contactUpdate(cGone, &tandemv1.Contact{Department: "Ops"}, fDepartment),
			contactDelete(cGoneToo),
			contactCreate("sk-c-ok", &tandemv1.Contact{Surname: "Also fine"}),
		}},
	}
	env.sim.ResetCounts()
	out := env.conn.ApplyMany(t.Context(), contactKind, batches)
	type want struct {
		ok       bool
		code     syncerr.Code
		already  bool
		warnings int
	}
	wants := [][]want{
		{{ok: true}, {code: syncerr.SalesforceRejected}, {ok: true, warnings: 1}},
		{{ok: true}, {ok: true, already: true}, {code: syncerr.SalesforceRejected}},
		{{code: syncerr.SalesforceEntityDeleted}, {ok: true, already: true}, {ok: true}},
	}
	for i, ws := range wants {
		if out[i].Err != nil {
			t.Fatalf("rep %d failed as a whole: %v", i, out[i].Err)
		}
		for k, w := range ws {
			r := out[i].Results[k]
			if r.GetOk() != w.ok || syncerr.Code(r.GetError().GetCode()) != w.code || r.GetAlreadyApplied() != w.already ||
				len(r.GetWarnings()) != w.warnings || r.GetCommandId() != batches[i].Commands[k].GetCommandId() {
				t.Errorf("rep %d command %d: %v; want %+v", i, k, r, w)
			}
		}
	}
	if got := env.count(sfsim.EndpointCollectionsUpsert) + env.count(sfsim.EndpointCollectionsUpdate) + env.count(sfsim.EndpointCollectionsDelete); got != 3 {
		t.Errorf("%d collections calls, want 3 (one upsert, one update, one delete for all reps): %v", got, env.sim.Counts())
	}
	if id := out[1].Results[1].GetRecord().GetId(); id == "" || out[0].Results[0].GetRecord().GetOwnerId() != a.UserId || out[2].Results[2].GetRecord().GetOwnerId() != c.UserId {
		t.Errorf("results not routed to their reps: %v %v", out[0].Results[0], out[2].Results[2])
	}
}

// TestSimApplyManyWholeCallError: a call that fails as a whole fails every rep with a command in
// it (or after it), and only them: a rep whose commands were all answered before keeps its
// results.
func TestSimApplyManyWholeCallError(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 3})
	a, b, c := env.users[0], env.users[1], env.users[2]
	bOwn, err := env.sim.Insert("Contact", map[string]any{"LastName": "B's"}, b.UserId)
	if err != nil {
		t.Fatal(err)
	}
	cOwn, err := env.sim.Insert("Contact", map[string]any{"LastName": "C's"}, c.UserId)
	if err != nil {
		t.Fatal(err)
	}
	env.sim.InjectFault(sfsim.Fault{Endpoint: sfsim.EndpointCollectionsUpdate, Kind: sfsim.FaultUnavailable, Times: sfsim.Always})
	out := env.conn.ApplyMany(t.Context(), contactKind, []UserCommands{
		{User: a, Commands: []*tandemv1.WriteCommand{contactCreate("sk-a", &tandemv1.Contact{Surname: "Created"})}},
		{User: b, Commands: []*tandemv1.WriteCommand{contactCreate("sk-b", &tandemv1.Contact{Surname: "Created"}),
			contactUpdate(bOwn, &tandemv1.Contact{Department: "Ops"}, fDepartment)}},
		{User: c, Commands: []*tandemv1.WriteCommand{contactDelete(cOwn)}},
	})
	if out[0].Err != nil || len(out[0].Results) != 1 || !out[0].Results[0].GetOk() {
		t.Errorf("rep a, answered before the failed call: %v %v", out[0].Results, out[0].Err)
	}
	if se := syncerr.As(out[1].Err); out[1].Err == nil || se.Code != syncerr.SalesforceUnavailable || !se.Retryable() || out[1].Results != nil {
		t.Errorf("rep b, with an update in the failed call: %v %v", out[1].Results, out[1].Err)
	}
	if se := syncerr.As(out[2].Err); out[2].Err == nil || se.Code != syncerr.SalesforceUnavailable || out[2].Results != nil {
		t.Errorf("rep c, with a delete after the failed call: %v %v", out[2].Results, out[2].Err)
	}
	if got := env.count(sfsim.EndpointCollectionsDelete); got != 0 {
		t.Errorf("%d delete calls after the update call failed, want 0", got)
	}
	if rec, _ := env.sim.Get("Contact", cOwn); rec["IsDeleted"] != false {
		t.Errorf("rep c's contact was deleted although the apply stopped: %v", rec)
	}
}

// TestSimApplyManyAsReps: under write_as REP each rep writes their own records with their own
// token, in calls of their own.
func TestSimApplyManyAsReps(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 3, writeAs: writeAsRep})
	batches := make([]UserCommands, len(env.users))
	for i, u := range env.users {
		batches[i] = UserCommands{User: u, Commands: repCreates(i, 5)}
	}
	if env.conn.SharesWrites() {
		t.Error("SharesWrites under write_as REP")
	}
	out := env.conn.ApplyMany(t.Context(), contactKind, batches)
	if got := env.count(sfsim.EndpointToken); got != 3 {
		t.Errorf("%d token requests, want 3: one per rep", got)
	}
	if got := env.count(sfsim.EndpointCollectionsUpsert); got != 3 {
		t.Errorf("%d upsert calls, want 3: one per rep", got)
	}
	for i, u := range env.users {
		if out[i].Err != nil {
			t.Fatalf("rep %d: %v", i, out[i].Err)
		}
		for k, r := range out[i].Results {
			stored, _ := env.sim.Get("Contact", r.GetRecord().GetId())
			if !r.GetOk() || r.GetCommandId() != batches[i].Commands[k].GetCommandId() || stored["OwnerId"] != u.UserId || stored["CreatedById"] != u.UserId {
				t.Fatalf("rep %d result %d: %v stored as %v", i, k, r, stored)
			}
		}
	}
	// A rep without a username cannot be acted as; the others are written all the same.
	nameless := &tandemv1.SyncUser{UserId: env.users[0].UserId}
	out = env.conn.ApplyMany(t.Context(), contactKind, []UserCommands{
		{User: nameless, Commands: repCreates(9, 1)},
		{User: env.users[1], Commands: repCreates(8, 1)},
	})
	if syncerr.As(out[0].Err).Code != syncerr.SyncUserNotInDirectory || out[1].Err != nil || !out[1].Results[0].GetOk() {
		t.Errorf("a rep without a username next to one with: %v / %v %v", out[0].Err, out[1].Results, out[1].Err)
	}
}

// TestSimApplyManyRedelivered: the recycle-bin lookup covers the redelivered reps' creates only,
// with one queryAll for all of them; a rep not redelivered is written as today.
func TestSimApplyManyRedelivered(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 3})
	cmds := make([]*tandemv1.WriteCommand, len(env.users))
	deleted := make([]string, len(env.users))
	for i, u := range env.users {
		cmds[i] = contactCreate(fmt.Sprintf("sk-redelivered-%d", i), &tandemv1.Contact{Surname: "Hopper"})
		cmds[i].IssuedAt = timestamppb.New(env.clock.Now().Add(-time.Second))
		res, err := env.conn.Apply(t.Context(), u, contactKind, []*tandemv1.WriteCommand{cmds[i]})
		if err != nil || !res[0].GetOk() {
			t.Fatalf("earlier attempt: %v %v", res, err)
		}
		deleted[i] = res[0].GetRecord().GetId()
		if err := env.sim.Delete("Contact", deleted[i]); err != nil {
			t.Fatal(err)
		}
	}
	env.sim.ResetCounts()
	out := env.conn.ApplyMany(t.Context(), contactKind, []UserCommands{
		{User: env.users[0], Commands: cmds[0:1], Redelivered: true},
		{User: env.users[1], Commands: cmds[1:2]},
		{User: env.users[2], Commands: cmds[2:3], Redelivered: true},
	})
	for i := range out {
		if out[i].Err != nil {
			t.Fatalf("rep %d: %v", i, out[i].Err)
		}
	}
	checkDeletedResult(t, out[0].Results[0], cmds[0], deleted[0])
	checkDeletedResult(t, out[2].Results[0], cmds[2], deleted[2])
	if r := out[1].Results[0]; !r.GetOk() || r.GetAlreadyApplied() || r.GetRecord().GetId() == deleted[1] {
		t.Errorf("the rep not redelivered: %v, want a new record as today", r)
	}
	if got := env.count(sfsim.EndpointQueryAll); got != 1 {
		t.Errorf("%d queryAll calls, want 1 for both redelivered reps", got)
	}
	if got := env.count(sfsim.EndpointCollectionsUpsert); got != 1 {
		t.Errorf("%d upsert calls, want 1 (the rep not redelivered)", got)
	}
	env.checkStatements()
}

// TestSimApplyManyEventInvitees: events of several reps written together get their invitees in
// shared calls, and no rep becomes an invitee of their own event.
func TestSimApplyManyEventInvitees(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 3})
	a, b, c := env.users[0], env.users[1], env.users[2]
	start := env.clock.Now().Add(24 * time.Hour).Truncate(time.Hour)
	meeting := func(key string, attendees ...*tandemv1.SyncUser) *tandemv1.WriteCommand {
		ev := &tandemv1.Event{Subject: "Review " + key, Start: timestampOf(start), End: timestampOf(start.Add(time.Hour))}
		for _, u := range attendees {
			ev.Attendees = append(ev.Attendees, &tandemv1.Attendee{Email: u.Email})
		}
		return &tandemv1.WriteCommand{CommandId: key, Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: key,
			Record: &tandemv1.Record{Body: &tandemv1.Record_Event{Event: ev}}}
	}
	env.sim.ResetCounts()
	out := env.conn.ApplyMany(t.Context(), eventKind, []UserCommands{
		{User: a, Commands: []*tandemv1.WriteCommand{meeting("sk-a", a, b)}},
		{User: b, Commands: []*tandemv1.WriteCommand{meeting("sk-b", a, b, c)}},
	})
	want := map[string][]string{"sk-a": {b.UserId}, "sk-b": {a.UserId, c.UserId}}
	for i, o := range out {
		if o.Err != nil || !o.Results[0].GetOk() || len(o.Results[0].GetWarnings()) != 0 {
			t.Fatalf("rep %d: %v %v", i, o.Results, o.Err)
		}
		r := o.Results[0]
		ev, _ := env.sim.Get("Event", r.GetRecord().GetId())
		if ev["OwnerId"] != []string{a.UserId, b.UserId}[i] {
			t.Errorf("event %s owned by %v", r.GetSyncKey(), ev["OwnerId"])
		}
		var got []string
		for _, rel := range env.sim.List("EventRelation") {
			if rel["EventId"] == r.GetRecord().GetId() {
				got = append(got, rel["RelationId"].(string))
			}
		}
		if strings.Join(sortedCopy(got), ",") != strings.Join(sortedCopy(want[r.GetSyncKey()]), ",") {
			t.Errorf("event %s invitees %v, want %v", r.GetSyncKey(), got, want[r.GetSyncKey()])
		}
	}
	if got := env.count(sfsim.EndpointCollectionsCreate); got != 1 {
		t.Errorf("%d EventRelation create calls, want 1 for both reps' events", got)
	}
	env.checkStatements()
}

// TestSimIntegrationUserWithoutAccess: an integration user that may not write the reps' records
// (no Modify All, private sharing) gets each refused record's error, with a message that says
// what to do; under write_as REP the reps write their own records.
func TestSimIntegrationUserWithoutAccess(t *testing.T) {
	for _, writeAs := range []tandemv1.SalesforceWriteIdentity{writeAsIntegration, writeAsRep} {
		t.Run(writeAs.String(), func(t *testing.T) {
			env := newSimEnv(t, simOptions{users: 2, writeAs: writeAs, sfsim: func(c *sfsim.Config) { c.PrivateSharing = true }})
			a, b := env.users[0], env.users[1]
			bOwn, err := env.sim.Insert("Contact", map[string]any{"LastName": "B's"}, b.UserId)
			if err != nil {
				t.Fatal(err)
			}
			out := env.conn.ApplyMany(t.Context(), contactKind, []UserCommands{
				{User: a, Commands: []*tandemv1.WriteCommand{contactCreate("sk-a", &tandemv1.Contact{Surname: "New"})}},
				{User: b, Commands: []*tandemv1.WriteCommand{contactUpdate(bOwn, &tandemv1.Contact{Department: "Ops"}, fDepartment)}},
			})
			for i, o := range out {
				if o.Err != nil {
					t.Fatalf("rep %d failed as a whole: %v", i, o.Err)
				}
				r := o.Results[0]
				if writeAs == writeAsRep {
					if !r.GetOk() {
						t.Errorf("rep %d writing their own record: %v", i, r)
					}
					continue
				}
				e := r.GetError()
				if r.GetOk() || syncerr.Code(e.GetCode()) != syncerr.SalesforceInsufficientAccess || !strings.HasPrefix(e.GetUpstreamCode(), "INSUFFICIENT_ACCESS") {
					t.Fatalf("rep %d: %v, want SALESFORCE_INSUFFICIENT_ACCESS", i, r)
				}
				for _, s := range []string{"integration user", "Modify All", "write_as to REP"} {
					if !strings.Contains(e.GetMessage(), s) {
						t.Errorf("rep %d: message %q does not mention %q", i, e.GetMessage(), s)
					}
				}
				if !strings.Contains(e.GetSuggestion(), "write_as") {
					t.Errorf("rep %d: suggestion %q does not mention write_as", i, e.GetSuggestion())
				}
			}
		})
	}
}
