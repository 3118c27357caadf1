package api_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/devkit/platformtest"
	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	tstatus "github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	"github.com/tandem-sync/tandem/pkg/syncerr"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// fillOrg gives org what a syncing org has: settings with secrets, a configuration, two users
// with statuses, a ledger with a record and a mass-delete hold, error-report entries, a
// schedule and a reset mark.
func (e *env) fillOrg(t *testing.T, org string) {
	t.Helper()
	ctx := t.Context()
	o := orgWithSecrets()
	o.OrgId = org
	if _, err := e.adminC.PutOrg(ctx, &tandemv1.PutOrgRequest{Org: o}); err != nil {
		t.Fatal(err)
	}
	cfg := contactsBothWays(user1, user2)
	cfg.OrgId = org
	if _, err := e.adminC.PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: cfg}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.PutUsers(ctx, org, []*tandemv1.SyncUser{activeUser(user1, "rep1@acme.example"), activeUser(user2, "rep2@acme.example")}); err != nil {
		t.Fatal(err)
	}
	uk := store.UserKey{OrgID: org, UserID: user1}
	for _, u := range []string{user1, user2} {
		if err := e.status.Put(ctx, store.UserKey{OrgID: org, UserID: u}, tstatus.PartScheduler,
			&tandemv1.UserStatus{AssignedToActiveConfiguration: passed}); err != nil {
			t.Fatal(err)
		}
	}
	platformtest.ClaimCycles(t, e.st, org, 1)
	if err := e.syncer.HandleChanges(ctx, &tandemv1.ChangeBatch{
		OrgId: org, UserId: user1, Source: tandemv1.System_SYSTEM_EXCHANGE, Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT,
		Cycle: 1, Last: true, PageCount: 1, FullSnapshot: true, ReadAt: timestamppb.Now(),
		Changes: []*tandemv1.Change{{Type: tandemv1.ChangeType_CHANGE_TYPE_UPSERT, Record: contact("AAMkAda", "Ada", "Lovelace", "ada@example.com")}},
	}); err != nil {
		t.Fatalf("HandleChanges: %v", err)
	}
	snap, err := ledger.New(e.st).Load(ctx, uk, tandemv1.RecordKind_RECORD_KIND_CONTACT)
	if err != nil || len(snap.Exchange) != 1 {
		t.Fatalf("ledger after a read: %v, %v; want the record mirrored", snap, err)
	}
	e.putHold(t, uk, tandemv1.RecordKind_RECORD_KIND_EVENT, "hold-events")
	for _, u := range []string{user1, ""} {
		if _, err := e.st.RecordError(ctx, org, u, tandemv1.RecordKind_RECORD_KIND_CONTACT,
			syncerr.New(syncerr.SyncMassDeleteHeld, "held").Proto()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.adminC.ResetUserSync(ctx, &tandemv1.ResetUserSyncRequest{OrgId: org, Email: "rep2@acme.example"}); err != nil {
		t.Fatal(err)
	}
}

// orgKeys returns the keys of org and of its users, found with SCAN.
func (e *env) orgKeys(t *testing.T, org string) []string {
	t.Helper()
	var keys []string
	for _, match := range []string{"tandem:{" + org + "}:*", "tandem:{" + org + ":*"} {
		iter := e.rdb.Scan(t.Context(), 0, match, 1000).Iterator()
		for iter.Next(t.Context()) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(keys)
	return keys
}

func TestDeleteOrg(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	e.fillOrg(t, testOrg)
	e.fillOrg(t, otherOrg)
	tok, viewer := e.tokenFor(t, tandemv1.Role_ROLE_VIEWER, testOrg)
	// The layout has room for every kind of key this test means to see deleted.
	have := strings.Join(e.orgKeys(t, testOrg), " ")
	for _, name := range []string{"}:org", "}:configs", "}:users", "}:users:email", "}:resets", "}:errors:recent", "}:schedule",
		":" + user1 + "}:status", ":" + user1 + "}:mirror:exchange:contact", ":" + user1 + "}:held:event", ":" + user1 + "}:fence:"} {
		if !strings.Contains(have, name) {
			t.Fatalf("the org was not filled as the test needs: no key with %q in %s", name, have)
		}
	}
	others := servertest.Snapshot(ctx, t, e.rdb, "*")
	maps.DeleteFunc(others, func(k, _ string) bool {
		return strings.Contains(k, "{"+testOrg+"}") || strings.Contains(k, "{"+testOrg+":")
	})

	if _, err := e.adminC.DeleteOrg(ctx, &tandemv1.DeleteOrgRequest{OrgId: testOrg}); err != nil {
		t.Fatalf("DeleteOrg: %v", err)
	}

	if left := e.orgKeys(t, testOrg); len(left) > 0 {
		t.Errorf("keys of the deleted org remain: %v", left)
	}
	after := servertest.Snapshot(ctx, t, e.rdb, "*")
	index := "tandem:{global}:orgs"
	if after[index] != "set:"+otherOrg {
		t.Errorf("org index = %q, want only %s", after[index], otherOrg)
	}
	delete(after, index)
	delete(others, index)
	if !maps.Equal(after, others) {
		for k, v := range others {
			if after[k] != v {
				t.Errorf("key %s, not the deleted org's, changed or went:\n  was %s\n  now %s", k, v, after[k])
			}
		}
		for k := range after {
			if _, ok := others[k]; !ok {
				t.Errorf("key %s appeared", k)
			}
		}
	}

	_, err := e.adminC.GetOrg(ctx, &tandemv1.GetOrgRequest{OrgId: testOrg})
	wantCode(t, err, codes.NotFound)
	list, err := e.adminC.ListOrgs(ctx, &tandemv1.ListOrgsRequest{})
	if err != nil || len(list.GetOrgs()) != 1 || list.GetOrgs()[0].GetOrgId() != otherOrg {
		t.Errorf("ListOrgs after DeleteOrg = %v, %v; want only %s", list.GetOrgs(), err, otherOrg)
	}
	// The other org is whole.
	if cfgs, err := e.adminC.ListSyncConfigurations(ctx, &tandemv1.ListSyncConfigurationsRequest{OrgId: otherOrg}); err != nil || len(cfgs.GetConfigurations()) != 1 {
		t.Errorf("the other org's configurations: %v, %v", cfgs, err)
	}
	// A token of the deleted org is kept, and reaches nothing.
	toks, err := e.accessC.ListTokens(ctx, &tandemv1.ListTokensRequest{})
	if err != nil || !slices.ContainsFunc(toks.GetTokens(), func(t *tandemv1.ApiToken) bool { return t.GetTokenId() == tok.GetTokenId() }) {
		t.Errorf("the deleted org's token is gone: %v, %v", toks, err)
	}
	_, err = tandemv1.NewStatusServiceClient(e.dial(t, viewer)).GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: testOrg})
	wantCode(t, err, codes.NotFound)

	_, err = e.adminC.DeleteOrg(ctx, &tandemv1.DeleteOrgRequest{OrgId: testOrg})
	wantCode(t, err, codes.NotFound)
	_, err = e.adminC.DeleteOrg(ctx, &tandemv1.DeleteOrgRequest{OrgId: missingOrg})
	wantCode(t, err, codes.NotFound)
	_, err = e.adminC.DeleteOrg(ctx, &tandemv1.DeleteOrgRequest{})
	wantInvalid(t, err, "org_id")
	_, err = e.adminC.DeleteOrg(ctx, &tandemv1.DeleteOrgRequest{OrgId: "00D*"})
	wantInvalid(t, err, "org_id")
	if n := len(e.orgKeys(t, otherOrg)); n == 0 {
		t.Fatal("a refused DeleteOrg deleted the other org")
	}
}
