package scheduler_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/api"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

// suspend writes user's Exchange status part as the exchange-worker does when it suspends the
// user now, with the next probe probeIn from now.
func (e *env) suspend(t *testing.T, userID string, probeIn time.Duration) {
	t.Helper()
	now := time.Now()
	part := &tandemv1.UserStatus{
		Suspended: true, SuspendedAt: timestamppb.New(now), PermanentFailures: 5, ConsecutiveFailures: 5,
		NextSyncAt: timestamppb.New(now.Add(probeIn)),
		LastError:  &tandemv1.SyncError{Code: "EXCHANGE_MAILBOX_NOT_FOUND", Message: "ErrorNonExistentMailbox"},
	}
	if err := e.status.Put(t.Context(), store.UserKey{OrgID: orgA, UserID: userID}, status.PartExchange, part); err != nil {
		t.Fatal(err)
	}
}

func (e *env) leftOut(t *testing.T, userID string) bool {
	t.Helper()
	sch, err := e.status.Scheduling(t.Context(), store.UserKey{OrgID: orgA, UserID: userID})
	if err != nil {
		t.Fatal(err)
	}
	return sch.LeftOut
}

// nextCycle makes the org due and starts its cycle, returning the Salesforce job and the
// Exchange jobs by user.
func (e *env) nextCycle(t *testing.T) (*tandemv1.SyncJob, map[string]*tandemv1.SyncJob) {
	t.Helper()
	e.dueNow(t, orgA)
	e.tick(t)
	return split(t, orgA, e.newJobs(t))
}

func TestSuspendedUsersAreProbedOnly(t *testing.T) {
	e := newEnv(t, testConfig())
	ctx := t.Context()
	e.putOrg(t, org(orgA))
	e.putUsers(t, orgA, user(user1, true), user(user2, true))
	e.putConfig(t, orgA, contactsOnly(user1, user2))
	e.nextCycle(t)
	e.suspend(t, user1, 24*time.Hour)

	// Suspended: no Exchange job, and left out of the org's Salesforce job, cycle after cycle.
	for range 2 {
		sf, ex := e.nextCycle(t)
		if got := sortedKeys(ex); !slices.Equal(got, []string{user2}) || !slices.Equal(sf.GetUserIds(), []string{user2}) {
			t.Fatalf("cycle %d: Exchange jobs for %v, Salesforce job for %v; want only %s", sf.GetCycle(), got, sf.GetUserIds(), user2)
		}
	}
	if !e.leftOut(t, user1) {
		t.Fatal("the suspended user is not marked as left out of the Salesforce jobs")
	}
	// The status says so, for the user and in the org's count.
	a := api.New(e.st, e.reconciler, nil, nil)
	us, err := a.GetUserStatus(ctx, &tandemv1.GetUserStatusRequest{OrgId: orgA, UserId: user1})
	if err != nil {
		t.Fatal(err)
	}
	if !us.GetStatus().GetSuspended() || us.GetStatus().GetLastError().GetCode() != "EXCHANGE_MAILBOX_NOT_FOUND" {
		t.Errorf("user status %v, want suspended with the failure as last error", us.GetStatus())
	}
	os, err := a.GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: orgA})
	if err != nil {
		t.Fatal(err)
	}
	if os.GetStatus().GetUsersSuspended() != 1 || os.GetStatus().GetUsersExpected() != 2 {
		t.Errorf("org status: %d of %d users suspended, want 1 of 2", os.GetStatus().GetUsersSuspended(), os.GetStatus().GetUsersExpected())
	}

	// The probe falls due: an Exchange job, still without Salesforce.
	e.suspend(t, user1, -time.Second)
	sf, ex := e.nextCycle(t)
	// A suspended mailbox is not watched: the probe reads it whatever the notifications say.
	if ex[user1] == nil || ex[user1].GetFullResync() || ex[user1].GetPollInterval() != nil || slices.Contains(sf.GetUserIds(), user1) {
		t.Fatalf("probe cycle: Exchange job %v, Salesforce users %v; want an incremental Exchange read only, without a poll interval", ex[user1], sf.GetUserIds())
	}

	// The probe read well (the worker cleared its part): the user is back, read in full from
	// Salesforce once, since the org's polls went on without it.
	if err := e.status.Put(ctx, store.UserKey{OrgID: orgA, UserID: user1}, status.PartExchange, &tandemv1.UserStatus{}); err != nil {
		t.Fatal(err)
	}
	sf, ex = e.nextCycle(t)
	if ex[user1] == nil || !slices.Equal(sf.GetUserIds(), []string{user1, user2}) || !slices.Equal(sf.GetFullUserIds(), []string{user1}) {
		t.Fatalf("back from suspension: Exchange job %v, Salesforce job %v; want both, Salesforce in full", ex[user1], sf)
	}
	if e.leftOut(t, user1) {
		t.Error("the left-out mark outlived the full read")
	}
	if sf, _ = e.nextCycle(t); len(sf.GetFullUserIds()) != 0 {
		t.Errorf("the next cycle reads %v in full again", sf.GetFullUserIds())
	}
}

// TestWaysOutOfASuspension: each way an admin ends a suspension, through the API, makes the
// user due at once — jobs at the next tick without waiting for the probe, Salesforce read in
// full — and a permanent failure after it suspends the user again.
func TestWaysOutOfASuspension(t *testing.T) {
	for _, tc := range []struct {
		name string
		// way lifts user1's suspension (cfg is the stored configuration of user1 and user2).
		way  func(ctx context.Context, a *api.Server, cfg *tandemv1.SyncConfiguration) error
		lift bool
	}{
		{"ResumeUserSync", func(ctx context.Context, a *api.Server, _ *tandemv1.SyncConfiguration) error {
			resp, err := a.ResumeUserSync(ctx, &tandemv1.ResumeUserSyncRequest{OrgId: orgA, UserId: user1})
			if err == nil && (resp.GetStatus().GetSuspended() || resp.GetStatus().GetResumedAt() == nil) {
				t.Errorf("ResumeUserSync returned status %v, want not suspended, resumed_at set", resp.GetStatus())
			}
			return err
		}, true},
		{"ResetUserSync", func(ctx context.Context, a *api.Server, _ *tandemv1.SyncConfiguration) error {
			_, err := a.ResetUserSync(ctx, &tandemv1.ResetUserSyncRequest{OrgId: orgA, UserId: user1})
			return err
		}, true},
		{"PutOrg", func(ctx context.Context, a *api.Server, _ *tandemv1.SyncConfiguration) error {
			o := org(orgA)
			o.Exchange = &tandemv1.ExchangeConnection{ServiceAccount: "svc-tandem@acme.example"}
			_, err := a.PutOrg(ctx, &tandemv1.PutOrgRequest{Org: o})
			return err
		}, true},
		{"PutSyncConfiguration of the user's configuration", func(ctx context.Context, a *api.Server, cfg *tandemv1.SyncConfiguration) error {
			cfg.Events = &tandemv1.EventSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH}
			_, err := a.PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: cfg})
			return err
		}, true},
		{"PutSyncConfiguration of another configuration", func(ctx context.Context, a *api.Server, _ *tandemv1.SyncConfiguration) error {
			other := contactsOnly(user3)
			other.Name, other.OrgId = "others", orgA
			_, err := a.PutSyncConfiguration(ctx, &tandemv1.PutSyncConfigurationRequest{Configuration: other})
			return err
		}, false},
		{"ResumeUserSync of another user", func(ctx context.Context, a *api.Server, _ *tandemv1.SyncConfiguration) error {
			_, err := a.ResumeUserSync(ctx, &tandemv1.ResumeUserSyncRequest{OrgId: orgA, UserId: user2})
			return err
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, testConfig())
			ctx := t.Context()
			e.putOrg(t, org(orgA))
			e.putUsers(t, orgA, user(user1, true), user(user2, true), user(user3, true))
			cfg := e.putConfig(t, orgA, contactsOnly(user1, user2))
			e.nextCycle(t)
			e.suspend(t, user1, 24*time.Hour)
			if _, ex := e.nextCycle(t); ex[user1] != nil {
				t.Fatal("a suspended user got an Exchange job")
			}

			a := api.New(e.st, e.reconciler, nil, nil)
			if err := tc.way(ctx, a, cfg); err != nil {
				t.Fatal(err)
			}
			us, err := a.GetUserStatus(ctx, &tandemv1.GetUserStatusRequest{OrgId: orgA, UserId: user1})
			if err != nil {
				t.Fatal(err)
			}
			if us.GetStatus().GetSuspended() == tc.lift {
				t.Fatalf("after %s: status suspended %v, want %v", tc.name, us.GetStatus().GetSuspended(), !tc.lift)
			}
			// The way out made the org due by itself: a tick starts the cycle.
			e.tick(t)
			sf, ex := split(t, orgA, e.newJobs(t))
			if !tc.lift {
				if ex[user1] != nil || slices.Contains(sf.GetUserIds(), user1) {
					t.Fatalf("still suspended, but got jobs: Exchange %v, Salesforce users %v", ex[user1], sf.GetUserIds())
				}
				return
			}
			if ex[user1] == nil || !slices.Contains(sf.GetUserIds(), user1) || !slices.Contains(sf.GetFullUserIds(), user1) {
				t.Fatalf("after %s: Exchange job %v, Salesforce job %v; want both at once, Salesforce in full", tc.name, ex[user1], sf)
			}

			// The next read fails permanently again: suspended again, no more jobs.
			e.suspend(t, user1, 24*time.Hour)
			if sf, ex := e.nextCycle(t); ex[user1] != nil || slices.Contains(sf.GetUserIds(), user1) {
				t.Fatalf("suspended again after %s, but got jobs: Exchange %v, Salesforce users %v", tc.name, ex[user1], sf.GetUserIds())
			}
		})
	}
}
