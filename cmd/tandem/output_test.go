package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files of the CLI's output")

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from its golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var at = time.Date(2026, 12, 6, 9, 30, 0, 0, time.UTC)

func sampleUsers() []*tandemv1.UserStatus {
	pass := tandemv1.CheckResult_CHECK_RESULT_PASSED
	inSync := tandemv1.DirectionStatus_DIRECTION_STATUS_IN_SYNC
	return []*tandemv1.UserStatus{
		{UserId: "005rep1", Email: "rep1@acme.example", AssignedToActiveConfiguration: pass,
			Kinds: []*tandemv1.KindStatus{{Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT, SalesforceToExchange: inSync, ExchangeToSalesforce: inSync, RecordsInSync: 40}}},
		{UserId: "005rep2", Email: "rep2@acme.example", AssignedToActiveConfiguration: pass, Suspended: true,
			LastError: &tandemv1.SyncError{Code: "EXCHANGE_MAILBOX_NOT_FOUND", Message: "the mailbox does not exist,\nor was moved"}},
		{UserId: "005rep3", Email: "rep3@acme.example", AssignedToActiveConfiguration: pass, MailboxClaimedByOrg: "00Dother"},
		{UserId: "005rep4", Email: "rep4@acme.example", AssignedToActiveConfiguration: tandemv1.CheckResult_CHECK_RESULT_FAILED},
	}
}

func sampleErrors() []*tandemv1.SyncErrorEntry {
	return []*tandemv1.SyncErrorEntry{{
		Id: "e1", OrgId: "00Dacme", UserId: "005rep1", Kind: tandemv1.RecordKind_RECORD_KIND_CONTACT,
		Error:       &tandemv1.SyncError{Code: "SALESFORCE_FIELD_INVALID", Message: `Email: invalid email address: "bob@"`, Suggestion: "Fix the address in Exchange, then it syncs.", RecordId: "003x"},
		FirstSeenAt: timestamppb.New(at.Add(-time.Hour)), LastSeenAt: timestamppb.New(at), Occurrences: 3,
	}}
}

func sampleTokens() []*tandemv1.ApiToken {
	return []*tandemv1.ApiToken{
		{TokenId: "bootstrap", Name: "deployment operator token", Role: tandemv1.Role_ROLE_OPERATOR, CreatedAt: timestamppb.New(at), CreatedBy: "bootstrap"},
		{TokenId: "0a1b2c3d4e5f6a7b", Name: "wallboard", Role: tandemv1.Role_ROLE_VIEWER, OrgIds: []string{"00Dacme"},
			CreatedAt: timestamppb.New(at), ExpiresAt: timestamppb.New(at.Add(30 * 24 * time.Hour)), CreatedBy: "bootstrap"},
	}
}

func TestListOutputIsStable(t *testing.T) {
	users := sampleUsers()
	ut := newTable(userHeader...)
	for _, us := range users {
		ut.add(userRow(us)...)
	}
	for _, tc := range []struct {
		name   string
		render func(format string) ([]byte, error)
	}{
		{"users", func(f string) ([]byte, error) {
			var b bytes.Buffer
			err := renderList(&b, f, ut, users)
			return b.Bytes(), err
		}},
		{"errors", func(f string) ([]byte, error) {
			var b bytes.Buffer
			err := renderList(&b, f, errorTable(sampleErrors()), sampleErrors())
			return b.Bytes(), err
		}},
		{"tokens", func(f string) ([]byte, error) {
			var b bytes.Buffer
			err := renderList(&b, f, tokenTable(sampleTokens()), sampleTokens())
			return b.Bytes(), err
		}},
	} {
		for _, format := range listFormats {
			got, err := tc.render(format)
			if err != nil {
				t.Fatalf("%s as %s: %v", tc.name, format, err)
			}
			golden(t, tc.name+"."+format, got)
		}
	}
}

func TestOneMessageAsCSVIsFieldsAndValues(t *testing.T) {
	var b bytes.Buffer
	us := sampleUsers()[0]
	if err := renderOne(&b, formatCSV, us, nil); err != nil {
		t.Fatal(err)
	}
	golden(t, "user-status.csv", b.Bytes())
}

func TestUserStates(t *testing.T) {
	want := []string{stateInSync, stateSuspended, stateBlocked, stateNotAssigned}
	for i, us := range sampleUsers() {
		if got := userState(us); got != want[i] {
			t.Errorf("user %s: state %s, want %s", us.GetEmail(), got, want[i])
		}
	}
	syncing := &tandemv1.UserStatus{AssignedToActiveConfiguration: tandemv1.CheckResult_CHECK_RESULT_PASSED,
		Kinds: []*tandemv1.KindStatus{{SalesforceToExchange: tandemv1.DirectionStatus_DIRECTION_STATUS_INITIAL_SYNC_IN_PROGRESS}}}
	if got := userState(syncing); got != stateSyncing {
		t.Errorf("a user in its initial sync: %s", got)
	}
}
