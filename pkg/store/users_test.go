package store

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/testing/protocmp"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestUserDirectory(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		first := []*tandemv1.SyncUser{
			{UserId: "005B", Email: "Bob.Smith@Acme.example", ProfileId: "00eSales", Active: true, Username: "bob@acme.example.sf", Name: "Bob Smith"},
			{UserId: "005A", Email: "alice@acme.example", Active: true},
			{UserId: "005Z", Email: "gone@acme.example", Active: true},
		}
		if err := s.PutUsers(ctx, testOrg, first); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetUser(ctx, testOrg, "005B")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(first[0], got, protocmp.Transform()); diff != "" {
			t.Fatalf("GetUser (-want +got):\n%s", diff)
		}

		second := []*tandemv1.SyncUser{
			{UserId: "005B", Email: "bob.smith@acme.example", Active: false},
			{UserId: "005C", Email: "BOB.SMITH@acme.example", Active: true},
			{UserId: "005D", Email: "dora@acme.example", Active: false},
			{UserId: "005E", Email: "dora@acme.example", Active: false},
			{UserId: "005A", Email: "alice@acme.example", Active: true},
			{UserId: "005N"},
		}
		if err := s.PutUsers(ctx, testOrg, second); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListUsers(ctx, testOrg)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, u := range list {
			ids = append(ids, u.UserId)
		}
		if diff := cmp.Diff([]string{"005A", "005B", "005C", "005D", "005E", "005N"}, ids); diff != "" {
			t.Fatalf("ListUsers after replace (-want +got):\n%s", diff)
		}
		if _, err := s.GetUser(ctx, testOrg, "005Z"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a user dropped from the directory: GetUser = %v, want ErrNotFound", err)
		}

		tests := []struct {
			email string
			want  string // "" means not found
		}{
			{"alice@acme.example", "005A"},
			{"  ALICE@Acme.Example ", "005A"},
			{"bob.smith@acme.example", "005C"}, // shared: the active user wins
			{"dora@acme.example", "005D"},      // shared, both inactive: the lowest id
			{"gone@acme.example", ""},          // dropped with its user
			{"nobody@acme.example", ""},
			{"", ""},
		}
		for _, tc := range tests {
			u, err := s.FindUserByEmail(ctx, testOrg, tc.email)
			if tc.want == "" {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("FindUserByEmail(%q) = %v, %v; want ErrNotFound", tc.email, u, err)
				}
				continue
			}
			if err != nil || u.UserId != tc.want {
				t.Errorf("FindUserByEmail(%q) = %v, %v; want %s", tc.email, u, err, tc.want)
			}
		}

		if err := s.PutUsers(ctx, testOrg, nil); err != nil {
			t.Fatal(err)
		}
		if list, err := s.ListUsers(ctx, testOrg); err != nil || len(list) != 0 {
			t.Fatalf("ListUsers after an empty replace = %v, %v", list, err)
		}
		if _, err := s.FindUserByEmail(ctx, testOrg, "alice@acme.example"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("email index survived an empty replace: %v", err)
		}
	})
}

func TestPutUsersRejects(t *testing.T) {
	s := newTestStore(t, miniRedis.start(t))
	ctx := t.Context()
	if err := s.PutUsers(ctx, testOrg, []*tandemv1.SyncUser{{UserId: "005A", Email: "a@x"}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		users []*tandemv1.SyncUser
	}{
		{"bad id", []*tandemv1.SyncUser{{UserId: "005 A"}}},
		{"empty id", []*tandemv1.SyncUser{{Email: "a@x"}}},
		{"nil user", []*tandemv1.SyncUser{nil}},
		{"duplicate id", []*tandemv1.SyncUser{{UserId: "005B"}, {UserId: "005B"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.PutUsers(ctx, testOrg, tc.users); !errors.Is(err, ErrInvalid) {
				t.Fatalf("PutUsers = %v, want ErrInvalid", err)
			}
		})
	}
	// A refused replace leaves the directory as it was.
	if _, err := s.GetUser(ctx, testOrg, "005A"); err != nil {
		t.Fatalf("directory changed by a refused replace: %v", err)
	}
}

func TestCursors(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		orgCursor := CursorKey{Org: testOrg, Name: "Contact"}
		userCursor := CursorKey{Org: testOrg, User: "005A", Name: "Contact"}

		if _, ok, err := s.GetCursor(ctx, orgCursor); err != nil || ok {
			t.Fatalf("GetCursor of a new cursor = %v, %v", ok, err)
		}
		if err := s.PutCursor(ctx, orgCursor, "2026-03-02T09:00:00.000Z"); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCursor(ctx, userCursor, "H4sIAAAAAAAEAO29B2AcSZ"); err != nil {
			t.Fatal(err)
		}
		for k, want := range map[CursorKey]string{orgCursor: "2026-03-02T09:00:00.000Z", userCursor: "H4sIAAAAAAAEAO29B2AcSZ"} {
			got, ok, err := s.GetCursor(ctx, k)
			if err != nil || !ok || got != want {
				t.Errorf("GetCursor(%s) = %q, %v, %v; want %q", k, got, ok, err, want)
			}
		}

		// A per-user cursor advances in a fenced commit, with the state it covers.
		lease, err := s.AcquireLease(ctx, UserKey{OrgID: testOrg, UserID: "005A"}, "exchange", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		key, err := userCursor.Key()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, lease, Set(key, "next-state", 0)); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := s.GetCursor(ctx, userCursor); got != "next-state" {
			t.Fatalf("cursor after commit = %q", got)
		}

		if err := s.DeleteCursor(ctx, userCursor); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := s.GetCursor(ctx, userCursor); err != nil || ok {
			t.Fatalf("GetCursor after delete = %v, %v", ok, err)
		}
		if err := s.PutCursor(ctx, CursorKey{Org: testOrg, Name: "a.b"}, "x"); !errors.Is(err, ErrInvalidID) {
			t.Fatalf("PutCursor with a bad name = %v, want ErrInvalidID", err)
		}
	})
}

func TestResetMarks(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := t.Context()
		s := newTestStore(t, rdb)
		uk := UserKey{OrgID: testOrg, UserID: "005A"}
		other := UserKey{OrgID: testOrg, UserID: "005B"}
		status := func() tandemv1.ResetStatus {
			t.Helper()
			st, err := s.ResetStatus(ctx, uk)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
		mustBool := func(ok bool, err error) bool {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}

		if st := status(); st != tandemv1.ResetStatus_RESET_STATUS_UNSPECIFIED {
			t.Fatalf("initial status = %s", st)
		}
		if mustBool(s.BeginReset(ctx, uk)) {
			t.Fatal("BeginReset started a reset nobody asked for")
		}
		if err := s.MarkReset(ctx, uk); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkReset(ctx, other); err != nil {
			t.Fatal(err)
		}
		if st := status(); st != tandemv1.ResetStatus_RESET_STATUS_MARKED_FOR_RESET {
			t.Fatalf("status after mark = %s", st)
		}
		if mustBool(s.ClearReset(ctx, uk)) {
			t.Fatal("ClearReset cleared a reset that had not started")
		}
		if !mustBool(s.BeginReset(ctx, uk)) {
			t.Fatal("BeginReset did not start the marked reset")
		}
		if mustBool(s.BeginReset(ctx, uk)) {
			t.Fatal("a second BeginReset started the same reset again")
		}
		if st := status(); st != tandemv1.ResetStatus_RESET_STATUS_RESET_IN_PROGRESS {
			t.Fatalf("status after begin = %s", st)
		}

		resets, err := s.ListResets(ctx, testOrg)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]tandemv1.ResetStatus{
			"005A": tandemv1.ResetStatus_RESET_STATUS_RESET_IN_PROGRESS,
			"005B": tandemv1.ResetStatus_RESET_STATUS_MARKED_FOR_RESET,
		}
		if diff := cmp.Diff(want, resets); diff != "" {
			t.Fatalf("ListResets (-want +got):\n%s", diff)
		}

		// Marked again while running: the running reset's end does not clear the new mark.
		if err := s.MarkReset(ctx, uk); err != nil {
			t.Fatal(err)
		}
		if mustBool(s.ClearReset(ctx, uk)) {
			t.Fatal("ClearReset cleared a new mark")
		}
		if !mustBool(s.BeginReset(ctx, uk)) || !mustBool(s.ClearReset(ctx, uk)) {
			t.Fatal("second reset did not run")
		}
		if st := status(); st != tandemv1.ResetStatus_RESET_STATUS_UNSPECIFIED {
			t.Fatalf("status after clear = %s", st)
		}

		if err := s.SetResetStatus(ctx, other, tandemv1.ResetStatus_RESET_STATUS_UNSPECIFIED); err != nil {
			t.Fatal(err)
		}
		if resets, err := s.ListResets(ctx, testOrg); err != nil || len(resets) != 0 {
			t.Fatalf("ListResets after clearing all = %v, %v", resets, err)
		}
		if err := s.SetResetStatus(ctx, uk, 42); err == nil {
			t.Fatal("SetResetStatus accepted an unknown status")
		}
	})
}
