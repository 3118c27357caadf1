package api_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func contact(id, first, last, email string) *tandemv1.Record {
	return &tandemv1.Record{Id: id, Body: &tandemv1.Record_Contact{Contact: &tandemv1.Contact{
		GivenName: first, Surname: last, EmailAddress1: email,
	}}}
}

// readSide hands the engine one side's complete read of a cycle, as a worker's single change
// batch would.
func (e *env) readSide(t *testing.T, userID string, side tandemv1.System, cycle uint64, records ...*tandemv1.Record) {
	t.Helper()
	b := &tandemv1.ChangeBatch{
		OrgId: testOrg, UserId: userID, Source: side, Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT,
		Cycle: cycle, Page: 0, Last: true, PageCount: 1, FullSnapshot: true, ReadAt: timestamppb.New(time.Now()),
	}
	for _, r := range records {
		b.Changes = append(b.Changes, &tandemv1.Change{Type: tandemv1.ChangeType_CHANGE_TYPE_UPSERT, Record: r})
	}
	platformtest.ClaimCycles(t, e.st, testOrg, cycle)
	if err := e.syncer.HandleChanges(t.Context(), b); err != nil {
		t.Fatalf("HandleChanges: %v", err)
	}
}

func TestPlanUserSync(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	e.putUsers(t, activeUser(user1, "rep1@acme.example"), activeUser(user2, "rep2@acme.example"))
	if _, err := e.st.PutConfiguration(ctx, testOrg, contactsBothWays(user1, user2)); err != nil {
		t.Fatal(err)
	}
	uk := store.UserKey{OrgID: testOrg, UserID: user1}

	// Cycle 1: both sides empty, reconciled. Cycle 2: Exchange has a new contact, and
	// Salesforce has not reported yet, so nothing is reconciled or sent.
	e.readSide(t, user1, tandemv1.System_SYSTEM_EXCHANGE, 1)
	e.readSide(t, user1, tandemv1.System_SYSTEM_SALESFORCE, 1)
	e.readSide(t, user1, tandemv1.System_SYSTEM_EXCHANGE, 2, contact("AAMkAda", "Ada", "Lovelace", "ada@example.com"))
	e.putHold(t, uk, tandemv1.RecordKind_RECORD_KIND_EVENT, "hold-events")
	sent := e.pub.count()
	before, err := ledger.New(e.st).Load(ctx, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	if err != nil {
		t.Fatal(err)
	}
	if before.Cycle.Reconciled != 1 || len(before.Exchange) != 1 {
		t.Fatalf("seeded ledger: reconciled %d, %d Exchange records; want 1, 1", before.Cycle.Reconciled, len(before.Exchange))
	}

	for _, tc := range []struct {
		name string
		req  *tandemv1.PlanUserSyncRequest
	}{
		{"by id", &tandemv1.PlanUserSyncRequest{OrgId: testOrg, UserId: user1}},
		{"by email", &tandemv1.PlanUserSyncRequest{OrgId: testOrg, Email: "REP1@acme.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := e.statusC.PlanUserSync(ctx, tc.req)
			if err != nil {
				t.Fatalf("PlanUserSync: %v", err)
			}
			if len(plan.GetWrites()) != 1 {
				t.Fatalf("writes = %v, want one create", plan.GetWrites())
			}
			w := plan.GetWrites()[0]
			if w.GetOp() != tandemv1.WriteOp_WRITE_OP_CREATE || w.GetTarget() != tandemv1.System_SYSTEM_SALESFORCE ||
				w.GetKind() != tandemv1.RecordKind_RECORD_KIND_CONTACT || w.GetSourceId() != "AAMkAda" || w.GetSyncKey() == "" {
				t.Fatalf("write = %v, want a create of AAMkAda in Salesforce", w)
			}
			if len(plan.GetHeld()) != 1 || plan.GetHeld()[0].GetHoldId() != "hold-events" {
				t.Fatalf("held = %v, want the events hold", plan.GetHeld())
			}
		})
	}

	// A dry run: nothing sent, the ledger unchanged.
	if e.pub.count() != sent {
		t.Fatalf("planning published %d messages", e.pub.count()-sent)
	}
	after, err := ledger.New(e.st).Load(ctx, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Pending) != len(before.Pending) || len(after.Mappings) != len(before.Mappings) || after.Cycle.Reconciled != before.Cycle.Reconciled {
		t.Fatalf("planning changed the ledger: pending %d→%d, mappings %d→%d, reconciled %d→%d",
			len(before.Pending), len(after.Pending), len(before.Mappings), len(after.Mappings), before.Cycle.Reconciled, after.Cycle.Reconciled)
	}

	// A user with nothing observed plans nothing.
	plan, err := e.statusC.PlanUserSync(ctx, &tandemv1.PlanUserSyncRequest{OrgId: testOrg, UserId: user2})
	if err != nil {
		t.Fatalf("PlanUserSync of an idle user: %v", err)
	}
	if !proto.Equal(plan, &tandemv1.PlanUserSyncResponse{}) {
		t.Fatalf("plan of an idle user = %v, want empty", plan)
	}

	for _, tc := range []struct {
		name string
		req  *tandemv1.PlanUserSyncRequest
		want codes.Code
	}{
		{"no org id", &tandemv1.PlanUserSyncRequest{UserId: user1}, codes.InvalidArgument},
		{"neither id nor email", &tandemv1.PlanUserSyncRequest{OrgId: testOrg}, codes.InvalidArgument},
		{"invalid org id", &tandemv1.PlanUserSyncRequest{OrgId: "a.b", UserId: user1}, codes.InvalidArgument},
		{"unknown user", &tandemv1.PlanUserSyncRequest{OrgId: testOrg, UserId: user3}, codes.NotFound},
		{"unknown email", &tandemv1.PlanUserSyncRequest{OrgId: testOrg, Email: "nobody@acme.example"}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.statusC.PlanUserSync(ctx, tc.req)
			wantCode(t, err, tc.want)
		})
	}
}
