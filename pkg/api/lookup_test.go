package api_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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

func TestGetSyncConfiguration(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	var stored []*tandemv1.SyncConfiguration
	for _, c := range []struct{ name, user string }{{"reps", user1}, {"managers", user2}} {
		cfg := contactsBothWays(c.user)
		cfg.Name = c.name
		resp, err := e.adminC.PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: cfg})
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, resp.GetConfiguration())
	}
	foreign := contactsBothWays(user1)
	foreign.OrgId = otherOrg
	theirs, err := e.adminC.PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: foreign})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range stored {
		resp, err := e.adminC.GetSyncConfiguration(ctx, &tandemv1.GetSyncConfigurationRequest{OrgId: testOrg, Id: want.GetId()})
		if err != nil {
			t.Fatalf("GetSyncConfiguration %s: %v", want.GetId(), err)
		}
		if !proto.Equal(resp.GetConfiguration(), want) {
			t.Fatalf("configuration =\n %v\nwant\n %v", resp.GetConfiguration(), want)
		}
	}
	// A configuration that takes user1 takes it from "reps" (a user stays in the configuration
	// it was added to last): Get shows "reps" as it is now.
	leads := contactsBothWays(user1)
	leads.Name = "leads"
	if _, err := e.adminC.PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: leads}); err != nil {
		t.Fatal(err)
	}
	resp, err := e.adminC.GetSyncConfiguration(ctx, &tandemv1.GetSyncConfigurationRequest{OrgId: testOrg, Id: stored[0].GetId()})
	if err != nil || resp.GetConfiguration().GetName() != "reps" || len(resp.GetConfiguration().GetUserIds()) != 0 {
		t.Fatalf("reps after leads took its user: %v, %v; want it without users", resp.GetConfiguration(), err)
	}

	for _, tc := range []struct {
		name  string
		req   *tandemv1.GetSyncConfigurationRequest
		want  codes.Code
		field string
	}{
		{"no org id", &tandemv1.GetSyncConfigurationRequest{Id: stored[0].GetId()}, codes.InvalidArgument, "org_id"},
		{"no id", &tandemv1.GetSyncConfigurationRequest{OrgId: testOrg}, codes.InvalidArgument, "id"},
		{"invalid org id", &tandemv1.GetSyncConfigurationRequest{OrgId: "a:b", Id: stored[0].GetId()}, codes.InvalidArgument, "org_id"},
		{"invalid id", &tandemv1.GetSyncConfigurationRequest{OrgId: testOrg, Id: "cfg reps"}, codes.InvalidArgument, "id"},
		{"unknown id", &tandemv1.GetSyncConfigurationRequest{OrgId: testOrg, Id: "cfg_unknown"}, codes.NotFound, ""},
		{"another org's configuration", &tandemv1.GetSyncConfigurationRequest{OrgId: testOrg, Id: theirs.GetConfiguration().GetId()}, codes.NotFound, ""},
		{"deleted", &tandemv1.GetSyncConfigurationRequest{OrgId: otherOrg, Id: theirs.GetConfiguration().GetId()}, codes.NotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "deleted" {
				if _, err := e.adminC.DeleteSyncConfiguration(ctx, &tandemv1.DeleteSyncConfigurationRequest{OrgId: otherOrg, Id: theirs.GetConfiguration().GetId()}); err != nil {
					t.Fatal(err)
				}
			}
			_, err := e.adminC.GetSyncConfiguration(ctx, tc.req)
			if tc.field != "" {
				wantInvalid(t, err, tc.field)
				return
			}
			wantCode(t, err, tc.want)
		})
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
