package status_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandem-sync/tandem/pkg/devkit/servertest"
	"github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

var uk = store.UserKey{OrgID: "00Dorg", UserID: "005user"}

const (
	contact = tandemv1.RecordKind_RECORD_KIND_CONTACT
	event   = tandemv1.RecordKind_RECORD_KIND_EVENT
	passed  = tandemv1.CheckResult_CHECK_RESULT_PASSED
	failed  = tandemv1.CheckResult_CHECK_RESULT_FAILED
	inSync  = tandemv1.DirectionStatus_DIRECTION_STATUS_IN_SYNC
)

func marshal(t *testing.T, m proto.Message) string {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func syncErr(code, msg, recordID string) *tandemv1.SyncError {
	return &tandemv1.SyncError{Code: code, Message: msg, RecordId: recordID}
}

func TestMerge(t *testing.T) {
	due := timestamppb.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	synced := timestamppb.New(time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC))
	for _, tc := range []struct {
		name  string
		parts map[string]proto.Message
		want  *tandemv1.UserStatus
	}{
		{
			name: "nobody reported: only the ids",
			want: &tandemv1.UserStatus{OrgId: uk.OrgID, UserId: uk.UserID},
		},
		{
			name: "every part and kind field contributes",
			parts: map[string]proto.Message{
				string(status.PartScheduler): &tandemv1.UserStatus{
					ConfigurationId: "cfg1", AssignedToActiveConfiguration: passed, NextSyncAt: due,
					ResetStatus: tandemv1.ResetStatus_RESET_STATUS_MARKED_FOR_RESET,
				},
				string(status.PartExchange): &tandemv1.UserStatus{
					Email: "rep@acme.example", RecognizedByServiceAccount: passed, MailboxVersionSupported: passed,
					ExchangeVersion: "15.2", Kinds: []*tandemv1.KindStatus{
						{Kind: event, FolderFound: passed, AddressesLinked: passed},
						{Kind: contact, FolderFound: passed, AddressesLinked: passed},
					},
				},
				string(status.PartReconcile): &tandemv1.UserStatus{LastCycle: 42},
				"kind:RECORD_KIND_CONTACT": &tandemv1.KindStatus{
					Kind: contact, SalesforceToExchange: inSync, ExchangeToSalesforce: inSync, RecordsInSync: 10, LastSyncedAt: synced,
				},
			},
			want: &tandemv1.UserStatus{
				OrgId: uk.OrgID, UserId: uk.UserID, ConfigurationId: "cfg1", AssignedToActiveConfiguration: passed,
				NextSyncAt: due, ResetStatus: tandemv1.ResetStatus_RESET_STATUS_MARKED_FOR_RESET,
				Email: "rep@acme.example", RecognizedByServiceAccount: passed, MailboxVersionSupported: passed,
				ExchangeVersion: "15.2", LastCycle: 42,
				Kinds: []*tandemv1.KindStatus{
					{
						Kind: contact, FolderFound: passed, AddressesLinked: passed, SalesforceToExchange: inSync,
						ExchangeToSalesforce: inSync, RecordsInSync: 10, LastSyncedAt: synced,
					},
					{Kind: event, FolderFound: passed, AddressesLinked: passed},
				},
			},
		},
		{
			name: "a kind only the reconciler knows",
			parts: map[string]proto.Message{
				"kind:RECORD_KIND_EVENT": &tandemv1.KindStatus{Kind: event, PendingWrites: 3, HeldDeletes: 2},
			},
			want: &tandemv1.UserStatus{
				OrgId: uk.OrgID, UserId: uk.UserID,
				Kinds: []*tandemv1.KindStatus{{Kind: event, PendingWrites: 3, HeldDeletes: 2}},
			},
		},
		{
			name: "a later part's last error replaces an earlier one whole",
			parts: map[string]proto.Message{
				string(status.PartScheduler): &tandemv1.UserStatus{LastError: syncErr("SYNC_NOT_CONFIGURED", "no configuration", "rec1")},
				string(status.PartExchange):  &tandemv1.UserStatus{LastError: syncErr("EXCHANGE_IMPERSONATION_DENIED", "denied", "")},
				string(status.PartReconcile): &tandemv1.UserStatus{LastCycle: 7},
			},
			want: &tandemv1.UserStatus{
				OrgId: uk.OrgID, UserId: uk.UserID, LastCycle: 7,
				LastError: syncErr("EXCHANGE_IMPERSONATION_DENIED", "denied", ""),
			},
		},
		{
			name: "the reconciler's error is the latest",
			parts: map[string]proto.Message{
				string(status.PartExchange):  &tandemv1.UserStatus{LastError: syncErr("EXCHANGE_TIMEOUT", "slow", "")},
				string(status.PartReconcile): &tandemv1.UserStatus{LastError: syncErr("SYNC_MASS_DELETE_HELD", "held", "")},
			},
			want: &tandemv1.UserStatus{OrgId: uk.OrgID, UserId: uk.UserID, LastError: syncErr("SYNC_MASS_DELETE_HELD", "held", "")},
		},
		{
			name: "an earlier error stays when later parts have none",
			parts: map[string]proto.Message{
				string(status.PartScheduler): &tandemv1.UserStatus{LastError: syncErr("SYNC_NOT_CONFIGURED", "no configuration", "")},
				string(status.PartExchange):  &tandemv1.UserStatus{Email: "rep@acme.example"},
			},
			want: &tandemv1.UserStatus{
				OrgId: uk.OrgID, UserId: uk.UserID, Email: "rep@acme.example",
				LastError: syncErr("SYNC_NOT_CONFIGURED", "no configuration", ""),
			},
		},
		{
			name: "the key's ids win over ids inside parts",
			parts: map[string]proto.Message{
				string(status.PartExchange): &tandemv1.UserStatus{OrgId: "other-org", UserId: "other-user", Email: "rep@acme.example"},
			},
			want: &tandemv1.UserStatus{OrgId: uk.OrgID, UserId: uk.UserID, Email: "rep@acme.example"},
		},
		{
			name: "fields that are neither parts nor kinds are ignored",
			parts: map[string]proto.Message{
				"unrelated": &tandemv1.UserStatus{Email: "x@y.example"},
			},
			want: &tandemv1.UserStatus{OrgId: uk.OrgID, UserId: uk.UserID},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := map[string]string{}
			for field, m := range tc.parts {
				raw[field] = marshal(t, m)
			}
			got, err := status.Merge(uk, raw)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Merge (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMergeRejectsCorruptFields(t *testing.T) {
	for _, field := range []string{string(status.PartExchange), "kind:RECORD_KIND_CONTACT"} {
		t.Run(field, func(t *testing.T) {
			if _, err := status.Merge(uk, map[string]string{field: "\xff\xff\xff"}); err == nil {
				t.Fatal("Merge accepted a corrupt field")
			}
		})
	}
}

func TestKind(t *testing.T) {
	ks := &tandemv1.KindStatus{Kind: event, RecordsInSync: 4}
	us := &tandemv1.UserStatus{Kinds: []*tandemv1.KindStatus{{Kind: contact}, ks}}
	if got := status.Kind(us, event); got != ks {
		t.Errorf("Kind(event) = %v", got)
	}
	if got := status.Kind(&tandemv1.UserStatus{}, contact); got != nil {
		t.Errorf("Kind of an empty status = %v, want nil", got)
	}
	if got := status.Kind(nil, contact); got != nil {
		t.Errorf("Kind(nil) = %v, want nil", got)
	}
}

func TestSettled(t *testing.T) {
	want := map[tandemv1.DirectionStatus]bool{
		tandemv1.DirectionStatus_DIRECTION_STATUS_UNSPECIFIED:              false,
		tandemv1.DirectionStatus_DIRECTION_STATUS_NOT_STARTED:              false,
		tandemv1.DirectionStatus_DIRECTION_STATUS_INITIAL_SYNC_IN_PROGRESS: false,
		tandemv1.DirectionStatus_DIRECTION_STATUS_INITIAL_SYNC_COMPLETED:   true,
		tandemv1.DirectionStatus_DIRECTION_STATUS_SYNC_IN_PROGRESS:         false,
		tandemv1.DirectionStatus_DIRECTION_STATUS_IN_SYNC:                  true,
		tandemv1.DirectionStatus_DIRECTION_STATUS_NOT_SET_TO_SYNC:          true,
	}
	for v := range tandemv1.DirectionStatus_name {
		d := tandemv1.DirectionStatus(v)
		w, ok := want[d]
		if !ok {
			t.Errorf("%s: add the new direction status to this test", d)
			continue
		}
		if got := status.Settled(d); got != w {
			t.Errorf("Settled(%s) = %v, want %v", d, got, w)
		}
	}
}

func TestStoreRoundTrips(t *testing.T) {
	ctx := t.Context()
	s := status.New(store.New(servertest.Redis(t), nil))

	t.Run("a user nobody reported on", func(t *testing.T) {
		part, err := s.GetPart(ctx, uk, status.PartExchange)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(part, &tandemv1.UserStatus{}) {
			t.Errorf("GetPart = %v, want empty", part)
		}
		us, err := s.Get(ctx, uk)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(us, &tandemv1.UserStatus{OrgId: uk.OrgID, UserId: uk.UserID}) {
			t.Errorf("Get = %v, want only the ids", us)
		}
	})

	exchangePart := &tandemv1.UserStatus{
		Email: "rep@acme.example", RecognizedByServiceAccount: failed, ConsecutiveFailures: 2,
		NextSyncAt: timestamppb.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		LastError:  syncErr("EXCHANGE_IMPERSONATION_DENIED", "denied", ""),
		Kinds:      []*tandemv1.KindStatus{{Kind: contact, FolderFound: passed}},
	}
	t.Run("Put and GetPart", func(t *testing.T) {
		if err := s.Put(ctx, uk, status.PartExchange, exchangePart); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetPart(ctx, uk, status.PartExchange)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(exchangePart, got, protocmp.Transform()); diff != "" {
			t.Errorf("GetPart (-want +got):\n%s", diff)
		}
		other, err := s.GetPart(ctx, uk, status.PartScheduler)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(other, &tandemv1.UserStatus{}) {
			t.Errorf("another part = %v, want empty", other)
		}
	})

	t.Run("PutKind and Get merge with the parts", func(t *testing.T) {
		if err := s.Put(ctx, uk, status.PartReconcile, &tandemv1.UserStatus{LastCycle: 9}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutKind(ctx, uk, &tandemv1.KindStatus{Kind: contact, RecordsInSync: 5, SalesforceToExchange: inSync}); err != nil {
			t.Fatal(err)
		}
		// A newer kind status replaces the previous one of the same kind.
		if err := s.PutKind(ctx, uk, &tandemv1.KindStatus{Kind: contact, RecordsInSync: 6, ExchangeToSalesforce: inSync}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, uk)
		if err != nil {
			t.Fatal(err)
		}
		want := proto.Clone(exchangePart).(*tandemv1.UserStatus)
		want.OrgId, want.UserId, want.LastCycle = uk.OrgID, uk.UserID, 9
		want.Kinds = []*tandemv1.KindStatus{{Kind: contact, FolderFound: passed, RecordsInSync: 6, ExchangeToSalesforce: inSync}}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}
	})

	t.Run("Put replaces the whole part", func(t *testing.T) {
		recovered := &tandemv1.UserStatus{Email: "rep@acme.example", RecognizedByServiceAccount: passed}
		if err := s.Put(ctx, uk, status.PartExchange, recovered); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetPart(ctx, uk, status.PartExchange)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, recovered) {
			t.Errorf("GetPart = %v, want %v (no failures or error left over)", got, recovered)
		}
	})

	t.Run("users are independent", func(t *testing.T) {
		other := store.UserKey{OrgID: uk.OrgID, UserID: "005other"}
		got, err := s.Get(ctx, other)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.GetKinds()) != 0 || got.GetEmail() != "" {
			t.Errorf("another user's status = %v", got)
		}
	})

	t.Run("invalid ids are refused", func(t *testing.T) {
		bad := store.UserKey{OrgID: "org", UserID: "rep@acme.example"}
		if err := s.Put(ctx, bad, status.PartExchange, &tandemv1.UserStatus{}); err == nil {
			t.Error("Put accepted an email as a user id")
		}
		if _, err := s.Get(ctx, bad); err == nil {
			t.Error("Get accepted an email as a user id")
		}
	})
}

func TestSalesforceUsageRoundTrip(t *testing.T) {
	ctx := t.Context()
	s := status.New(store.New(servertest.Redis(t), nil))
	empty, err := s.SalesforceUsage(ctx, "00Dorg")
	if err != nil {
		t.Fatal(err)
	}
	if empty == nil || !proto.Equal(empty, &tandemv1.SalesforceApiUsage{}) {
		t.Fatalf("usage before the first poll = %v, want empty", empty)
	}
	u := &tandemv1.SalesforceApiUsage{
		DailyMax: 15000, Used: 1200, Reserve: 3000, TandemCalls: 42,
		BackedOffUntil: timestamppb.New(time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)),
	}
	if err := s.PutSalesforceUsage(ctx, "00Dorg", u); err != nil {
		t.Fatal(err)
	}
	got, err := s.SalesforceUsage(ctx, "00Dorg")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, u) {
		t.Errorf("usage = %v, want %v", got, u)
	}
	other, err := s.SalesforceUsage(ctx, "00Dother")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(other, &tandemv1.SalesforceApiUsage{}) {
		t.Errorf("another org's usage = %v, want empty", other)
	}
	if err := s.PutSalesforceUsage(ctx, "bad org", u); err == nil {
		t.Error("PutSalesforceUsage accepted an invalid org id")
	}
}
