package api_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	tstatus "github.com/tandem-sync/tandem/pkg/status"
	"github.com/tandem-sync/tandem/pkg/store"
	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

var (
	passed = tandemv1.CheckResult_CHECK_RESULT_PASSED
	failed = tandemv1.CheckResult_CHECK_RESULT_FAILED
)

// userParts are the status parts the services would have written for one user.
type userParts struct {
	assigned   tandemv1.CheckResult   // scheduler part
	recognized tandemv1.CheckResult   // exchange part
	linked     []tandemv1.CheckResult // reconciler's kind statuses: addresses_linked per kind
}

func (e *env) putParts(t *testing.T, userID string, p userParts) {
	t.Helper()
	ctx := t.Context()
	uk := store.UserKey{OrgID: testOrg, UserID: userID}
	if p.assigned != 0 {
		if err := e.status.Put(ctx, uk, tstatus.PartScheduler, &tandemv1.UserStatus{AssignedToActiveConfiguration: p.assigned}); err != nil {
			t.Fatal(err)
		}
	}
	if p.recognized != 0 {
		if err := e.status.Put(ctx, uk, tstatus.PartExchange, &tandemv1.UserStatus{RecognizedByServiceAccount: p.recognized}); err != nil {
			t.Fatal(err)
		}
	}
	for i, l := range p.linked {
		ks := &tandemv1.KindStatus{Kind: tandemv1.RecordKind(i + 1), AddressesLinked: l}
		if err := e.status.PutKind(ctx, uk, ks); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGetOrgStatusCountsUsers(t *testing.T) {
	for _, tc := range []struct {
		name           string
		parts          []userParts
		wantExpected   int64
		wantLinked     int64
		wantRecognized tandemv1.CheckResult
	}{
		{name: "nobody reported yet", parts: []userParts{{}, {}}},
		{
			name: "only users assigned to an active configuration are expected",
			parts: []userParts{
				{assigned: passed, recognized: passed, linked: []tandemv1.CheckResult{passed, passed}},
				{assigned: passed, linked: []tandemv1.CheckResult{passed, failed}},
				{assigned: passed},
				{assigned: failed, recognized: passed, linked: []tandemv1.CheckResult{passed, passed}},
			},
			wantExpected: 3, wantLinked: 1, wantRecognized: passed,
		},
		{
			name: "one recognized mailbox means the service account is recognized",
			parts: []userParts{
				{assigned: passed, recognized: failed},
				{assigned: passed, recognized: passed, linked: []tandemv1.CheckResult{passed}},
			},
			wantExpected: 2, wantLinked: 1, wantRecognized: passed,
		},
		{
			name:         "refused by every mailbox",
			parts:        []userParts{{assigned: passed, recognized: failed}, {assigned: passed, recognized: failed}},
			wantExpected: 2, wantRecognized: failed,
		},
		{
			name:         "unassigned users do not count towards recognition",
			parts:        []userParts{{assigned: failed, recognized: failed}},
			wantExpected: 0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			if _, err := e.st.PutOrg(t.Context(), orgWithSecrets()); err != nil {
				t.Fatal(err)
			}
			var users []*tandemv1.SyncUser
			for i, p := range tc.parts {
				id := fmt.Sprintf("005user%08d", i+1)
				users = append(users, activeUser(id, fmt.Sprintf("rep%d@acme.example", i+1)))
				e.putParts(t, id, p)
			}
			e.putUsers(t, users...)
			resp, err := e.statusC.GetOrgStatus(t.Context(), &tandemv1.GetOrgStatusRequest{OrgId: testOrg})
			if err != nil {
				t.Fatalf("GetOrgStatus: %v", err)
			}
			st := resp.GetStatus()
			if st.GetUsersExpected() != tc.wantExpected || st.GetUsersLinked() != tc.wantLinked || st.GetServiceAccountRecognized() != tc.wantRecognized {
				t.Fatalf("expected %d, linked %d, recognized %s; want %d, %d, %s",
					st.GetUsersExpected(), st.GetUsersLinked(), st.GetServiceAccountRecognized(), tc.wantExpected, tc.wantLinked, tc.wantRecognized)
			}
		})
	}
}

func TestGetOrgStatusActivityScheduleAndUsage(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	org := orgWithSecrets()
	org.Exchange.Auth = tandemv1.ExchangeAuth_EXCHANGE_AUTH_OAUTH_CLIENT_CREDENTIALS
	org.Exchange.ClientId = "11111111-2222-3333-4444-555555555555"
	if _, err := e.st.PutOrg(ctx, org); err != nil {
		t.Fatal(err)
	}

	empty, err := e.statusC.GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: testOrg})
	if err != nil {
		t.Fatalf("GetOrgStatus of a new org: %v", err)
	}
	if st := empty.GetStatus(); st.GetLastCycle() != 0 || len(st.GetActivity()) != 2 || st.GetActivity()[0].GetLastSyncAt() != nil {
		t.Fatalf("new org status = %v", st)
	}

	now := time.Now()
	contactSynced := now.Add(-10 * time.Minute).Truncate(time.Millisecond)
	for _, a := range []struct {
		kind tandemv1.RecordKind
		n    int64
		at   time.Time
	}{
		{tandemv1.RecordKind_RECORD_KIND_CONTACT, 4, now.Add(-3 * time.Hour)},
		{tandemv1.RecordKind_RECORD_KIND_CONTACT, 3, contactSynced},
		{tandemv1.RecordKind_RECORD_KIND_EVENT, 5, now.Add(-30 * time.Hour)}, // older than a day
	} {
		if err := e.st.AddActivity(ctx, testOrg, store.KindName(a.kind), a.n, a.at); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		at := now.Add(time.Duration(i) * time.Hour)
		if _, ok, err := e.st.ClaimCycle(ctx, testOrg, at, at.Add(time.Hour)); err != nil || !ok {
			t.Fatalf("ClaimCycle: %v, %v", ok, err)
		}
	}
	usage := &tandemv1.SalesforceApiUsage{DailyMax: 100000, Used: 4321, Reserve: 20000, TandemCalls: 57, BackedOffUntil: timestamppb.New(now.Add(time.Hour))}
	if err := e.status.PutSalesforceUsage(ctx, testOrg, usage); err != nil {
		t.Fatal(err)
	}

	resp, err := e.statusC.GetOrgStatus(ctx, &tandemv1.GetOrgStatusRequest{OrgId: testOrg})
	if err != nil {
		t.Fatalf("GetOrgStatus: %v", err)
	}
	st := resp.GetStatus()
	if st.GetOrgId() != testOrg || st.GetServiceAccount() != org.GetExchange().GetClientId() {
		t.Errorf("org %q, service account %q; want %q, the OAuth app %q", st.GetOrgId(), st.GetServiceAccount(), testOrg, org.GetExchange().GetClientId())
	}
	if st.GetLastCycle() != 2 {
		t.Errorf("last cycle = %d, want 2", st.GetLastCycle())
	}
	if !proto.Equal(st.GetSalesforceApi(), usage) {
		t.Errorf("Salesforce usage = %v, want %v", st.GetSalesforceApi(), usage)
	}
	want := []*tandemv1.KindActivity{
		{Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT, LastSyncAt: timestamppb.New(contactSynced), SyncedLast_60Minutes: 3, SyncedLast_24Hours: 7},
		{Kind: tandemv1.RecordKind_RECORD_KIND_EVENT, LastSyncAt: timestamppb.New(now.Add(-30 * time.Hour).Truncate(time.Millisecond))},
	}
	if len(st.GetActivity()) != len(want) {
		t.Fatalf("activity = %v", st.GetActivity())
	}
	for i := range want {
		if !proto.Equal(st.GetActivity()[i], want[i]) {
			t.Errorf("activity[%d] = %v, want %v", i, st.GetActivity()[i], want[i])
		}
	}
	wantNoSecrets(t, "GetOrgStatus", resp)
}

func TestGetOrgStatusErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, tc := range []struct {
		name string
		org  string
		want codes.Code
	}{
		{"no org id", "", codes.InvalidArgument},
		{"invalid org id", "00D*", codes.InvalidArgument},
		{"unknown org", "00Dunknown", codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.statusC.GetOrgStatus(t.Context(), &tandemv1.GetOrgStatusRequest{OrgId: tc.org})
			wantCode(t, err, tc.want)
		})
	}
}

func TestGetUserStatus(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	e.putUsers(t, activeUser(user1, "Rep1@Acme.example"), activeUser(user2, "rep2@acme.example"))
	uk := store.UserKey{OrgID: testOrg, UserID: user1}
	next := timestamppb.New(time.Now().Add(5 * time.Minute).Truncate(time.Second))
	if err := e.status.Put(ctx, uk, tstatus.PartScheduler, &tandemv1.UserStatus{
		ConfigurationId: "cfg_reps", AssignedToActiveConfiguration: passed, NextSyncAt: next,
	}); err != nil {
		t.Fatal(err)
	}
	lastErr := &tandemv1.SyncError{Code: "EXCHANGE_SERVER_BUSY", Message: "ErrorServerBusy"}
	if err := e.status.Put(ctx, uk, tstatus.PartExchange, &tandemv1.UserStatus{
		RecognizedByServiceAccount: passed, MailboxVersionSupported: passed, ExchangeVersion: "Exchange2016",
		ConsecutiveFailures: 2, LastError: lastErr,
	}); err != nil {
		t.Fatal(err)
	}
	contact := &tandemv1.KindStatus{Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT, AddressesLinked: passed, RecordsInSync: 12,
		SalesforceToExchange: tandemv1.DirectionStatus_DIRECTION_STATUS_IN_SYNC, ExchangeToSalesforce: tandemv1.DirectionStatus_DIRECTION_STATUS_SYNC_IN_PROGRESS}
	if err := e.status.PutKind(ctx, uk, contact); err != nil {
		t.Fatal(err)
	}
	if err := e.status.Put(ctx, uk, tstatus.PartReconcile, &tandemv1.UserStatus{LastCycle: 9}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.MarkReset(ctx, uk); err != nil {
		t.Fatal(err)
	}
	want := &tandemv1.UserStatus{
		OrgId: testOrg, UserId: user1, Email: "Rep1@Acme.example", ConfigurationId: "cfg_reps",
		AssignedToActiveConfiguration: passed, MailboxVersionSupported: passed, RecognizedByServiceAccount: passed,
		ResetStatus: tandemv1.ResetStatus_RESET_STATUS_MARKED_FOR_RESET, Kinds: []*tandemv1.KindStatus{contact},
		ExchangeVersion: "Exchange2016", LastError: lastErr, ConsecutiveFailures: 2, NextSyncAt: next, LastCycle: 9,
	}

	for _, tc := range []struct {
		name string
		req  *tandemv1.GetUserStatusRequest
		want *tandemv1.UserStatus
	}{
		{"by id", &tandemv1.GetUserStatusRequest{OrgId: testOrg, UserId: user1}, want},
		{"by email, in any case", &tandemv1.GetUserStatusRequest{OrgId: testOrg, Email: "REP1@acme.EXAMPLE"}, want},
		{"id wins over email", &tandemv1.GetUserStatusRequest{OrgId: testOrg, UserId: user1, Email: "rep2@acme.example"}, want},
		{"a user nobody reported on", &tandemv1.GetUserStatusRequest{OrgId: testOrg, Email: "rep2@acme.example"},
			&tandemv1.UserStatus{OrgId: testOrg, UserId: user2, Email: "rep2@acme.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.statusC.GetUserStatus(ctx, tc.req)
			if err != nil {
				t.Fatalf("GetUserStatus: %v", err)
			}
			if !proto.Equal(resp.GetStatus(), tc.want) {
				t.Fatalf("status =\n %v\nwant\n %v", resp.GetStatus(), tc.want)
			}
		})
	}

	for _, tc := range []struct {
		name string
		req  *tandemv1.GetUserStatusRequest
		want codes.Code
	}{
		{"no org id", &tandemv1.GetUserStatusRequest{UserId: user1}, codes.InvalidArgument},
		{"neither id nor email", &tandemv1.GetUserStatusRequest{OrgId: testOrg}, codes.InvalidArgument},
		{"invalid org id", &tandemv1.GetUserStatusRequest{OrgId: "acme.example", UserId: user1}, codes.InvalidArgument},
		{"unknown user id", &tandemv1.GetUserStatusRequest{OrgId: testOrg, UserId: user3}, codes.NotFound},
		{"unknown email", &tandemv1.GetUserStatusRequest{OrgId: testOrg, Email: "nobody@acme.example"}, codes.NotFound},
		{"unknown org", &tandemv1.GetUserStatusRequest{OrgId: "00Dunknown", UserId: user1}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.statusC.GetUserStatus(ctx, tc.req)
			wantCode(t, err, tc.want)
		})
	}
}

func TestListUserStatusesPages(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	var ids []string
	var users []*tandemv1.SyncUser
	// Put out of order: the listing is ordered by user id.
	for _, n := range []int{4, 1, 5, 3, 2} {
		id := fmt.Sprintf("005user%08d", n)
		users = append(users, activeUser(id, fmt.Sprintf("rep%d@acme.example", n)))
		if err := e.status.Put(ctx, store.UserKey{OrgID: testOrg, UserID: id}, tstatus.PartScheduler, &tandemv1.UserStatus{AssignedToActiveConfiguration: passed}); err != nil {
			t.Fatal(err)
		}
	}
	for n := 1; n <= 5; n++ {
		ids = append(ids, fmt.Sprintf("005user%08d", n))
	}
	e.putUsers(t, users...)

	for _, tc := range []struct {
		name     string
		pageSize int32
		want     [][]string
	}{
		{"default page size", 0, [][]string{ids}},
		{"negative page size means the default", -3, [][]string{ids}},
		{"pages of two", 2, [][]string{ids[:2], ids[2:4], ids[4:]}},
		{"a page size that divides evenly", 5, [][]string{ids}},
		{"pages of one", 1, [][]string{ids[:1], ids[1:2], ids[2:3], ids[3:4], ids[4:]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token := ""
			for i, wantPage := range tc.want {
				resp, err := e.statusC.ListUserStatuses(ctx, &tandemv1.ListUserStatusesRequest{OrgId: testOrg, PageSize: tc.pageSize, PageToken: token})
				if err != nil {
					t.Fatalf("page %d: %v", i, err)
				}
				var got []string
				for _, us := range resp.GetStatuses() {
					got = append(got, us.GetUserId())
					if us.GetEmail() == "" || us.GetAssignedToActiveConfiguration() != passed {
						t.Errorf("page %d: status %v lacks its email or parts", i, us)
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(wantPage) {
					t.Fatalf("page %d = %v, want %v", i, got, wantPage)
				}
				last := i == len(tc.want)-1
				if (resp.GetNextPageToken() == "") != last {
					t.Fatalf("page %d: next page token %q, last page %v", i, resp.GetNextPageToken(), last)
				}
				token = resp.GetNextPageToken()
			}
		})
	}

	// A token past the last user lists nothing.
	resp, err := e.statusC.ListUserStatuses(ctx, &tandemv1.ListUserStatusesRequest{OrgId: testOrg, PageToken: ids[4]})
	if err != nil || len(resp.GetStatuses()) != 0 || resp.GetNextPageToken() != "" {
		t.Fatalf("past the end: %v, %v", resp, err)
	}
	// An org without users lists nothing.
	resp, err = e.statusC.ListUserStatuses(ctx, &tandemv1.ListUserStatusesRequest{OrgId: "00Dempty"})
	if err != nil || len(resp.GetStatuses()) != 0 || resp.GetNextPageToken() != "" {
		t.Fatalf("empty org: %v, %v", resp, err)
	}
	for _, tc := range []struct {
		name string
		req  *tandemv1.ListUserStatusesRequest
		want codes.Code
	}{
		{"no org id", &tandemv1.ListUserStatusesRequest{}, codes.InvalidArgument},
		{"invalid org id", &tandemv1.ListUserStatusesRequest{OrgId: "a.b"}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.statusC.ListUserStatuses(ctx, tc.req)
			wantCode(t, err, tc.want)
		})
	}
}

func TestListSyncErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := t.Context()
	// Errors are recorded through a store with its own clock, a second apart, so that the
	// report's newest-first order is known.
	at := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	recorder := store.New(e.rdb, nil, store.WithClock(func() time.Time { at = at.Add(time.Second); return at }))
	type rec struct {
		user, code, record string
	}
	recorded := []rec{
		{user1, "SALESFORCE_FIELD_TOO_LONG", "003a"},
		{user2, "EXCHANGE_SERVER_BUSY", ""},
		{user1, "EXCHANGE_ITEM_NOT_FOUND", "AAMk1"},
		{"", "SALESFORCE_API_LIMIT", ""},
		{user1, "SALESFORCE_FIELD_TOO_LONG", "003a"}, // a repeat: one entry, seen twice, now newest
	}
	for _, r := range recorded {
		if _, err := recorder.RecordError(ctx, testOrg, r.user, tandemv1.RecordKind_RECORD_KIND_CONTACT,
			&tandemv1.SyncError{Code: r.code, RecordId: r.record, Message: r.code + " happened"}); err != nil {
			t.Fatal(err)
		}
	}

	list := func(t *testing.T, user string, size int32) [][]string {
		t.Helper()
		var pages [][]string
		token := ""
		for {
			resp, err := e.statusC.ListSyncErrors(ctx, &tandemv1.ListSyncErrorsRequest{OrgId: testOrg, UserId: user, PageSize: size, PageToken: token})
			if err != nil {
				t.Fatalf("ListSyncErrors: %v", err)
			}
			var page []string
			for _, en := range resp.GetEntries() {
				page = append(page, en.GetError().GetCode())
				if en.GetError().GetCode() == "SALESFORCE_FIELD_TOO_LONG" && en.GetOccurrences() != 2 {
					t.Errorf("repeated error has %d occurrences, want 2", en.GetOccurrences())
				}
				if en.GetOrgId() != testOrg || en.GetId() == "" || en.GetLastSeenAt() == nil {
					t.Errorf("entry %v lacks its ids or times", en)
				}
			}
			pages = append(pages, page)
			if token = resp.GetNextPageToken(); token == "" {
				return pages
			}
			if len(pages) > 10 {
				t.Fatal("paging does not end")
			}
		}
	}
	for _, tc := range []struct {
		name string
		user string
		size int32
		want [][]string
	}{
		{"the whole report, newest first", "", 0, [][]string{{"SALESFORCE_FIELD_TOO_LONG", "SALESFORCE_API_LIMIT", "EXCHANGE_ITEM_NOT_FOUND", "EXCHANGE_SERVER_BUSY"}}},
		{"pages of three", "", 3, [][]string{{"SALESFORCE_FIELD_TOO_LONG", "SALESFORCE_API_LIMIT", "EXCHANGE_ITEM_NOT_FOUND"}, {"EXCHANGE_SERVER_BUSY"}}},
		{"one user's entries", user1, 1, [][]string{{"SALESFORCE_FIELD_TOO_LONG"}, {"EXCHANGE_ITEM_NOT_FOUND"}}},
		{"a user without errors", user3, 0, [][]string{nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := list(t, tc.user, tc.size); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("pages = %v, want %v", got, tc.want)
			}
		})
	}

	for _, tc := range []struct {
		name string
		req  *tandemv1.ListSyncErrorsRequest
		want codes.Code
	}{
		{"no org id", &tandemv1.ListSyncErrorsRequest{}, codes.InvalidArgument},
		{"invalid org id", &tandemv1.ListSyncErrorsRequest{OrgId: "a.b"}, codes.InvalidArgument},
		{"invalid user id", &tandemv1.ListSyncErrorsRequest{OrgId: testOrg, UserId: "rep@acme.example"}, codes.InvalidArgument},
		{"a page token that is not base64", &tandemv1.ListSyncErrorsRequest{OrgId: testOrg, PageToken: "%%%"}, codes.InvalidArgument},
		{"a page token of another shape", &tandemv1.ListSyncErrorsRequest{OrgId: testOrg, PageToken: "bm90LWEtY3Vyc29y"}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.statusC.ListSyncErrors(ctx, tc.req)
			wantCode(t, err, tc.want)
		})
	}
}
