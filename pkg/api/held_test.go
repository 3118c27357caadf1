package api_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/reconcile/engine"
	"github.com/tandem-sync/tandem/pkg/reconcile/ledger"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// putHoldAt raises a hold as putHold does, raised at createdAt.
func (e *env) putHoldAt(t *testing.T, uk store.UserKey, kind tandemv1.RecordKind, holdID string, createdAt time.Time) {
	t.Helper()
	led := ledger.New(e.st)
	err := e.st.WithLease(t.Context(), uk, engine.LeaseRole, time.Minute, func(ctx context.Context, lease *store.Lease) error {
		snap, err := led.Load(ctx, uk, kind)
		if err != nil {
			return err
		}
		w := snap.NewWrites()
		w.PutHold(&tandemv1.Hold{Summary: &tandemv1.HeldDeletes{
			HoldId: holdID, Target: tandemv1.System_SYSTEM_SALESFORCE, Kind: kind, Count: 6, Synced: 8, ThresholdPercent: 50,
			RecordIds: []string{"003a", "003b"},
		}, CreatedAt: timestamppb.New(createdAt), Cycle: 4})
		return led.Commit(ctx, lease, w)
	})
	if err != nil {
		t.Fatalf("raise hold: %v", err)
	}
}

// heldList renders holds as "user/kind/hold", in order.
func heldList(holds []*tandemv1.UserHeldDeletes) string {
	var out []string
	for _, h := range holds {
		out = append(out, fmt.Sprintf("%s/%s/%s", h.GetUserId(), store.KindName(h.GetHeld().GetKind()), h.GetHeld().GetHoldId()))
	}
	return fmt.Sprint(out)
}

func TestListHeldDeletes(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	e.putUsers(t, activeUser(user1, "rep1@acme.example"), activeUser(user2, "Rep2@Acme.example"), activeUser(user3, "rep3@acme.example"))
	u1, u2 := store.UserKey{OrgID: testOrg, UserID: user1}, store.UserKey{OrgID: testOrg, UserID: user2}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	contacts, events := tandemv1.RecordKind_RECORD_KIND_CONTACT, tandemv1.RecordKind_RECORD_KIND_EVENT
	e.putHoldAt(t, u1, contacts, "contact-c9-new", t0.Add(2*time.Minute))
	e.putHoldAt(t, u2, contacts, "contact-c3-old", t0)
	e.putHoldAt(t, u1, events, "event-c5-mid", t0.Add(time.Minute))
	e.putHoldAt(t, u1, events, "event-c6-decided", t0.Add(-time.Minute))
	// A decided hold awaits nothing: it is not listed.
	if _, err := e.adminC.ResolveHeldDeletes(ctx, &tandemv1.ResolveHeldDeletesRequest{
		OrgId: testOrg, UserId: user1, HoldId: "event-c6-decided", Decision: tandemv1.HeldDeletesDecision_HELD_DELETES_DECISION_REJECT,
	}); err != nil {
		t.Fatal(err)
	}
	// A hold of another org is not this org's.
	e.putHoldAt(t, store.UserKey{OrgID: otherOrg, UserID: user1}, contacts, "contact-c1-other", t0)

	for _, tc := range []struct {
		name string
		req  *tandemv1.ListHeldDeletesRequest
		want string
	}{
		{"every user, oldest first", &tandemv1.ListHeldDeletesRequest{OrgId: testOrg},
			fmt.Sprint([]string{user2 + "/contact/contact-c3-old", user1 + "/event/event-c5-mid", user1 + "/contact/contact-c9-new"})},
		{"one user by id", &tandemv1.ListHeldDeletesRequest{OrgId: testOrg, UserId: user1},
			fmt.Sprint([]string{user1 + "/event/event-c5-mid", user1 + "/contact/contact-c9-new"})},
		{"one user by email, in any case", &tandemv1.ListHeldDeletesRequest{OrgId: testOrg, Email: "REP2@acme.example"},
			fmt.Sprint([]string{user2 + "/contact/contact-c3-old"})},
		{"id wins over email", &tandemv1.ListHeldDeletesRequest{OrgId: testOrg, UserId: user2, Email: "rep1@acme.example"},
			fmt.Sprint([]string{user2 + "/contact/contact-c3-old"})},
		{"a user without holds", &tandemv1.ListHeldDeletesRequest{OrgId: testOrg, UserId: user3}, fmt.Sprint([]string(nil))},
		{"an org without users", &tandemv1.ListHeldDeletesRequest{OrgId: missingOrg}, fmt.Sprint([]string(nil))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.adminC.ListHeldDeletes(ctx, tc.req)
			if err != nil {
				t.Fatalf("ListHeldDeletes: %v", err)
			}
			if got := heldList(resp.GetHolds()); got != tc.want {
				t.Fatalf("holds = %s, want %s", got, tc.want)
			}
		})
	}

	// A listed hold says everything ResolveHeldDeletes and an admin need.
	resp, err := e.adminC.ListHeldDeletes(ctx, &tandemv1.ListHeldDeletesRequest{OrgId: testOrg, Email: "rep2@acme.example"})
	if err != nil || len(resp.GetHolds()) != 1 {
		t.Fatalf("ListHeldDeletes = %v, %v", resp, err)
	}
	h := resp.GetHolds()[0]
	if h.GetEmail() != "Rep2@Acme.example" || !h.GetCreatedAt().AsTime().Equal(t0) || h.GetHeld().GetCount() != 6 ||
		h.GetHeld().GetSynced() != 8 || h.GetHeld().GetThresholdPercent() != 50 || h.GetHeld().GetTarget() != tandemv1.System_SYSTEM_SALESFORCE ||
		len(h.GetHeld().GetRecordIds()) != 2 {
		t.Fatalf("hold = %v", h)
	}

	for _, tc := range []struct {
		name  string
		req   *tandemv1.ListHeldDeletesRequest
		want  codes.Code
		field string
	}{
		{"no org id", &tandemv1.ListHeldDeletesRequest{}, codes.InvalidArgument, "org_id"},
		{"invalid org id", &tandemv1.ListHeldDeletesRequest{OrgId: "a.b"}, codes.InvalidArgument, "org_id"},
		{"an email as user id", &tandemv1.ListHeldDeletesRequest{OrgId: testOrg, UserId: "rep1@acme.example"}, codes.InvalidArgument, "user_id"},
		{"not an email", &tandemv1.ListHeldDeletesRequest{OrgId: testOrg, Email: "rep1"}, codes.InvalidArgument, "email"},
		{"unknown user id", &tandemv1.ListHeldDeletesRequest{OrgId: testOrg, UserId: "005unknown"}, codes.NotFound, ""},
		{"unknown email", &tandemv1.ListHeldDeletesRequest{OrgId: testOrg, Email: "nobody@acme.example"}, codes.NotFound, ""},
		{"a user of another org", &tandemv1.ListHeldDeletesRequest{OrgId: otherOrg, UserId: user1}, codes.NotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.adminC.ListHeldDeletes(ctx, tc.req)
			if tc.field != "" {
				wantInvalid(t, err, tc.field)
				return
			}
			wantCode(t, err, tc.want)
		})
	}
}
