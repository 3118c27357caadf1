package status_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestSuspendedAndLiftedAt(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(at.Add(d)) }
	suspended := &tandemv1.UserStatus{Suspended: true, SuspendedAt: ts(0)}
	for _, tc := range []struct {
		name  string
		ex    *tandemv1.UserStatus
		org   *tandemv1.Org
		cfg   *tandemv1.SyncConfiguration
		admin *tandemv1.UserStatus
		want  bool
	}{
		{name: "not suspended", ex: &tandemv1.UserStatus{PermanentFailures: 9}},
		{name: "suspended, nothing changed", ex: suspended, want: true},
		{name: "suspended after every change", ex: suspended, org: &tandemv1.Org{UpdatedAt: ts(-time.Hour)},
			cfg: &tandemv1.SyncConfiguration{UpdatedAt: ts(-time.Minute)}, admin: &tandemv1.UserStatus{ResumedAt: ts(-time.Second)}, want: true},
		{name: "org changed since", ex: suspended, org: &tandemv1.Org{UpdatedAt: ts(time.Second)}},
		{name: "configuration changed since", ex: suspended, cfg: &tandemv1.SyncConfiguration{UpdatedAt: ts(time.Second)}},
		{name: "resumed since", ex: suspended, admin: &tandemv1.UserStatus{ResumedAt: ts(time.Second)}},
		{name: "resumed at the same time", ex: suspended, admin: &tandemv1.UserStatus{ResumedAt: ts(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lifted := status.LiftedAt(status.SettingsChanged(tc.org, tc.cfg), tc.admin)
			if got := status.Suspended(tc.ex, lifted); got != tc.want {
				t.Errorf("Suspended = %v, want %v (lifted at %v)", got, tc.want, lifted)
			}
		})
	}
}

// TestGetShowsASuspensionWhileItHolds: the exchange-worker's part says suspended until its next
// read, whatever lifted the suspension meanwhile; the assembled status must not.
func TestGetShowsASuspensionWhileItHolds(t *testing.T) {
	ctx := t.Context()
	now := time.Now().Add(-time.Hour) // the store stamps changes with the real time
	st := store.New(servertest.Redis(t), nil, store.WithClock(func() time.Time { return now }))
	s := status.New(st)
	const orgID = "00Dorg"
	uk := store.UserKey{OrgID: orgID, UserID: "005user"}
	if _, err := st.PutOrg(ctx, &tandemv1.Org{OrgId: orgID, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutUsers(ctx, orgID, []*tandemv1.SyncUser{{UserId: uk.UserID, Email: "rep@acme.example", Active: true}}); err != nil {
		t.Fatal(err)
	}
	cfg := &tandemv1.SyncConfiguration{OrgId: orgID, Name: "Reps", Active: true, UserIds: []string{uk.UserID},
		Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH}}
	cfg, err := st.PutConfiguration(ctx, orgID, cfg)
	if err != nil {
		t.Fatal(err)
	}
	schedulerNext := timestamppb.New(now.Add(5 * time.Minute))
	if err := s.Put(ctx, uk, status.PartScheduler, &tandemv1.UserStatus{NextSyncAt: schedulerNext}); err != nil {
		t.Fatal(err)
	}
	suspend := func() {
		t.Helper()
		now = now.Add(time.Minute)
		if err := s.Put(ctx, uk, status.PartExchange, &tandemv1.UserStatus{
			Suspended: true, SuspendedAt: timestamppb.New(now), PermanentFailures: 5, ConsecutiveFailures: 5,
			NextSyncAt: timestamppb.New(now.Add(24 * time.Hour)), LastError: syncErr("EXCHANGE_MAILBOX_NOT_FOUND", "gone", ""),
		}); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Minute)
	}
	check := func(step string, wantSuspended bool) {
		t.Helper()
		us, err := s.Get(ctx, uk)
		if err != nil {
			t.Fatal(err)
		}
		if us.GetSuspended() != wantSuspended || (us.GetSuspendedAt() != nil) != wantSuspended {
			t.Errorf("%s: suspended %v at %v, want suspended %v", step, us.GetSuspended(), us.GetSuspendedAt(), wantSuspended)
		}
		wantNext := schedulerNext.AsTime()
		if wantSuspended {
			wantNext = us.GetSuspendedAt().AsTime().Add(24 * time.Hour) // the next probe
		}
		if !us.GetNextSyncAt().AsTime().Equal(wantNext) {
			t.Errorf("%s: next sync %v, want %v", step, us.GetNextSyncAt().AsTime(), wantNext)
		}
		if us.GetLastError().GetCode() != "EXCHANGE_MAILBOX_NOT_FOUND" || us.GetPermanentFailures() != 5 {
			t.Errorf("%s: %v, want the failure still shown", step, us)
		}
	}

	suspend()
	check("suspended", true)
	if err := s.Resume(ctx, uk, now); err != nil {
		t.Fatal(err)
	}
	check("resumed", false)
	suspend()
	check("suspended again", true)
	if _, err := st.PutOrg(ctx, &tandemv1.Org{OrgId: orgID, Enabled: true, Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	check("org changed", false)
	suspend()
	check("suspended once more", true)
	cfg.Name = "Sales reps"
	if _, err := st.PutConfiguration(ctx, orgID, cfg); err != nil {
		t.Fatal(err)
	}
	check("configuration changed", false)
	suspend()
	if _, err := st.PutConfiguration(ctx, orgID, &tandemv1.SyncConfiguration{OrgId: orgID, Name: "Others", Active: true,
		Contacts: &tandemv1.ContactSyncSettings{Direction: tandemv1.SyncDirection_SYNC_DIRECTION_BOTH}}); err != nil {
		t.Fatal(err)
	}
	check("another configuration changed", true)
}

func TestSchedulingAndLeftOut(t *testing.T) {
	ctx := t.Context()
	s := status.New(store.New(servertest.Redis(t), nil))
	got, err := s.Scheduling(ctx, uk)
	if err != nil {
		t.Fatal(err)
	}
	if got.Exchange == nil || got.Admin == nil || got.LeftOut || got.Exchange.GetSuspended() {
		t.Errorf("Scheduling of a user nobody reported on = %+v, want empty parts", got)
	}
	resumed := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := s.Put(ctx, uk, status.PartExchange, &tandemv1.UserStatus{Suspended: true, PermanentFailures: 4}); err != nil {
		t.Fatal(err)
	}
	if err := s.Resume(ctx, uk, resumed); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkLeftOut(ctx, uk); err != nil {
		t.Fatal(err)
	}
	got, err = s.Scheduling(ctx, uk)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Exchange.GetSuspended() || got.Exchange.GetPermanentFailures() != 4 || !got.Admin.GetResumedAt().AsTime().Equal(resumed) || !got.LeftOut {
		t.Errorf("Scheduling = %+v, want the exchange part, the resume and the mark", got)
	}
	if err := s.ClearLeftOut(ctx, uk); err != nil {
		t.Fatal(err)
	}
	if got, err = s.Scheduling(ctx, uk); err != nil || got.LeftOut {
		t.Errorf("after ClearLeftOut: %+v, %v; want no mark", got, err)
	}
	// The mark is not a part: the assembled status is the same with it.
	us, err := s.Get(ctx, uk)
	if err != nil {
		t.Fatal(err)
	}
	if !us.GetResumedAt().AsTime().Equal(resumed) {
		t.Errorf("Get: resumed_at %v, want %v", us.GetResumedAt(), resumed)
	}
}

// TestSuspendedUsers: of an org's users, those whose suspension holds — not one resumed since,
// nor one whose configuration changed since, nor one never suspended.
func TestSuspendedUsers(t *testing.T) {
	ctx := t.Context()
	s := status.New(store.New(servertest.Redis(t), nil))
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	org := &tandemv1.Org{OrgId: "00Dorg", UpdatedAt: timestamppb.New(at.Add(-time.Hour))}
	cfg := &tandemv1.SyncConfiguration{UpdatedAt: timestamppb.New(at.Add(-time.Hour))}
	changed := &tandemv1.SyncConfiguration{UpdatedAt: timestamppb.New(at.Add(time.Minute))}
	var assigned []store.Assignment
	for _, u := range []struct {
		id        string
		suspended bool
		resumed   bool
		cfg       *tandemv1.SyncConfiguration
	}{
		{id: "005fine", cfg: cfg},
		{id: "005suspended", suspended: true, cfg: cfg},
		{id: "005resumed", suspended: true, resumed: true, cfg: cfg},
		{id: "005reconfigured", suspended: true, cfg: changed},
	} {
		uk := store.UserKey{OrgID: org.GetOrgId(), UserID: u.id}
		assigned = append(assigned, store.Assignment{User: &tandemv1.SyncUser{UserId: u.id}, Config: u.cfg})
		if u.suspended {
			if err := s.Put(ctx, uk, status.PartExchange, &tandemv1.UserStatus{Suspended: true, SuspendedAt: timestamppb.New(at)}); err != nil {
				t.Fatal(err)
			}
		}
		if u.resumed {
			if err := s.Resume(ctx, uk, at.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := s.SuspendedUsers(ctx, org, assigned)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got["005suspended"] {
		t.Errorf("SuspendedUsers = %v, want only 005suspended", got)
	}
}
