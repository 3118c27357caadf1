package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tandemv1 "github.com/tandem-sync/tandem/proto/tandem/v1"
)

func TestStatusShowsASuspension(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var user, org bytes.Buffer
	printUserStatus(&user, &tandemv1.UserStatus{
		UserId: "005rep1", Email: "rep1@acme.example", Suspended: true, SuspendedAt: timestamppb.New(at), PermanentFailures: 5,
		NextSyncAt: timestamppb.New(at.Add(24 * time.Hour)), LastError: &tandemv1.SyncError{Code: "EXCHANGE_MAILBOX_NOT_FOUND", Message: "gone"},
	})
	if !strings.Contains(user.String(), "Sync suspended:") || !strings.Contains(user.String(), "after 5 permanent failures") {
		t.Errorf("user status does not show the suspension:\n%s", user.String())
	}
	printOrgStatus(&org, &tandemv1.OrgStatus{OrgId: "00Dacme", UsersExpected: 3, UsersSuspended: 1})
	if !strings.Contains(org.String(), "Users whose sync is suspended:       1") {
		t.Errorf("org status does not count the suspended user:\n%s", org.String())
	}

	var quiet bytes.Buffer
	printUserStatus(&quiet, &tandemv1.UserStatus{UserId: "005rep2", Email: "rep2@acme.example"})
	printOrgStatus(&quiet, &tandemv1.OrgStatus{OrgId: "00Dacme", UsersExpected: 3})
	if strings.Contains(quiet.String(), "uspended") {
		t.Errorf("a status without suspension mentions one:\n%s", quiet.String())
	}
}
