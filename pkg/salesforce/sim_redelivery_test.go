package salesforce

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"google.golang.org/protobuf/proto"

	"github.com/tandem-sync/tandem/pkg/sim/sfsim"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// checkDeletedResult asserts that r reports a create not sent again because the record its
// earlier attempt created, deletedID, has been deleted since.
func checkDeletedResult(t *testing.T, r *tandemv1.WriteResult, cmd *tandemv1.WriteCommand, deletedID string) {
	t.Helper()
	e := r.GetError()
	if r.GetOk() || r.GetAlreadyApplied() || syncerr.Code(e.GetCode()) != syncerr.SalesforceEntityDeleted {
		t.Fatalf("result %v, want SALESFORCE_ENTITY_DELETED", r)
	}
	if !proto.Equal(r.GetRecord(), &tandemv1.Record{Id: deletedID}) {
		t.Errorf("result record %v, want only the deleted record's id %s", r.GetRecord(), deletedID)
	}
	if r.GetCommandId() != cmd.GetCommandId() || r.GetSyncKey() != cmd.GetSyncKey() || r.GetOp() != tandemv1.WriteOp_WRITE_OP_CREATE {
		t.Errorf("result %v does not name its command %v", r, cmd)
	}
	if e.GetRecordId() != deletedID || e.GetRetryable() || e.GetSuggestion() == "" || e.GetSystem() != tandemv1.System_SYSTEM_SALESFORCE ||
		!strings.Contains(e.GetMessage(), "created by an earlier attempt") || !strings.Contains(e.GetMessage(), "deleted since") {
		t.Errorf("error %v", e)
	}
}

func TestSimRedeliveredCreateOfDeletedRecord(t *testing.T) {
	tests := []struct {
		name string
		// history is what happened before the command is applied (again): "create" applies
		// it, "delete" deletes the record it created last, as the user, "advance" lets time pass.
		history     []string
		redelivered bool
		// retry marks the command as a create planned again after its first attempt went
		// unanswered (WriteCommand.retry): looked up like a redelivered one.
		retry bool
		// issuedAfter issues the command after the history (an earlier incarnation of the pair
		// was deleted before this create was decided); otherwise it was issued before it.
		issuedAfter bool
		// want is the outcome: "deleted" (not sent; the id of the record created last),
		// "already" (the upsert found the record created last), "created" (a new record).
		want         string
		wantQueryAll int64
		wantUpserts  int64
		wantLive     int
	}{
		{name: "deleted since, redelivered", history: []string{"create", "delete"}, redelivered: true,
			want: "deleted", wantQueryAll: 1, wantUpserts: 0, wantLive: 0},
		{name: "deleted since, not redelivered", history: []string{"create", "delete"},
			want: "created", wantQueryAll: 0, wantUpserts: 1, wantLive: 1},
		{name: "deleted since, planned again", history: []string{"create", "delete"}, retry: true,
			want: "deleted", wantQueryAll: 1, wantUpserts: 0, wantLive: 0},
		{name: "live, planned again", history: []string{"create"}, retry: true,
			want: "already", wantQueryAll: 1, wantUpserts: 1, wantLive: 1},
		{name: "live, redelivered", history: []string{"create"}, redelivered: true,
			want: "already", wantQueryAll: 1, wantUpserts: 1, wantLive: 1},
		{name: "live, not redelivered", history: []string{"create"},
			want: "already", wantQueryAll: 0, wantUpserts: 1, wantLive: 1},
		{name: "never applied, redelivered", redelivered: true,
			want: "created", wantQueryAll: 1, wantUpserts: 1, wantLive: 1},
		{name: "deleted, created again, redelivered", history: []string{"create", "delete", "advance", "create"}, redelivered: true,
			want: "already", wantQueryAll: 1, wantUpserts: 1, wantLive: 1},
		{name: "deleted twice, redelivered", history: []string{"create", "delete", "advance", "create", "advance", "delete"}, redelivered: true,
			want: "deleted", wantQueryAll: 1, wantUpserts: 0, wantLive: 0},
		{name: "earlier incarnation deleted before the command was issued, redelivered", history: []string{"create", "delete", "advance", "advance", "advance"},
			redelivered: true, issuedAfter: true, want: "created", wantQueryAll: 1, wantUpserts: 1, wantLive: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newSimEnv(t, simOptions{users: 1})
			rep := env.users[0]
			cmd := contactCreate("sk-redelivered", &tandemv1.Contact{GivenName: "Grace", Surname: "Hopper"})
			cmd.IssuedAt = timestamppb.New(env.clock.Now().Add(-time.Second))
			var last string // the id of the record created last
			for _, step := range tt.history {
				switch step {
				case "create":
					res, err := env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{cmd})
					if err != nil || !res[0].GetOk() || res[0].GetAlreadyApplied() {
						t.Fatalf("earlier attempt: %v %v", res, err)
					}
					last = res[0].GetRecord().GetId()
				case "delete":
					if err := env.sim.Delete("Contact", last); err != nil {
						t.Fatal(err)
					}
				case "advance":
					env.clock.Advance(time.Minute)
				}
			}
			if tt.issuedAfter {
				cmd.IssuedAt = timestamppb.New(env.clock.Now())
			}
			cmd.Retry = tt.retry
			env.sim.ResetCounts()
			var opts []ApplyOption
			if tt.redelivered {
				opts = append(opts, Redelivered())
			}
			res, err := env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{cmd}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			r := res[0]
			switch tt.want {
			case "deleted":
				checkDeletedResult(t, r, cmd, last)
			case "already":
				if !r.GetOk() || !r.GetAlreadyApplied() || r.GetRecord().GetId() != last {
					t.Errorf("result %v, want already applied to %s", r, last)
				}
			case "created":
				if !r.GetOk() || r.GetAlreadyApplied() || r.GetRecord().GetId() == "" || r.GetRecord().GetId() == last {
					t.Errorf("result %v, want a new record", r)
				}
			}
			if got := env.count(sfsim.EndpointQueryAll); got != tt.wantQueryAll {
				t.Errorf("%d queryAll calls, want %d", got, tt.wantQueryAll)
			}
			if got := env.count(sfsim.EndpointCollectionsUpsert); got != tt.wantUpserts {
				t.Errorf("%d upsert calls, want %d", got, tt.wantUpserts)
			}
			if got, want := env.apiCalls(), tt.wantQueryAll+tt.wantUpserts; got != want {
				t.Errorf("%d API calls, want %d: %v", got, want, env.sim.Counts())
			}
			if got := len(env.sim.List("Contact")); got != tt.wantLive {
				t.Errorf("%d live contacts, want %d", got, tt.wantLive)
			}
			if tt.want == "deleted" {
				if rec, ok := env.sim.Get("Contact", last); !ok || rec["IsDeleted"] != true {
					t.Errorf("the deleted contact is no longer in the recycle bin: %v", rec)
				}
			}
			env.checkStatements()
		})
	}
}

// A redelivered batch larger than one lookup: one queryAll per 200 keys, only the creates of
// deleted records held back, everything else written as usual.
func TestSimRedeliveredBatchLooksUpKeysInChunks(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 1})
	rep := env.users[0]
	var cmds []*tandemv1.WriteCommand
	for i := range 450 {
		cmds = append(cmds, contactCreate(fmt.Sprintf("sk-%03d", i), &tandemv1.Contact{Surname: fmt.Sprintf("Number %d", i)}))
	}
	first, err := env.conn.Apply(t.Context(), rep, contactKind, cmds)
	if err != nil {
		t.Fatal(err)
	}
	deleted := map[int]string{}
	for i := 0; i < len(cmds); i += 3 {
		if !first[i].GetOk() {
			t.Fatalf("first attempt %d: %v", i, first[i])
		}
		deleted[i] = first[i].GetRecord().GetId()
		if err := env.sim.Delete("Contact", deleted[i]); err != nil {
			t.Fatal(err)
		}
	}
	updated := first[1].GetRecord().GetId()
	batch := append([]*tandemv1.WriteCommand(nil), cmds...)
	for i := range 50 {
		batch = append(batch, contactCreate(fmt.Sprintf("sk-new-%02d", i), &tandemv1.Contact{Surname: "New"}))
	}
	// The same deleted create twice in one batch is held back twice.
	batch = append(batch, cmds[0], contactUpdate(updated, &tandemv1.Contact{Department: "Ops"}, fDepartment))

	env.sim.ResetCounts()
	res, err := env.conn.Apply(t.Context(), rep, contactKind, batch, Redelivered())
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		switch {
		case i < len(cmds) && deleted[i] != "":
			checkDeletedResult(t, r, batch[i], deleted[i])
		case i < len(cmds):
			if !r.GetOk() || !r.GetAlreadyApplied() || r.GetRecord().GetId() != first[i].GetRecord().GetId() {
				t.Fatalf("live create %d: %v", i, r)
			}
		case i < len(cmds)+50:
			if !r.GetOk() || r.GetAlreadyApplied() || r.GetRecord().GetId() == "" {
				t.Fatalf("new create %d: %v", i, r)
			}
		case i == len(batch)-2:
			checkDeletedResult(t, r, batch[i], deleted[0])
		default:
			if !r.GetOk() || r.GetRecord().GetId() != updated {
				t.Fatalf("update: %v", r)
			}
		}
	}
	// 501 creates of 500 distinct keys: three lookups; 350 upserts: two calls; one update.
	want := map[string]int64{sfsim.EndpointQueryAll: 3, sfsim.EndpointCollectionsUpsert: 2, sfsim.EndpointCollectionsUpdate: 1}
	for endpoint, n := range want {
		if got := env.count(endpoint); got != n {
			t.Errorf("%d %s calls, want %d: %v", got, endpoint, n, env.sim.Counts())
		}
	}
	if got := env.apiCalls(); got != 6 {
		t.Errorf("%d API calls, want 6: %v", got, env.sim.Counts())
	}
	if got, want := len(env.sim.List("Contact")), 450-len(deleted)+50; got != want {
		t.Errorf("%d live contacts, want %d", got, want)
	}
	if rec, _ := env.sim.Get("Contact", updated); rec["Department"] != "Ops" {
		t.Errorf("updated contact %v", rec)
	}
	env.checkStatements()
}

// A held-back event create sets no invitees either.
func TestSimRedeliveredEventOfDeletedRecord(t *testing.T) {
	env := newSimEnv(t, simOptions{users: 2})
	rep, colleague := env.users[0], env.users[1]
	start := env.clock.Now().Add(24 * time.Hour).Truncate(time.Hour)
	cmd := &tandemv1.WriteCommand{CommandId: "meeting", Op: tandemv1.WriteOp_WRITE_OP_CREATE, SyncKey: "sk-meeting",
		Record: &tandemv1.Record{Body: &tandemv1.Record_Event{Event: &tandemv1.Event{
			Subject: "Review", Start: timestampOf(start), End: timestampOf(start.Add(time.Hour)),
			Attendees: []*tandemv1.Attendee{{Email: colleague.Email}}}}}}
	first, err := env.conn.Apply(t.Context(), rep, eventKind, []*tandemv1.WriteCommand{cmd})
	if err != nil || !first[0].GetOk() {
		t.Fatalf("first attempt: %v %v", first, err)
	}
	id := first[0].GetRecord().GetId()
	if err := env.sim.Delete("Event", id); err != nil {
		t.Fatal(err)
	}
	env.sim.ResetCounts()
	res, err := env.conn.Apply(t.Context(), rep, eventKind, []*tandemv1.WriteCommand{cmd}, Redelivered())
	if err != nil {
		t.Fatal(err)
	}
	checkDeletedResult(t, res[0], cmd, id)
	if got := env.apiCalls(); got != 1 || env.count(sfsim.EndpointQueryAll) != 1 {
		t.Errorf("%d API calls, want the lookup only: %v", got, env.sim.Counts())
	}
	if got := len(env.sim.List("Event")); got != 0 {
		t.Errorf("%d live events, want 0", got)
	}
	env.checkStatements()
}

// TestSimUpdateOfADeletedRecord: an update whose record is in the recycle bin fails as deleted.
// If the deleted record holds what the update sends (an earlier attempt took effect, its result
// was lost, then the rep deleted the record), the result says so (already_applied) and carries
// the record as the update left it; otherwise it is a plain failure. The recycle bin is looked
// up only on this failure path.
func TestSimUpdateOfADeletedRecord(t *testing.T) {
	for _, tc := range []struct {
		name    string
		applied bool
	}{{"applied before the delete", true}, {"not applied before the delete", false}} {
		t.Run(tc.name, func(t *testing.T) {
			env := newSimEnv(t, simOptions{users: 1})
			rep := env.users[0]
			res, err := env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{
				contactCreate("sk-upd", &tandemv1.Contact{GivenName: "Grace", Surname: "Hopper", Department: "Navy"})})
			if err != nil || !res[0].GetOk() {
				t.Fatalf("create: %v %v", res, err)
			}
			id := res[0].GetRecord().GetId()
			upd := contactUpdate(id, &tandemv1.Contact{GivenName: "Grace", Surname: "Hopper", Department: "R&D"}, "department")
			upd.SyncKey = "sk-upd"
			if tc.applied {
				if res, err := env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{upd}); err != nil || !res[0].GetOk() {
					t.Fatalf("first attempt: %v %v", res, err)
				}
			}
			if err := env.sim.Delete("Contact", id); err != nil {
				t.Fatal(err)
			}
			env.sim.ResetCounts()
			res, err = env.conn.Apply(t.Context(), rep, contactKind, []*tandemv1.WriteCommand{upd}, Redelivered())
			if err != nil {
				t.Fatal(err)
			}
			r := res[0]
			if r.GetOk() || syncerr.Code(r.GetError().GetCode()) != syncerr.SalesforceEntityDeleted {
				t.Fatalf("result %v, want SALESFORCE_ENTITY_DELETED", r)
			}
			if r.GetAlreadyApplied() != tc.applied {
				t.Fatalf("already_applied = %v, want %v", r.GetAlreadyApplied(), tc.applied)
			}
			if tc.applied && (r.GetRecord().GetId() != id || r.GetRecord().GetContact().GetDepartment() != "R&D") {
				t.Errorf("result record %v, want %s as the update left it", r.GetRecord(), id)
			}
			if got := env.count(sfsim.EndpointQueryAll); got != 1 {
				t.Errorf("%d queryAll calls, want 1", got)
			}
			env.checkStatements()
		})
	}
}
