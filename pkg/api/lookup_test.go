package api_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// wantInvalid fails the test unless err is InvalidArgument naming field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	wantCode(t, err, codes.InvalidArgument)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, field) {
		t.Fatalf("error %q does not name the field %s", msg, field)
	}
}

// Every call that takes a user takes it by email as well as by id.
func TestUserByEmail(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	e.putUsers(t, activeUser(user1, "Rep1@Acme.example"), activeUser(user2, "rep2@acme.example"))
	uk1 := store.UserKey{OrgID: testOrg, UserID: user1}

	t.Run("ResetUserSync", func(t *testing.T) {
		e.claimFarAhead(t)
		resp, err := e.adminC.ResetUserSync(ctx, &tandemv1.ResetUserSyncRequest{OrgId: testOrg, Email: "rep1@ACME.example"})
		if err != nil || resp.GetResetStatus() != tandemv1.ResetStatus_RESET_STATUS_MARKED_FOR_RESET {
			t.Fatalf("ResetUserSync by email = %v, %v", resp, err)
		}
		if rs, err := e.st.ResetStatus(ctx, uk1); err != nil || rs != tandemv1.ResetStatus_RESET_STATUS_MARKED_FOR_RESET {
			t.Fatalf("reset status of %s = %s, %v", user1, rs, err)
		}
		if rs, _ := e.st.ResetStatus(ctx, store.UserKey{OrgID: testOrg, UserID: user2}); rs != tandemv1.ResetStatus_RESET_STATUS_UNSPECIFIED {
			t.Fatalf("%s was marked too: %s", user2, rs)
		}
		e.wantDueNow(t)
	})

	t.Run("ResumeUserSync", func(t *testing.T) {
		e.claimFarAhead(t)
		resp, err := e.adminC.ResumeUserSync(ctx, &tandemv1.ResumeUserSyncRequest{OrgId: testOrg, Email: "rep2@acme.example"})
		if err != nil || resp.GetStatus().GetUserId() != user2 || resp.GetStatus().GetEmail() != "rep2@acme.example" || resp.GetStatus().GetResumedAt() == nil {
			t.Fatalf("ResumeUserSync by email = %v, %v", resp, err)
		}
		e.wantDueNow(t)
	})

	t.Run("ResolveHeldDeletes", func(t *testing.T) {
		e.putHold(t, uk1, tandemv1.RecordKind_RECORD_KIND_CONTACT, "hold-contacts")
		if _, err := e.adminC.ResolveHeldDeletes(ctx, &tandemv1.ResolveHeldDeletesRequest{
			OrgId: testOrg, Email: "REP1@acme.example", HoldId: "hold-contacts", Decision: tandemv1.HeldDeletesDecision_HELD_DELETES_DECISION_APPROVE,
		}); err != nil {
			t.Fatalf("ResolveHeldDeletes by email: %v", err)
		}
		snap, err := ledger.New(e.st).Load(ctx, uk1, tandemv1.RecordKind_RECORD_KIND_CONTACT)
		if err != nil || snap.Decisions["hold-contacts"] != "approve" {
			t.Fatalf("decision = %v, %v; want approve", snap.Decisions, err)
		}
		// The hold is user1's: named by user2's email, it is not found.
		_, err = e.adminC.ResolveHeldDeletes(ctx, &tandemv1.ResolveHeldDeletesRequest{
			OrgId: testOrg, Email: "rep2@acme.example", HoldId: "hold-contacts", Decision: tandemv1.HeldDeletesDecision_HELD_DELETES_DECISION_REJECT,
		})
		wantCode(t, err, codes.NotFound)
	})

	t.Run("ListSyncErrors", func(t *testing.T) {
		for _, u := range []string{user1, user2, ""} {
			if _, err := e.st.RecordError(ctx, testOrg, u, tandemv1.RecordKind_RECORD_KIND_CONTACT,
				&tandemv1.SyncError{Code: "EXCHANGE_SERVER_BUSY", Message: "busy"}); err != nil {
				t.Fatal(err)
			}
		}
		users := func(req *tandemv1.ListSyncErrorsRequest) []string {
			t.Helper()
			resp, err := e.statusC.ListSyncErrors(ctx, req)
			if err != nil {
				t.Fatalf("ListSyncErrors(%v): %v", req, err)
			}
			var out []string
			for _, en := range resp.GetEntries() {
				out = append(out, en.GetUserId())
			}
			return out
		}
		if got := users(&tandemv1.ListSyncErrorsRequest{OrgId: testOrg, Email: "rep2@ACME.example"}); len(got) != 1 || got[0] != user2 {
			t.Fatalf("entries by email = %v, want %s's", got, user2)
		}
		if got := users(&tandemv1.ListSyncErrorsRequest{OrgId: testOrg, UserId: user1, Email: "rep2@acme.example"}); len(got) != 1 || got[0] != user1 {
			t.Fatalf("entries by id and another's email = %v, want %s's (the id wins)", got, user1)
		}
		if got := users(&tandemv1.ListSyncErrorsRequest{OrgId: testOrg}); len(got) != 3 {
			t.Fatalf("entries of every user = %v, want 3", got)
		}
		_, err := e.statusC.ListSyncErrors(ctx, &tandemv1.ListSyncErrorsRequest{OrgId: testOrg, Email: "nobody@acme.example"})
		wantCode(t, err, codes.NotFound)
		_, err = e.statusC.ListSyncErrors(ctx, &tandemv1.ListSyncErrorsRequest{OrgId: testOrg, Email: "rep2"})
		wantInvalid(t, err, "email")
	})

	// The same refusals everywhere.
	decision := tandemv1.HeldDeletesDecision_HELD_DELETES_DECISION_APPROVE
	calls := map[string]func(userID, email string) error{
		"ResetUserSync": func(userID, email string) error {
			_, err := e.adminC.ResetUserSync(ctx, &tandemv1.ResetUserSyncRequest{OrgId: testOrg, UserId: userID, Email: email})
			return err
		},
		"ResumeUserSync": func(userID, email string) error {
			_, err := e.adminC.ResumeUserSync(ctx, &tandemv1.ResumeUserSyncRequest{OrgId: testOrg, UserId: userID, Email: email})
			return err
		},
		"ResolveHeldDeletes": func(userID, email string) error {
			_, err := e.adminC.ResolveHeldDeletes(ctx, &tandemv1.ResolveHeldDeletesRequest{OrgId: testOrg, UserId: userID, Email: email, HoldId: "hold-contacts", Decision: decision})
			return err
		},
		"GetUserStatus": func(userID, email string) error {
			_, err := e.statusC.GetUserStatus(ctx, &tandemv1.GetUserStatusRequest{OrgId: testOrg, UserId: userID, Email: email})
			return err
		},
		"PlanUserSync": func(userID, email string) error {
			_, err := e.statusC.PlanUserSync(ctx, &tandemv1.PlanUserSyncRequest{OrgId: testOrg, UserId: userID, Email: email})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name+" refusals", func(t *testing.T) {
			wantInvalid(t, call("", ""), "user_id or email")
			wantInvalid(t, call("rep1@acme.example", ""), "user_id")
			wantInvalid(t, call("", "rep1"), "email")
			wantCode(t, call("", "nobody@acme.example"), codes.NotFound)
		})
	}
}
